"""Run a build step in a fresh child process.

Why: a TorchScript trace depends on what the process traced before. torch names a
module type that is already known `___torch_mangle_<n>` from one process-wide
counter, and the graph's value names follow (`input0.21` or `input0.4`). Measured
here: the same vocoder bucket traced alone and after another bucket gave different
bytes, down to the converted package's op names, so a rebuilt bucket, a resumed
build or `doit -n 2` no longer matched a full serial build. A fresh
`torch.jit.CompilationUnit` does not help: the types live in the global one.

The children fork from a forkserver that has imported torch and the model code but
never traced anything, so each one starts clean in milliseconds (a plain
`python -c` costs ~8 s of imports here). A child dies with its build (Linux:
PR_SET_PDEATHSIG), so a killed doit leaves no orphan writing artifacts.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

# transformers (ALBERT, 3.8 s of the 8) is what kokoro.model takes long to import
PRELOAD = ["torch", "transformers.models.albert.modeling_albert", "kokoro_build.targets.coreml.export",
           "kokoro_build.model.stages", "kokoro_build.model.surgery"]
PR_SET_PDEATHSIG = 1


class IsolatedStepError(RuntimeError):
    pass


def die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6").prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the child may outlive a killed build
        pass
    from kokoro_build.store.memory import map_large_buffers
    map_large_buffers()


def run_isolated(func: Callable, *args) -> None:
    """`func(*args)` in a fresh child; its exceptions are raised here. A step's module may
    name more modules for the forkserver to import (`FORKSERVER_PRELOAD`); they count
    when its step is the build's first isolated one, which starts the forkserver."""
    context = multiprocessing.get_context("forkserver")
    extra = getattr(sys.modules.get(func.__module__), "FORKSERVER_PRELOAD", ())
    context.set_forkserver_preload([*PRELOAD, *extra])
    with ProcessPoolExecutor(1, mp_context=context, initializer=die_with_parent) as pool:
        try:
            pool.submit(func, *args).result()
        except BrokenProcessPool:
            raise IsolatedStepError(f"{func.__name__}: its process died (killed, or out of memory); "
                                    "nothing it wrote was published") from None
