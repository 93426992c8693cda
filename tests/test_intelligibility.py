"""report/intelligibility.py: the scoring on known strings, and Whisper on silence."""
from pathlib import Path

import numpy as np
import pytest

from kokoro_build.report.intelligibility import (DEFAULT_SENTENCES, IntelligibilityError, Transcriber,
                                                 intelligibility_failures, normalize_words, read_sentences,
                                                 word_error_rate, word_errors)
from kokoro_build.schema.config import ConfigError, load_config

PIPELINE = ("version: 1\nname: t\nmodel: {source: pypi-int8}\n"
            "stages: {vocoder: {kind: vocoder, shapes: {frames: {buckets: [120]}}}}\n")


def test_numbers_spelling_case_and_punctuation_are_folded_before_scoring():
    assert normalize_words("It opens at 9:30, Mr. Grey!") == ["it", "opens", "at", "nine", "thirty",
                                                               "mister", "gray"]
    assert normalize_words("Prices rose 12% in 1984.") == normalize_words("prices rose twelve percent in "
                                                                          "nineteen eighty-four")
    assert normalize_words("Don't stop") == ["don't", "stop"]


def test_word_errors_count_substitutions_deletions_and_insertions():
    ref = "the cat sat on the mat".split()
    assert word_errors(ref, ref) == 0
    assert word_errors(ref, "the cat sat on a mat".split()) == 1              # substitution
    assert word_errors(ref, "the cat on the mat".split()) == 1                # deletion
    assert word_errors(ref, "the black cat sat on the mat".split()) == 1      # insertion
    assert word_errors(ref, []) == 6


def test_corpus_rate_is_errors_over_all_reference_words_not_a_mean_of_rates():
    # one error in a 1-word sentence and none in a 9-word one: 1/10, not (1 + 0)/2
    assert word_error_rate(["yes", "one two three four five six seven eight nine"],
                           ["no", "1 2 3 4 5 6 7 8 9"]) == pytest.approx(0.1)
    with pytest.raises(IntelligibilityError, match="no reference word"):
        word_error_rate(["..."], ["anything"])


def test_the_sentence_set_has_at_least_30_sentences_and_bad_files_are_clear(tmp_path):
    sentences = read_sentences()
    assert len(sentences) >= 30 and not any(s.startswith("#") for s in sentences)
    assert read_sentences(DEFAULT_SENTENCES, limit=3) == sentences[:3]
    (tmp_path / "empty.txt").write_text("# only a comment\n\n")
    with pytest.raises(IntelligibilityError, match="no sentence"):
        read_sentences(tmp_path / "empty.txt")
    with pytest.raises(IntelligibilityError, match="cannot read"):
        read_sentences(tmp_path / "missing.txt")


def test_the_gate_fails_only_beyond_the_allowed_increase():
    result = {"wer": 0.10, "wer_fp32": 0.04, "wer_increase": 0.06}
    assert intelligibility_failures(result, None) == []
    assert intelligibility_failures(result, 0.06) == []
    assert "max_wer_increase" in intelligibility_failures(result, 0.05)[0]


def test_config_names_a_missing_sentence_file_with_its_line(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text(PIPELINE + "verify:\n  intelligibility: {enabled: true, sentences: nope.txt}\n")
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert "pipeline.yaml:6" in str(error.value) and "file not found" in str(error.value)
    (tmp_path / "mine.txt").write_text("Hello there.\n")
    config.write_text(config.read_text().replace("nope.txt", "mine.txt"))
    assert load_config(config).verify.intelligibility.sentences == str(tmp_path / "mine.txt")


def test_whisper_hears_no_words_in_silence_or_a_pure_tone():
    transcribe = Transcriber(threads=1)
    rate = 24000
    t = np.arange(rate * 2) / rate
    for audio in (np.zeros(rate * 2, np.float32), (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)):
        heard = normalize_words(transcribe(audio, rate))
        assert len(heard) <= 2, heard  # Whisper may hallucinate a word on non-speech, no more


def test_the_report_task_depends_on_the_sentence_file_only_when_enabled(tmp_path):
    from kokoro_build.plan.tasks import generate_tasks

    def report_task(extra: str):
        path = tmp_path / "pipeline.yaml"
        path.write_text(PIPELINE + extra)
        (task,) = [t for t in generate_tasks(load_config(path), path) if t["basename"] == "report"]
        return task

    off = report_task("")
    assert off["actions"][0][1][-1]["enabled"] is False
    assert str(DEFAULT_SENTENCES) not in off["file_dep"]
    (tmp_path / "mine.txt").write_text("Hello there.\n")
    on = report_task("verify:\n  intelligibility: {enabled: true, sentences: mine.txt, max_wer_increase: 0.02}\n")
    assert str(tmp_path / "mine.txt") in on["file_dep"]
    assert on["actions"][0][1][-1]["max_wer_increase"] == 0.02
    default = report_task("verify:\n  intelligibility: {enabled: true}\n")
    assert str(DEFAULT_SENTENCES) in default["file_dep"]


def test_wer_command_refuses_a_missing_variant_or_sentence_file(tmp_path, capsys):
    from kokoro_build.cli import main
    assert main(["wer", "nope", "--artifacts", str(tmp_path)]) == 1
    assert "manifest.json not found" in capsys.readouterr().err
    assert main(["wer", "--sentences", str(tmp_path / "none.txt")]) == 1
    assert "cannot read the sentence file" in capsys.readouterr().err
