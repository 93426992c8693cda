"""The device G2P's lexicon: misaki's word lists, in Kokoro's own phoneme set, as one
small file a Swift or Kotlin client reads without Python.

Format `kokoro-build-lexicon/1` (`<stage>/lexicon.tsv`):
  - UTF-8, one entry per line: `<word>\\t<phonemes>\\n`, no header, no blank lines;
  - one line per word, sorted by the word's UTF-8 bytes, so a client can binary-search
    the raw (memory-mapped) bytes or load it into a map;
  - words keep misaki's case ("Aaron", "NASA", "apple"): look up the word as written,
    then lowercased, then capitalized (runtime/device_g2p.py);
  - a heteronym (misaki keys its readings by part of speech) keeps its DEFAULT reading:
    a device has no tagger.
Where tiers list the same word, the earlier tier wins (misaki itself prefers gold).

misaki stores the American flap as ɾ and the glottal stop as ʔ, but hands Kokoro
v1.0 T and t instead (misaki 0.9.4 en.py, `G2P.__call__`: every model version but
2.0), and Kokoro-82M v1.0 was trained on that output. The lexicon file holds what
Kokoro reads: T and t.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from kokoro_build.store.package import atomic_path, file_sha256, write_digest

FORMAT = "kokoro-build-lexicon/1"
MODEL_CONFIG = Path(__file__).resolve().parent / "data" / "kokoro-82m.json"
KOKORO_V1_SYMBOLS = str.maketrans({"ɾ": "T", "ʔ": "t"})


class LexiconError(ValueError):
    pass


def lexicon_sources(source: str, dialect: str, tiers: list[str]) -> list[Path]:
    """misaki's `<dialect>_<tier>.json` files, found without importing misaki (whose
    package import is light, but its `en` module loads spaCy)."""
    from importlib import metadata
    if source != "misaki":
        raise LexiconError(f"unknown lexicon source {source!r}")
    dist = metadata.distribution("misaki")
    return [Path(dist.locate_file(f"misaki/data/{dialect}_{tier}.json")) for tier in tiers]


def read_entries(paths: list[Path], symbols: set[str]) -> tuple[dict[str, str], int]:
    """{word: phonemes} over the tiers (earlier wins), and how many heteronyms were
    reduced to their DEFAULT reading."""
    entries: dict[str, str] = {}
    heteronyms = 0
    for path in paths:
        for word, value in json.loads(path.read_text(encoding="utf-8")).items():
            if word in entries:
                continue
            if isinstance(value, dict):
                heteronyms += 1
                value = value.get("DEFAULT")
            if not value:
                continue
            value = value.translate(KOKORO_V1_SYMBOLS)
            if any(c in word for c in "\t\n\r") or not word:
                raise LexiconError(f"{path.name}: word {word!r} can't be stored one per line")
            unknown = set(value) - symbols
            if unknown:
                raise LexiconError(f"{path.name}: {word!r} -> {value!r} uses {''.join(sorted(unknown))!r}, "
                                   "which is not in Kokoro's vocab")
            entries[word] = value
    return entries, heteronyms


def build_lexicon(lexicon_cfg: dict, out_path: str) -> None:
    """doit action: `lexicon_cfg` is the stage's `lexicon` slice {source, dialect, tiers}."""
    start = time.time()
    paths = lexicon_sources(lexicon_cfg["source"], lexicon_cfg["dialect"], lexicon_cfg["tiers"])
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise LexiconError(f"lexicon file not found: {missing[0]} (is misaki installed? run make build)")
    symbols = set(json.loads(MODEL_CONFIG.read_text())["vocab"])
    entries, heteronyms = read_entries(paths, symbols)
    body = "".join(f"{word}\t{entries[word]}\n" for word in sorted(entries, key=lambda w: w.encode("utf-8")))
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(body.encode("utf-8"))
    sources = {p.name: file_sha256(p) for p in paths}
    write_digest(out_path, format=FORMAT, entries=len(entries), heteronyms_default=heteronyms,
                 lexicon=lexicon_cfg, sources=sources, seconds=round(time.time() - start, 1))
    print(f"lexicon: {len(entries)} words from {', '.join(sources)} -> {Path(out_path).name} "
          f"({len(body.encode('utf-8')) / 1e6:.1f} MB)", flush=True)

