"""ARPAbet -> Kokoro phonemes: the symbol table, stress placement and context rules."""
import pytest

from kokoro_build.runtime.arpabet import ArpabetError, to_kokoro


@pytest.mark.parametrize("arpabet, kokoro", [
    ("HH AH0 L OW1", "həlˈO"),                 # stress mark right before its vowel
    ("W ER1 L D", "wˈɜɹld"),                   # stressed ER
    ("F AA1 DH ER0", "fˈɑðəɹ"),                # unstressed ER
    ("W AO1 T ER0", "wˈɔTəɹ"),                 # flap: vowel t unstressed-vowel
    ("AH0 T AE1 K", "ətˈæk"),                  # no flap before a stressed vowel
    ("L IH1 T AH0 L", "lˈɪTᵊl"),               # syllabic l
    ("AE1 NG G AH0 L Z", "ˈæŋɡᵊlz"),
    ("N EY1 SH AH0 N", "nˈAʃən"),              # ə before n
    ("W AO1 N T IH0 D", "wˈɔntᵻd"),            # the -ed ending
    ("HH AO1 R S IH0 Z", "hˈɔɹsᵻz"),           # the -es ending
    ("T ER1 B OW0 F AE2 N", "tˈɜɹbOfˌæn"),     # secondary stress, diphthong
    ("CH OY1 S JH AY1 V", "ʧˈYsʤˈIv"),
    ("B UW", "bu"),                            # g2p-en's bare UW
])
def test_mapping(arpabet, kokoro):
    assert to_kokoro(arpabet.split()) == kokoro


def test_every_output_symbol_is_in_kokoros_vocab():
    import json
    from pathlib import Path

    from kokoro_build.model.source.g2p_en import PHONEMES
    vocab = json.loads((Path(__file__).resolve().parents[2] / "kokoro_build" / "model" / "source" / "data" /
                        "kokoro-82m.json").read_text())["vocab"]
    for symbol in PHONEMES[4:]:
        for context in ([symbol], ["T", symbol, "L"], ["AA1", symbol, "AH0"], [symbol, "D"]):
            assert set(to_kokoro(context)) <= set(vocab), context


def test_unknown_symbol_is_refused():
    with pytest.raises(ArpabetError, match="unknown ARPAbet symbol 'QQ1'"):
        to_kokoro(["QQ1"])
