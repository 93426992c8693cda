"""Benchmark: which token and frame buckets keep the padding small on realistic text.

    .venv/bin/python benchmarks/buckets.py [--corpus benchmarks/data/bucket_corpus.txt]
                                           [--max-frames 1200] [--json OUT]

Each text of the corpus goes through the chain's own G2P and chunking (misaki,
`chunk_phonemes`: at most 510 tokens per chunk); each chunk's token count (with the two
boundary tokens) and frame count (the real Kokoro-82M's predicted durations, rounded
and clamped at 1 as KModel does, voice jf_alpha, speed 1) is recorded. A chunk longer
than `--max-frames` is halved as the chain halves it.

Then, for K = 1 .. 8 buckets, the bucket set that minimizes the padded share of the
computed frames (or tokens) is found exactly (dynamic programming over the sorted
lengths; the largest bucket is the longest chunk, rounded up to `--round`). The
share weights each chunk by its computed size, as the stage's work grows with it.
With `--held-out FILE` (default: the chain benchmark's 24 sentences, which the sets are
not fitted on), each set's padding on those texts' chunks too: how the choice does out
of sample. Prints a Markdown table and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT / "benchmarks" / "data" / "bucket_corpus.txt"
HELD_OUT = ROOT / "benchmarks" / "data" / "chain_sentences.txt"
VOICE = "jf_alpha"


def best_buckets(lengths: list[int], count: int, round_to: int) -> tuple[list[int], float]:
    """The `count` bucket sizes (multiples of `round_to`) that minimize the padded share
    of sum(bucket(length)), and that share. Exact: O(n^2 count) over distinct lengths."""
    sizes = sorted({math.ceil(n / round_to) * round_to for n in lengths})
    weight = {s: sum(1 for n in lengths if math.ceil(n / round_to) * round_to == s) for s in sizes}
    real = sum(lengths)
    # cost[i][j]: computed frames if sizes[i..j] all run at bucket sizes[j]
    prefix = [0]
    for s in sizes:
        prefix.append(prefix[-1] + weight[s])
    inf = float("inf")
    n = len(sizes)
    best = [[inf] * n for _ in range(count + 1)]
    choice = [[-1] * n for _ in range(count + 1)]
    for j in range(n):
        best[1][j] = sizes[j] * prefix[j + 1]
    for k in range(2, count + 1):
        for j in range(n):
            for i in range(j):  # the previous bucket ends at sizes[i]
                cost = best[k - 1][i] + sizes[j] * (prefix[j + 1] - prefix[i + 1])
                if cost < best[k][j]:
                    best[k][j], choice[k][j] = cost, i
    k = min(count, n)
    buckets, j = [], n - 1
    while k >= 1 and j >= 0:
        buckets.append(sizes[j])
        j = choice[k][j] if k > 1 else -1
        k -= 1
    computed = best[min(count, n)][n - 1]
    return sorted(buckets), 1 - real / computed


def padding_share(lengths: list[int], buckets: list[int]) -> float:
    """The padded share of the computed sizes, each length at the smallest bucket that
    holds it (none: 1.0, it can't run)."""
    computed = [min((b for b in buckets if b >= n), default=None) for n in lengths]
    return 1.0 if None in computed else 1 - sum(lengths) / sum(computed)


def read_texts(path) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")]


def chunk_lengths(texts: list[str], max_frames: int) -> list[tuple[int, int]]:
    """(tokens, frames) per chunk, as the chain would run them."""
    import numpy as np
    import torch

    from kokoro_build.model.source import pypi_int8
    from kokoro_build.model.source.kmodel import build_kmodel, builtin_config
    from kokoro_build.model.source.onnx_int8 import state_dict_from_onnx
    from kokoro_build.runtime.text import chunk_phonemes, halve, misaki_g2p, speakable

    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / pypi_int8.ONNX_NAME
        pypi_int8.join_onnx(onnx)
        config = builtin_config()
        kmodel = build_kmodel(config, state_dict_from_onnx(onnx)).eval()
    vocab = config["vocab"]
    pack = pypi_int8.voice_packs([VOICE])[VOICE].numpy()
    g2p = misaki_g2p()

    def frames_of(phonemes: str) -> int:
        ids = torch.tensor([[0] + [vocab[p] for p in phonemes] + [0]])
        ref_s = torch.from_numpy(pack[len(phonemes) - 1].reshape(1, -1).astype(np.float32))
        with torch.no_grad():
            lengths = torch.full((1,), ids.shape[-1])
            mask = torch.zeros_like(ids, dtype=torch.bool)
            bert = kmodel.bert(ids, attention_mask=(~mask).int())
            d = kmodel.predictor.text_encoder(kmodel.bert_encoder(bert).transpose(-1, -2),
                                              ref_s[:, 128:], lengths, mask)
            x, _ = kmodel.predictor.lstm(d)
            duration = torch.sigmoid(kmodel.predictor.duration_proj(x)).sum(axis=-1)
            return int(torch.round(duration).clamp(min=1).sum())

    out = []
    for text in texts:
        queue = chunk_phonemes(speakable(g2p(text), vocab))
        while queue:
            piece = queue.pop(0)
            frames = frames_of(piece)
            if frames > max_frames and len(piece) > 1:
                queue[:0] = [p for p in halve(piece) if p]
                continue
            out.append((len(piece) + 2, frames))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(CORPUS))
    parser.add_argument("--held-out", default=str(HELD_OUT), help="texts to check the fitted sets on ('' for none)")
    parser.add_argument("--max-frames", type=int, default=1200, help="the largest frame bucket the chain may use")
    parser.add_argument("--round", type=int, default=8, help="bucket sizes are multiples of this")
    parser.add_argument("--json")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(2)
    texts = read_texts(args.corpus)
    start = time.time()
    chunks = chunk_lengths(texts, args.max_frames)
    held_out = chunk_lengths(read_texts(args.held_out), args.max_frames) if args.held_out else []
    tokens, frames = [t for t, _ in chunks], [f for _, f in chunks]
    rows = []
    for count in range(1, 11):
        frame_buckets, frame_pad = best_buckets(frames, count, args.round)
        token_buckets, token_pad = best_buckets(tokens, count, args.round)
        row = {"buckets": count, "frames": frame_buckets, "frame_padding": round(frame_pad, 4),
               "tokens": token_buckets, "token_padding": round(token_pad, 4)}
        if held_out:  # the corpus's largest bucket may be too small for a held-out chunk
            row["held_out_frame_padding"] = round(padding_share(
                [f for _, f in held_out], frame_buckets[:-1] + [max(frame_buckets[-1], args.max_frames)]), 4)
            row["held_out_token_padding"] = round(padding_share(
                [t for t, _ in held_out], token_buckets[:-1] + [max(token_buckets[-1], 512)]), 4)
        rows.append(row)
    print(f"{len(texts)} texts, {len(chunks)} chunks: tokens {min(tokens)}-{max(tokens)}, "
          f"frames {min(frames)}-{max(frames)}; held out: {len(held_out)} chunks ({time.time() - start:.0f} s)")
    print("| buckets | frame buckets | frame padding | held out | token buckets | token padding | held out |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['buckets']} | {r['frames']} | {r['frame_padding']:.1%} | {r.get('held_out_frame_padding', 0):.1%} "
              f"| {r['tokens']} | {r['token_padding']:.1%} | {r.get('held_out_token_padding', 0):.1%} |")
    result = {"texts": len(texts), "chunks": chunks, "held_out_chunks": held_out, "rows": rows,
              "machine": platform.machine(), "max_frames": args.max_frames}
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("chunks")}))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
