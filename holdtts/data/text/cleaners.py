"""English text normalisation, Grad-TTS's `english_cleaners` pipeline.

ASCII transliteration, abbreviations, lower case, numbers spelled out, whitespace collapsed. It is
applied to LJSpeech's transcripts and to the mini corpus's normalized column, and again by the text
frontend before encoding (it is idempotent on its own output).
"""
from __future__ import annotations

import re

from unidecode import unidecode

from holdtts.data.text.numbers import expand_numbers

# Abbreviations that are always followed by a period; "St." is handled separately (saint or street).
_ABBREVIATIONS = {
    "mrs": "misess",
    "mr": "mister",
    "drs": "doctors",
    "dr": "doctor",
    "co": "company",
    "jr": "junior",
    "maj": "major",
    "gen": "general",
    "rev": "reverend",
    "lt": "lieutenant",
    "hon": "honorable",
    "sgt": "sergeant",
    "capt": "captain",
    "esq": "esquire",
    "ltd": "limited",
    "col": "colonel",
    "ft": "fort",
}
_ABBREVIATION_RE = re.compile(r"\b(" + "|".join(_ABBREVIATIONS) + r")\.", re.IGNORECASE)
# "St." before a capitalised name is "saint" (St. Paul); anywhere else it ends a street name.
_SAINT_RE = re.compile(r"\b(?i:st)\.(?=\s*[A-Z])")
_STREET_RE = re.compile(r"\bst\.", re.IGNORECASE)
# What may follow the period of an abbreviation that ends the text: closing quotes and brackets.
_TEXT_END_RE = re.compile(r"""["')\]]*\s*""")

# Symbols that have a spoken form; anything else outside the symbol table is an encoding error.
_SPOKEN_SYMBOLS = {"&": " and ", "%": " percent", "+": " plus ", "@": " at ", "=": " equals "}
_SPOKEN_RE = re.compile("|".join(re.escape(s) for s in _SPOKEN_SYMBOLS))
_BRACKETS = str.maketrans({"[": "(", "]": ")", "{": "(", "}": ")"})
_CURRENCY_SIGNS = "£€"
_CURRENCY_RE = re.compile(f"([{_CURRENCY_SIGNS}])")
_WHITESPACE_RE = re.compile(r"\s+")


def to_ascii(text: str) -> str:
    """Transliterate to ASCII, keeping the currency signs that numbers.py reads (unidecode would turn
    '£3' into 'PS3')."""
    if text.isascii():
        return text
    return "".join(p if p in _CURRENCY_SIGNS else unidecode(p) for p in _CURRENCY_RE.split(text))


def _full_stop(match: re.Match) -> str:
    # The period of an abbreviation that ends the text is also the sentence's full stop: keep it.
    return "." if _TEXT_END_RE.fullmatch(match.string, match.end()) else ""


def expand_abbreviations(text: str) -> str:
    text = _SAINT_RE.sub("saint", text)
    text = _STREET_RE.sub(lambda m: "street" + _full_stop(m), text)
    return _ABBREVIATION_RE.sub(lambda m: _ABBREVIATIONS[m.group(1).lower()] + _full_stop(m), text)


def collapse_whitespace(text: str) -> str:
    return _WHITESPACE_RE.sub(" ", text).strip()


def english_cleaners(text: str) -> str:
    """Normalise English text for the frontend: 'Dr. Smith paid $12.50 in 1984.' ->
    'doctor smith paid twelve dollars and fifty cents in nineteen eighty-four.'"""
    text = to_ascii(text)
    text = expand_abbreviations(text)  # before lower-casing: "St." needs the case of the next word
    text = text.lower()
    text = expand_numbers(text)
    text = unidecode(text)  # currency signs left without an amount
    text = _SPOKEN_RE.sub(lambda m: _SPOKEN_SYMBOLS[m.group(0)], text)
    text = text.translate(_BRACKETS)
    return collapse_whitespace(text)
