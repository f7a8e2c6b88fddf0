"""Checkpoints: written atomically, loaded safely (weights_only), the last K kept.

A checkpoint is a plain dict of tensors and primitive values, so `torch.load(weights_only=True)` can
read it: no pickled code runs when a user opens a checkpoint from elsewhere.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import torch

from holdtts.errors import CheckpointError
from holdtts.utils.fileio import atomic_path

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step-(\d{9})\.pt$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:09d}.pt"


def list_checkpoints(exp_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint in an experiment, oldest first."""
    folder = Path(exp_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(exp_dir: str | Path) -> Path | None:
    found = list_checkpoints(exp_dir)
    return found[-1][1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """An experiment directory (its latest checkpoint) or a checkpoint file."""
    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError("no checkpoint in this experiment directory (train it first)", path)
        return latest
    if not path.is_file():
        raise CheckpointError("no such checkpoint or experiment directory", path)
    return path


def save_checkpoint(state: dict, exp_dir: str | Path, step: int, keep_last: int) -> Path:
    """Write `state` as checkpoints/step-N.pt atomically, then delete all but the newest `keep_last`."""
    path = Path(exp_dir) / CHECKPOINT_DIR / checkpoint_name(step)
    with atomic_path(path, suffix=".pt") as tmp:  # durable: fsync of the file and the folder
        torch.save(state, tmp)
    for _, old in list_checkpoints(exp_dir)[:-max(1, keep_last)]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint safely; truncated, corrupt or foreign files give a CheckpointError naming the file."""
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a deserialisation boundary: random bytes fail anywhere in the unpickler
        raise CheckpointError(f"cannot read checkpoint (truncated, corrupt or not a holdtts checkpoint): "
                              f"{type(err).__name__}: {err}", path) from err
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError("not a holdtts checkpoint (no 'format' entry)", path)
    return state


# --------------------------------------------------------------------------- RNG state


def rng_state() -> dict:
    """Every RNG the training loop touches, in a form weights_only loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(_python_state_from_plain(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_plain(state):
    version, internal, gauss = state
    return {"version": version, "internal": list(internal), "gauss": gauss}


def _python_state_from_plain(plain):
    return (plain["version"], tuple(plain["internal"]), plain["gauss"])
