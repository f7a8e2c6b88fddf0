"""Vocoders: mels -> waveforms. Griffin-Lim (no training) and HiFi-GAN."""
from __future__ import annotations

from holdtts.vocoder.griffin_lim import GriffinLimVocoder


def load_vocoder(spec: str | None = "griffin-lim", device: str | None = None):
    """A vocoder by name: "griffin-lim" (default)."""
    if spec in (None, "", "griffin-lim", "griffinlim"):
        vocoder = GriffinLimVocoder()
    else:
        from holdtts.errors import InputError

        raise InputError(f"unknown vocoder '{spec}' (known: griffin-lim)")
    return vocoder.to(device) if device else vocoder


__all__ = ["GriffinLimVocoder", "load_vocoder"]
