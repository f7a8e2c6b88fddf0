"""The mini corpus's sentences: a seeded grammar over a vocabulary read from CMUdict at run time.

Function words, templates and a few closed word lists (months, titles, units) are written here;
content words are drawn from the CMU dictionary and sorted into rough parts of speech by their
suffixes (-tion nouns, -ous adjectives, -ly adverbs, -ated participles, -ing forms, and surnames by
theirs: -son, -ton, -field). The sentences mix in numbers, years, ordinals, money, abbreviations and
punctuation so that every path of the text frontend is exercised, and run from 3 to 25 words after
normalisation (clips of about 1 to 10 s).
"""
from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from holdtts.data.text.cleaners import english_cleaners
from holdtts.data.text.frontend import pronouncing_dictionary

MIN_WORDS = 3
MAX_WORDS = 25  # after normalisation: at most about 10 s at the mini corpus's slowest rate

_WORD_RE = re.compile(r"[a-z]{3,11}")
_SUFFIXES = {
    "nouns": ("tion", "sion", "ment", "ness", "ity", "ance", "ence", "ship", "hood", "dom", "ism"),
    "adjectives": ("ous", "ful", "ive", "able", "ible", "less", "ical", "ial"),
    "adverbs": ("ly",),
    "participles": ("ated", "ized", "ished", "ected", "ested", "ended", "ered", "ined", "ured"),
    "gerunds": ("ing",),
}
# Surnames: dictionary words with common English surname endings (Grayson, Atherton, Schofield).
_SURNAME_ENDINGS = ("son", "ton", "ley", "ford", "well", "berg", "stein", "ski", "field", "worth", "wood",
                    "land", "ridge", "ham", "ville", "dale", "mont")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_TITLES = ("Mr.", "Mrs.", "Dr.", "Capt.", "Col.", "Lt.", "Sgt.", "Rev.", "Gen.", "Maj.", "Hon.")
_DETERMINERS = ("the", "the", "the", "a", "this", "that", "his", "her", "their", "our", "every")
_PREPOSITIONS = ("in", "on", "at", "near", "after", "before", "without", "beyond", "under", "with",
                 "from", "about", "against", "behind")
_CONJUNCTIONS = ("and", "but", "while", "so", "yet", "although")
_UNITS = ("miles", "days", "years", "pages", "letters", "people", "steps", "hours", "windows", "men")
_SPEECH_VERBS = ("said", "asked", "replied", "wrote", "added", "declared")


@dataclass(frozen=True)
class Vocabulary:
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    adverbs: tuple[str, ...]
    participles: tuple[str, ...]
    gerunds: tuple[str, ...]
    names: tuple[str, ...]


def load_vocabulary() -> Vocabulary:
    """Plain alphabetic CMUdict words of 3 to 11 letters, sorted into classes by suffix."""
    words = sorted(w for w in pronouncing_dictionary() if _WORD_RE.fullmatch(w))
    classes: dict[str, list[str]] = {name: [] for name in _SUFFIXES}
    names: list[str] = []
    for word in words:
        for name, suffixes in _SUFFIXES.items():
            if word.endswith(suffixes) and len(word) >= 6:
                classes[name].append(word)
                break
        else:
            if word.endswith(_SURNAME_ENDINGS) and 5 <= len(word) <= 10:
                names.append(word.capitalize())
    return Vocabulary(**{name: tuple(ws) for name, ws in classes.items()}, names=tuple(names))


