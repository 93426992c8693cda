"""Benchmark: fresh-clone `make build` (wall time, peak RSS) and a no-op `doit`.

    python3 benchmarks/build.py [--repo .] [--keep]

Clones the repo (committed state) into a temp dir, runs `make build` there
(creating its own .venv), then times a second, no-op `doit` run. Peak RSS is
the largest resident set of any single process in the build
(getrusage(RUSAGE_CHILDREN).ru_maxrss). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--keep", action="store_true", help="keep the clone for inspection")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kokoro-build-bench-"))
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", args.repo, str(clone)], check=True)
    build_s = timed(["make", "build"], clone)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    noop_s = timed([str(clone / ".venv" / "bin" / "doit")], clone)
    packages = sorted(p.name for p in (clone / "artifacts" / "default").rglob("*.mlpackage"))
    print(json.dumps({"make_build_s": round(build_s, 1), "peak_rss_mb": round(peak_mb),
                      "noop_doit_s": round(noop_s, 2), "packages": packages,
                      "machine": f"{platform.machine()}, {subprocess.getoutput('nproc')} cores",
                      "date": time.strftime("%Y-%m-%d")}))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
