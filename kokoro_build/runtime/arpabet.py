"""ARPAbet (the neural G2P's output) -> Kokoro's phoneme set, deterministically.

Kokoro's English symbols are misaki's: one letter per phoneme, diphthongs as capitals
(A = eɪ, I = aɪ, O = oʊ, W = aʊ, Y = ɔɪ), affricates ʤ ʧ, and stress marks ˈ / ˌ
written right before the stressed vowel ("hello" -> həlˈO), as in misaki's lexicons.
The context rules reproduce patterns of the American lexicon (us_gold.json), each
kept only if it lowered the phoneme error rate on the benchmark's `dev` words:
flapped t ("water" wˈɔTəɹ: Kokoro v1.0 writes the flap T, model/source/lexicon.py),
syllabic l after a reduced vowel ("little" lˈɪTᵊl), and the reduced ᵻ of the -es /
-ed endings ("wanted" wˈɑntᵻd).
"""
from __future__ import annotations

VOWELS = {"AA": "ɑ", "AE": "æ", "AH": "ʌ", "AO": "ɔ", "AW": "W", "AY": "I", "EH": "ɛ",
          "ER": "ɜɹ", "EY": "A", "IH": "ɪ", "IY": "i", "OW": "O", "OY": "Y", "UH": "ʊ", "UW": "u"}
# unstressed (0) readings that differ from the stressed ones
REDUCED = {"AH": "ə", "ER": "əɹ"}
CONSONANTS = {"B": "b", "CH": "ʧ", "D": "d", "DH": "ð", "F": "f", "G": "ɡ", "HH": "h", "JH": "ʤ",
              "K": "k", "L": "l", "M": "m", "N": "n", "NG": "ŋ", "P": "p", "R": "ɹ", "S": "s",
              "SH": "ʃ", "T": "t", "TH": "θ", "V": "v", "W": "w", "Y": "j", "Z": "z", "ZH": "ʒ"}
STRESS_MARKS = {"1": "ˈ", "2": "ˌ", "0": ""}
FLAP = "T"  # misaki's ɾ, as Kokoro v1.0 reads it


class ArpabetError(ValueError):
    pass


def _split(symbol: str) -> tuple[str, str | None]:
    """'AH0' -> ('AH', '0'); 'T' -> ('T', None). (g2p-en's bare 'UW' is unstressed.)"""
    if symbol[-1:].isdigit():
        return symbol[:-1], symbol[-1]
    return symbol, "0" if symbol in VOWELS else None


def _is_vowel(symbol: str | None) -> bool:
    return symbol is not None and _split(symbol)[0] in VOWELS


def _unstressed(symbol: str | None) -> bool:
    return _is_vowel(symbol) and _split(symbol)[1] == "0"


def to_kokoro(arpabet: list[str]) -> str:
    """['HH', 'AH0', 'L', 'OW1'] -> 'həlˈO'. Unknown symbols raise ArpabetError."""
    out = []
    for i, symbol in enumerate(arpabet):
        base, stress = _split(symbol)
        before = arpabet[i - 1] if i > 0 else None
        after = arpabet[i + 1] if i + 1 < len(arpabet) else None
        if base in VOWELS:
            out.append(STRESS_MARKS[stress] + _vowel(base, stress, after, arpabet[i + 2:]))
        elif base in CONSONANTS:
            out.append(_consonant(base, before, after))
        else:
            raise ArpabetError(f"unknown ARPAbet symbol {symbol!r}")
    return "".join(out)


def _vowel(base: str, stress: str, after: str | None, rest: list[str]) -> str:
    if stress != "0":
        return VOWELS[base]
    # a reduced vowel before an l that ends a syllable is syllabic: "little" ...ᵊl,
    # "angles" ...ᵊlz (before n, the lexicon has both ᵊn and ən: left as ə)
    if base == "AH" and after == "L" and not (rest and _is_vowel(rest[0])):
        return "ᵊ"
    # the -es / -ed endings: "horses" ...ᵻz, "wanted" ...ᵻd
    if base == "IH" and after in ("Z", "D") and not rest:
        return "ᵻ"
    return REDUCED.get(base, VOWELS[base])


def _consonant(base: str, before: str | None, after: str | None) -> str:
    # American flap: t between a vowel (or r) and an unstressed vowel, "water" wˈɔTəɹ
    if base == "T" and (_is_vowel(before) or before == "R") and _unstressed(after):
        return FLAP
    return CONSONANTS[base]
