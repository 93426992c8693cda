"""Running doit on a pipeline file from inside kokoro-build (tune builds its base's
converted packages, then the recipe it writes), as `doit config=FILE` would."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DODO = Path(__file__).resolve().parents[2] / "dodo.py"


class BuildError(RuntimeError):
    pass


def run_doit(config_path: str | Path, tasks: list[str] = (), log=print) -> None:
    """Build `tasks` (default: the default tasks) of `config_path`; the output streams
    through `log` line by line. Raises BuildError naming the file and the failed tail."""
    command = [sys.executable, "-m", "doit", "-f", str(DODO), f"config={config_path}", *tasks]
    process = subprocess.Popen(command, cwd=DODO.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    tail: list[str] = []
    for line in process.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-15:]
        log(f"  | {line}")
    if process.wait() != 0:
        raise BuildError(f"doit config={config_path} {' '.join(tasks)} failed:\n" + "\n".join(tail))
