"""Where independent units of work run: one small interface, so `tune` (and a sweep)
does not care whether it is this process, a local process pool, or a cluster.

An executor maps a picklable function over picklable items and yields
(item, result or exception) as each finishes; a failed item does not stop the others.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Iterable, Iterator, Protocol


class Executor(Protocol):
    name: str

    def map_unordered(self, fn: Callable, items: Iterable) -> Iterator[tuple[object, object]]:
        ...


class InProcess:
    """Everything in this process, in order (tests; a single worker)."""
    name = "in-process"

    def map_unordered(self, fn, items):
        for item in items:
            try:
                yield item, fn(item)
            except Exception as error:  # reported by the caller with its item
                yield item, error


class LocalPool:
    """A process pool on this machine. Workers start with `spawn` (no forked torch
    threads) and one intra-op thread each, so N workers use N cores."""
    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers or max(1, os.cpu_count() or 1)

    def map_unordered(self, fn, items):
        items = list(items)
        if self.workers == 1 or len(items) <= 1:
            yield from InProcess().map_unordered(fn, items)
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_one_thread) as pool:
            futures = {pool.submit(fn, item): item for item in items}
            for future in as_completed(futures):
                error = future.exception()
                yield futures[future], (error if error is not None else future.result())


def _one_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    torch.set_num_threads(1)


def make_executor(name: str, workers: int | None = None) -> Executor:
    if name == "local":
        return LocalPool(workers)
    if name == "in-process":
        return InProcess()
    raise ValueError(f"unknown executor {name!r}; known: local, in-process")
