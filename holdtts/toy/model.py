"""A toy diffusion model with the score-network interface of holdtts.models.tts.GradTTS.

Data are 2-D points shaped like a one-frame mel, [B, 2, 1] (features x frames), so the attacks of
holdtts.privacy.attacks, the losses and the samplers run on it unchanged: it exposes `.process`,
`.eps_hat(u_t, t, mu, mask)` and `.eps_fn(mu, mask)`. mu is zero (no text encoder) and the mask is one.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from holdtts.diffusion import Process, make_process

POINT_SHAPE = (2, 1)  # features x frames
POINT_DIM = math.prod(POINT_SHAPE)
STD_GRID = 1025  # grid points over [0, T] for the input scaling


def make_toy_process(order: int, beta: float, horizon: float | None = None) -> Process:
    """Order 1: Grad-TTS's VP process (T = 1, no beta). Order n >= 2: HOLD++ with L^-1 = 1, initial
    auxiliary variance factor beta and horizon T (default 5, the authors' toy and image code)."""
    if order == 1:
        return make_process("vp")
    return make_process("hold", order=order, beta=beta, horizon=5.0 if horizon is None else horizon)


class TimeFeatures(nn.Module):
    """sin/cos of t / T at `count` octave-spaced frequencies (1, 2, 4, ... cycles over the horizon)."""

    def __init__(self, count: int = 8):
        super().__init__()
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(count, dtype=torch.float32))

    def forward(self, fraction: torch.Tensor) -> torch.Tensor:
        phase = fraction.unsqueeze(-1).float() * self.freqs
        return torch.cat([phase.sin(), phase.cos()], dim=-1)


class ToyDiffusionModel(nn.Module):
    """An MLP over the n blocks of the state (each scaled to unit size by its marginal std at t) and
    time features, predicting the last block's noise."""

    def __init__(self, process: Process, data_var: float = 1.0, width: int = 128, depth: int = 4,
                 time_features: int = 8, fourier_features: int = 0, fourier_scale: float = 0.0):
        super().__init__()
        self.process = process
        self.data_var = float(data_var)
        self.time = TimeFeatures(time_features)
        dim = math.prod(POINT_SHAPE)
        size = process.order * dim + 2 * time_features
        # Random Fourier features of the scaled state (Tancik et al. 2020): a plain MLP's spectral bias
        # makes it learn the members' individual bumps slowly; these let it do so in a CPU budget.
        freqs = torch.randn(dim, fourier_features) * fourier_scale
        self.register_buffer("fourier", freqs)
        size += 2 * fourier_features
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.SiLU()]
            size = width
        layers.append(nn.Linear(size, dim))
        self.net = nn.Sequential(*layers)
        # The blocks' marginal stds on a fine grid of t: interpolating them costs far less than the float64
        # Cholesky factors of every call, and they only set the input scale (no exactness needed).
        grid = torch.linspace(0.0, process.horizon, STD_GRID, dtype=torch.float64)
        self.register_buffer("std_table", process.marginal_std(grid, self.data_var).float(), persistent=False)

    def input_std(self, t: torch.Tensor) -> torch.Tensor:
        """Per-block marginal std [B, n] at times t [B], interpolated linearly on the grid."""
        pos = (t.float() / self.process.horizon).clamp(0, 1) * (STD_GRID - 1)
        low = pos.floor().long().clamp_max(STD_GRID - 2)
        frac = (pos - low).unsqueeze(-1)
        return self.std_table[low] * (1 - frac) + self.std_table[low + 1] * frac

    def eps_hat(self, u_t: torch.Tensor, t: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The last block's predicted noise [B, 2, 1] for the centred state u_t [B, n, 2, 1] at times t
        [B] on the process's clock (mu is unused: the toy has no conditioning)."""
        batch = u_t.shape[0]
        t = t.expand(batch) if t.dim() == 0 else t
        # Unit-size inputs for every block and every t: the auxiliary blocks of order 3-4 are several
        # times larger than the data block at mid t, and an unscaled MLP fits them poorly.
        std = self.input_std(t).to(u_t.dtype)
        x = (u_t * mask.unsqueeze(1) / std.reshape(batch, -1, 1, 1)).reshape(batch, -1)
        parts = [x, self.time(t / self.process.horizon)]
        if self.fourier.shape[1]:
            phase = x[:, :POINT_DIM] @ self.fourier  # the data block only
            parts += [phase.sin(), phase.cos()]
        h = torch.cat(parts, dim=-1)
        return self.net(h).reshape(batch, *POINT_SHAPE) * mask

    def eps_fn(self, mu: torch.Tensor, mask: torch.Tensor):
        """eps_hat as a function of (u, t) for the samplers, losses and attacks of holdtts."""
        return lambda u, t: self.eps_hat(u, t, mu, mask)

    def conditioning(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, mask) for `batch` points: zeros and ones, [B, 2, 1] and [B, 1, 1]."""
        device = next(self.parameters()).device
        return torch.zeros(batch, *POINT_SHAPE, device=device), torch.ones(batch, 1, POINT_SHAPE[1], device=device)

    @torch.no_grad()
    def sample(self, count: int, sampler: str, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`count` points [count, 2] drawn with a sampler of holdtts.diffusion from the prior N(0, I)
        (temperature 1: the toy measures the distribution, not Grad-TTS's sharpened synthesis)."""
        from holdtts.diffusion import get_sampler

        mu, mask = self.conditioning(count)
        u_T = self.process.prior_sample((count, *POINT_SHAPE), generator=generator, device=mu.device)
        u0 = get_sampler(sampler)(self.process, self.eps_fn(mu, mask), u_T, steps, generator=generator)
        return u0[:, 0, :, 0]
