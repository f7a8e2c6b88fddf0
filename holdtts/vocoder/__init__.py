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


def resolve_vocoder(spec: str, model_checkpoint: str | Path) -> str:
    """"auto": the recipe's trained HiFi-GAN (exp/vocoder beside the model's experiment, or beside the
    defense that holds it) when it has a checkpoint, else Griffin-Lim. Any other spec is returned as is."""
    if spec != "auto":
        return spec
    from holdtts.utils.checkpoint import latest_checkpoint

    path = Path(model_checkpoint)
    experiment = path if path.is_dir() else path.parent.parent  # <exp>/checkpoints/step-N.pt
    for candidate in (experiment.parent / "vocoder", experiment.parent.parent / "vocoder"):
        if candidate.is_dir() and latest_checkpoint(candidate) is not None:
            return str(candidate)
    return GRIFFIN_LIM_NAMES[0]


__all__ = ["GriffinLimVocoder", "load_vocoder", "resolve_vocoder"]
