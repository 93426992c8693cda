"""Benchmark: the chain's real-time factor (torch backend) against monolithic KModel.

    .venv/bin/python benchmarks/chain.py [--variant artifacts/default] [--repeats 3]

On the same sentences (benchmarks/data/chain_sentences.txt) and chunks, times Chain.speak_phonemes (duration, host
alignment, prosody, vocoder: traced fp32 twins at padded buckets) against
KModel.forward_with_tokens per chunk, after one warm-up each; G2P is excluded
from both. Both run in one process, so under the same malloc policy: glibc's own,
or with KOKORO_BUILD_MALLOC=keep the one the torch backend then sets (store/memory.py).
Also reports the share of computed frames that were bucket padding,
and per chunk whether the durations and lengths are identical and the log-mel
correlation between the two (KModel gets the chain's noise: same seed).
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

# 24 held-out sentences of mixed length (not the bucket corpus the buckets came from)
SENTENCES = [line.strip() for line in (ROOT / "benchmarks" / "data" / "chain_sentences.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default=str(ROOT / "artifacts" / "default"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from kokoro_build.verify.audio import mel_correlation
    from kokoro_build.runtime import Chain
    from kokoro_build.runtime.text import misaki_g2p, speakable
    from kokoro_build.model.source.kmodel import build_kmodel
    from kokoro_build.model.source.weights import load_weights

    torch.set_num_threads(2)
    chain = Chain(args.variant)
    g2p = misaki_g2p()
    phonemes = [speakable(g2p(s), chain.vocab) for s in SENTENCES]
    blob = load_weights(str(Path(args.variant) / "weights" / "kokoro.pt"))
    kmodel = build_kmodel(blob["config"], blob["state_dict"])
    voice = next(iter(chain.voices))

    def run_chain():
        return [chain.speak_phonemes(p, voice) for p in phonemes]

    def run_kmodel(speeches):
        """KModel on the chain's chunks, with the chain's noise (same seed, same draws)."""
        outputs = []
        for speech in speeches:
            for chunk in speech.chunks:
                ref_s = torch.from_numpy(chain.voice_pack(voice)[len(chunk.phonemes) - 1].reshape(1, -1))
                torch.manual_seed(chunk.noise_seed)
                with torch.no_grad():
                    outputs.append(kmodel.forward_with_tokens(torch.LongTensor([chunk.tokens]), ref_s, 1.0))
        return outputs

    # where the time goes: the chain per stage (its backend's runs), KModel's decoder
    # (the vocoder with its source and iSTFT) apart from the rest
    stage_seconds: dict[str, float] = {}
    backend_run = chain.backend.run

    def timed_run(artifact, inputs):
        start = time.perf_counter()
        try:
            return backend_run(artifact, inputs)
        finally:
            stage = Path(artifact.package).parts[0]
            stage_seconds[stage] = stage_seconds.get(stage, 0.0) + time.perf_counter() - start
    chain.backend.run = timed_run
    decoder_seconds = [0.0]
    kmodel.decoder.register_forward_pre_hook(lambda *_: decoder_seconds.__setitem__(0, decoder_seconds[0] - time.perf_counter()))
    kmodel.decoder.register_forward_hook(lambda *_: decoder_seconds.__setitem__(0, decoder_seconds[0] + time.perf_counter()))

    speeches = run_chain()  # warm-up (loads the traced modules)
    reference = run_kmodel(speeches)
    chunks = [c for s in speeches for c in s.chunks]
    parity = [{"same_durations": bool((c.durations == dur.numpy()).all()),
               "same_length": len(c.audio) == len(audio),
               "mel_correlation": round(mel_correlation(c.audio, audio.numpy()), 5)}
              for c, (audio, dur) in zip(chunks, reference)]
    chain_s, kmodel_s = [], []
    stage_seconds.clear()
    decoder_seconds[0] = 0.0
    for _ in range(args.repeats):
        start = time.perf_counter()
        speeches = run_chain()
        chain_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        run_kmodel(speeches)
        kmodel_s.append(time.perf_counter() - start)
    audio_s = sum(len(s.audio) for s in speeches) / 24000
    def computed(chunk, kind):  # tokens or frames a stage ran for this chunk
        size = chunk.buckets[kind]
        return size["frames"] if isinstance(size, dict) else size

    kinds = [k for k in chunks[0].buckets if k not in ("duration", "alignment")]
    padded = {kind: round(1 - sum(c.frames for c in chunks) / sum(computed(c, kind) for c in chunks), 3)
              for kind in kinds}
    import resource

    from kokoro_build.store.memory import keep_freed_memory
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.system()} {platform.machine()}",
        # both models run in this process, under the same malloc policy (store/memory.py)
        "freed_memory_kept": keep_freed_memory(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "audio_seconds": round(audio_s, 2),
        "chain_seconds_best": round(min(chain_s), 3), "kmodel_seconds_best": round(min(kmodel_s), 3),
        "chain_rtf": round(audio_s / min(chain_s), 2), "kmodel_rtf": round(audio_s / min(kmodel_s), 2),
        "chain_vs_kmodel_speed": round(min(kmodel_s) / min(chain_s), 3),
        "padding_share_of_frames": padded,
        "chain_stage_seconds_per_run": {k: round(v / args.repeats, 2) for k, v in sorted(stage_seconds.items())},
        "kmodel_decoder_seconds_per_run": round(decoder_seconds[0] / args.repeats, 2),
        "buckets": [c.buckets for c in chunks], "parity": parity,
    }))


if __name__ == "__main__":
    main()
