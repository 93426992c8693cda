"""Process-wide memory behaviour: one glibc malloc policy per process, set before the
first big buffer. Builds return large buffers to the OS (map_large_buffers); the torch
backend, when asked, keeps freed memory for the next buffer (keep_freed_memory). The
first one a process sets is the one it keeps, so a build step that speaks through a
backend (the report task) stays on the build's policy."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# glibc malloc.h mallopt parameters
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
THRESHOLD_BYTES = 4 << 20
_LARGEST_INT = 2**31 - 1

# KOKORO_BUILD_MALLOC=keep: the torch backend keeps freed memory (keep_freed_memory)
RUNTIME_SETTING = "KOKORO_BUILD_MALLOC"

_policy: str | None = None  # "map", "keep", or "default" once chosen


def map_large_buffers() -> None:
    """Serve allocations of 4 MB and more with mmap, returned to the OS when freed.

    glibc's default threshold adapts upwards to the sizes it sees, and then keeps
    freed activations on its heap. Measured here: tracing the 30 s vocoder peaked at
    6.8 GB (1.96 GB with this), and the MIL evaluator on the 10 s vocoder at 15 GB
    (1.4 GB) while running 2.4x slower. Linux/glibc only; elsewhere nothing changes.
    """
    global _policy
    if _policy is None:
        _policy = "map"
        _mallopt((M_MMAP_THRESHOLD, THRESHOLD_BYTES))


def keep_freed_memory() -> bool:
    """With KOKORO_BUILD_MALLOC=keep (the torch backend asks; nothing else does), serve
    every size from the heap and never trim it, so that a freed buffer is the next
    one's memory; True if that is the process's policy.

    Above its mmap threshold (at most 32 MiB) glibc maps each allocation anew and
    unmaps it when freed, so each of the vocoder's activations at 120 samples per
    frame ([1, 128, 72,001] fp32 is 37 MB at 600 frames) is faulted in and zeroed by
    the kernel page by page. Measured on this 2-core box (BENCHMARKS.md "Allocator"):
    at 600 frames the vocoder twin took 5.5 s a call, 5.1 s of it system time (2.9
    million minor faults); kept, 2.4 s. Over the chain benchmark's 24 sentences, 16 %
    less time, for KModel as for the chain. It is opt-in because the process then
    holds its peak heap, fragmented: a one-sentence `speak` peaked at 5.5 GB instead
    of 2.5 GB for 3 % less time, and the MIL evaluator ran slower with it.
    Linux/glibc only."""
    global _policy
    if _policy is None:
        wanted = os.environ.get(RUNTIME_SETTING) == "keep"
        _policy = "keep" if wanted and _mallopt((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, _LARGEST_INT)) else "default"
    return _policy == "keep"


def _mallopt(*settings: tuple[int, int]) -> bool:
    """Apply glibc mallopt settings; False where there is no glibc (macOS, musl)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    return all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)
