"""Membership-inference attacks, written once against the process interface (any order).

Every attack is a function

    attack(model, inputs: AttackInputs, t: float | None, noise: NoiseSource, **params) -> scores [B]

registered by name with `@register_attack`. A higher score means "more likely a member" (the papers'
statistics, where lower means member, are negated). `t` is a fraction of the process's horizon, so one
grid serves every order (order 1: t on Grad-TTS's [0, 1] clock as published; order n: t * T on its own
clock); attacks that do not diffuse (duration, prior) take t = None. docs/attacks.md says what each
attack computes, how PIA and PIAN match the official code, and which noise the adaptive (order n)
attacks draw, estimate or zero.

Inputs follow the published evaluation on Grad-TTS: mu from the text encoder aligned to the real mel by
monotonic alignment search, the mel cropped to the training segment (2 s) at a seeded start, a fixed
seed for every draw. Randomness comes from `noise`, which draws each utterance's noise from its own
seeded stream, so a score depends on (seed, utterance, attack, t) and not on how utterances are batched.

A user's attack plugs in the same way (see the README):

    from holdtts.privacy import register_attack

    @register_attack("my_attack", t_grid=(0.1, 0.3))
    def my_attack(model, inputs, t, noise):
        ...
        return scores

and runs with `holdtts attack --plugin my_module --attack my_attack` (or an entry point in the group
`holdtts.attacks`).
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from holdtts.diffusion import diffusion_loss
from holdtts.diffusion.samplers import ode_step
from holdtts.errors import ConfigError
from holdtts.models.tts import Alignment, Segment

# --------------------------------------------------------------------------- inputs and noise


@dataclass
class AttackInputs:
    """One batch of utterances prepared the published way; membership labels are not in here."""

    utt_ids: list[str]
    tokens: Tensor
    token_lengths: Tensor
    mels: Tensor  # [B, n_feats, T] full utterances
    mel_lengths: Tensor
    alignment: Alignment | None  # encoder outputs aligned to the real mels (None for black-box attacks)
    segment: Segment | None  # the 2-second crops: x0, mu, mask [B, n_feats | 1, segment_frames] (idem)
    # a multi-speaker model's speaker condition [B] (rows of its table, or MEAN_SPEAKER), else None: pass it
    # on as model.eps_fn(mu, mask, inputs.speakers) and model.synthesize(..., speakers=inputs.speakers)
    speakers: Tensor | None = None

    @property
    def q0(self) -> Tensor:
        """The centred clean data the decoder diffuses, (x0 - mu) on real frames."""
        return (self.segment.x0 - self.segment.mu) * self.segment.mask

    def __len__(self) -> int:
        return len(self.utt_ids)


class NoiseSource:
    """Per-utterance Gaussian noise: utterance u's draw for `tag` depends only on (seed, u, tag)."""

    def __init__(self, seed: int, utt_ids: Sequence[str], context: str, device: torch.device):
        self.seed, self.utt_ids, self.context, self.device = seed, list(utt_ids), context, device

    def randn(self, shape: Sequence[int], tag: str = "") -> Tensor:
        """[B, *shape] standard normal noise."""
        draws = []
        for utt in self.utt_ids:
            key = zlib.crc32(f"{self.seed}|{utt}|{self.context}|{tag}".encode())
            generator = torch.Generator().manual_seed(key)
            draws.append(torch.randn(tuple(shape), generator=generator))
        return torch.stack(draws).to(self.device)


# --------------------------------------------------------------------------- the registry


