"""Benchmark: `kokoro-build tune` at several budgets over the same stages, one run.

    .venv/bin/python benchmarks/tune.py --config recipes/ane-chain.yaml --budgets 80 60 50 40
    .venv/bin/python benchmarks/tune.py --config pipeline.yaml --budgets 52 44 \
        --exclude skm2 skm3 skm3g16 --recipe-prefix recipes/data-free   # without sensitive palettes

The first budget measures every trial the cache does not hold (cold, if the cache is
empty: `rm -rf artifacts/.cache/tune`); the others reuse them (warm) and only allocate,
write and build their recipe. Per budget: predicted and built size, bits per tuned
weight, the settings chosen, the measured speech metrics of the built recipe (its
report sentence against its fp32 chain), and the tune's wall time without the build
(`measure`: build check, captures, trials, allocation). Prints a Markdown table and
one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("duration", "prosody", "vocoder")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="recipes/ane-chain.yaml")
    parser.add_argument("--budgets", nargs="+", type=float, default=[80, 60, 50, 40])
    parser.add_argument("--stages", nargs="+", default=list(STAGES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--exclude", nargs="*", default=[], help="setting labels not to try")
    parser.add_argument("--recipe-prefix", help="write PREFIX-<budget>.yaml (default: tuned-<budget>.yaml "
                                                "beside the base)")
    args = parser.parse_args()

    from kokoro_build.tune.run import TuneRequest, tune
    rows = []
    for budget in args.budgets:
        start = time.time()
        recipe = f"{args.recipe_prefix}-{budget:g}.yaml" if args.recipe_prefix else None
        summary = tune(TuneRequest(config_path=args.config, stages=tuple(args.stages), budget_mb=budget,
                                   workers=args.workers, exclude=frozenset(args.exclude), recipe=recipe),
                       log=lambda line: print(line, flush=True))
        summary.pop("trials")
        summary["wall_seconds"] = round(time.time() - start, 1)
        rows.append(summary)
    print("| recipe | budget | fits | predicted MB | built MB | bits/weight | durations changed | PESQ (forced) "
          "| MCD dB (forced) | F0 cents | MCD-DTW dB | log-mel r | tune s (measure / with build) | settings |")
    print("|---" * 14 + "|")
    for row in rows:
        m = row.get("measured") or {}

        def get(key, fmt):
            return "–" if m.get(key) is None else fmt.format(m[key])
        print(f"| {Path(row['recipe']).stem} | {row['budget_mb']:g} MB | {'yes' if row['fits'] else 'no'} | {row['predicted_mb']:.1f} "
              f"| {get('mb', '{:.1f}')} | {row['bits_per_weight']:.2f} | {get('duration_changed_share', '{:.1%}')} "
              f"| {get('teacher_forced_pesq', '{:.2f}')} | {get('teacher_forced_mcd_db', '{:.2f}')} "
              f"| {get('f0_error_cents', '{:.1f}')} | {get('mcd_dtw_db', '{:.2f}')} | {get('mel_correlation', '{:.3f}')} "
              f"| {row['seconds']['measure']:.0f} / {row['wall_seconds']:.0f} "
              f"| {', '.join(f'{n} {label}' for label, n in sorted(row['settings'].items(), key=lambda kv: -kv[1]))} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
