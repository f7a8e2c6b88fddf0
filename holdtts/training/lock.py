"""One training at a time per experiment directory: an exclusive flock on <exp-dir>/.lock, held for the run.

The lock file holds the holder's PID (and host) for the error message. The kernel releases a flock when
its holder dies, however it dies (SIGKILL included), so a lock file left by a killed run is stale by
construction: the next run takes it and says so. (flock needs a local or lock-aware file system; on one
without locking, the second run is not stopped.)
"""
from __future__ import annotations

import fcntl
import logging
import os
import socket
from pathlib import Path

from holdtts.errors import ExperimentLockedError, HoldttsError

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"


def _read_holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


class ExperimentLock:
    """`with ExperimentLock(exp_dir):` or acquire()/release(). A second holder fails at once."""

    def __init__(self, exp_dir: str | os.PathLike):
        self.path = Path(exp_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> ExperimentLock:
        if self._fd is not None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise HoldttsError(f"{self.path}: cannot create the experiment's lock file ({err.strerror})") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read_holder(self.path) or "unknown"
            pid = holder.split()[0] if holder != "unknown" else holder
            raise ExperimentLockedError(
                f"{self.path.parent}: another training is running in this experiment directory (PID {pid}, "
                f"lock {self.path}: {holder}). Wait for it, stop it, or use another --exp-dir.") from None
        except OSError as err:
            os.close(fd)
            raise HoldttsError(f"{self.path}: cannot lock ({err.strerror})") from err
        previous = _read_holder(self.path)
        if previous:
            log.warning("%s: taking over a stale lock of PID %s (that process is gone)", self.path,
                        previous.split()[0])
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Empty the lock file (a clean exit leaves no holder behind) and unlock it."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> ExperimentLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