@dataclass
class Attack:
    name: str
    fn: Callable[..., Tensor]
    t_grid: tuple[float, ...] | None  # default sweep (fractions of the horizon); None: no t
    published_t: float | None = None  # the setting the literature used on Grad-TTS
    min_order: int = 1  # Monte-Carlo variants only make sense with auxiliary variables
    params: dict = field(default_factory=dict)
    description: str = ""
    white_box: bool = True  # needs the score network and the alignment (False: only `model.synthesize`)

    def __call__(self, model, inputs: AttackInputs, t: float | None, noise: NoiseSource, **params) -> Tensor:
        return self.score(model, inputs, t, noise, **params)[0]

    def score(self, model, inputs: AttackInputs, t: float | None, noise: NoiseSource,
              **params) -> tuple[Tensor, dict[str, list[str]]]:
        """(scores [B], notes): an attack may return (scores, notes), notes naming utterances that need a word
        in the record (e.g. {"diverged_syntheses": [utt, ...]}); the runner keeps them in attack.json."""
        out = self.fn(model, inputs, t, noise, **{**self.params, **params})
        return out if isinstance(out, tuple) else (out, {})

    def applies_to(self, model) -> bool:
        if self.white_box and not hasattr(model, "eps_hat"):  # e.g. DualMD's pipeline: a black box only
            return False
        return model.process.order >= self.min_order

    def grid(self) -> tuple[float | None, ...]:
        if self.t_grid is None:
            return (None,)
        points = set(self.t_grid)
        if self.published_t is not None:
            points.add(self.published_t)
        return tuple(sorted(points))


ATTACKS: dict[str, Attack] = {}
_plugins_loaded = False


def register_attack(name: str, *, t_grid: Sequence[float] | None = None, published_t: float | None = None,
                    min_order: int = 1, description: str = "", white_box: bool = True, **params):
    """Decorator registering `fn(model, inputs, t, noise, **params) -> scores [B]` (higher: member).

    A black-box attack (white_box=False) gets inputs without the alignment and the crop (both None). `fn`
    may return (scores, notes) instead: notes {key: [utt_id, ...]} go to the run's record (Attack.score).
    """

    def decorate(fn):
        if name in ATTACKS:
            raise ValueError(f"attack {name!r} is already registered")
        ATTACKS[name] = Attack(name, fn, None if t_grid is None else tuple(t_grid), published_t, min_order,
                               dict(params), description or (fn.__doc__ or "").strip().split("\n")[0], white_box)
        return fn

    return decorate


def load_plugins() -> None:
    """Import attacks that other packages declare under the entry-point group `holdtts.attacks`."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    import holdtts.privacy.blackbox  # noqa: F401  (built-in black-box attacks, registered on import)

    for entry in entry_points(group="holdtts.attacks"):
        entry.load()


def get_attack(name: str) -> Attack:
    load_plugins()
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r} (known: {', '.join(sorted(ATTACKS))})")
    return ATTACKS[name]


# --------------------------------------------------------------------------- shared pieces


def process_times(model, t: float, batch: int, device) -> Tensor:
    """A horizon fraction as a [B] tensor on the process's own clock."""
    return torch.full((batch,), float(t) * model.process.horizon, device=device)


def masked_lp(x: Tensor, mask: Tensor, p: float) -> Tensor:
    """Per-utterance lp norm over real frames, normalised by their count: (mean |x|^p)^(1/p), [B].

    The normalisation keeps utterances shorter than the crop comparable with full ones.
    """
    mask = mask.to(x.dtype).expand_as(x)
    dims = tuple(range(1, x.dim()))
    return ((x.abs().pow(p) * mask).sum(dims) / mask.sum(dims)).pow(1.0 / p)


def masked_mean_square(x: Tensor, mask: Tensor) -> Tensor:
    mask = mask.to(x.dtype).expand_as(x)
    dims = tuple(range(1, x.dim()))
    return (x.square() * mask).sum(dims) / mask.sum(dims)


def _state_mask(inputs: AttackInputs) -> Tensor:
    return inputs.segment.mask.unsqueeze(1)  # [B, 1, 1, T]: broadcasts over blocks and features


def _eps_fn(model, inputs: AttackInputs):
    if inputs.speakers is None:
        return model.eps_fn(inputs.segment.mu, inputs.segment.mask)
    return model.eps_fn(inputs.segment.mu, inputs.segment.mask, inputs.speakers)


def _zero_noise(model, inputs: AttackInputs) -> Tensor:
    q0 = inputs.q0
    return q0.new_zeros((q0.shape[0], model.process.order, *q0.shape[1:]))


