"""The word error rate on real speech: the real Kokoro-82M build (conftest `real_default`)
heard by the offline Whisper, and heard worse once noise covers it."""
import numpy as np
import pytest
import soundfile

from kokoro_build.report.variant import SENTENCE, _word_error_rate
from kokoro_build.report.intelligibility import Transcriber, word_error_rate

VOICE = "jf_alpha"  # as conftest.py


@pytest.mark.slow
def test_the_report_sentence_is_heard_and_noise_makes_it_worse(real_default):
    audio, rate = soundfile.read(str(real_default / "report" / "sample.wav"), dtype="float32")
    transcribe = Transcriber(threads=1)
    clean = word_error_rate([SENTENCE], [transcribe(audio, rate)])
    noise = np.random.default_rng(0).normal(0, np.sqrt(np.mean(audio ** 2)), audio.shape)  # 0 dB SNR
    noisy = word_error_rate([SENTENCE], [transcribe((audio + noise).astype(np.float32), rate)])
    assert clean <= 0.1, clean
    assert noisy >= clean + 0.3, (clean, noisy)  # measured: 0.0 and 0.67 on the default build


@pytest.mark.slow
def test_the_report_measures_the_saved_artifacts_against_the_twins(real_default, tmp_path):
    sentences = tmp_path / "two.txt"
    sentences.write_text("# a comment\nPlease remind me to call my sister after lunch.\nThe printer is out of paper.\n")
    result = _word_error_rate(real_default, VOICE, {"sentences": str(sentences), "limit": 1,
                                                    "max_wer_increase": 0.0})
    assert result["sentences"] == 1 and result["words"] == 9 and result["backend"] == "mil"
    assert result["wer_fp32"] <= 0.12 and abs(result["wer_increase"]) <= 0.12, result
    # a gate of 0 fails exactly when the saved artifacts were heard worse than the twins
    assert bool(result["failures"]) == (result["wer_increase"] > 0)
