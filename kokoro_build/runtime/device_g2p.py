"""The device G2P: text -> Kokoro phonemes with what ships in a variant, no Python
library an app couldn't carry: the lexicon file, then the neural G2P artifact for
words the lexicon lacks, after simple normalization (runtime/normalize.py).

Per word, the first that answers:
  1. a few function words whose reading depends on the next word ("the apple" ði,
     "the dog" ðə; "to", "a", "an", "I"), as misaki reads them;
  2. the lexicon: the word as written, lowercased, capitalized;
  3. -s / -'s / -es / -ies, -ed and -ing on a lexicon stem, with the endings'
     regular sounds (en.wiktionary.org/wiki/-s, /-ed, /-ing);
  4. hyphenated words part by part; an all-capitals word letter by letter;
  5. the neural G2P (letters only, accents stripped), mapped from ARPAbet.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np

from kokoro_build.runtime.arpabet import FLAP, to_kokoro
from kokoro_build.runtime.normalize import normalize
from kokoro_build.schema.contract import word_ids
from kokoro_build.schema.manifest import Manifest, Stage

PRIMARY, SECONDARY = "ˈ", "ˌ"
VOWEL_SYMBOLS = set("AIOWYaiuæɑɒɔəɛɜɪʊʌᵻᵊ")
VOICELESS_S = set("ptkfθ")
SIBILANTS = set("szʃʒʧʤ")
VOICELESS_ED = set("pkfθʃsʧ")
TAUS = set("AIOWYiuæɑəɛɪɹʊʌ")  # a t after these is flapped before a vowel (American)
WORD = r"[^\W\d_]+(?:['’][^\W\d_]+)*"
TOKEN = re.compile(rf"{WORD}(?:-{WORD})*|\.\.\.|[^\w\s]")
QUOTES = {'"', "“", "”"}
MAX_CHARS = 63  # the neural artifact's range is chars 2..64, one of them the end mark


class DeviceG2PError(RuntimeError):
    pass


def read_lexicon(path: str | Path) -> dict[str, str]:
    """A `kokoro-build-lexicon/1` file (model/source/lexicon.py) as {word: phonemes}."""
    entries = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        word, sep, phonemes = line.partition("\t")
        if not sep or not word or not phonemes:
            raise DeviceG2PError(f"{path}:{number}: not a `word<TAB>phonemes` line")
        entries[word] = phonemes
    return entries


class DeviceG2P:
    def __init__(self, lexicon: dict[str, str], neural=None):
        """`neural(letters) -> ARPAbet list` for out-of-lexicon words (None: such
        words are dropped)."""
        self.lexicon = lexicon
        self.neural = neural
        self.neural_words: list[str] = []  # words the last call sent to the neural model

    @classmethod
    def from_variant(cls, variant_dir: Path, manifest: Manifest, backend) -> "DeviceG2P":
        stage = manifest.stage_of_kind("g2p")
        if stage is None:
            raise DeviceG2PError(f"variant {manifest.name} has no g2p stage: add one to the "
                                 "pipeline (README \"G2P\") or use --g2p misaki")
        lexicon = read_lexicon(variant_dir / stage.lexicon.path)
        return cls(lexicon, NeuralG2P(stage, backend))

    # -- text ---------------------------------------------------------------------------
    def __call__(self, text: str) -> str:
        self.neural_words = []
        text = normalize(unicodedata.normalize("NFC", text))
        matches = list(TOKEN.finditer(text))
        tokens = [m.group(0) for m in matches]
        spaced = [m.start() > 0 and text[m.start() - 1].isspace() for m in matches]
        spoken = [self._word(t) if t[0].isalpha() else t for t in tokens]  # punctuation as is
        for i, token in enumerate(tokens):
            if token[0].isalpha():
                following = next((s for s in spoken[i + 1:] if s), "")
                spoken[i] = self._in_context(token, spoken[i], following)
        return _join(spoken, spaced)

    @staticmethod
    def _in_context(word: str, phonemes: str, following: str) -> str:
        """Function words that change with the next sound, as misaki reads them.
        `following`: the next token's phonemes ("" at the end, punctuation as is)."""
        vowel_next = _first_sound_is_vowel(following) if following[:1].isalpha() else None
        lower = word.lower()
        if lower == "the":
            return "ði" if vowel_next else "ðə"
        if lower == "to":
            return {None: phonemes, True: "tʊ", False: "tə"}[vowel_next]
        if lower == "a" and vowel_next is not None:
            return "ɐ"
        if lower == "an":
            return "ɐn"
        if word == "I":
            return SECONDARY + "I"
        return phonemes

    # -- words --------------------------------------------------------------------------
    def _word(self, word: str) -> str:
        word = word.replace("’", "'")
        found = self._lookup(word) or self._inflected(word)
        if found:
            return found
        if "-" in word:
            return _compound(self._word(part) for part in word.split("-") if part)
        if word.isupper() and len(word) > 1 and all(c in self.lexicon for c in word):
            return _compound(self.lexicon[c] for c in word)
        return self._neural(word)

    def _lookup(self, word: str) -> str | None:
        for form in (word, word.lower(), word.capitalize()):
            if form in self.lexicon:
                return self.lexicon[form]
        return None

    def _inflected(self, word: str) -> str | None:
        lower = word.lower()
        if lower.endswith("'s"):
            return _add_s(self._lookup(word[:-2]))
        if lower.endswith("s") and len(word) > 2 and not lower.endswith("ss"):
            for stem, cut in ((word[:-1], None), (word[:-2], "es"), (word[:-3] + "y", "ies")):
                if (cut is None or lower.endswith(cut)) and (found := self._lookup(stem)):
                    return _add_s(found)
        if lower.endswith("ed") and len(word) > 3:
            for stem in (word[:-1], word[:-2], word[:-3] if word[-3:-2] == word[-4:-3] else ""):
                if stem and (found := self._lookup(stem)):
                    return _add_ed(found)
        if lower.endswith("ing") and len(word) > 4:
            doubled = word[:-4] if word[-4:-3] == word[-5:-4] else ""
            for stem in (word[:-3], word[:-3] + "e", doubled):
                if stem and (found := self._lookup(stem)):
                    return _add_ing(found)
        return None

    def _neural(self, word: str) -> str:
        letters = "".join(c for c in unicodedata.normalize("NFD", word.lower()) if "a" <= c <= "z")
        if not letters or self.neural is None:
            return ""  # nothing Latin to read (another script): dropped, not guessed
        self.neural_words.append(word)
        pieces = [letters[i:i + MAX_CHARS] for i in range(0, len(letters), MAX_CHARS)]
        return "".join(to_kokoro(self.neural(piece)) for piece in pieces)


