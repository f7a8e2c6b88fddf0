"""Griffin-Lim vocoding of holdtts mels: the vocoder that needs no training (and sounds like it)."""
from __future__ import annotations

import torch
import torchaudio
from torch import nn

from holdtts.config import FeaturesConfig
from holdtts.data.mel import mel_filterbank


class GriffinLimVocoder(nn.Module):
    """Natural-log mels [B, n_mels, T] -> waveforms [B, T * hop] at the features' sample rate.

    The linear magnitude is the least-squares non-negative inverse of the Slaney filterbank (the
    pseudo-inverse, clamped), then torchaudio's Griffin-Lim (momentum 0.99) recovers a phase.
    """

    name = "griffin-lim"

    def __init__(self, cfg: FeaturesConfig | None = None, n_iter: int = 60):
        super().__init__()
        self.cfg = cfg = cfg or FeaturesConfig()
        fb = torch.from_numpy(mel_filterbank(cfg))  # [n_mels, n_freqs]
        self.register_buffer("inverse", torch.linalg.pinv(fb), persistent=False)  # [n_freqs, n_mels]
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)
        self.n_iter = n_iter
        self.sample_rate = cfg.sample_rate

    @torch.no_grad()
    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        squeeze = mels.dim() == 2
        if squeeze:
            mels = mels.unsqueeze(0)
        magnitude = torch.clamp(self.inverse.to(mels.device) @ torch.exp(mels.float()), min=0.0)
        cfg = self.cfg
        wav = torchaudio.functional.griffinlim(
            magnitude, self.window.to(mels.device), cfg.n_fft, cfg.hop_length, cfg.win_length, power=1.0,
            n_iter=self.n_iter, momentum=0.99, length=(mels.shape[-1] - 1) * cfg.hop_length, rand_init=False)
        # torchaudio's centred STFT has one frame per hop plus one: pad the last hop to T * hop samples
        wav = torch.nn.functional.pad(wav, (0, cfg.hop_length))
        wav = wav / wav.abs().amax(-1, keepdim=True).clamp_min(1.0)  # avoid clipping, never amplify
        return wav[0] if squeeze else wav
