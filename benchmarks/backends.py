"""Benchmark: the chain's real-time factor with the executorch backend against torch.

    .venv/bin/python benchmarks/backends.py [--variant artifacts/executorch] [--repeats 3]

The same sentences (misaki's phonemes, computed once: G2P is excluded) through
Chain.speak_phonemes with each backend: `torch` runs the traced fp32 twins, `executorch`
the .pte programs (XNNPACK). One warm-up each, then the repeats interleaved; the median
wall time per backend. Also: each sentence's log-mel correlation between the two, the
programs' sizes per stage, and each program's parity from its verify report.
Prints a Markdown summary and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.chain import SENTENCES  # noqa: E402  (the chain benchmark's sentences)

BACKENDS = ("torch", "executorch")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default=str(ROOT / "artifacts" / "executorch"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from kokoro_build.runtime import Chain
    from kokoro_build.runtime.text import misaki_g2p, speakable
    from kokoro_build.verify.audio import mel_correlation

    torch.set_num_threads(2)
    chains = {name: Chain(args.variant, backend=name) for name in BACKENDS}
    vocab = chains["torch"].vocab
    g2p = misaki_g2p()
    phonemes = [speakable(g2p(s), vocab) for s in SENTENCES]
    voice = next(iter(chains["torch"].voices))

    def speak(name):
        start = time.perf_counter()
        speeches = [chains[name].speak_phonemes(p, voice, seed=i) for i, p in enumerate(phonemes)]
        return time.perf_counter() - start, speeches

    for name in BACKENDS:  # warm-up: program loading and first-call allocation
        speak(name)
    times = {name: [] for name in BACKENDS}
    speeches = {}
    for _ in range(args.repeats):
        for name in BACKENDS:
            seconds, speeches[name] = speak(name)
            times[name].append(seconds)
    audio_seconds = sum(len(s.audio) for s in speeches["torch"]) / 24000
    median = {name: statistics.median(t) for name, t in times.items()}
    rtf = {name: audio_seconds / median[name] for name in BACKENDS}
    correlation = [mel_correlation(a.audio, b.audio) for a, b in zip(speeches["torch"], speeches["executorch"])]
    from kokoro_build.schema.manifest import load_manifest
    programs = {}
    for stage_name, artifact in load_manifest(args.variant).artifacts():
        entry = artifact.executorch
        if entry is not None:
            programs[Path(entry.program).name] = {
                "stage": stage_name, "megabytes": round(entry.bytes / 1e6, 1),
                "package_megabytes": round(artifact.bytes / 1e6, 1),
                "delegated_share": entry.delegated_share,
                "min_psnr_db": round(min(entry.verify.psnr_db.values()), 1),
                "coreml_min_psnr_db": round(min(artifact.verify.psnr_db.values()), 1)}
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {platform.processor()}",
              "threads": torch.get_num_threads(), "sentences": len(SENTENCES), "audio_seconds": round(audio_seconds, 2),
              "median_seconds": {k: round(v, 3) for k, v in median.items()},
              "real_time_factor": {k: round(v, 2) for k, v in rtf.items()},
              "executorch_over_torch": round(rtf["executorch"] / rtf["torch"], 2),
              "mel_correlation": [round(c, 4) for c in correlation], "programs": programs,
              "total_program_megabytes": round(sum(p["megabytes"] for p in programs.values()), 1)}
    print("| backend | median s | real-time factor |\n|---|---|---|")
    for name in BACKENDS:
        print(f"| {name} | {median[name]:.2f} | {rtf[name]:.2f}x |")
    print("\n| program | MB (.mlpackage MB) | ops on XNNPACK | parity, worst output (Core ML's) |\n|---|---|---|---|")
    for name, p in programs.items():
        print(f"| {name} | {p['megabytes']} ({p['package_megabytes']}) | {p['delegated_share']:.0%} | "
              f"{p['min_psnr_db']} dB ({p['coreml_min_psnr_db']} dB) |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
