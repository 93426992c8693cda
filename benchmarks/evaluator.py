"""Benchmark: the MIL evaluator on a built variant.

    .venv/bin/python benchmarks/evaluator.py [--variant artifacts/default] [--frames 400] [--repeats 2]

1. Speed: the vocoder at one frame bucket (400 frames = 10 s of audio) in fp16 —
   with its islands (noise -> vocoder -> tail) when the variant has them — as a
   real-time factor (seconds of audio per second of evaluation), best of N after
   the packages are loaded. 2 torch threads (this machine's cores).
2. Parity and ANE share of every artifact, read from the verify reports the build wrote.
Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default=str(ROOT / "artifacts" / "default"))
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    from kokoro_build.schema.manifest import load_manifest
    from kokoro_build.report.summary import variant_summary
    from kokoro_build.runtime.chain import Chain

    torch.set_num_threads(2)
    variant = Path(args.variant)
    manifest = load_manifest(variant)
    chain = Chain(variant, backend="mil", g2p=lambda text: text)
    vocoder, size = chain._pick("vocoder", "frames", args.frames)
    rng = torch.Generator().manual_seed(0)
    asr = 0.5 * torch.randn(512, args.frames, generator=rng).numpy()
    f0 = (170 + 80 * torch.sin(torch.linspace(0, 30, 2 * args.frames))).numpy()
    n = torch.randn(2 * args.frames, generator=rng).numpy()
    ref_s = chain.voice_pack("jf_alpha")[100].reshape(1, -1)
    times = []
    for _ in range(args.repeats + 1):  # the first run also loads the packages
        start = time.time()
        audio = chain._vocoder(vocoder, size, asr, f0, n, ref_s, args.frames, noise_seed=0)
        times.append(time.time() - start)
    seconds = len(audio) / chain.samples_per_frame / 40
    best = min(times[1:])
    summary = variant_summary(variant)
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "variant": manifest.name, "frames": args.frames, "bucket": size, "audio_seconds": seconds,
        "evaluator_seconds": round(best, 2), "real_time_factor": round(seconds / best, 2),
        "first_run_seconds": round(times[0], 2),
        "stages": list(chain.stages),
        "artifacts": [{k: r[k] for k in ("stage", "artifact", "precision", "worst_output", "psnr_db",
                                         "op_share", "flop_share", "unknown_flop_share", "segments")}
                      for r in summary["artifacts"]],
        "flop_share_per_stage": {k: round(v["flop_share"], 3) for k, v in summary["stages"].items()},
    }))


if __name__ == "__main__":
    main()
