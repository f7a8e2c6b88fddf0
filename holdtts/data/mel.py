"""Log-mel features in HiFi-GAN's convention, so published HiFi-GAN checkpoints vocode them.

22050 Hz, n_fft 1024, hop 256, win 1024 (Hann), 80 Slaney mel bands over 0-8000 Hz, reflect padding of
(n_fft - hop) / 2 on both sides, STFT with center off, magnitude sqrt(re^2 + im^2 + 1e-9), natural log
of max(x, 1e-5), no normalisation. A clip of N samples gives N // hop frames.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torchaudio

from holdtts.config import FeaturesConfig

MelConfig = FeaturesConfig
LOG_FLOOR = 1e-5
MAGNITUDE_EPS = 1e-9


@functools.lru_cache(maxsize=16)
def _mel_basis(cfg: tuple, device: str) -> torch.Tensor:
    sample_rate, n_fft, _, _, n_mels, f_min, f_max = cfg
    fb = torchaudio.functional.melscale_fbanks(
        n_freqs=n_fft // 2 + 1, f_min=f_min, f_max=f_max, n_mels=n_mels, sample_rate=sample_rate,
        norm="slaney", mel_scale="slaney")
    return fb.T.contiguous().to(device)  # [n_mels, n_freqs]


@functools.lru_cache(maxsize=16)
def _window(win_length: int, device: str) -> torch.Tensor:
    return torch.hann_window(win_length, device=device)


def _key(cfg: FeaturesConfig) -> tuple:
    return (cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.win_length, cfg.n_mels, cfg.f_min, cfg.f_max)


def num_frames(num_samples: int, cfg: FeaturesConfig | None = None) -> int:
    """Frames produced for a clip of `num_samples` samples."""
    cfg = cfg or FeaturesConfig()
    pad = (cfg.n_fft - cfg.hop_length) // 2
    return (num_samples + 2 * pad - cfg.n_fft) // cfg.hop_length + 1


def _reflect_pad(wav: torch.Tensor, pad: int) -> torch.Tensor:
    if wav.shape[-1] <= pad:
        raise ValueError(f"clip too short for a mel frame: {wav.shape[-1]} samples (need more than {pad})")
    return torch.nn.functional.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)


def _mel_from_padded(padded: torch.Tensor, cfg: FeaturesConfig) -> torch.Tensor:
    device = str(padded.device)
    spec = torch.stft(padded, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                      window=_window(cfg.win_length, device), center=False, normalized=False,
                      onesided=True, return_complex=True)
    magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + MAGNITUDE_EPS)
    mel = torch.matmul(_mel_basis(_key(cfg), device), magnitude)
    return torch.log(torch.clamp(mel, min=LOG_FLOOR))


def mel_spectrogram(wav, cfg: FeaturesConfig | None = None, lengths=None):
    """Natural-log mel spectrogram of waveform(s) sampled at 22050 Hz.

    wav: float samples in [-1, 1], a tensor or array of shape [samples] or [..., samples].
    lengths: optional [batch] numbers of valid samples for a zero-padded batch of shape [batch, samples];
        each clip is then reflect-padded at its own end, so a batched result equals the clip-by-clip one,
        and the return value is (mels, frame_counts).
    Returns a float32 tensor [..., n_mels, frames] on the input's device (frames = samples // hop).
    """
    cfg = cfg or FeaturesConfig()
    wav = torch.as_tensor(wav)
    if not torch.is_floating_point(wav):
        raise TypeError(f"mel_spectrogram expects float samples in [-1, 1], got {wav.dtype}")
    wav = wav.to(torch.float32)
    pad = (cfg.n_fft - cfg.hop_length) // 2
    if lengths is None:
        lead = wav.shape[:-1]
        flat = wav.reshape(-1, wav.shape[-1])
        mel = _mel_from_padded(_reflect_pad(flat, pad), cfg)
        return mel.reshape(*lead, cfg.n_mels, mel.shape[-1])
    if wav.dim() != 2:
        raise ValueError("`lengths` needs a batch of shape [batch, samples]")
    lengths = [int(n) for n in torch.as_tensor(lengths).tolist()]
    longest = max(lengths)
    padded = wav.new_zeros(wav.shape[0], longest + 2 * pad)
    for i, n in enumerate(lengths):
        padded[i, : n + 2 * pad] = _reflect_pad(wav[i : i + 1, :n], pad)[0]
    mels = _mel_from_padded(padded, cfg)
    frames = torch.tensor([num_frames(n, cfg) for n in lengths])
    return mels, frames


def mel_filterbank(cfg: FeaturesConfig | None = None) -> np.ndarray:
    """The [n_mels, n_fft // 2 + 1] Slaney filterbank (for inverting mels, e.g. Griffin-Lim)."""
    cfg = cfg or FeaturesConfig()
    return _mel_basis(_key(cfg), "cpu").numpy().copy()


def silence_nonfinite(log_mels: torch.Tensor, lengths: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The convention for a synthesis that diverged: every NaN or infinite value of log-mels [B, n_mels, T]
    becomes the log floor (silence: the system emitted no sound there). Returns (log_mels, failed), failed a
    bool [B] marking the items whose frames (their first `lengths[b]`, or all) held such a value.

    The fill is log(LOG_FLOOR) in the mels' dtype (synthesis runs in float32). One rule for every consumer
    of synthesized mels (the black-box attack, the quality evaluation, the synthesize command, the trainer's
    TensorBoard sample), applied to every system alike; finite mels are returned unchanged (bit for bit).
    """
    bad = ~torch.isfinite(log_mels)
    if lengths is not None:
        frames = torch.arange(log_mels.shape[-1], device=log_mels.device)
        counted = bad & (frames[None, None, :] < lengths.to(log_mels.device)[:, None, None])
    else:
        counted = bad
    failed = counted.flatten(1).any(dim=1)
    if not bool(bad.any()):
        return log_mels, failed
    return torch.where(bad, torch.full_like(log_mels, float(np.log(LOG_FLOOR))), log_mels), failed
