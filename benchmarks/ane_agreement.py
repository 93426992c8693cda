"""Benchmark: the ANE placement we predict against what devices published, stage by stage.

    .venv/bin/python benchmarks/ane_agreement.py [--skip-build]

Builds the real Kokoro-82M stages in the two designs whose device placement is
published (FluidAudio's MLComputePlan dump of laishere/kokoro-coreml's chain,
Documentation/TTS/Measurements/KokoroV3/compute-placement.json):
- fixed: duration at 64 tokens (masked), prosody, noise, vocoder and tail at 200 frames;
- range: recipes/ane-chain.yaml, RangeDim on every stage (laishere's design).
Only the stages are built and verified (no manifest or report: a 64-token duration
can't speak the report sentence). Each verify report's predicted placement is then
set beside the published figure. A compute plan is made for the model's default
shape, so a range-shaped artifact is compared at its default shape
(`placement.default_shape`); the chain runs it at other lengths, where it is
predicted off the ANE. Prints a Markdown table and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "artifacts" / "_bench" / "ane_agreement"
SOURCE = ("FluidAudio Documentation/TTS/Measurements/KokoroV3/compute-placement.json "
          "(MLComputePlan: each op's preferred device and estimated cost)")
TOLERANCE = 0.10  # the goal: within 10 points, or the mismatch explained

FIXED = """\
version: 1
name: ane-agreement-fixed
model: {source: pypi-int8, voices: [jf_alpha]}
target: {deployment: iOS17, export: trace}
defaults: {precision: fp16, compute_units: cpu_and_ne}
stages:
  duration:
    kind: duration
    shapes: {tokens: {buckets: [64]}}
    surgery: {options: {kokoro::unpack_lstm: {masked: true}, kokoro::albert_inputs: {mask: additive}}}
  prosody: {kind: prosody, shapes: {frames: {buckets: [200]}}}
  noise: {kind: noise, precision: fp32, shapes: {frames: {buckets: [200]}}}
  vocoder:
    kind: vocoder
    islands: [noise, tail]
    shapes: {frames: {buckets: [200]}}
    surgery: {preset: coreml-default}
  tail: {kind: tail, precision: fp32, shapes: {frames: {buckets: [200]}}}
verify:
  parity: {min_psnr_db: 35}
  ane: {analyzer: static}
"""

# (published model, its design, our artifact (design, stage, shape label), published ANE
# share of estimated cost, of preferred ops (ANE / all placed ops), what differs)
PUBLISHED = [
    ("fast/KokoroAlbert_64", "fixed 64 tokens", ("fixed", "duration", "tokens_64"), 0.988, 295 / 303,
     "ours is Albert and PostAlbert in one stage: PostAlbert's LSTMs have no ANE kernel "
     "(FluidAudio: `ios17.lstm` has no ANE kernel) and cut the stage"),
    ("base/KokoroAlbert", "RangeDim tokens", ("range", "duration", "tokens_range"), 0.0, 0 / 310, ""),
    ("base/KokoroPostAlbert", "RangeDim tokens", ("range", "duration", "tokens_range"), 0.0, 0 / 98, ""),
    ("base/KokoroProsody_v2", "RangeDim frames", ("range", "prosody", "frames_range"), 0.0, 0 / 140,
     "laishere runs it with compute units `all`; ours `cpu_and_ne`"),
    ("base/KokoroVocoder", "RangeDim frames (5 inputs)", ("range", "vocoder", "frames_range"), 0.520, 648 / 654,
     "its 6 CPU ops carry 48 % of the estimated cost; ours counts FLOPs, not Core ML's cost"),
    ("decoder/KokoroDecoderPre_200", "fixed 200 frames", ("fixed", "vocoder", "frames_200"), 1.0, 258 / 258,
     "theirs is the decoder before the generator; ours is the whole vocoder between the islands"),
    ("fast/KokoroSourceGenerator", "fp32", ("fixed", "noise", "frames_200"), 0.0, 0 / 1089,
     "placed on the GPU (compute units `all`); ours is `cpu_and_ne`, so the CPU"),
]


def build(config: Path, stages: list[str]) -> float:
    start = time.time()
    command = [sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"), f"config={config}", *stages]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"build of {config} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.time() - start


def ours(variant: Path, stage: str, label: str) -> dict:
    placement = json.loads((variant / stage / f"{label}.verify.json").read_text())["ane"]
    predicted = placement["placement"]
    at_default = predicted.get("default_shape") or predicted
    return {"supported_flop_share": placement["flop_share"], "predicted_as_run": predicted["ane_flop_share"],
            "predicted_at_default_shape": at_default["ane_flop_share"],
            "predicted_op_share_at_default_shape": at_default["ane_op_share"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-build", action="store_true", help="read the reports of an earlier run")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    fixed_config = WORK / "pipeline.yaml"
    fixed_config.write_text(FIXED)
    range_config = ROOT / "recipes" / "ane-chain.yaml"
    variants = {"fixed": WORK / "artifacts" / "ane-agreement-fixed", "range": ROOT / "artifacts" / "ane-chain"}
    seconds = {}
    if not args.skip_build:
        stages = ["duration", "prosody", "noise", "vocoder", "tail"]
        seconds = {"fixed": build(fixed_config, stages), "range": build(range_config, stages)}
    rows = []
    for model, design, (side, stage, label), cost, ops, note in PUBLISHED:
        got = ours(variants[side], stage, label)
        delta = got["predicted_at_default_shape"] - cost
        rows.append({"published": model, "design": design, "ours": f"{side}: {stage}/{label}",
                     "published_ane_cost_share": cost, "published_ane_op_share": round(ops, 3),
                     **{k: round(v, 3) for k, v in got.items()},
                     "agrees": abs(delta) <= TOLERANCE, "note": note})
    print(f"Source: {SOURCE}\n")
    print("| published | design | ours | published ANE (cost / ops) | ours supported FLOPs "
          "| ours predicted at the default shape (FLOPs / ops) | ours predicted as the chain runs it "
          "| within 10 points | what differs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['published']} | {r['design']} | {r['ours']} | {r['published_ane_cost_share']:.0%} / "
              f"{r['published_ane_op_share']:.0%} | {r['supported_flop_share']:.0%} | "
              f"{r['predicted_at_default_shape']:.0%} / {r['predicted_op_share_at_default_shape']:.0%} | "
              f"{r['predicted_as_run']:.0%} | {'yes' if r['agrees'] else 'no'} | {r['note']} |")
    agreed = sum(r["agrees"] for r in rows)
    print(f"\nagreement: {agreed}/{len(rows)} within {TOLERANCE:.0%}")
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                      "build_seconds": {k: round(v) for k, v in seconds.items()},
                      "agreement": f"{agreed}/{len(rows)}", "rows": rows}))


if __name__ == "__main__":
    main()
