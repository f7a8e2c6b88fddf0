"""Reverse-time samplers, k-diffusion style: plain functions over a noise predictor, registered by name.

Every sampler has the signature

    sampler(process, eps_fn, u_T, steps, t_end=None, generator=None, mask=None) -> u_{t_end}

with eps_fn(u [B, n, *data_shape], t [B]) -> eps_hat [B, *data_shape] (the last block's noise), u_T a
prior draw (`process.prior_sample`), a uniform time grid from the horizon T down to t_end (default
process.t_min), and, when mask [B, 1, frames] is given, padded frames re-zeroed after every step. The
data is block 0 of the result. Stochastic samplers draw their noise from `generator`. Samplers run in the
caller's grad mode: wrap them in torch.no_grad() for synthesis. Each step starts with `begin_step(eps_fn, i)`,
so an eps_fn that switches networks per step (DualMD) keeps one network for all the calls of a step.

Step counts, measured on 2-D Gaussian data with the exact score and the default beta = 0.08: the last
block is stiff near t = 0 (its conditional variance is beta L^-1), so Euler on the ODE, fine for order 1
at 20-50 steps, needs hundreds for order >= 2 (covariance off by 0.4 at 50 steps for n = 2; it blows
up below ~100 for n = 3). Heun is accurate from ~20 (n = 2) / ~50 (n = 3) steps; Euler-Maruyama from
~100-200; the splitting sampler stays stable at any count (moments within ~0.05 from 20-50 steps).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from holdtts.diffusion.processes import Process, apply_block_matrix, psd_sqrt
from holdtts.errors import ConfigError

EpsFn = Callable[[Tensor, Tensor], Tensor]
Sampler = Callable[..., Tensor]

SAMPLERS: dict[str, Sampler] = {}


def register_sampler(name: str) -> Callable[[Sampler], Sampler]:
    """Decorator: make a sampler available as `get_sampler(name)` (and in `--sampler NAME`)."""

    def decorate(fn: Sampler) -> Sampler:
        if name in SAMPLERS:
            raise ValueError(f"sampler {name!r} is already registered")
        SAMPLERS[name] = fn
        return fn

    return decorate


def get_sampler(name: str) -> Sampler:
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r} (known: {', '.join(sorted(SAMPLERS))})")
    return SAMPLERS[name]


# --------------------------------------------------------------------------- building blocks


def _batch_times(value: float | Tensor, u: Tensor) -> Tensor:
    return torch.full((u.shape[0],), float(value), dtype=u.dtype, device=u.device)


def _grid(process: Process, steps: int, t_end: float | None) -> tuple[float, float]:
    """(T, h) of the uniform grid T, T - h, ..., t_end."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t_end = process.t_min if t_end is None else float(t_end)
    if not 0 <= t_end < process.horizon:
        raise ValueError(f"t_end must lie in [0, {process.horizon}), got {t_end}")
    return process.horizon, (process.horizon - t_end) / steps


def _masked(u: Tensor, mask: Tensor | None) -> Tensor:
    return u if mask is None else u * mask.unsqueeze(1).to(u.dtype)


