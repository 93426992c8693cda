"""store/memory.py: large buffers come from the heap, which keeps freed memory for
the next one, instead of from a fresh mmap each (faulted in and zeroed anew)."""
import os
import platform
import subprocess
import sys

import pytest

# Where a 40 MB buffer (above glibc's largest mmap threshold, 32 MiB) lives, twice
PROBE = """
import numpy as np
import sys
from kokoro_build.store import memory
if "build-first" in sys.argv:
    memory.map_large_buffers()
print(memory.keep_freed_memory())
def in_heap(address):
    for line in open("/proc/self/maps"):
        span, *rest = line.split()
        low, high = (int(x, 16) for x in span.split("-"))
        if low <= address < high:
            return rest[-1] == "[heap]"
    return False
addresses = []
for _ in range(2):
    buffer = np.ones(10_000_000, dtype=np.float32)
    addresses.append(buffer.ctypes.data)
    print(in_heap(buffer.ctypes.data))
    del buffer
print(addresses[0] == addresses[1])
"""


def _probe(setting: str | None, *args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "KOKORO_BUILD_MALLOC"}
    if setting is not None:
        env["KOKORO_BUILD_MALLOC"] = setting
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, check=True)
    return out.stdout.split()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_large_buffers_come_from_the_heap_and_reuse_freed_memory():
    kept, first_in_heap, second_in_heap, same_address = _probe("keep")
    assert kept == "True" and first_in_heap == second_in_heap == "True" and same_address == "True"


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_unless_asked_glibc_keeps_its_own_policy():
    for setting in (None, "default"):
        kept, first_in_heap, second_in_heap, _ = _probe(setting)
        assert kept == "False" and first_in_heap == second_in_heap == "False"  # glibc maps each one


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_a_build_process_keeps_the_build_policy():
    """The report task speaks through a backend inside the build: memory goes back to the OS."""
    kept, first_in_heap, second_in_heap, _ = _probe("keep", "build-first")
    assert kept == "False" and first_in_heap == second_in_heap == "False"
