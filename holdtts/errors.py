"""Errors that reach the user. Each names the file (and line, when there is one) it is about."""
from __future__ import annotations

import os


class HoldttsError(Exception):
    """An error the CLI prints as one clear line (no traceback)."""


class InputError(HoldttsError):
    """Bad input: a corrupt or missing file, a malformed line, an unknown key.

    `str(err)` reads `path:line: message` (or `path: message`), the format compilers and editors know.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.message = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class ConfigError(InputError):
    """A config file or override that does not match the schema."""


class CheckpointError(InputError):
    """A checkpoint that is missing, truncated or does not match the model."""


class MembershipMismatchError(HoldttsError):
    """A model, checkpoint or run whose member list (the training split's ids) differs from the current one:
    resuming or attacking across it would mix members with non-members."""


class ExperimentLockedError(HoldttsError):
    """Another process is training into the same experiment directory."""