def _last_block_noise(u: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(u[:, -1].shape, generator=generator, device=u.device, dtype=u.dtype)


def begin_step(eps_fn: EpsFn, i: int) -> None:
    """Announce step i (0 at the horizon) to an eps_fn with a `begin_step` method: every call until the next
    announcement belongs to step i (Heun's two calls included)."""
    announce = getattr(eps_fn, "begin_step", None)
    if announce is not None:
        announce(i)


def score(process: Process, eps_fn: EpsFn, u: Tensor, t: Tensor) -> Tensor:
    """The last block's score from the noise predictor."""
    return process.score_from_eps(eps_fn(u, t), t)


def probability_flow_drift(process: Process, eps_fn: EpsFn, u: Tensor, t: Tensor) -> Tensor:
    """du/dt of the probability-flow ODE, F u - 1/2 G G^T s (forward time, all blocks)."""
    return process.reverse_drift(u, t, score(process, eps_fn, u, t), probability_flow=True)


def ode_step(process: Process, eps_fn: EpsFn, u: Tensor, t: Tensor | float, t_next: Tensor | float) -> Tensor:
    """One Euler step of the probability-flow ODE from t to t_next (either direction; the drift is
    evaluated at t). SecMI inverts the sampler with it (t_next > t)."""
    t = t if torch.is_tensor(t) else _batch_times(t, u)
    t_next = t_next if torch.is_tensor(t_next) else _batch_times(t_next, u)
    dt = (t_next - t).to(u.dtype).reshape((-1,) + (1,) * (u.dim() - 1))
    return u + dt * probability_flow_drift(process, eps_fn, u, t)


def linear_step(process: Process, u: Tensor, t_from: float, t_to: float,
                generator: torch.Generator | None = None) -> Tensor:
    """The exact reverse-time step of the linear part (Process.reverse_linear_transition), t_from -> t_to,
    the same for the whole batch (its n x n algebra is done once, in float64)."""
    def as_time(value: float) -> Tensor:
        return torch.tensor([value], dtype=torch.float64, device=u.device)

    phi, q = process.reverse_linear_transition(as_time(t_from), as_time(t_to))
    batch = (u.shape[0], process.order, process.order)
    noise = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
    return apply_block_matrix(phi.expand(batch), u) + apply_block_matrix(psd_sqrt(q).expand(batch), noise)


# --------------------------------------------------------------------------- samplers


@register_sampler("euler_maruyama")
def euler_maruyama(process: Process, eps_fn: EpsFn, u_T: Tensor, steps: int, t_end: float | None = None,
                   generator: torch.Generator | None = None, mask: Tensor | None = None) -> Tensor:
    """Euler-Maruyama on the reverse SDE du = [F u - G G^T s] dt + G dW (noise on the last block).

    The last step adds no noise (it returns the step's mean, as score_sde does): noise injected at
    t_end cannot be removed afterwards.
    """
    T, h = _grid(process, steps, t_end)
    u = _masked(u_T, mask)
    for i in range(steps):
        begin_step(eps_fn, i)
        t = _batch_times(T - i * h, u)
        u = u - h * process.reverse_drift(u, t, score(process, eps_fn, u, t))
        if i < steps - 1:
            g = process.diffusion_sq(t).to(u.dtype).mul(h).sqrt()
            last = u[:, -1] + g.reshape((-1,) + (1,) * (u.dim() - 2)) * _last_block_noise(u, generator)
            u = torch.cat([u[:, :-1], last.unsqueeze(1)], dim=1)
        u = _masked(u, mask)
    return u


@register_sampler("ode_euler")
def ode_euler(process: Process, eps_fn: EpsFn, u_T: Tensor, steps: int, t_end: float | None = None,
              generator: torch.Generator | None = None, mask: Tensor | None = None) -> Tensor:
    """Euler on the probability-flow ODE with the drift taken at the midpoint of each step,
    t_i = T - (i + 1/2) h: Grad-TTS's reverse_diffusion (for order 1 and t_end = 0 it is exactly its
    step), used for every order. Deterministic; `generator` is unused."""
    T, h = _grid(process, steps, t_end)
    u = _masked(u_T, mask)
    for i in range(steps):
        begin_step(eps_fn, i)
        t = _batch_times(T - (i + 0.5) * h, u)
        u = _masked(u - h * probability_flow_drift(process, eps_fn, u, t), mask)
    return u


@register_sampler("ode_heun")
def ode_heun(process: Process, eps_fn: EpsFn, u_T: Tensor, steps: int, t_end: float | None = None,
             generator: torch.Generator | None = None, mask: Tensor | None = None) -> Tensor:
    """Heun's method (trapezoidal predictor-corrector, two network calls a step) on the probability-flow
    ODE. Deterministic; `generator` is unused."""
    T, h = _grid(process, steps, t_end)
    u = _masked(u_T, mask)
    for i in range(steps):
        begin_step(eps_fn, i)
        t, t_next = _batch_times(T - i * h, u), _batch_times(T - (i + 1) * h, u)
        d_now = probability_flow_drift(process, eps_fn, u, t)
        predicted = _masked(u - h * d_now, mask)
        d_next = probability_flow_drift(process, eps_fn, predicted, t_next)
        u = _masked(u - 0.5 * h * (d_now + d_next), mask)
    return u


@register_sampler("splitting")
def splitting(process: Process, eps_fn: EpsFn, u_T: Tensor, steps: int, t_end: float | None = None,
              generator: torch.Generator | None = None, mask: Tensor | None = None) -> Tensor:
    """Strang splitting of the reverse SDE: half a step of the linear part solved exactly (mean and
    noise, `linear_step`), a full Euler step of the score remainder G G^T (s + L u) at the midpoint,
    another exact half step. One network call a step. For n = 2 this is CLD's symmetric splitting
    (SSCS); the linear part leaves N(0, L^-1 I) invariant, so data near the prior take large steps."""
    T, h = _grid(process, steps, t_end)
    u = _masked(u_T, mask)
    for i in range(steps):
        begin_step(eps_fn, i)
        t_from, t_mid, t_to = T - i * h, T - (i + 0.5) * h, T - (i + 1) * h
        u = _masked(linear_step(process, u, t_from, t_mid, generator), mask)
        t = _batch_times(t_mid, u)
        u = _masked(u + h * process.reverse_remainder(u, t, score(process, eps_fn, u, t)), mask)
        u = _masked(linear_step(process, u, t_mid, t_to, generator), mask)
    return u
