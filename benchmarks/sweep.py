"""Benchmark: one sweep file on several executors, one after the other, in one run.

    .venv/bin/python benchmarks/sweep.py recipes/sweeps/vocoder-bits.yaml --executors ray local

Each executor runs `kokoro-build sweep FILE --executor E` as its own process (Ray's
`local` address: a loopback cluster started for the run), two workers each. Without
`--fresh`, a variant built before is up to date and its run is doit's no-op check. With
`--fresh`, each run first removes the variants' artifacts folders but not the step
cache: the first run after a fresh default build is cold for the variants' own steps;
later ones find its compressions and materializations in the cache and redo
verification and the reports only, so compare runs after the first with each other.
Per run: wall time, each variant's build time, status and package digests (which must
agree across executors). Prints a Markdown table and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KOKORO_BUILD = ROOT / ".venv" / "bin" / "kokoro-build"


sys.path.insert(0, str(ROOT))
from kokoro_build.plan.paths import sweep_dir  # noqa: E402
from kokoro_build.scale.sweep_file import load_sweep  # noqa: E402

ARTIFACTS = ROOT / "artifacts"


def drop_variant_folders(sweep) -> None:
    """Each variant's own artifacts folder, so its doit tasks run again; the shared step
    cache (artifacts/.cache/) stays, so compressions and materializations are hits."""
    for variant in sweep.variants:
        shutil.rmtree(ARTIFACTS / variant.name, ignore_errors=True)


def run(sweep: str, executor: str, workers: int, fresh: bool) -> dict:
    loaded = load_sweep(sweep)
    if fresh:
        drop_variant_folders(loaded)
    command = [str(KOKORO_BUILD), "sweep", sweep, "--executor", executor, "--workers", str(workers)]
    if executor == "ray":
        command += ["--ray", "local"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one core per variant, as the local pool gives it
    started = time.time()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.time() - started
    results = sweep_dir(ARTIFACTS, loaded.name) / "results.json"
    if done.returncode not in (0, 1) or not results.is_file():  # 1: a variant failed, still tabulated
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    variants = json.loads(results.read_text())["variants"]
    return {"executor": executor, "seconds": round(seconds, 1), "exit": done.returncode,
            "variants": {v["name"]: {"status": v["status"], "seconds": v.get("seconds"),
                                     "packages": v.get("packages")} for v in variants}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sweep")
    parser.add_argument("--executors", nargs="+", default=["local", "ray"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fresh", action="store_true",
                        help="remove each variant's artifacts folder before each run (the step cache stays)")
    args = parser.parse_args()
    runs = [run(args.sweep, executor, args.workers, args.fresh) for executor in args.executors]
    names = list(runs[0]["variants"])
    print("| variant | " + " | ".join(f"{r['executor']} s" for r in runs) + " | same digests |")
    print("|---|" + "---|" * (len(runs) + 1))
    for name in names:
        cells = [str(r["variants"][name]["seconds"]) for r in runs]
        same = len({json.dumps(r["variants"][name]["packages"], sort_keys=True) for r in runs}) == 1
        print(f"| {name} | " + " | ".join(cells) + f" | {'yes' if same else 'NO'} |")
    print("| **wall** | " + " | ".join(f"**{r['seconds']}**" for r in runs) + " | |")
    print(json.dumps(runs))


if __name__ == "__main__":
    main()
