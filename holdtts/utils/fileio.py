"""Atomic writes and refuse-to-overwrite rules: an interrupted stage leaves nothing that looks complete."""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from holdtts.errors import HoldttsError, InputError

# The temporary files of atomic_path: ".<name>.<8 random characters of mkstemp>.tmp[<suffix>]". A kill
# between their creation and the rename leaves one behind; `sweep_temp_files` recognises them by this name.
TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    # the temporary name ends with `suffix`, so writers that infer the format from it (np.save,
    # soundfile) neither append an extension nor fail
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_UMASK)  # mkstemp makes files private; give them the usual mode
    return Path(name)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create a directory (and parents); raise a clear error if it cannot be written to."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise HoldttsError(f"{path}: cannot create directory ({err.strerror})") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise HoldttsError(f"{path}: directory is not writable")
    return path


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's (or a directory's) data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a directory; the rename is still atomic there
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    `suffix` keeps an extension for writers that insist on one (np.save, soundfile). With `durable`,
    the file's data reach the disk before the rename and the directory entry after it, so a power loss
    leaves the old file or the whole new one, never a renamed but empty one.
    """
    path = Path(path)
    ensure_dir(path.parent)
    tmp = _tmp_sibling(path, suffix)
    try:
        yield tmp
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_path(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file beside `path` for writing; it replaces `path` when the block succeeds."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_json(path: str | os.PathLike):
    """A JSON file's value; a missing, unreadable or invalid file is an InputError naming it (and the line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise InputError("not found", path) from err
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read ({err})", path) from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"invalid JSON ({err.msg})", path, err.lineno) from err


def strict_json(value):
    """value with numpy scalars as Python numbers and NaN/inf as null: strict JSON has neither (an infinite
    epsilon, a NaN score of a clip that could not be scored)."""
    if isinstance(value, Mapping):
        return {str(key): strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: str | os.PathLike, obj, indent: int = 2) -> None:
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=indent, sort_keys=False)
        f.write("\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place when the block succeeds."""
    path = Path(path)
    ensure_dir(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            raise HoldttsError(f"{path}: already exists; refusing to replace it")
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def waiting_lock(path: str | os.PathLike, waiting_message: str | None = None) -> Iterator[None]:
    """Hold an exclusive flock on `path` for the block, waiting (and saying `waiting_message` once) while
    another process holds it: for work that two processes must not do at once, such as building a cached
    model both need. The kernel releases it when the holder dies."""
    import fcntl
    import logging

    path = Path(path)
    ensure_dir(path.parent)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting_message:
                logging.getLogger(__name__).warning(waiting_message)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def user_cache_dir(name: str) -> Path:
    """Where built models (recognisers, language models) are cached: $HOLDTTS_CACHE/<name>, else
    $XDG_CACHE_HOME/holdtts/<name> or ~/.cache/holdtts/<name>."""
    root = os.environ.get("HOLDTTS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "holdtts")
    return Path(root) / name


def sweep_temp_files(directory: str | os.PathLike) -> list[tuple[Path, int]]:
    """Delete the temporary files atomic writers left in `directory` (not below it) when they were killed
    before their rename; returns (path, size) of each. Only call it while no writer can be at work there
    (e.g. holding the experiment's lock)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in directory.iterdir():
        if TEMP_NAME.match(entry.name) and entry.is_file() and not entry.is_symlink():
            size = entry.stat().st_size
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append((entry, size))
    return sorted(removed)


def refuse_overwrite(path: str | os.PathLike, overwrite: bool, what: str = "output") -> None:
    """Raise unless `path` is absent or the user asked to overwrite it."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise HoldttsError(f"{path}: {what} already exists; pass --overwrite to replace it")
