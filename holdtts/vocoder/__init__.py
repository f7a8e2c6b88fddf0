"""Vocoders: mels -> waveforms. Griffin-Lim (no training) and HiFi-GAN.

Every vocoder is an nn.Module called on natural-log mels [B, n_mels, T] that returns waveforms
[B, T * hop], with `.name` and `.sample_rate`.
"""
from __future__ import annotations

from pathlib import Path

from holdtts.vocoder.griffin_lim import GriffinLimVocoder

GRIFFIN_LIM_NAMES = ("griffin-lim", "griffinlim")


def load_vocoder(spec: str | None = "griffin-lim", device: str | None = None, config: str | None = None):
    """A vocoder by name or path:
      - "griffin-lim" (default);
      - a `holdtts train-vocoder` experiment directory (its latest checkpoint) or checkpoint file;
      - a published HiFi-GAN generator file (github.com/jik876/hifi-gan), with its config.json beside it
        or given as `config`, or the release folder holding both.
    Note: the published LJSpeech generators were trained on almost every LJSpeech clip, the non-members
    of any LJSpeech split included.
    """
    from holdtts.errors import InputError

    if spec in (None, "", *GRIFFIN_LIM_NAMES):
        if config:
            raise InputError("a vocoder config only applies to a published HiFi-GAN generator file", config)
        vocoder = GriffinLimVocoder()
    elif Path(spec).exists():
        from holdtts.vocoder.official import load_hifigan

        vocoder = load_hifigan(spec, config)
    else:
        raise InputError(f"unknown vocoder '{spec}': neither griffin-lim nor an existing HiFi-GAN experiment "
                         "directory or checkpoint file")
    return vocoder.to(device) if device else vocoder


__all__ = ["GriffinLimVocoder", "load_vocoder"]
