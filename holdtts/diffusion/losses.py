"""The denoising loss of every process: predict the last block's noise eps_n from the noised state.

`eps_fn(u, t) -> eps_hat` is the network with its conditioning (mu, mask) bound: u [B, n, *data_shape],
t [B], eps_hat [B, *data_shape].
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor

from holdtts.diffusion.processes import Process
from holdtts.errors import ConfigError

TIME_SAMPLING = ("uniform", "antithetic")
WEIGHTINGS = ("none", "score")


def sample_times(process: Process, batch_size: int, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None, method: str = "uniform",
                 t_max: float | None = None) -> Tensor:
    """Training times [batch_size] in [t_min, t_max] (t_max defaults to the horizon).

    "uniform": independent uniform draws. "antithetic": stratified, one uniform offset shared by
    batch_size evenly spaced strata (one time per stratum, shuffled over the batch), which lowers the
    variance of the batch's mean loss over t.
    """
    low = process.t_min
    high = process.horizon if t_max is None else t_max
    if not low < high:
        raise ValueError(f"need t_min < t_max, got {low}, {high}")
    if method == "uniform":
        fraction = torch.rand(batch_size, generator=generator, device=device)
    elif method == "antithetic":
        offset = torch.rand(1, generator=generator, device=device)
        order = torch.randperm(batch_size, generator=generator, device=device)
        fraction = (order + offset) / batch_size
    else:
        raise ConfigError(f"unknown time sampling {method!r} (known: {', '.join(TIME_SAMPLING)})")
    return low + (high - low) * fraction


@functools.lru_cache(maxsize=32)
def _mean_inverse_variance(process: Process, points: int = 4097) -> float:
    """The mean of 1 / C_t[n,n]^2 over t in [t_min, T] (trapezoid rule on a log-spaced grid, which
    resolves vp's 1/t growth near t_min)."""
    low = max(process.t_min, 1e-8 * process.horizon)
    grid = torch.logspace(torch.log10(torch.tensor(low)), torch.log10(torch.tensor(process.horizon)), points,
                          dtype=torch.float64)
    values = process.last_noise_std(grid).to(torch.float64).pow(-2)
    return float(torch.trapezoid(values, grid) / (process.horizon - low))


def score_weight(process: Process, t: Tensor) -> Tensor:
    """lambda(t) = (1 / C_t[n,n]^2) / mean over [t_min, T] of the same, [B].

    Weighting the eps loss by 1 / C_t[n,n]^2 turns it into plain denoising score matching on the last
    block (||s_hat - s||^2 with s = -eps_n / C_t[n,n]); dividing by the mean keeps the loss O(1) so the
    learning rate and the other loss terms keep their scale.
    """
    return process.last_noise_std(t).pow(-2) / _mean_inverse_variance(process)


def state_mask(mask: Tensor) -> Tensor:
    """A data mask [B, 1, frames] as a state mask [B, 1, 1, frames] (broadcasts over blocks and features)."""
    return mask.unsqueeze(1)


def noised_state(process: Process, q0: Tensor, t: Tensor, eps: Tensor | None = None,
                 generator: torch.Generator | None = None,
                 mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(u_t, eps): the perturbed state from the clean data q0 [B, *data_shape], with padded frames of u_t
    zeroed when a mask [B, 1, frames] is given (the network never sees padding). eps is returned as drawn."""
    u, eps = process.sample(q0, t, eps=eps, generator=generator)
    if mask is not None:
        u = u * state_mask(mask).to(u.dtype)
    return u, eps


def diffusion_loss(process: Process, eps_fn, q0: Tensor, mask: Tensor | None = None, t: Tensor | None = None,
                   eps: Tensor | None = None, weighting: str = "none",
                   generator: torch.Generator | None = None) -> Tensor:
    """Per-sample loss [B]: the masked mean of (eps_hat - eps_n)^2 over real frames and features,

        sum(((eps_hat - eps_n) * mask) ** 2) / (sum(mask) * n_feats)

    as Grad-TTS computes it. The noised state's padded frames are multiplied by the mask before the
    network sees them. t defaults to uniform draws in [t_min, T]; weighting "score" multiplies each sample
    by `score_weight` (see there). mask None means every element is real.
    """
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"unknown loss weighting {weighting!r} (known: {', '.join(WEIGHTINGS)})")
    if t is None:
        t = sample_times(process, q0.shape[0], generator=generator, device=q0.device)
    u, eps = noised_state(process, q0, t, eps=eps, generator=generator, mask=mask)
    eps_hat = eps_fn(u, t)
    error = eps_hat - eps[:, -1]
    dims = tuple(range(1, q0.dim()))
    if mask is None:
        loss = error.square().mean(dim=dims)
    else:
        mask = mask.to(error.dtype)
        loss = (error * mask).square().sum(dim=dims) / mask.expand_as(error).sum(dim=dims)
    if weighting == "score":
        loss = loss * score_weight(process, t).to(loss.dtype)
    return loss