def _initial_draw(model, inputs: AttackInputs, noise: NoiseSource, tag: str) -> Tensor:
    """u_0 = (q0, p_1(0), ..., p_{n-1}(0)), p_k(0) ~ N(0, beta L^-1 I): the data block noise-free, the
    auxiliary blocks drawn from hybrid score matching's initial distribution (docs/attacks.md)."""
    process, q0 = model.process, inputs.q0
    z = noise.randn((process.order - 1, *q0.shape[1:]), tag)
    return process.initial_draw(q0, z) * _state_mask(inputs)


# --------------------------------------------------------------------------- attacks on the decoder


@register_attack("loss", t_grid=(0.05, 0.1, 0.2, 0.3, 0.5, 0.8), published_t=0.8, draws=1)
def loss_attack(model, inputs, t, noise, draws=1):
    """Training loss at t, averaged over `draws` noise draws (Grad-TTS setting: t = 0.8)."""
    tt = process_times(model, t, len(inputs), inputs.q0.device)
    n = model.process.order
    total = 0.0
    for k in range(draws):
        eps = noise.randn((n, *inputs.q0.shape[1:]), f"loss{k}")
        total = total + diffusion_loss(model.process, _eps_fn(model, inputs), inputs.q0, inputs.segment.mask,
                                       t=tt, eps=eps, weighting="none")
    return -total / draws


def _secmi_error(model, inputs, t, step, u0=None):
    """SecMI's t-error: deterministic probability-flow inversion from the noise-free state one step in
    (the mean of the kernel from u0 at `step`; u0 defaults to the clean state (q0, 0, ..., 0)) up to t,
    then one step up and one step back down; || u_t - down(up(u_t)) ||^2 over real frames."""
    process, eps_fn = model.process, _eps_fn(model, inputs)
    B, device = len(inputs), inputs.q0.device
    mask = _state_mask(inputs)
    n_steps = max(1, round(t / step))
    h = t / n_steps
    if u0 is None:
        u0 = process.initial_state(inputs.q0)
    u = process.sample_from(u0, process_times(model, h, B, device), torch.zeros_like(u0)) * mask
    for i in range(1, n_steps):
        u = ode_step(process, eps_fn, u, process_times(model, i * h, B, device),
                     process_times(model, (i + 1) * h, B, device)) * mask
    now, up = process_times(model, t, B, device), process_times(model, t + step, B, device)
    u_up = ode_step(process, eps_fn, u, now, up) * mask
    u_back = ode_step(process, eps_fn, u_up, up, now) * mask
    return masked_mean_square(u - u_back, mask)


@register_attack("secmi", t_grid=(0.1, 0.2, 0.3, 0.6), published_t=0.6, step=0.02)
def secmi(model, inputs, t, noise, step=0.02):
    """SecMI (Duan et al. 2023): t-error of the deterministic inversion from the clean state (t_sec 0.6
    on Grad-TTS); `step` is the inversion step as a horizon fraction."""
    return -_secmi_error(model, inputs, t, step)


# PIAN's target level for the mean |.| of the rescaled noise (docs/attacks.md): the official Grad-TTS
# attack code divides by mean|eps| * sqrt(2/pi), the paper and its image code multiply by sqrt(2/pi).
PIAN_LEVEL_GRADTTS_CODE = math.sqrt(math.pi / 2)
PIAN_LEVEL_PAPER = math.sqrt(2 / math.pi)
PIA_STARTS = ("clean", "mean")


