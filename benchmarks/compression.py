"""Benchmark: the quality-size table of built variants (compression recipes).

    .venv/bin/python benchmarks/compression.py ane-chain w8 pal8 pal6 pal4 mixed small w8a8 [--artifacts artifacts]

Per variant, in one run:
  - total size of its packages (each package counted once);
  - parity per stage: the worst output's PSNR of the saved package (MIL evaluator)
    against its fp32 torch twin, from the verify reports;
  - the chain's log-mel correlation against the fp32 torch chain (the variant's own
    uncompressed twins) on 5 fixed sentences, same phonemes and noise: mean and worst;
  - the speech metrics that separate timing from sound (verify/audio.py), over the
    same 5 sentences: the share of tokens whose rounded frames changed (pooled), and
    means of teacher-forced PESQ, MCD and F0 error (the saved chain on the twin's
    durations) and of free-running MCD after DTW;
  - ANE-eligible FLOP share per stage (static analyzer).
Prints a Markdown table and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENTENCES = (
    "The committee met on Tuesday to discuss the budget.",
    "She opened the window and let the cold morning air into the room.",
    "How many hours does the train take from Boston to New York?",
    "Our new library will stay open until nine in the evening, every day of the week.",
    "Quietly, the old dog walked back to its favorite spot by the fire.",
)
VOICE = "jf_alpha"


def variant_row(variant: Path, phonemes: list[str]) -> dict:
    from kokoro_build.schema.manifest import load_manifest
    from kokoro_build.runtime import Chain
    import numpy as np

    from kokoro_build.verify.audio import duration_changes, mel_correlation, speech_metrics

    manifest = load_manifest(variant)
    packages, stages = {}, {}
    for name, stage in manifest.stages.items():
        if stage.kind == "g2p":
            continue
        for artifact in stage.artifacts:
            packages[artifact.package] = artifact.bytes
        worst = min(min(a.verify.psnr_db.values()) for a in stage.artifacts)
        flops = min(a.ane.flop_share or 0.0 for a in stage.artifacts)
        mb = sum(a.bytes for a in stage.artifacts) / 1e6
        compress = stage.artifacts[0].compress
        stages[name] = {"psnr_db": round(worst, 1), "ane_flop_share": round(flops, 3), "mb": round(mb, 2),
                        "compress": compress}
    twin, saved = Chain(variant, backend="torch"), Chain(variant, backend="mil")
    correlations, metrics, ref_durations, got_durations, start = [], [], [], [], time.time()
    for i, text in enumerate(phonemes):
        reference = twin.speak_phonemes(text, VOICE, seed=i)
        got = saved.speak_phonemes(text, VOICE, seed=i)
        same = len(got.chunks) == len(reference.chunks) and all(
            np.array_equal(g.durations, r.durations) for g, r in zip(got.chunks, reference.chunks))
        forced = got if same else saved.speak_phonemes(text, VOICE, seed=i, forced=reference)
        correlations.append(mel_correlation(reference.audio, got.audio))
        metrics.append(speech_metrics(reference.audio, got.audio, forced.audio, got.sample_rate))
        if len(got.chunks) == len(reference.chunks):
            ref_durations += [c.durations for c in reference.chunks]
            got_durations += [c.durations for c in got.chunks]

    def mean(key, forced=True):
        return round(float(np.mean([(m["teacher_forced"] if forced else m)[key] for m in metrics])), 3)
    durations = duration_changes(ref_durations, got_durations)
    return {"variant": manifest.name, "mb": round(sum(packages.values()) / 1e6, 1), "stages": stages,
            "mel_correlation_mean": round(sum(correlations) / len(correlations), 4),
            "mel_correlation_worst": round(min(correlations), 4),
            "teacher_forced_pesq": mean("pesq"), "teacher_forced_mcd_db": mean("mcd_db"),
            "f0_error_cents": mean("f0_error_cents"), "mcd_dtw_db": mean("mcd_dtw_db", forced=False),
            "duration_changed_share": round(durations["changed_share"], 4),
            "seconds": round(time.time() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--artifacts", default=str(ROOT / "artifacts"))
    args = parser.parse_args()

    from kokoro_build.runtime.text import misaki_g2p
    g2p = misaki_g2p()
    phonemes = [g2p(text) for text in SENTENCES]
    rows = [variant_row(Path(args.artifacts) / name, phonemes) for name in args.variants]
    names = [s for s in rows[0]["stages"]]
    print("| variant | size | " + " | ".join(f"{s} dB" for s in names) +
          " | log-mel corr. (mean / worst of 5) | durations changed | PESQ (forced) | MCD dB (forced) "
          "| F0 cents | MCD-DTW dB | ANE FLOPs " + " / ".join(names) + " |")
    print("|---" * (len(names) + 9) + "|")
    for row in rows:
        stages = row["stages"]
        print(f"| {row['variant']} | {row['mb']:.1f} MB | " +
              " | ".join(f"{stages[s]['psnr_db']:.1f}" if s in stages else "–" for s in names) +
              f" | {row['mel_correlation_mean']:.4f} / {row['mel_correlation_worst']:.4f} "
              f"| {row['duration_changed_share']:.1%} | {row['teacher_forced_pesq']:.2f} "
              f"| {row['teacher_forced_mcd_db']:.2f} | {row['f0_error_cents']:.1f} | {row['mcd_dtw_db']:.2f} | " +
              " / ".join(f"{stages[s]['ane_flop_share']:.0%}" if s in stages else "–" for s in names) + " |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
