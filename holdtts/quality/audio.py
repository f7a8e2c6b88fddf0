"""Audio loading for the quality metrics: mono float32 in [-1, 1], resampled where a model needs it.

The recognisers and DNSMOS run at 16 kHz, the project's log-mels at 22050 Hz; a clip is read once and
resampled (soxr, librosa's default) to each rate on first use.
"""
from __future__ import annotations

import os
from pathlib import Path

import librosa
import numpy as np
import soundfile

from holdtts.errors import InputError

MODEL_SAMPLE_RATE = 16000  # Resemblyzer, DNSMOS and pocketsphinx all take 16 kHz


def load_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32 samples (channels averaged) and its sampling rate."""
    path = Path(path)
    try:
        wav, sample_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as err:
        raise InputError(f"cannot read audio ({err})", path) from err
    if wav.shape[0] == 0:
        raise InputError("audio file holds no samples", path)
    wav = wav.mean(axis=1) if wav.shape[1] > 1 else wav[:, 0]
    if not np.isfinite(wav).all():
        raise InputError("audio holds NaN or infinite samples", path)
    return np.ascontiguousarray(wav), int(sample_rate)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D clip (float32 out); a no-op when the rates match."""
    wav = np.asarray(wav, dtype=np.float32)
    if orig_sr == target_sr:
        return wav
    return librosa.resample(wav, orig_sr=orig_sr, target_sr=target_sr).astype(np.float32)


def noise_floor(length: int) -> np.ndarray:
    """One 16-bit step of noise (-1, 0 or +1 steps, int64 [length]), seeded by the length so a clip always gets
    the same: what the recognisers add to digital silence, and what the speaker encoder embeds for it."""
    return np.random.default_rng(length).integers(-1, 2, size=length)


def to_int16_pcm(wav: np.ndarray) -> bytes:
    """Little-endian 16-bit PCM bytes of a float clip (clipped to [-1, 1])."""
    return (np.clip(wav, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def log_mel(wav: np.ndarray, sample_rate: int, device: str = "cpu") -> np.ndarray:
    """The project's 80-band natural-log mel spectrogram [80, frames] of a clip at any rate.

    The clip is resampled to the feature rate (22050 Hz) first, then `holdtts.mel_spectrogram` is applied
    (HiFi-GAN's convention; see holdtts/data/mel.py), on `device`.
    """
    import torch

    from holdtts.config import FeaturesConfig
    from holdtts.data.mel import mel_spectrogram

    cfg = FeaturesConfig()
    wav = np.array(resample(wav, sample_rate, cfg.sample_rate))  # a writable copy for torch
    with torch.no_grad():
        mel = mel_spectrogram(torch.from_numpy(wav).to(device), cfg)
    return mel.cpu().numpy().astype(np.float64)


class Clip:
    """One audio file, read once, with its resampled versions kept for the metrics that need them."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.wav, self.sample_rate = load_audio(self.path)
        self._at: dict[int, np.ndarray] = {self.sample_rate: self.wav}

    @property
    def seconds(self) -> float:
        return len(self.wav) / self.sample_rate

    def at(self, sample_rate: int) -> np.ndarray:
        """The clip resampled to `sample_rate` (computed once)."""
        if sample_rate not in self._at:
            self._at[sample_rate] = resample(self.wav, self.sample_rate, sample_rate)
        return self._at[sample_rate]
