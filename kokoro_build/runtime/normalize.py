"""Text normalization for the device G2P: numbers and common abbreviations become
words, with no library (a Swift or Kotlin client can port these few rules).

Covered: cardinals (1,250), decimals (3.5), money ($4.99, $3.2 million), percentages
(45%), ordinals (21st), four-digit numbers read in pairs like years (1984, 2026, as
misaki does), clock times (7:30), and a fixed abbreviation table. Anything else is left to the lexicon and the neural model.
"""
from __future__ import annotations

import re

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES = ((10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"))
ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                 "nine": "ninth", "twelve": "twelfth"}
# Expanded before tokenizing. `St.` is Saint before a capitalized word, else Street.
ABBREVIATIONS = {
    "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Dr.": "Doctor", "Prof.": "Professor",
    "Jr.": "Junior", "Sr.": "Senior", "Mt.": "Mount", "vs.": "versus", "etc.": "et cetera",
    "e.g.": "for example", "i.e.": "that is", "approx.": "approximately", "Inc.": "Incorporated",
    "Ltd.": "Limited", "Co.": "Company", "Ave.": "Avenue", "Rd.": "Road", "Dept.": "Department",
    "Gov.": "Governor", "Sen.": "Senator", "Rep.": "Representative", "Gen.": "General",
    "Capt.": "Captain", "Lt.": "Lieutenant", "Sgt.": "Sergeant", "No.": "number", "min.": "minutes",
    "hr.": "hour", "ft.": "feet", "lb.": "pound", "oz.": "ounces", "Jan.": "January", "Feb.": "February",
    "Aug.": "August", "Sept.": "September", "Oct.": "October", "Nov.": "November", "Dec.": "December",
}
MAX_DIGITS = 15  # longer digit runs are read digit by digit


def cardinal(n: int) -> str:
    if n < 0:
        return "minus " + cardinal(-n)
    if n < 20:
        return ONES[n]
    if n < 100:
        # "ninety nine", not "ninety-nine": two words, as misaki reads numbers
        return TENS[n // 10] + (" " + ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return ONES[n // 100] + " hundred" + (" " + cardinal(n % 100) if n % 100 else "")
    for scale, name in SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            return cardinal(head) + " " + name + (" " + cardinal(rest) if rest else "")
    raise AssertionError(n)


def ordinal(n: int) -> str:
    stem, last = re.fullmatch(r"(.* )?([a-z]+)", cardinal(n)).groups()
    if last in ORDINAL_WORDS:
        last = ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return (stem or "") + last


def year(n: int) -> str:
    """1984 -> nineteen eighty four, 2026 -> twenty twenty six, 2005 -> two thousand five,
    1900 -> nineteen hundred, 4821 -> forty eight twenty one."""
    if 2000 <= n < 2010 or n % 1000 == 0:
        return cardinal(n)
    head, tail = divmod(n, 100)
    if tail == 0:
        return cardinal(head) + " hundred"
    return cardinal(head) + " " + (cardinal(tail) if tail >= 10 else "oh " + cardinal(tail))


def digits(text: str) -> str:
    return " ".join(ONES[int(d)] for d in text)


def _number(match: re.Match) -> str:
    raw = match.group(0)
    plain = raw.replace(",", "")
    whole, _, fraction = plain.partition(".")
    if len(whole) > MAX_DIGITS:
        return digits(whole)
    spoken = cardinal(int(whole)) if whole else "zero"
    if "," not in raw and not fraction and len(whole) == 4 and whole[0] != "0":
        spoken = year(int(whole))  # as misaki: any plain 4-digit number is read in pairs
    return spoken + (" point " + digits(fraction) if fraction else "")


def _money(match: re.Match) -> str:
    """$12 -> twelve dollars; $4.99 -> four dollars and ninety nine cents; $0.75 ->
    seventy five cents; $3.2 million -> three point two million dollars."""
    whole, fraction, scale = match.group(1).replace(",", ""), match.group(2), match.group(3)
    if scale or (fraction and len(fraction) != 2):
        amount = cardinal(int(whole)) + (" point " + digits(fraction) if fraction else "")
        return amount + (" " + scale if scale else "") + " dollars"
    dollars, cents = int(whole), int(fraction or 0)
    parts = [cardinal(dollars) + (" dollar" if dollars == 1 else " dollars")] if dollars or not cents else []
    if cents:
        parts.append(cardinal(cents) + (" cent" if cents == 1 else " cents"))
    return " and ".join(parts)


def _ordinal(match: re.Match) -> str:
    return ordinal(int(match.group(1).replace(",", "")))


def _time(match: re.Match) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes == 0:
        return cardinal(hours) + " o'clock"
    return cardinal(hours) + " " + (cardinal(minutes) if minutes >= 10 else "oh " + cardinal(minutes))


def _abbreviation(match: re.Match) -> str:
    word = match.group(0)
    if word == "St.":
        following = match.string[match.end():].lstrip()
        return "Saint" if following[:1].isupper() else "Street"
    return ABBREVIATIONS[word]


NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
ABBREVIATION = re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(a) for a in
                          sorted(ABBREVIATIONS, key=len, reverse=True)) + r"|St\.)(?!\w)")
RULES = (
    (re.compile(r"\$(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:\s+(thousand|million|billion|trillion)\b)?"),
     _money),
    (re.compile(r"\b(\d{1,2}):(\d\d)\b"), _time),
    (re.compile(r"\b(\d{1,3}(?:,\d{3})+|\d+)(?:st|nd|rd|th)\b"), _ordinal),
    (re.compile(r"(" + NUMBER + r")\s?%"), lambda m: _number(re.match(NUMBER, m.group(1))) + " percent"),
    (re.compile(NUMBER), _number),
)


# "4B" -> "4 B", "B52" -> "B 52" (but "21st" stays one token)
DIGITS_MEET_LETTERS = re.compile(r"(?<=\d)(?=[A-Za-z])(?!(?:st|nd|rd|th)\b)|(?<=[A-Za-z])(?=\d)")


def normalize(text: str) -> str:
    """Abbreviations and numbers spelled out; everything else as it was."""
    text = DIGITS_MEET_LETTERS.sub(" ", ABBREVIATION.sub(_abbreviation, text))
    for pattern, spell in RULES:
        text = pattern.sub(spell, text)
    return text
