"""The conductor: runs a built variant's stages in order, one chunk at a time."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from kokoro_build.schema.manifest import RunnableArtifact as Artifact, RunnableManifest, load_manifest
from kokoro_build.schema.contract import HARMONICS, samples_per_frame
from kokoro_build.runtime.backends import make_backend
from kokoro_build.runtime.device_g2p import DeviceG2P, DeviceG2PError
from kokoro_build.runtime.text import MAX_TOKENS, chunk_phonemes, clean_text, foreign_scripts, halve, misaki_g2p, speakable

SAMPLE_RATE = 24000
# duration, then either prosody and vocoder or the fused synthesizer
SPLITS = (("duration", "prosody", "vocoder"), ("duration", "synthesizer"))


class ChainError(ValueError):
    """Input the chain refuses, with the reason."""


@dataclass
class ChunkResult:
    phonemes: str
    tokens: list[int]
    durations: np.ndarray  # frames per token, boundary tokens included (rounded, >= 1)
    buckets: dict[str, int]  # stage kind -> bucket size used
    noise_seed: int
    audio: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.durations.sum())


@dataclass
class Speech:
    audio: np.ndarray
    chunks: list[ChunkResult] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the chain (G2P included)
    sample_rate: int = SAMPLE_RATE

    @property
    def real_time_factor(self) -> float:
        """Seconds of audio per second of compute (> 1: faster than real time)."""
        return len(self.audio) / self.sample_rate / max(self.seconds, 1e-9)


class _NoFrameBucket(Exception):
    """No artifact of a stage runs this many frames; `too_long` if none runs as many."""

    def __init__(self, message: str, too_long: bool):
        super().__init__(message)
        self.too_long = too_long


class Chain:
    def __init__(self, variant_dir: str | Path, backend: str = "torch", g2p: Callable | str | None = None,
                 manifest: RunnableManifest | None = None):
        """`g2p`: "misaki" (the host reference, the default), "device" (the variant's
        lexicon and neural G2P artifact, run by `backend`), or any text -> phonemes callable.
        `manifest`: the artifacts to run, if not the variant's manifest.json (calibration
        runs the converted packages before there is one)."""
        self.variant_dir = Path(variant_dir)
        self.manifest = manifest if manifest is not None else load_manifest(self.variant_dir)
        self.backend = make_backend(backend, self.variant_dir)
        by_kind = {stage.kind: stage for stage in self.manifest.stages.values()}
        if not any(all(kind in by_kind for kind in split) for split in SPLITS):
            raise ChainError(f"variant {self.manifest.name} has stages {', '.join(by_kind) or 'none'}; "
                             "the chain needs duration, prosody and vocoder, or duration and synthesizer")
        self.stages = by_kind
        runtime = self.manifest.runtime  # small files beside the packages, not the weights
        self.config = json.loads((self.variant_dir / runtime.config.path).read_text())
        # voice -> its .npy file (voice_pack loads it)
        self.voices = {voice: self.variant_dir / entry.path for voice, entry in runtime.voices.items()}
        self.vocab: dict[str, int] = self.config["vocab"]
        self.samples_per_frame = samples_per_frame(self.config)
        self.style_dim = self.config["style_dim"]  # ref_s = [decoder half | predictor half]
        self._packs: dict[str, np.ndarray] = {}
        self._g2p = self._make_g2p(g2p)

    def _make_g2p(self, g2p: Callable | str | None) -> Callable | None:
        if g2p is None or g2p == "misaki":
            return None  # loaded on first use: spaCy takes seconds
        if g2p == "device":
            try:
                return DeviceG2P.from_variant(self.variant_dir, self.manifest, self.backend)
            except DeviceG2PError as error:
                raise ChainError(str(error)) from None
        if isinstance(g2p, str):
            raise ChainError(f"unknown g2p {g2p!r}; known: misaki, device")
        return g2p

    def voice_pack(self, voice: str) -> np.ndarray:
        """[510, 1, 256] float32: a style vector per phoneme count (loaded on first use)."""
        if voice not in self._packs:
            pack = np.load(self.voices[voice], allow_pickle=False)
            if pack.ndim != 3 or pack.shape[1:] != (1, 2 * self.style_dim):
                raise ChainError(f"{self.voices[voice]}: voice pack is {pack.shape}, "
                                 f"expected (510, 1, {2 * self.style_dim})")
            self._packs[voice] = pack
        return self._packs[voice]

    # -- public -------------------------------------------------------------------
    @property
    def g2p_neural_words(self) -> list[str]:
        """The words of the last text the device G2P sent to its neural model."""
        return list(getattr(self._g2p, "neural_words", []))

    def speak(self, text: str, voice: str, speed: float = 1.0, seed: int = 0,
              progress: Callable[[str], None] | None = None, forced: Speech | None = None) -> Speech:
        text = clean_text(text)
        if not text.strip():
            raise ChainError("empty text: nothing to speak (after dropping control characters)")
        scripts = foreign_scripts(text)
        if scripts:
            raise ChainError(f"the text is in the {', '.join(scripts)} script ({text.strip()[:20]!r}); this "
                             "chain's G2P reads English text (misaki en), and would only spell out "
                             "the characters' names")
        self._check(voice, speed)
        if self._g2p is None:  # loading spaCy takes seconds: not part of speaking
            self._g2p = misaki_g2p()
        start = time.time()
        phonemes = speakable(self._g2p(text), self.vocab)
        if not phonemes.strip(" ,.;:!?"):
            raise ChainError(f"no speakable symbol in the text ({text[:40]!r}): the G2P produced "
                             "no phoneme that Kokoro knows")
        speech = self.speak_phonemes(phonemes, voice, speed, seed, progress, forced)
        speech.seconds = time.time() - start
        return speech

    def speak_phonemes(self, phonemes: str, voice: str, speed: float = 1.0, seed: int = 0,
                       progress: Callable[[str], None] | None = None, forced: Speech | None = None) -> Speech:
        """Kokoro phonemes (every symbol in the vocab) -> audio, chunk by chunk.

        `forced` (teacher forcing): another rendering of the same phonemes whose chunks'
        durations replace this chain's own, so the stages after the duration stage are
        judged with the timing held equal (verify/audio.py)."""
        durations = {c.phonemes: c.durations for c in forced.chunks} if forced else None
        self._check(voice, speed)
        unknown = sorted({p for p in phonemes if p not in self.vocab})
        if unknown:
            raise ChainError(f"symbols not in Kokoro's vocab: {''.join(unknown)!r}")
        start, queue, chunks = time.time(), chunk_phonemes(phonemes), []
        while queue:
            piece = queue.pop(0)
            if durations is not None and piece not in durations:  # the forced side halved it
                if len(piece) < 2:
                    raise ChainError(f"teacher forcing: the forced rendering has no chunk {piece!r}")
                queue[:0] = [p for p in halve(piece) if p]
                continue
            try:
                chunk = self._speak_chunk(piece, voice, speed, seed + len(chunks),
                                          None if durations is None else durations[piece])
            except _NoFrameBucket as missing:
                if not missing.too_long or len(piece) < 2:  # halving can't help
                    raise ChainError(f"no artifact can run {missing}") from None
                queue[:0] = [p for p in halve(piece) if p]
                continue
            chunks.append(chunk)
            if progress:
                used = ", ".join(f"{stage} {_size_label(size)}" for stage, size in chunk.buckets.items())
                progress(f"chunk {len(chunks)}: {len(chunk.tokens)} tokens, {chunk.frames} frames "
                         f"-> {used} ({len(queue)} queued)")
        audio = np.concatenate([c.audio for c in chunks]) if chunks else np.zeros(0, np.float32)
        return Speech(audio, chunks, time.time() - start)

    # -- steps --------------------------------------------------------------------
    def _check(self, voice: str, speed: float) -> None:
        if voice not in self.voices:
            raise ChainError(f"unknown voice {voice!r}; this variant has: {', '.join(self.voices)}")
        if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0):
            raise ChainError(f"speed must be a number > 0, got {speed!r}")

    def _pick(self, kind: str, dim: str, size: int) -> tuple[Artifact, int] | tuple[None, None]:
        """(artifact, the size to run it at) for the least padding: a range that holds
        `size` runs at `size` exactly; buckets and enumerated sizes at the smallest
        one that holds it, if the artifact can pad (has a mask input), else only an
        exact size."""
        options = []
        for artifact in self.stages[kind].artifacts:
            flexible = artifact.flexible.get(dim, {})
            pads = bool({"attention_mask", "valid_frames"} & artifact.input_names())
            if "range" in flexible:
                low, high = flexible["range"]
                candidates = [max(size, low)] if size <= high and (pads or size >= low) else []
            else:
                sizes = flexible.get("enumerated", [artifact.sizes[dim]])
                candidates = [s for s in sizes if s == size or (s > size and pads)]
            options += [(run_size, artifact) for run_size in candidates]
        if not options:
            return None, None
        run_size, artifact = min(options, key=lambda option: option[0])
        return artifact, run_size

    def _speak_chunk(self, phonemes: str, voice: str, speed: float, noise_seed: int,
                     forced: np.ndarray | None = None) -> ChunkResult:
        # kokoro picks the style row by phoneme count (KPipeline: pack[len(ps) - 1])
        ref_s = self.voice_pack(voice)[len(phonemes) - 1].reshape(1, -1).astype(np.float32)
        tokens = [0] + [self.vocab[p] for p in phonemes] + [0]
        raw, d, t_en, token_bucket = self._duration(tokens, ref_s, speed)
        durations = np.maximum(np.round(raw), 1).astype(np.int64) if forced is None else forced  # as KModel
        frames = int(durations.sum())
        if "synthesizer" in self.stages:
            synthesizer = self._pick_2d("synthesizer", len(tokens), frames)
            if synthesizer is None:
                raise self._no_frames("synthesizer", frames)
            alignment, aligned_at = self._alignment(durations, frames)
            audio = self._synthesize(synthesizer, d, t_en, alignment, ref_s, frames, noise_seed)
            used = {"synthesizer": synthesizer.sizes}
        else:
            (prosody, prosody_size), (vocoder, vocoder_size) = (self._pick(kind, "frames", frames)
                                                                 for kind in ("prosody", "vocoder"))
            if prosody is None or vocoder is None:
                raise self._no_frames("prosody" if prosody is None else "vocoder", frames)
            alignment, aligned_at = self._alignment(durations, frames)
            f0, n = self._prosody(prosody, prosody_size, d.T @ alignment, ref_s, frames)
            audio = self._vocoder(vocoder, vocoder_size, t_en @ alignment, f0, n, ref_s, frames, noise_seed)
            used = {"prosody": prosody_size, "vocoder": vocoder_size,
                    **{island: vocoder_size for island in ("noise", "tail") if island in self.stages}}
        buckets = {"duration": token_bucket, **used, **aligned_at}
        return ChunkResult(phonemes, tokens, durations, buckets, noise_seed, audio)

    def _duration(self, tokens: list[int], ref_s: np.ndarray, speed: float):
        count = len(tokens)
        artifact, bucket = self._pick("duration", "tokens", count)
        if artifact is None:  # chunking keeps chunks <= MAX_TOKENS; a variant may stop lower
            raise ChainError(f"{count} tokens: no duration bucket that large "
                             f"(chunks are at most {MAX_TOKENS} + 2)")
        self._check_padding(artifact, "attention_mask", count, bucket)
        ids = np.zeros((1, bucket), np.int32)
        ids[0, :count] = tokens
        out = self.backend.run(artifact, {
            "input_ids": ids, "ref_s": ref_s, "speed": np.array([speed], np.float32),
            "attention_mask": (np.arange(bucket) < count).astype(np.float32)[None]})
        return (out["durations"][0, :count], out["d"][0, :count], out["t_en"][0, :, :count], bucket)

    def _alignment(self, durations: np.ndarray, frames: int) -> tuple[np.ndarray, dict]:
        """[tokens, frames] 0/1 alignment: from the variant's alignment stage if it has
        one (`where: graph`), else built here on the host."""
        artifacts = self.stages["alignment"].artifacts if "alignment" in self.stages else []
        if not artifacts:
            alignment = np.zeros((len(durations), frames), np.float32)
            alignment[np.repeat(np.arange(len(durations)), durations), np.arange(frames)] = 1.0
            return alignment, {}
        artifact = self._pick_2d("alignment", len(durations), frames)
        if artifact is None:
            raise self._no_frames("alignment", frames)
        padded = np.zeros((1, artifact.sizes["tokens"]), np.float32)
        padded[0, : len(durations)] = durations
        alignment = self.backend.run(artifact, {"durations": padded})["alignment"]
        return alignment[0, : len(durations), :frames], {"alignment": artifact.sizes}

    def _no_frames(self, kind: str, frames: int) -> _NoFrameBucket:
        """The failure to place `frames` in a stage, saying what the stage offers."""
        offers, largest = [], 0
        for artifact in self.stages[kind].artifacts:
            flexible = artifact.flexible.get("frames", {})
            pads = "valid_frames" in artifact.input_names()
            sizes = flexible.get("range") or flexible.get("enumerated") or [artifact.sizes["frames"]]
            largest = max(largest, *sizes)
            offers.append(f"range {sizes}" if "range" in flexible else
                          f"{'up to' if pads else 'exactly'} {', '.join(map(str, sizes))}")
        return _NoFrameBucket(f"{frames} frames in stage {kind} (it takes {'; '.join(offers)})",
                              too_long=frames > largest)

    def _pick_2d(self, kind: str, tokens: int, frames: int) -> Artifact | None:
        """The smallest tokens x frames bucket that holds both."""
        fitting = [a for a in self.stages[kind].artifacts
                   if a.sizes["tokens"] >= tokens and a.sizes["frames"] >= frames]
        return min(fitting, key=lambda a: (a.sizes["frames"], a.sizes["tokens"]), default=None)

    def _synthesize(self, artifact, d, t_en, alignment, ref_s, frames: int, noise_seed: int):
        tokens, bucket = artifact.sizes["tokens"], artifact.sizes["frames"]
        self._check_padding(artifact, "valid_frames", frames, bucket)
        inputs = {"d": _pad_axis(d[None], 1, tokens), "t_en": _pad_last(t_en[None], tokens),
                  "alignment": _pad_last(_pad_axis(alignment[None], 1, tokens), bucket),
                  "ref_s": ref_s, "valid_frames": np.array([frames], np.float32),
                  **self._noise(frames, bucket, noise_seed)}
        return self.backend.run(artifact, inputs)["audio"][0, : frames * self.samples_per_frame]

    def _noise(self, frames: int, bucket: int, noise_seed: int) -> dict[str, np.ndarray]:
        """The source's random numbers for the valid frames, zero-padded to the bucket."""
        from kokoro_build.schema.contract import seeded_noise
        phase_init, source_noise = seeded_noise(frames * self.samples_per_frame, HARMONICS, noise_seed)
        return {"phase_init": phase_init.numpy(),
                "source_noise": _pad_last(source_noise.numpy(), bucket * self.samples_per_frame)}

    def _prosody(self, artifact: Artifact, bucket: int, en: np.ndarray, ref_s: np.ndarray, frames: int):
        self._check_padding(artifact, "valid_frames", frames, bucket)
        out = self.backend.run(artifact, {
            "en": _pad_last(en[None], bucket), "style": ref_s[:, self.style_dim:],
            "valid_frames": np.array([frames], np.float32)})
        return out["f0"][0, : 2 * frames], out["n"][0, : 2 * frames]

    def _vocoder(self, artifact, bucket: int, asr, f0, n, ref_s, frames: int, noise_seed: int) -> np.ndarray:
        """The vocoder, and around it its islands if the variant split them off: the
        noise stage makes its `har` input, the tail stage turns its `features` into audio."""
        self._check_padding(artifact, "valid_frames", frames, bucket)
        f0 = _pad_last(f0[None], 2 * bucket)
        shared = {"valid_frames": np.array([frames], np.float32), **self._noise(frames, bucket, noise_seed)}
        inputs = {"asr": _pad_last(asr[None], bucket), "f0": f0, "n": _pad_last(n[None], 2 * bucket),
                  "style": ref_s[:, : self.style_dim], **shared}
        if "noise" in self.stages:
            inputs["har"] = self.backend.run(self._island("noise", frames, bucket), {"f0": f0, **shared})["har"]
        out = self.backend.run(artifact, inputs)
        if "tail" in self.stages:
            out = self.backend.run(self._island("tail", frames, bucket), {"features": out["features"], **shared})
        return out["audio"][0, : frames * self.samples_per_frame].astype(np.float32)

    def _island(self, kind: str, frames: int, bucket: int) -> Artifact:
        """The island artifact that runs at the vocoder's size (the config gives both
        the same shapes)."""
        artifact, size = self._pick(kind, "frames", frames)
        if size != bucket:
            raise ChainError(f"the {kind} stage runs {frames} frames at {size}, the vocoder at "
                             f"{bucket}: rebuild with equal shapes")
        return artifact

    @staticmethod
    def _check_padding(artifact: Artifact, mask_input: str, size: int, bucket: int) -> None:
        if size < bucket and mask_input not in artifact.input_names():
            raise ChainError(f"{artifact.package} has no {mask_input} input, so it can't be "
                             f"padded from {size} to {bucket}; build it with its masking pass")


def _size_label(size) -> str:
    """12 -> '12'; {'tokens': 512, 'frames': 600} -> 'frames_600-tokens_512'."""
    if isinstance(size, dict):
        return "-".join(f"{dim}_{value}" for dim, value in sorted(size.items()))
    return str(size)


def _pad_axis(x: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Zero-pad one axis to `size`."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, size - x.shape[axis])
    return np.pad(x.astype(np.float32), pad)


def _pad_last(x: np.ndarray, size: int) -> np.ndarray:
    return _pad_axis(x, x.ndim - 1, size)
