"""Benchmark: the default pipeline built serially and with `doit -n 2`, each in a
fresh folder (weights included), on this machine. Checks that both end at the same
digests (every *.digest.json's sha256) and prints one JSON line.

    .venv/bin/python benchmarks/parallel.py [--config pipeline.yaml] [--parallel-threads N] [--keep]

--parallel-threads N sets OMP_NUM_THREADS=N for the `-n 2` build only (torch's
intra-op threads per worker process; unset, each of the two workers uses every core).

Run nothing else heavy beside it: the two builds run one after the other.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from kokoro_build.schema.config import load_config  # noqa: E402
from kokoro_build.store.package import DIGEST_SUFFIX  # noqa: E402


def build(folder: Path, config: Path, *args: str, env: dict | None = None) -> dict:
    folder.mkdir(parents=True)
    shutil.copy(config, folder / "pipeline.yaml")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"), *args,
                             f"config={folder / 'pipeline.yaml'}"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"build {args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    out = folder / "artifacts" / load_config(config).name
    digests = {str(p.relative_to(out)): json.loads(p.read_text())["sha256"]
               for p in sorted(out.rglob(f"*{DIGEST_SUFFIX}"))}
    tasks = sum(1 for line in result.stdout.splitlines() if line.startswith(".  "))
    return {"seconds": round(seconds, 1), "tasks": tasks, "digests": digests}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=str(ROOT / "pipeline.yaml"))
    parser.add_argument("--parallel-threads", type=int, help="OMP_NUM_THREADS for the -n 2 build")
    parser.add_argument("--keep", action="store_true", help="keep the two build folders")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="kokoro-parallel-"))
    try:
        serial = build(scratch / "serial", Path(args.config))
        threads = {"OMP_NUM_THREADS": str(args.parallel_threads)} if args.parallel_threads else {}
        parallel = build(scratch / "parallel", Path(args.config), "-n", "2", "-P", "process", env=threads)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    differ = sorted(k for k in serial["digests"] if serial["digests"][k] != parallel["digests"].get(k))
    print(json.dumps({
        "config": Path(args.config).name, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "serial_s": serial["seconds"], "parallel_n2_s": parallel["seconds"],
        "speedup": round(serial["seconds"] / parallel["seconds"], 2), "tasks": serial["tasks"],
        "parallel_threads": args.parallel_threads,
        "digests": len(serial["digests"]), "digests_differ": differ,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()
