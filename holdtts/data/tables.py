"""Kaldi-style text tables: one `key value` line per utterance, sorted by key.

The key is the first whitespace-delimited token; the value is the rest of the line (so it may hold
spaces, as a transcript or a path does). Keys are sorted in byte order, like Kaldi's `LC_ALL=C sort`
(for UTF-8 text, Python's code-point order is the same order).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from holdtts.errors import InputError
from holdtts.utils.fileio import atomic_open


def iter_lines(path: str | os.PathLike) -> Iterable[tuple[int, str]]:
    """Yield (1-based line number, line without its newline) of a UTF-8 file, skipping blank lines."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise InputError("file not found", path) from err
    except OSError as err:
        raise InputError(f"cannot read ({err.strerror})", path) from err
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(f"not valid UTF-8 ({err.reason} at byte {err.start})", path, number) from err
        if number == 1:
            line = line.removeprefix("\ufeff")
        if line.strip():
            yield number, line


def read_table(path: str | os.PathLike, *, value_type: Callable[[str], Any] = str) -> dict[str, Any]:
    """Read `key value` lines into a dict (in file order), converting each value with `value_type`.

    A line without a value, a duplicate key, or a value `value_type` rejects is an error naming the
    file and line.
    """
    path = Path(path)
    table: dict[str, Any] = {}
    first_line: dict[str, int] = {}
    for number, line in iter_lines(path):
        parts = line.split(maxsplit=1)
        key = parts[0]
        if len(parts) < 2:
            raise InputError(f"key '{key}' has no value", path, number)
        if key in table:
            raise InputError(f"duplicate key '{key}' (first on line {first_line[key]})", path, number)
        try:
            table[key] = value_type(parts[1].strip())
        except (TypeError, ValueError) as err:
            name = getattr(value_type, "__name__", str(value_type))
            raise InputError(f"key '{key}': value '{parts[1].strip()}' is not a valid {name}",
                             path, number) from err
        first_line[key] = number
    return table


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key or key != key.strip() or len(key.split()) != 1:
        raise ValueError(f"table key {key!r} must be a non-empty string without whitespace")
    return key


def write_table(path: str | os.PathLike, mapping: Mapping[str, Any]) -> None:
    """Write `key value` lines sorted by key, atomically. Values are written with `str()`."""
    lines = []
    for key in sorted(mapping):
        value = str(mapping[key]).strip()
        if not value or "\n" in value or "\r" in value:
            raise ValueError(f"table value for key {key!r} must be a non-empty single line, got {value!r}")
        lines.append(f"{_check_key(key)} {value}\n")
    with atomic_open(path, "w") as f:
        f.writelines(lines)


def read_list(path: str | os.PathLike) -> list[str]:
    """Read one key per line (file order); extra fields and duplicates are errors naming the line."""
    path = Path(path)
    keys: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in iter_lines(path):
        parts = line.split()
        if len(parts) != 1:
            raise InputError(f"expected one key per line, got {len(parts)} fields", path, number)
        key = parts[0]
        if key in first_line:
            raise InputError(f"duplicate key '{key}' (first on line {first_line[key]})", path, number)
        first_line[key] = number
        keys.append(key)
    return keys


def write_list(path: str | os.PathLike, keys: Iterable[str]) -> None:
    """Write one key per line, sorted, atomically; a duplicate key is an error."""
    keys = sorted(keys)
    for a, b in zip(keys, keys[1:]):
        if a == b:
            raise ValueError(f"duplicate key {a!r} in list for {os.fspath(path)}")
    with atomic_open(path, "w") as f:
        f.writelines(f"{_check_key(key)}\n" for key in keys)
