"""How a doit task runs its step: a python-action that imports the step's (heavy)
module only when it runs, optionally in a clean child and through the step cache.

Every task's code dependencies include this module's (plan/code_deps.py), since it
runs every step.
"""
from __future__ import annotations

import errno

from kokoro_build.errors import BuildError
from kokoro_build.store.package import write_error


def action(target: str, cache: dict | None = None, isolated: bool = False):
    """A doit python-action running `target` ("pkg.module:function").
    `cache` ({root, step, slice, inputs, targets, remote?}): through store/cache.run_cached;
    `isolated`: in a fresh child process (store/isolated.py: traces must not see each
    other). A failed write (full disk, read-only) or a BuildError (bad input) is a
    one-paragraph failure, not a traceback."""
    from doit.exceptions import TaskFailed

    module_name, func_name = target.split(":")

    def run(*args):
        import importlib

        from kokoro_build.store.memory import map_large_buffers
        map_large_buffers()  # before the first big tensor: see store/memory.py
        func = getattr(importlib.import_module(module_name), func_name)
        step = func
        if isolated:
            from kokoro_build.store.isolated import run_isolated
            step = lambda *a: run_isolated(func, *a)  # noqa: E731
        try:
            if cache is None:
                step(*args)
                return
            from kokoro_build.store.cache import run_cached
            run_cached(cache["root"], cache["step"], cache["slice"], cache["inputs"], cache["targets"],
                       lambda: step(*args), remote=cache.get("remote"))
        except BuildError as error:
            return TaskFailed(str(error))
        except Exception as error:
            failed = write_error(error)
            if failed is None:
                raise
            return TaskFailed(write_failure(failed))
    run.__name__ = func_name
    run.__module_target__ = target
    run.__isolated__ = isolated
    run.__cache__ = cache
    return run


def write_failure(error: OSError) -> str:
    return (f"could not write {error.filename or 'an output'}: {error.strerror} "
            f"[errno {errno.errorcode.get(error.errno, error.errno)}].\n"
            "Every artifact is written beside its place and renamed in only when complete, so "
            "nothing half-written was published: what was there before is still there, and an "
            "artifact that no longer matches its digest is rebuilt. Free some space (or make "
            "the folder writable) and run doit again.")
