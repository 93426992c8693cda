"""Numbers and abbreviations spelled out for the device G2P."""
import pytest

from kokoro_build.runtime.normalize import cardinal, normalize, ordinal, year


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"),
    (100, "one hundred"), (1250, "one thousand two hundred fifty"),
    (2_000_017, "two million seventeen"), (-3, "minus three"),
])
def test_cardinal(n, words):
    assert cardinal(n) == words


@pytest.mark.parametrize("n, words", [(1, "first"), (2, "second"), (12, "twelfth"), (20, "twentieth"),
                                      (21, "twenty first"), (103, "one hundred third")])
def test_ordinal(n, words):
    assert ordinal(n) == words


@pytest.mark.parametrize("n, words", [(1984, "nineteen eighty four"), (2026, "twenty twenty six"),
                                      (2005, "two thousand five"), (1900, "nineteen hundred"),
                                      (2000, "two thousand"), (1805, "eighteen oh five")])
def test_year(n, words):
    assert year(n) == words


@pytest.mark.parametrize("text, spoken", [
    ("I have $250.", "I have two hundred fifty dollars."),
    ("It's $4.99 or $1.", "It's four dollars and ninety nine cents or one dollar."),
    ("Up 3.5% from 1,250.", "Up three point five percent from one thousand two hundred fifty."),
    ("On May 21st, 1984 at 7:30.", "On May twenty first, nineteen eighty four at seven thirty."),
    ("At 9:00 and 7:05", "At nine o'clock and seven oh five"),
    ("Dr. Smith and Mrs. Jones", "Doctor Smith and Missus Jones"),
    ("St. Louis is on Main St. today", "Saint Louis is on Main Street today"),
    ("fruit, e.g. apples, etc.", "fruit, for example apples, et cetera"),
    ("42", "forty two"),
    ("Apartment 4B, a B52 and the 2nd", "Apartment four B, a B fifty two and the second"),
    ("$0.75 and $4.00", "seventy five cents and four dollars"),
    ("$3.2 million or $3.5", "three point two million dollars or three point five dollars"),
    ("ends in 4821, not 0412", "ends in forty eight twenty one, not four hundred twelve"),
    ("1234567890123456789", "one two three four five six seven eight nine zero one two three four "
                            "five six seven eight nine"),
])
def test_normalize(text, spoken):
    assert normalize(text) == spoken


def test_text_without_numbers_or_abbreviations_is_unchanged():
    text = "Hello, world! (quietly) — no numbers here; Dr is not Dr. without a dot."
    assert normalize(text).replace("Doctor", "Dr.") == text
