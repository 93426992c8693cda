"""The lexicon artifact: misaki's tiers merged, sorted by UTF-8 bytes, deterministic."""
import json

import pytest

from kokoro_build.store.package import digest_path
from kokoro_build.runtime.device_g2p import read_lexicon
from kokoro_build.model.source import lexicon

GOLD = {"zebra": "zˈibɹə", "read": {"DEFAULT": "ɹˈid", "VBD": "ɹˈɛd"}, "Éclair": "Aklˈɛɹ",
        "AA": {"DEFAULT": None, "NOUN": None}, "apple": "ˈæpᵊl", "button": "bˈʌʔn", "water": "wˈɔɾəɹ"}
SILVER = {"apple": "ˈæpəl", "banana": "bənˈænə"}


@pytest.fixture
def sources(tmp_path, monkeypatch):
    paths = {}
    for tier, data in (("gold", GOLD), ("silver", SILVER)):
        paths[tier] = tmp_path / f"us_{tier}.json"
        paths[tier].write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setattr(lexicon, "lexicon_sources",
                        lambda source, dialect, tiers: [paths[t] for t in tiers])
    return paths


def build(tmp_path, tiers, name="lexicon.tsv"):
    out = tmp_path / "out" / name
    lexicon.build_lexicon({"source": "misaki", "dialect": "us", "tiers": tiers}, str(out))
    return out


def test_tiers_merge_earlier_first_and_heteronyms_keep_their_default(tmp_path, sources):
    out = build(tmp_path, ["gold", "silver"])
    assert read_lexicon(out) == {"zebra": "zˈibɹə", "read": "ɹˈid", "Éclair": "Aklˈɛɹ",
                                 "apple": "ˈæpᵊl", "banana": "bənˈænə",
                                 "button": "bˈʌtn", "water": "wˈɔTəɹ"}  # as Kokoro v1.0 reads them
    assert read_lexicon(build(tmp_path, ["silver", "gold"], "b.tsv"))["apple"] == "ˈæpəl"
    digest = json.loads(digest_path(out).read_text())
    assert digest["format"] == "kokoro-build-lexicon/1" and digest["entries"] == 7
    assert digest["heteronyms_default"] == 2 and set(digest["sources"]) == {"us_gold.json", "us_silver.json"}


def test_lines_are_sorted_by_utf8_bytes_and_the_file_is_deterministic(tmp_path, sources):
    first = build(tmp_path, ["gold", "silver"]).read_bytes()
    words = [line.split(b"\t")[0] for line in first.splitlines()]
    assert words == sorted(words) and words[0] == b"apple" and words[-1] == "Éclair".encode()
    assert first.endswith(b"\n") and b"\r" not in first
    assert build(tmp_path, ["gold", "silver"], "again.tsv").read_bytes() == first


def test_a_symbol_kokoro_lacks_is_refused_and_nothing_is_written(tmp_path, sources):
    sources["gold"].write_text(json.dumps({"apple": "ˈæpᵊl", "bad": "bˈæ#d"}), encoding="utf-8")
    with pytest.raises(lexicon.LexiconError, match="'bad' -> 'bˈæ#d' uses '#'"):
        build(tmp_path, ["gold"])
    assert not (tmp_path / "out" / "lexicon.tsv").exists()


def test_a_word_that_cannot_be_one_line_is_refused(tmp_path, sources):
    sources["gold"].write_text(json.dumps({"two\twords": "tˈu"}), encoding="utf-8")
    with pytest.raises(lexicon.LexiconError, match="can't be stored one per line"):
        build(tmp_path, ["gold"])
