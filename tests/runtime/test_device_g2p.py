"""The device G2P's word rules on a tiny lexicon, with a stand-in neural model."""
import pytest

from kokoro_build.runtime.device_g2p import DeviceG2P, DeviceG2PError, read_lexicon
from kokoro_build.schema.contract import word_ids
from tests import manifests

LEXICON = {
    "hello": "həlˈO", "world": "wˈɜɹld", "the": "ði", "to": "tu", "a": "ˈA", "an": "æn", "I": "ˈI",
    "apple": "ˈæpᵊl", "dog": "dˈɔɡ", "cat": "kˈæt", "box": "bˈɑks", "city": "sˈɪTi", "want": "wˈɑnt",
    "bake": "bˈAk", "stop": "stˈɑp", "need": "nˈid", "wait": "wˈAt", "John": "ʤˈɑn", "well": "wˈɛl",
    "known": "nˈOn", "Aaron": "ˈɛɹən", "NASA": "nˈæsə", "F": "ˈɛf", "B": "bˈi", "two": "tˈu",
    "forty": "fˈɔɹTi", "dollars": "dˈɑləɹz", "Doctor": "dˈɑktəɹ", "go": "ɡˈO",
}


class FakeNeural:
    def __init__(self):
        self.calls = []

    def __call__(self, letters):
        self.calls.append(letters)
        return ["Z", "IH1", "P"]


@pytest.fixture
def g2p():
    return DeviceG2P(dict(LEXICON), FakeNeural())


@pytest.mark.parametrize("text, phonemes", [
    ("Hello, world.", "həlˈO, wˈɜɹld."),
    ("HELLO World", "həlˈO wˈɜɹld"),                    # lowercased / capitalized lookups
    ("aaron", "ˈɛɹən"),
    ("the apple, the dog", "ði ˈæpᵊl, ðə dˈɔɡ"),          # the: before a vowel or not
    ("to go to apple to.", "tə ɡˈO tʊ ˈæpᵊl tu."),
    ("a dog an apple I", "ɐ dˈɔɡ ɐn ˈæpᵊl ˌI"),
    ("cats boxes cities John's", "kˈæts bˈɑksᵻz sˈɪTiz ʤˈɑnz"),   # -s, -es, -ies, 's
    ("wanted baked stopped needed waited", "wˈɑntᵻd bˈAkt stˈɑpt nˈidᵻd wˈATᵻd"),
    ("baking stopping waiting", "bˈAkɪŋ stˈɑpɪŋ wˈATɪŋ"),
    ("well-known", "wˌɛlnˈOn"),                         # compound: one primary stress, the last
    ("FB", "ˌɛfbˈi"),                                    # an unknown acronym, letter by letter
    ("NASA", "nˈæsə"),
    ('He said "hello" (twice)', "zˈɪp zˈɪp “həlˈO” (zˈɪp)"),
    ("hello—world - hello", "həlˈO—wˈɜɹld - həlˈO"),     # spaced as the text is
    ("Dr. Hello has $42... ok", "dˈɑktəɹ həlˈO zˈɪp fˈɔɹTi tˈu dˈɑləɹz... zˈɪp"),
])
def test_text(g2p, text, phonemes):
    assert g2p(text) == phonemes


def test_words_the_lexicon_lacks_go_to_the_neural_model_as_plain_letters(g2p):
    assert g2p("Zébra-hello Ωmega") == "zˌɪphəlˈO zˈɪp"
    assert g2p.neural.calls == ["zebra", "mega"]          # accents stripped, other scripts dropped
    assert g2p.neural_words == ["Zébra", "Ωmega"]


def test_a_long_word_is_read_in_pieces_the_artifact_takes(g2p):
    g2p("x" * 130)
    assert [len(c) for c in g2p.neural.calls] == [63, 63, 4]


def test_text_with_nothing_latin_gives_no_phonemes(g2p):
    assert g2p("日本語") == "" and g2p.neural.calls == []
    assert g2p("日本語 😀") == "😀"  # symbols pass through; the chain keeps only Kokoro's


def test_without_a_neural_model_unknown_words_are_dropped():
    assert DeviceG2P(dict(LEXICON))("hello blorf world") == "həlˈO wˈɜɹld"


def test_lexicon_file_round_trip_and_bad_lines(tmp_path):
    path = tmp_path / "lexicon.tsv"
    path.write_text("apple\tˈæpᵊl\nhello\thəlˈO\n", encoding="utf-8")
    assert read_lexicon(path) == {"apple": "ˈæpᵊl", "hello": "həlˈO"}
    path.write_text("apple\tˈæpᵊl\nhello həlˈO\n", encoding="utf-8")
    with pytest.raises(DeviceG2PError, match=r"lexicon.tsv:2: not a `word<TAB>phonemes` line"):
        read_lexicon(path)


def test_word_ids():
    graphemes = ["<pad>", "<unk>", "</s>"] + list("abcdefghijklmnopqrstuvwxyz")
    assert word_ids("ab'c", graphemes) == [3, 4, 1, 5, 2]


def test_a_variant_without_a_g2p_stage_is_refused_clearly(tmp_path):
    manifest = manifests.manifest("v", {"duration": {"kind": "duration", "artifacts": []}})
    with pytest.raises(DeviceG2PError, match="variant v has no g2p stage"):
        DeviceG2P.from_variant(tmp_path, manifest, backend=None)
