"""Benchmark: the device G2P against misaki.

    .venv/bin/python benchmarks/g2p.py [--variant artifacts/default] [--split test|dev]

1. Phoneme error rate (PER) of the neural G2P artifact, mapped to Kokoro's phonemes,
   on 2,000 held-out lexicon words: lowercase a-z words of the built lexicon, shuffled
   with a fixed seed. `test` (the first 2,000) is only ever reported; `dev` (the next
   2,000) is the one to tune the ARPAbet mapping on.
2. Agreement of the whole device G2P (lexicon + neural, mil backend) with misaki on
   benchmarks/data/g2p_sentences.txt (240 sentences).
3. The artifacts' sizes. Prints a Markdown summary and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = 20261122
HELD_OUT = 2000
CORPUS = ROOT / "benchmarks" / "data" / "g2p_sentences.txt"
STRESS = "ˈˌ"


def edit_distance(a, b) -> int:
    from kokoro_build.report.intelligibility import word_errors  # any sequences, not only words
    return word_errors(list(a), list(b))


def error_rate(pairs: list[tuple[str, str]], strip: str = "") -> float:
    """Sum of edit distances over the reference length: (hypothesis, reference) pairs."""
    def clean(s):
        return [c for c in s if c not in strip]
    errors = sum(edit_distance(clean(h), clean(r)) for h, r in pairs)
    return errors / max(sum(len(clean(r)) for _, r in pairs), 1)


def held_out_words(lexicon: dict[str, str], split: str) -> list[str]:
    words = sorted(w for w in lexicon if w.isascii() and w.isalpha() and w.islower() and 2 <= len(w) <= 40)
    random.Random(SEED).shuffle(words)
    return words[:HELD_OUT] if split == "test" else words[HELD_OUT:2 * HELD_OUT]


def neural_per(device, words: list[str], lexicon: dict[str, str]) -> dict:
    from kokoro_build.runtime.arpabet import to_kokoro
    start = time.time()
    predicted = {w: to_kokoro(device.neural(w)) for w in words}
    seconds = time.time() - start
    pairs = [(predicted[w], lexicon[w]) for w in words]
    return {"words": len(words), "per": error_rate(pairs), "per_no_stress": error_rate(pairs, STRESS),
            "word_accuracy": sum(h == r for h, r in pairs) / len(pairs),
            "ms_per_word": 1000 * seconds / len(words), "predicted": predicted}


def agreement(device, sentences: list[str]) -> dict:
    from kokoro_build.runtime.text import misaki_g2p
    misaki = misaki_g2p()
    pairs, neural_words, start = [], 0, time.time()
    for sentence in sentences:
        ours = device(sentence)
        neural_words += len(device.neural_words)
        pairs.append((ours, misaki(sentence)))
    seconds = time.time() - start
    word_pairs = [(h.split(), r.split()) for h, r in pairs]
    word_errors = sum(edit_distance(h, r) for h, r in word_pairs)
    return {"sentences": len(pairs), "per": error_rate(pairs, " "), "per_no_stress": error_rate(pairs, " " + STRESS),
            "word_agreement": 1 - word_errors / sum(len(r) for _, r in word_pairs),
            "exact_sentences": sum(h == r for h, r in pairs) / len(pairs),
            "neural_words": neural_words, "seconds_both": round(seconds, 1),
            "worst": sorted(pairs, key=lambda p: -edit_distance(*p) / max(len(p[1]), 1))[:5]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default=str(ROOT / "artifacts" / "default"))
    parser.add_argument("--split", default="test", choices=("test", "dev"))
    parser.add_argument("--backend", default="mil", choices=("mil", "torch"))
    args = parser.parse_args()

    from kokoro_build.schema.manifest import load_manifest
    from kokoro_build.runtime.backends import make_backend
    from kokoro_build.runtime.device_g2p import DeviceG2P

    variant = Path(args.variant)
    manifest = load_manifest(variant)
    device = DeviceG2P.from_variant(variant, manifest, make_backend(args.backend, variant))
    stage = manifest.stage_of_kind("g2p")
    words = held_out_words(device.lexicon, args.split)
    per = neural_per(device, words, device.lexicon)
    agree = agreement(device, CORPUS.read_text(encoding="utf-8").splitlines())
    sizes = {"lexicon_mb": stage.lexicon.bytes / 1e6, "lexicon_entries": stage.lexicon.entries,
             "neural_mb": stage.artifacts[0].bytes / 1e6}
    print(f"## G2P ({args.split} split, {args.backend} backend, {platform.machine()})")
    print(f"neural PER on {per['words']} held-out words: {per['per']:.1%} "
          f"(without stress marks {per['per_no_stress']:.1%}), words exact {per['word_accuracy']:.1%}, "
          f"{per['ms_per_word']:.1f} ms/word")
    print(f"device vs misaki on {agree['sentences']} sentences: PER {agree['per']:.1%} "
          f"(without stress {agree['per_no_stress']:.1%}), word agreement {agree['word_agreement']:.1%}, "
          f"identical sentences {agree['exact_sentences']:.1%}, {agree['neural_words']} words to the neural model")
    print(f"sizes: lexicon {sizes['lexicon_mb']:.2f} MB ({sizes['lexicon_entries']} words), "
          f"neural {sizes['neural_mb']:.2f} MB")
    for ours, theirs in agree["worst"]:
        print(f"  ours:   {ours}\n  misaki: {theirs}")
    per.pop("predicted")
    agree.pop("worst")
    print(json.dumps({"split": args.split, "backend": args.backend, "per": per, "agreement": agree,
                      "sizes": sizes}))


if __name__ == "__main__":
    main()