def _pia_statistic(model, inputs, t, *, t_init, p, start="clean", level=None, lag=0.0, u0=None):
    """PIA's proximal initialisation (docs/attacks.md).

    The network's last-block noise e_n at t_init, queried at the start state (`start` "clean": the initial
    state itself, as the published code does; "mean": the kernel's noise-free mean at t_init), is used as
    the noise of the point at t, every other noise component zero. Without `u0` the initial state is the
    clean (q0, 0, ..., 0) and the point is u_t = a_t q0 + C_t (0, ..., 0, e_n) under the hybrid kernel; with
    a drawn u0 it is u_t = exp(F t) u0 + chol(Q_t) (0, ..., 0, e_n) under the kernel from that point.
    Returns the lp norm over real frames of the last block of the probability-flow drift at u_t, its
    score taken at the same construction `lag` later (the official Grad-TTS PIAN code's offset). `level`:
    PIAN, e_n rescaled to that mean |.| over real frames.
    """
    if start not in PIA_STARTS:
        raise ConfigError(f"unknown PIA start {start!r} (known: {', '.join(PIA_STARTS)})")
    process, eps_fn = model.process, _eps_fn(model, inputs)
    B, device = len(inputs), inputs.q0.device
    mask, state_mask = inputs.segment.mask, _state_mask(inputs)
    hybrid = u0 is None
    if hybrid:
        u0 = process.initial_state(inputs.q0) * state_mask
    t_start = process_times(model, t_init, B, device)
    u_start = u0 if start == "clean" else process.sample_from(u0, t_start, torch.zeros_like(u0)) * state_mask
    eps_last = eps_fn(u_start, t_start) * mask
    if level is not None:  # PIAN: a standard normal's statistics, over real frames only
        scale = masked_lp(eps_last, mask, 1.0)
        eps_last = eps_last * (level / scale.clamp_min(1e-12)).view(-1, *([1] * (eps_last.dim() - 1)))
    eps = torch.zeros_like(u0)
    eps[:, -1] = eps_last

    def point(fraction):
        tt = process_times(model, fraction, B, device)
        u = process.sample(inputs.q0, tt, eps=eps)[0] if hybrid else process.sample_from(u0, tt, eps)
        return u * state_mask, tt

    u_t, tt = point(t)
    u_s, ts = point(t + lag) if lag else (u_t, tt)
    score = process.score_from_eps(eps_fn(u_s, ts), ts)
    drift = process.reverse_drift(u_t, tt, score, probability_flow=True)[:, -1]
    return masked_lp(drift, mask, p)


@register_attack("pia", t_grid=(0.05, 0.1, 0.2, 0.3, 0.5), published_t=0.3, t_init=0.1, p=4.0, start="clean")
def pia(model, inputs, t, noise, t_init=0.1, p=4.0, start="clean"):
    """PIA (Kong et al. 2024) as the official Grad-TTS code runs it: e from the clean state at t_init 0.1, l4
    norm of the probability-flow drift at t (0.3 on Grad-TTS); order n: the HOLD MIA paper's adaptation."""
    return -_pia_statistic(model, inputs, t, t_init=t_init, p=p, start=start)


@register_attack("pian", t_grid=(0.05, 0.1, 0.2, 0.3, 0.5), published_t=0.3, t_init=0.1, p=4.0, start="clean",
                 level=PIAN_LEVEL_GRADTTS_CODE, lag=0.01)
def pian(model, inputs, t, noise, t_init=0.1, p=4.0, start="clean", level=PIAN_LEVEL_GRADTTS_CODE, lag=0.01):
    """PIAN as the official Grad-TTS code runs it: PIA's noise rescaled to mean |e| = sqrt(pi/2), the score
    taken one step (0.01) later; the published Grad-TTS PIAN numbers."""
    return -_pia_statistic(model, inputs, t, t_init=t_init, p=p, start=start, level=level, lag=lag)


@register_attack("pian_paper", t_grid=(0.05, 0.1, 0.2, 0.3, 0.5), published_t=0.3, t_init=0.1, p=4.0,
                 start="clean", level=PIAN_LEVEL_PAPER, lag=0.0)
def pian_paper(model, inputs, t, noise, t_init=0.1, p=4.0, start="clean", level=PIAN_LEVEL_PAPER, lag=0.0):
    """PIAN as the paper and its image code define it: noise rescaled to a standard normal's mean |e| =
    sqrt(2/pi), the score at the same point."""
    return -_pia_statistic(model, inputs, t, t_init=t_init, p=p, start=start, level=level, lag=lag)


