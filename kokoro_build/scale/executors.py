"""Where independent units of work run: one small interface, so `tune` (its trials) and
`sweep` (its variants) do not care whether it is this process, a local process pool,
or a Ray cluster.

An executor maps a picklable function over picklable items and yields
(item, result or exception) as each finishes; a failed item does not stop the others.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Iterable, Iterator, Protocol

EXECUTORS = ("local", "ray", "in-process")
RAY_MISSING = "the ray backend needs Ray: pip install 'kokoro-build[ray]' (pinned in requirements/scale.txt)"


class ExecutorError(RuntimeError):
    """An executor that cannot start (no Ray, no cluster at the address)."""


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
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=one_thread) as pool:
            futures = {pool.submit(fn, item): item for item in items}
            for future in as_completed(futures):
                error = future.exception()
                yield futures[future], (error if error is not None else future.result())


class RayExecutor:
    """Each item is one Ray task that declares `num_cpus` and `memory` (bytes), so Ray
    packs as many on each node as fit. `address`: "auto" (the cluster this machine
    belongs to, `ray start`), a cluster address ("HOST:6379", "ray://HOST:10001"), or
    "local" (a cluster in this process with `workers` CPUs, default all of them)."""
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: float = 1, memory: int | None = None,
                 workers: int | None = None):
        self.ray = import_ray()
        self.address = address or "auto"
        self.options = {"num_cpus": num_cpus, **({"memory": int(memory)} if memory else {})}
        self.workers = workers

    def _connect(self) -> bool:
        """Join or start the cluster; True if this call did (and so shuts it down)."""
        if self.ray.is_initialized():
            return False
        try:
            if self.address == "local":
                _loopback_only(self.ray)
                self.ray.init(num_cpus=self.workers or os.cpu_count() or 1, include_dashboard=False,
                              log_to_driver=False)
            else:
                self.ray.init(address=self.address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ExecutorError(f"ray: cannot connect to {self.address!r}: {error}") from error
        return True

    def map_unordered(self, fn, items):
        items = list(items)
        started = self._connect()
        try:
            task = self.ray.remote(_in_ray_worker).options(**self.options)
            pending = {task.remote(fn, item): item for item in items}
            while pending:
                done, _ = self.ray.wait(list(pending), num_returns=1)
                for ref in done:
                    item = pending.pop(ref)
                    try:
                        yield item, self.ray.get(ref)
                    except Exception as error:  # the task's own error where Ray kept it
                        yield item, _cause(self.ray, error)
        finally:
            if started:
                self.ray.shutdown()


def import_ray():
    try:
        import ray
    except ImportError as error:
        raise ExecutorError(RAY_MISSING) from error
    return ray


def _loopback_only(ray) -> None:
    """A one-machine cluster listens on 127.0.0.1, not on this machine's network address
    (Ray's choice for a cluster others may join): its own switch for that, read at
    import, so set for this process and, by the environment, for the ones it starts."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def _in_ray_worker(fn, item):
    one_thread()  # a Ray worker process is reused: setting it again is cheap
    return fn(item)


def _cause(ray, error: Exception) -> Exception:
    cause = getattr(error, "cause", None) if isinstance(error, ray.exceptions.RayTaskError) else None
    return cause if isinstance(cause, Exception) else error


def one_thread() -> None:
    """One intra-op thread in this worker (and the processes it starts): N workers, N cores."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    torch.set_num_threads(1)


def make_executor(name: str, workers: int | None = None, address: str | None = None,
                  resources: dict | None = None) -> Executor:
    """`resources`: what one item needs on a Ray node ({"num_cpus": 1, "memory": bytes})."""
    if name == "local":
        return LocalPool(workers)
    if name == "in-process":
        return InProcess()
    if name == "ray":
        return RayExecutor(address, workers=workers, **(resources or {}))
    raise ValueError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
