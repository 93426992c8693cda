"""Fault injection for the reliability tests: kill the build, or fail a write, at a
named point, so a test can prove what a real SIGKILL or full disk leaves behind.

Inert unless KOKORO_BUILD_FAULT is set, to `<point>:<glob>[:<effect>]`:
  point   write    an artifact's temporary is complete but not yet renamed into place
          publish  the artifact was just renamed into place (its digest may not be)
          upload   a remote cache object is uploaded under its temporary key, not yet
                   moved to its final key (store/remote.py)
  glob    matched against the artifact's path (fnmatch; `*` crosses folders)
  effect  kill     SIGKILL the process group (default): the build stops dead there
          enospc   raise OSError(ENOSPC), as a full disk would
          erofs    raise OSError(EROFS), as a read-only file system would
"""
from __future__ import annotations

import errno
import fnmatch
import os
import signal
from pathlib import Path

ENV = "KOKORO_BUILD_FAULT"
EFFECTS = {"enospc": errno.ENOSPC, "erofs": errno.EROFS}


def checkpoint(point: str, path: str | Path) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    wanted, pattern, effect = (spec.split(":") + ["kill"])[:3]
    if wanted != point or not fnmatch.fnmatch(str(path), pattern):
        return
    if effect == "kill":
        os.killpg(os.getpgid(0), signal.SIGKILL)
    if effect not in EFFECTS:
        raise ValueError(f"{ENV}={spec!r}: effect must be kill, {' or '.join(EFFECTS)}")
    raise OSError(EFFECTS[effect], os.strerror(EFFECTS[effect]), str(path))