@register_attack("sima", t_grid=(0.01, 0.05, 0.1, 0.2, 0.3), p=4.0)
def sima(model, inputs, t, noise, p=4.0):
    """SimA (Rao et al. 2025): one query, the l4 norm of the predicted noise at the clean state."""
    B, device = len(inputs), inputs.q0.device
    u = model.process.initial_state(inputs.q0) * _state_mask(inputs)
    eps = _eps_fn(model, inputs)(u, process_times(model, t, B, device))
    return -masked_lp(eps, inputs.segment.mask, p)


# --------------------------------------------------------------------------- adaptive (order n >= 2)
#
# An attacker who knows the process averages a statistic over K draws of the auxiliary initial state
# u_0 = (q0, p_1(0), ..., p_{n-1}(0)), p_k(0) ~ N(0, beta L^-1 I) (hybrid score matching's own draw), the
# data block noise-free, instead of fixing the auxiliary blocks at their mean 0: in high dimension the
# all-zero auxiliary state lies far from the states the network was trained on. docs/attacks.md says for
# each order which noise is drawn, which the network estimates and which is zero.


@register_attack("pia_mc", t_grid=(0.05, 0.1, 0.2, 0.3, 0.5), published_t=0.3, min_order=2, t_init=0.1,
                 p=4.0, start="clean", draws=8)
def pia_mc(model, inputs, t, noise, t_init=0.1, p=4.0, start="clean", draws=8):
    """Adaptive PIA for order n: per draw of u_0, the last block's noise from the network at t_init, the
    mean propagated exactly from u_0 (point-start kernel); the statistic averaged over draws."""
    total = 0.0
    for k in range(draws):
        u0 = _initial_draw(model, inputs, noise, f"pia{k}")
        total = total + _pia_statistic(model, inputs, t, t_init=t_init, p=p, start=start, u0=u0)
    return -total / draws


@register_attack("sima_mc", t_grid=(0.01, 0.05, 0.1, 0.2, 0.3), min_order=2, p=4.0, draws=8)
def sima_mc(model, inputs, t, noise, p=4.0, draws=8):
    """Adaptive SimA for order n: the predicted-noise norm at the drawn initial state u_0 (data block
    noise-free, auxiliary blocks from their initial distribution), averaged over draws."""
    B, device = len(inputs), inputs.q0.device
    tt = process_times(model, t, B, device)
    total = 0.0
    for k in range(draws):
        u0 = _initial_draw(model, inputs, noise, f"sima{k}")
        total = total + masked_lp(_eps_fn(model, inputs)(u0, tt), inputs.segment.mask, p)
    return -total / draws


@register_attack("secmi_mc", t_grid=(0.1, 0.2, 0.3, 0.6), published_t=0.6, min_order=2, step=0.02, draws=4)
def secmi_mc(model, inputs, t, noise, step=0.02, draws=4):
    """Adaptive SecMI for order n: the inversion starts from the noise-free mean of the kernel from a
    drawn u_0, and the t-error is averaged over draws."""
    total = 0.0
    for k in range(draws):
        total = total + _secmi_error(model, inputs, t, step, u0=_initial_draw(model, inputs, noise, f"secmi{k}"))
    return -total / draws


# --------------------------------------------------------------------------- the parts no diffusion defense protects


@register_attack("duration")
def duration_leakage(model, inputs, t, noise):
    """Duration-predictor loss of the utterance (DurMI-style): the text side leaks too."""
    return -model.duration_loss(inputs.alignment)


@register_attack("prior")
def prior_leakage(model, inputs, t, noise):
    """Prior loss of the whole utterance under N(mu, I): the text encoder's fit to the member's mel."""
    a = inputs.alignment
    whole = Segment(inputs.mels * a.y_mask, a.mu_y * a.y_mask, a.y_mask)
    return -model.prior_loss(whole)


DEFAULT_ATTACKS = ("loss", "secmi", "pia", "pian", "sima", "pia_mc", "sima_mc", "secmi_mc", "duration", "prior")
