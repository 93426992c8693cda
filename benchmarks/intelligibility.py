"""Benchmark: the word error rate of built variants, beside their report's speech metrics.

    .venv/bin/python benchmarks/intelligibility.py default vocoder-bits-short-nbits4 [--limit N]

For each variant (artifacts/<name>/), benchmarks/data/intelligibility.txt spoken by its
fp32 twins and by its saved artifacts (MIL evaluator), both transcribed by Whisper
tiny.en (report/intelligibility.py), one variant after the other in one run. Prints a
Markdown table (size, the report sentence's teacher-forced PESQ and MCD after DTW, the
two WERs, the increase, wall time) and one JSON line with the transcripts of every
sentence heard worse.
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


def package_mb(variant: Path) -> float:
    from kokoro_build.schema.manifest import load_manifest
    packages = {a.package: a.bytes for _, a in load_manifest(variant).artifacts()}
    return sum(packages.values()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--artifacts", default=str(ROOT / "artifacts"))
    parser.add_argument("--limit", type=int)
    parser.add_argument("--voice", default="jf_alpha")
    args = parser.parse_args()

    from kokoro_build.report.intelligibility import Transcriber, measure, read_sentences

    sentences = read_sentences(limit=args.limit)
    transcriber = Transcriber(threads=1)
    rows, results = [], {}
    for name in args.variants:
        variant = Path(args.artifacts) / name
        start = time.perf_counter()
        result = measure(variant, args.voice, sentences, transcriber=transcriber,
                         progress=lambda line: print(f"{name}: {line}", file=sys.stderr, flush=True))
        seconds = time.perf_counter() - start
        audio = json.loads((variant / "report" / "summary.json").read_text())["audio"]
        results[name] = {**result, "seconds": round(seconds, 1)}
        rows.append(f"| {name} | {package_mb(variant):.1f} | {audio['teacher_forced']['pesq']:.2f} | "
                    f"{audio['mcd_dtw_db']:.2f} | {result['wer_fp32']:.1%} | {result['wer']:.1%} | "
                    f"{result['wer_increase']:+.1%} | {len(result['worse_sentences'])} | {seconds:.0f} |")
    print(f"{len(sentences)} sentences, {results[args.variants[0]]['words']} words; "
          f"{results[args.variants[0]]['transcriber']}; {platform.machine()}, {platform.python_version()}")
    print("| variant | MB | PESQ (forced) | MCD-DTW dB | WER fp32 twins | WER saved artifacts | increase "
          "| sentences heard worse | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
