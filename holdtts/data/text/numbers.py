"""Spell out numbers in English text: cardinals, thousands separators, decimals, ordinals, money, years.

Numbers are read the way an English reader would say them aloud (Grad-TTS's conventions): a bare
integer between 1000 and 3000 is a year ("1984" -> "nineteen eighty-four"), while a number written
with thousands separators is always a cardinal ("1,984" -> "one thousand nine hundred eighty-four").
inflect does the spelling; this module only decides which reading applies.
"""
from __future__ import annotations

import functools
import re


@functools.cache
def _engine():
    # Imported on first use: inflect's typeguard instrumentation makes its import take seconds.
    import inflect

    return inflect.engine()


# Currency sign -> (singular, plural) of the unit and of its hundredth.
_CURRENCIES = {
    "$": (("dollar", "dollars"), ("cent", "cents")),
    "£": (("pound", "pounds"), ("penny", "pence")),
    "€": (("euro", "euros"), ("cent", "cents")),
}
_SCALES = "thousand|million|billion|trillion"

_AMOUNT = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_MONEY_RE = re.compile(rf"([$£€])({_AMOUNT})(?:\s+({_SCALES})\b)?", re.IGNORECASE)
_GROUPED_RE = re.compile(r"\b(\d{1,3}(?:,\d{3})+(?:\.\d+)?)(st|nd|rd|th)?\b", re.IGNORECASE)
_DECIMAL_RE = re.compile(r"\b\d+\.\d+\b")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECADE_RE = re.compile(r"\b(\d+0)s\b")
_INTEGER_RE = re.compile(r"\d+")


@functools.lru_cache(maxsize=1 << 16)  # inflect is slow (runtime type checks) and numbers repeat
def _spell(number: str) -> str:
    # No "and" and no commas inside a number: commas would read as pauses.
    return _engine().number_to_words(number, andword="", comma="")


def _cardinal(number: str | int) -> str:
    return _spell(str(number))


def _plural(word: str, count: int) -> str:
    return word if count == 1 else _engine().plural_noun(word)


def year_to_words(year: int) -> str:
    """Read a year in pairs of digits: 1984 -> nineteen eighty-four, 1905 -> nineteen oh five."""
    if 2000 <= year < 2010:
        return _cardinal(year)
    century, rest = divmod(year, 100)
    if rest == 0:
        return f"{_cardinal(century)} hundred"
    if rest < 10:
        return f"{_cardinal(century)} oh {_cardinal(rest)}"
    return f"{_cardinal(century)} {_cardinal(rest)}"


def _integer_to_words(digits: str) -> str:
    number = int(digits)
    if 1000 < number < 3000 and number % 1000 != 0:
        return year_to_words(number)
    return _cardinal(number)


def _expand_money(match: re.Match) -> str:
    (unit, units), (cent, cents) = _CURRENCIES[match.group(1)]
    amount = match.group(2).replace(",", "")
    scale = match.group(3)
    if scale:  # "$1.5 million" -> "one point five million dollars"
        return f"{_cardinal(amount)} {scale.lower()} {units}"
    whole, _, fraction = amount.partition(".")
    if len(fraction) > 2:  # not a price: read the decimal as it is written
        return f"{_cardinal(amount)} {units}"
    major = int(whole)
    minor = int(fraction.ljust(2, "0")) if fraction else 0
    parts = []
    if major or not minor:
        parts.append(f"{_cardinal(major)} {unit if major == 1 else units}")
    if minor:
        parts.append(f"{_cardinal(minor)} {cent if minor == 1 else cents}")
    return " and ".join(parts)


def _expand_grouped(match: re.Match) -> str:
    number = match.group(1).replace(",", "")
    if match.group(2):
        return _spell(number + match.group(2).lower())
    return _cardinal(number)


def _expand_ordinal(match: re.Match) -> str:
    return _spell(match.group(1) + match.group(2).lower())


def _expand_decade(match: re.Match) -> str:
    # "1980s" -> "nineteen eighties": pluralise the last word of the spoken number.
    words = _integer_to_words(match.group(1)).rsplit(" ", 1)
    words[-1] = _plural(words[-1], 2)
    return " ".join(words)


def expand_numbers(text: str) -> str:
    """Replace every number written in digits by words. Order matters: money and grouped numbers
    first (they contain '.' and ','), then decimals, ordinals and decades, then plain integers."""
    text = _MONEY_RE.sub(_expand_money, text)
    text = _GROUPED_RE.sub(_expand_grouped, text)
    text = _DECIMAL_RE.sub(lambda m: _cardinal(m.group(0)), text)
    text = _ORDINAL_RE.sub(_expand_ordinal, text)
    text = _DECADE_RE.sub(_expand_decade, text)
    return _INTEGER_RE.sub(lambda m: _integer_to_words(m.group(0)), text)