class _Grammar:
    def __init__(self, vocabulary: Vocabulary, rng: random.Random):
        self.v = vocabulary
        self.rng = rng

    def pick(self, options: Sequence[str]) -> str:
        return options[self.rng.randrange(len(options))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    # ---------------------------------------------------------------- phrases
    def name(self) -> str:
        if self.chance(0.5):
            return f"{self.pick(_TITLES)} {self.pick(self.v.names)}"
        if self.chance(0.1):
            return f"{self.pick(self.v.names)} {self.pick(self.v.names)}, Jr."
        return self.pick(self.v.names)

    def noun_phrase(self) -> str:
        determiner = self.pick(_DETERMINERS)
        words = []
        if self.chance(0.5):
            words.append(self.pick(self.v.adjectives))
        words.append(self.pick(self.v.nouns))
        if determiner == "a" and words[0][0] in "aeiou":
            determiner = "an"
        phrase = " ".join([determiner, *words])
        if self.chance(0.25):
            phrase += f" of the {self.pick(self.v.nouns)}"
        return phrase

    def year(self) -> str:
        return str(self.rng.randint(1750, 2029))

    def ordinal(self, high: int = 31) -> str:
        n = self.rng.randint(1, high)
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"{n}{suffix}"

    def money(self) -> str:
        sign = self.pick("$$$££")
        kind = self.rng.random()
        if kind < 0.4:
            return f"{sign}{self.rng.randint(1, 99)}.{self.rng.randint(0, 99):02d}"
        if kind < 0.7:
            return f"{sign}{self.rng.randint(1, 500)}"
        if kind < 0.9:
            return f"{sign}{self.rng.randint(1000, 99999):,}"
        return f"{sign}{self.rng.randint(2, 9)}.{self.rng.randint(1, 9)} million"

    def quantity(self) -> str:
        kind = self.rng.random()
        if kind < 0.4:
            number = str(self.rng.randint(2, 999))
        elif kind < 0.7:
            number = f"{self.rng.randint(1000, 999999):,}"
        else:
            number = f"{self.rng.randint(1, 99)}.{self.rng.randint(1, 9)}"
        return f"{number} {self.pick(_UNITS)}"

    def place(self) -> str:
        kind = self.rng.random()
        if kind < 0.4:
            return f"on {self.pick(self.v.names)} St."
        if kind < 0.7:
            return f"near St. {self.pick(self.v.names)}"
        return f"at Ft. {self.pick(self.v.names)}"

    def modifier(self) -> str:
        kind = self.rng.random()
        if kind < 0.35:
            return f"{self.pick(_PREPOSITIONS)} {self.noun_phrase()}"
        if kind < 0.5:
            return f"in {self.year()}"
        if kind < 0.6:
            return f"on {self.pick(_MONTHS)} {self.ordinal()}"
        if kind < 0.7:
            return f"on the {self.ordinal()} of {self.pick(_MONTHS)}, {self.year()}"
        if kind < 0.8:
            return self.place()
        if kind < 0.9:
            return f"for {self.money()}"
        return f"by {self.rng.randint(2, 95)}%"

    def subject(self) -> str:
        return self.name() if self.chance(0.4) else self.noun_phrase()

    def predicate(self) -> str:
        kind = self.rng.random()
        if kind < 0.3:
            core = f"{self.pick(self.v.participles)} {self.noun_phrase()}"
        elif kind < 0.5:
            adverb = f"{self.pick(self.v.adverbs)} " if self.chance(0.6) else ""
            core = f"was {adverb}{self.pick(self.v.participles)}"
        elif kind < 0.65:
            core = f"was {self.pick(self.v.gerunds)} {self.noun_phrase()}"
        elif kind < 0.8:
            core = f"seemed {self.pick(self.v.adjectives)}"
        elif kind < 0.9:
            core = f"paid {self.money()} for {self.noun_phrase()}"
        else:
            core = f"counted {self.quantity()}"
        while self.chance(0.45):
            core += " " + self.modifier()
        return core

    def clause(self) -> str:
        return f"{self.subject()} {self.predicate()}"

    # ---------------------------------------------------------------- sentences
    def sentence(self) -> str:
        kind = self.rng.random()
        if kind < 0.25:
            text = f"{self.clause()}."
        elif kind < 0.4:
            text = f"{self.clause()}, {self.pick(_CONJUNCTIONS)} {self.clause()}."
        elif kind < 0.5:
            text = f"{self.clause()}; {self.clause()}."
        elif kind < 0.6:
            text = f"{self.modifier()}, {self.clause()}."
        elif kind < 0.7:
            text = self.question()
        elif kind < 0.8:
            text = self.quotation()
        elif kind < 0.87:
            text = f"{self.clause()}: {self.noun_phrase()}, {self.noun_phrase()} and {self.noun_phrase()}."
        elif kind < 0.94:
            text = f"{self.clause()} ({self.year()})."
        else:
            text = f"{self.clause()}!"
        return _capitalise(_one_full_stop(text))

    def question(self) -> str:
        kind = self.rng.random()
        if kind < 0.4:
            tail = f" {self.modifier()}" if self.chance(0.6) else ""
            return f"was {self.noun_phrase()} {self.pick(self.v.participles)}{tail}?"
        if kind < 0.7:
            return f"did {self.name()} see {self.noun_phrase()}?"
        return f"why was {self.noun_phrase()} so {self.pick(self.v.adjectives)}?"

    def quotation(self) -> str:
        quoted = _capitalise(self.clause())
        verb = self.pick(_SPEECH_VERBS)
        if self.chance(0.5):
            return f'"{quoted}," {verb} {self.name()}.'
        return f'{self.name()} {verb}, "{quoted}."'


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _one_full_stop(text: str) -> str:
    # An abbreviation's period doubles as the full stop: "on Baker St." not "on Baker St.."
    return text.replace("..", ".")


def generate_sentences(n: int, seed: int, vocabulary: Vocabulary | None = None) -> list[str]:
    """`n` distinct sentences, deterministic for `seed` (for a given CMUdict release); the first k
    sentences do not depend on n. `vocabulary` replaces CMUdict's words (the recogniser's domain
    language model passes one placeholder per word class, to learn the grammar's shape)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    grammar = _Grammar(vocabulary or load_vocabulary(), random.Random(seed))
    sentences: list[str] = []
    seen: set[str] = set()
    while len(sentences) < n:
        text = grammar.sentence()
        if text in seen:
            continue
        words = len(english_cleaners(text).split())
        if MIN_WORDS <= words <= MAX_WORDS:
            seen.add(text)
            sentences.append(text)
    return sentences
