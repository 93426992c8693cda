"""Phoneme chunking for the chain (no model needed)."""
import pytest

from kokoro_build.runtime.backends import BackendError, make_backend
from kokoro_build.runtime.text import chunk_phonemes, halve, speakable, split_at_break
from kokoro_build.schema.manifest import RunnableStage
from tests.manifests import runnable


def test_chunks_end_at_sentence_breaks_and_respect_the_limit():
    sentence = "ðɪs ɪz ə sˈɛntᵊns. "
    text = sentence * 60
    chunks = chunk_phonemes(text, max_tokens=100)
    assert all(len(c) <= 100 for c in chunks)
    assert all(c.endswith(".") for c in chunks[:-1])
    assert "".join(c.replace(" ", "") for c in chunks) == text.replace(" ", "")


def test_a_chunk_without_breaks_is_cut_hard():
    head, rest = split_at_break("a" * 30, 10)
    assert (head, rest) == ("a" * 10, "a" * 20)
    assert chunk_phonemes("") == []


def test_halve_splits_at_the_break_nearest_the_middle():
    left, right = halve("aaaa, bbbb. cccc, dddd")
    assert (left, right) == ("aaaa, bbbb.", "cccc, dddd")


def test_speakable_drops_symbols_outside_the_vocab():
    assert speakable("a#b", {"a": 1, "b": 2}) == "ab"


def test_backends_by_name(tmp_path):
    with pytest.raises(BackendError, match="unknown backend 'tflite'; known: torch, mil, coreml"):
        make_backend("tflite", tmp_path)
    import platform
    if platform.system() != "Darwin":
        with pytest.raises(BackendError, match="only on macOS"):
            make_backend("coreml", tmp_path)


def test_the_chain_picks_the_least_padding():
    from kokoro_build.runtime.chain import Chain
    chain = Chain.__new__(Chain)  # no model: only the manifest's artifact list matters here
    chain.stages = {"vocoder": RunnableStage(kind="vocoder", artifacts=[
        runnable(120), runnable(400), runnable(300, flexible={"frames": {"enumerated": [200, 300]}}),
        runnable(900, inputs=(), flexible={"frames": {"range": [700, 900]}})])}
    assert chain._pick("vocoder", "frames", 100)[1] == 120
    assert chain._pick("vocoder", "frames", 150)[1] == 200  # an enumerated size
    assert chain._pick("vocoder", "frames", 350)[1] == 400
    assert chain._pick("vocoder", "frames", 650) == (None, None)  # the range can't pad up to 700
    assert chain._pick("vocoder", "frames", 812) == (chain.stages["vocoder"].artifacts[3], 812)
    assert chain._pick("vocoder", "frames", 901) == (None, None)
    chain.stages["vocoder"].artifacts[2].inputs = []  # unmasked: exact sizes only
    assert chain._pick("vocoder", "frames", 200)[1] == 200 and chain._pick("vocoder", "frames", 190)[1] == 400


def test_clean_text_drops_what_is_not_speech():
    from kokoro_build.runtime.text import clean_text
    assert clean_text("hello\x00\x07 world\x1b[31m red\x1b[0m\x7f") == "hello world  red "
    assert clean_text("a\u200db\u200bc\ufeff\u202e") == "abc"
    assert clean_text("one\ntwo\tthree\r\n") == "one two three  "
    assert clean_text("\x1b]0;title\x07done") == " done"
    assert clean_text("café 🙂 42") == "café 🙂 42"


def test_foreign_scripts_only_when_no_latin_letter():
    from kokoro_build.runtime.text import foreign_scripts
    assert foreign_scripts("你好，世界") == ["Cjk"]
    assert foreign_scripts("Привет, мир") == ["Cyrillic"]
    assert foreign_scripts("مرحبا بالعالم") == ["Arabic"]
    assert foreign_scripts("สวัสดี")[0] == "Thai"
    assert foreign_scripts("Hello 世界") == [] and foreign_scripts("42 🙂 !") == []