class NeuralG2P:
    """The g2p stage's artifact through a chain backend (mil: the saved .mlpackage)."""

    def __init__(self, stage: Stage, backend):
        self.artifact = stage.artifacts[0]
        self.graphemes = stage.neural.graphemes
        self.phonemes = stage.neural.phonemes
        self.end = self.phonemes.index("</s>")
        self.backend = backend

    def __call__(self, word: str) -> list[str]:
        ids = np.array([word_ids(word, self.graphemes)], np.int32)
        out = self.backend.run(self.artifact, {"chars": ids})["phonemes"][0].tolist()
        symbols = []
        for i in out:
            if i == self.end:
                break
            if self.phonemes[i].startswith("<"):  # <pad>/<unk>/<s>: not a sound
                continue
            symbols.append(self.phonemes[i])
        return symbols


# -- phoneme helpers ----------------------------------------------------------------------
def _first_sound_is_vowel(phonemes: str) -> bool:
    sound = next((c for c in phonemes if c not in (PRIMARY, SECONDARY)), "")
    return sound in VOWEL_SYMBOLS


def _add_s(stem: str | None) -> str | None:
    if not stem:
        return None
    if stem[-1] in VOICELESS_S:
        return stem + "s"
    return stem + ("ᵻz" if stem[-1] in SIBILANTS else "z")


def _add_ed(stem: str) -> str:
    if stem[-1] in VOICELESS_ED:
        return stem + "t"
    if stem[-1] == "d":
        return stem + "ᵻd"
    if stem[-1] == "t":
        return (stem[:-1] + FLAP + "ᵻd") if len(stem) > 1 and stem[-2] in TAUS else stem + "ᵻd"
    return stem + "d"


def _add_ing(stem: str) -> str:
    if stem[-1] == "t" and len(stem) > 1 and stem[-2] in TAUS:
        return stem[:-1] + FLAP + "ɪŋ"
    return stem + "ɪŋ"


def _compound(parts) -> str:
    """Readings joined into one word: every stress secondary but the last, which is
    primary ("FBI" ˌɛfbˌiˈI, "well-known" wˌɛlnˈOn)."""
    joined = "".join(p.replace(PRIMARY, SECONDARY) for p in parts)
    head, mark, tail = joined.rpartition(SECONDARY)
    return head + PRIMARY + tail if mark else joined


def _join(spoken: list[str], spaced: list[bool]) -> str:
    """The tokens' phonemes, spaced as the text spaced the tokens (as misaki keeps each
    token's whitespace); straight quotes become curly, opening and closing in turn."""
    out, open_quote = "", True
    for piece, space in zip(spoken, spaced):
        if not piece:
            continue
        if piece in QUOTES:
            piece = "“" if open_quote else "”"
            open_quote = not open_quote
        out += (" " if space and out else "") + piece
    return out
