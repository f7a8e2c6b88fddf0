"""English text frontend: cleaners, CMUdict phonemes, the symbol table and the blank token."""
from __future__ import annotations

from holdtts.data.text.cleaners import english_cleaners
from holdtts.data.text.frontend import TextError, TextFrontend
from holdtts.data.text.symbols import SymbolTable

__all__ = ["english_cleaners", "SymbolTable", "TextFrontend", "TextError"]
