"""holdtts: privacy-hardened diffusion text-to-speech.

The public API (stable; documented in the README):

    holdtts.mel_spectrogram(wav)            log-mel features in HiFi-GAN's convention
    holdtts.make_process("vp" | "hold", ...) the diffusion processes (marginal, sampling, reverse drift)
    holdtts.load_model(path)                a trained system: text -> mu, the process, eps_hat
    holdtts.load_config(path, overrides)    a system config (YAML), checked against the schema

Names are imported lazily so `import holdtts` (and `holdtts --help`) does not import torch.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "mel_spectrogram": "holdtts.data.mel",
    "MelConfig": "holdtts.data.mel",
    "load_config": "holdtts.config",
    "SystemConfig": "holdtts.config",
    "make_process": "holdtts.diffusion.processes",
}

__all__ = sorted([*_LAZY, "load_model"]) + ["__version__"]


def load_model(path, device="cpu", ema: bool = True):
    """A trained system from an experiment directory or a checkpoint file, in eval mode (EMA weights by
    default): a GradTTS, or DualMD's two-teacher pipeline for a DualMD system directory.

    This package is where the layers meet: it imports holdtts.defenses, which registers its loaders with
    holdtts.models.loading (the model layer knows no defense), then loads.
    """
    import holdtts.defenses  # noqa: F401  (registers the DualMD loader)
    from holdtts.models.loading import load_model as load

    return load(path, device=device, ema=ema)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'holdtts' has no attribute {name!r}")


def __dir__():
    return __all__
