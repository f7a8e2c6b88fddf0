"""Differentially private training of the whole TTS model: DP-SGD through Opacus, with formal accounting.

What a DP step does (Abadi et al. 2016, as Opacus implements it):
  - Poisson sampling: every training utterance joins a step's batch independently with probability
    q = train.batch_size / N (Opacus's UniformWithReplacementSampler), so batch sizes vary;
  - per-utterance gradients of the whole model (text encoder, duration predictor, decoder) from Opacus's
    grad samplers, each clipped to L2 norm dp.max_grad_norm (C);
  - the clipped sum plus N(0, sigma^2 C^2 I) noise, divided by the expected batch size, goes to Adam;
  - an Opacus accountant (PRV or RDP) composes the sampled Gaussian mechanism over the steps taken.

sigma is calibrated once, before the first step, so that epsilon reaches dp.target_epsilon at
delta = dp.delta (default 1 / N) after the planned steps (train.max_steps / max_epochs); or it is
dp.noise_multiplier as given. With neither, the same pipeline runs without noise: the non-private
reference with Poisson sampling and per-utterance clipping (no guarantee, no privacy.json).

Opacus computes per-sample gradients layer by layer from forward activations and output gradients.
Every layer of GradTTS has a built-in grad sampler (Conv1d/2d, Linear, Embedding, LayerNorm, GroupNorm)
or goes through Opacus's functorch fallback (ConvTranspose2d; RezeroAttention, whose ReZero gain is a
raw parameter beside its convolutions), except RelativeSelfAttention: its relative-position tables are
raw parameters used inside a two-input forward (x, mask), which the functorch fallback cannot replay
(it passes one input, and it would redraw the attention dropout). It gets the closed-form grad sampler
below; its convolutions keep Opacus's own. The model itself is unchanged.

Outputs in the experiment directory (besides the Trainer's): privacy.json, rewritten with every
checkpoint; `privacy/epsilon` in TensorBoard and train_log.jsonl.
"""
from __future__ import annotations

import contextlib
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from opacus import GradSampleModule
from opacus.accountants import IAccountant, create_accountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.grad_sample import register_grad_sampler
from opacus.optimizers import DPOptimizer
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from opacus.validators import ModuleValidator
from torch import nn

from holdtts.config import SystemConfig
from holdtts.data.dataset import Batch, BucketedBatches, FeatureStore
from holdtts.errors import ConfigError, HoldttsError
from holdtts.models.text_encoder import RelativeSelfAttention
from holdtts.privacy.bounds import membership_auroc_bound
from holdtts.training.loop import MAX_BAD_STEPS
from holdtts.training.trainer import Trainer
from holdtts.utils.fileio import write_json_atomic

log = logging.getLogger(__name__)

ACCOUNTANTS = ("prv", "rdp")  # Opacus's "gdp" is a CLT approximation that can underestimate epsilon
COVERS = "text encoder, duration predictor and decoder"
NOT_COVERED = ("training logs computed on members without noise (train_log.jsonl and TensorBoard: the train/* "
               "losses, batch sizes and per-utterance gradient norms, and the attack/* AUROCs of "
               "train.attack_every_epochs)")
# Bisection tolerance on epsilon when calibrating sigma (Opacus's default is 0.01).
EPSILON_TOLERANCE = 0.01
# Opacus warns for every layer whose inputs need no gradient (the embedding, the U-Net's first conv).
_FULL_BACKWARD_HOOK_WARNING = "Full backward hook is firing when gradients are computed with respect to module outputs"


# --------------------------------------------------------------------------- per-sample gradients

def _window_index(length: int, window: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For query i and relative offset r - window (r = 0..2 window): key position j = i + r - window, clamped
    into the sequence, and where it falls outside it; [L, 2w + 1] each (as in the forward pass)."""
    positions = torch.arange(length, device=device)
    target = positions.unsqueeze(1) + torch.arange(-window, window + 1, device=device).unsqueeze(0)
    beyond = (target < 0) | (target >= length)
    return target.clamp(0, length - 1), beyond


@register_grad_sampler(RelativeSelfAttention)
def relative_attention_grad_sample(layer: RelativeSelfAttention, activations: list[torch.Tensor],
                                   backprops: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
    """Per-utterance gradients of the relative-position tables rel_key and rel_value, [B, 2w + 1, D] each.

    The forward is out_i = sum_j a_ij (v_j + e'_{j-i}) with a = dropout(softmax(s)) and
    s_ij = q_i . (k_j + e_{j-i}) / sqrt(D). From G = dL/d(out) (the gradient at the input of the output
    projection, obtained from `backprops` by the convolution's transpose):
        dL/de'_r = sum_{h,i} a_{i,i+r-w} G_i
        dL/da_ij = G_i . (v_j + e'_{j-i})        -> through dropout (its kept mask) and the softmax:
        dL/ds_ij = p_ij (dL/dp_ij - sum_k p_ik dL/dp_ik),   p = softmax(s)
        dL/de_r  = sum_{h,i} dL/ds_{i,i+r-w} q_i / sqrt(D)
    The attention weights before and after dropout are the ones the forward pass used, saved by
    `_save_attention_weights`; q and v are recomputed (1x1 convolutions, deterministic).
    """
    x = activations[0]
    probs, dropped = layer.dp_attention_weights.pop()
    batch, channels, length = x.shape
    window, scale = layer.window_size, 1.0 / math.sqrt(layer.head_dim)
    with torch.no_grad():
        q = layer._heads(layer.query(x))
        v = layer._heads(layer.value(x))
        grad_out = torch.nn.grad.conv1d_input(x.shape, layer.out.weight, backprops.to(x.dtype))
        grad_out = layer._heads(grad_out)  # [B, H, L, D]
        target, beyond = _window_index(length, window, x.device)
        target = target.expand(batch, layer.n_heads, length, 2 * window + 1)

        rel_weights = dropped.gather(-1, target).masked_fill(beyond, 0.0)
        grad_rel_value = torch.einsum("bhir,bhid->brd", rel_weights, grad_out)

        grad_dropped = grad_out @ v.transpose(-2, -1)
        grad_rel_weights = (grad_out @ layer.rel_value.detach().t()).masked_fill(beyond, 0.0)
        grad_dropped = grad_dropped.scatter_add(-1, target, grad_rel_weights)
        # Dropout scales kept weights by 1 / (1 - p). Where a weight is 0 before dropout, the softmax
        # derivative below multiplies by it, so telling "dropped" from "zero" does not matter there.
        p = layer.dropout.p if layer.dropout.training else 0.0
        keep_scale = 0.0 if p >= 1.0 else 1.0 / (1.0 - p)
        grad_probs = grad_dropped * (dropped != 0) * keep_scale
        grad_scores = probs * (grad_probs - (probs * grad_probs).sum(-1, keepdim=True))
        grad_rel_logits = grad_scores.gather(-1, target).masked_fill(beyond, 0.0) * scale
        grad_rel_key = torch.einsum("bhir,bhid->brd", grad_rel_logits, q)
    out = {}
    if layer.rel_key.requires_grad:
        out[layer.rel_key] = grad_rel_key
    if layer.rel_value.requires_grad:
        out[layer.rel_value] = grad_rel_value
    return out


def _save_attention_weights(attention: RelativeSelfAttention, gsm: GradSampleModule):
    """A forward hook on the attention's dropout: keep its input and output for the grad sampler, when
    Opacus records activations (training, gradients enabled)."""

    def hook(dropout: nn.Module, inputs, output) -> None:
        if gsm.hooks_enabled and attention.training and torch.is_grad_enabled():
            attention.dp_attention_weights.append((inputs[0].detach(), output.detach()))

    return hook


def make_private(model: nn.Module, optimizer: torch.optim.Optimizer, *, noise_multiplier: float,
                 max_grad_norm: float, expected_batch_size: int) -> tuple[GradSampleModule, DPOptimizer]:
    """Opacus's per-sample gradient hooks on `model` (in place; its state_dict keys do not change) and the
    DP-SGD wrapper around `optimizer`: clip every utterance's gradient over all parameters jointly to
    max_grad_norm, add N(0, (noise_multiplier * max_grad_norm)^2) to the sum, divide by the expected
    batch size (Poisson sampling: the mean loss of the trainer becomes a sum over the expected size)."""
    ModuleValidator.validate(model, strict=True)  # no BatchNorm or other batch-mixing layers
    gsm = GradSampleModule(model, batch_first=True, loss_reduction="mean", strict=True)
    gsm.forbid_grad_accumulation()  # every backward's per-sample gradients go to the optimizer before the next
    for module in model.modules():
        if isinstance(module, RelativeSelfAttention):
            module.dp_attention_weights = []
            handle = module.dropout.register_forward_hook(_save_attention_weights(module, gsm))
            gsm.autograd_grad_sample_hooks.append(handle)  # removed with Opacus's hooks
    dp_optimizer = DPOptimizer(optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                               expected_batch_size=expected_batch_size, loss_reduction="mean")
    return gsm, dp_optimizer


def per_sample_backward(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    """Backpropagate a batch's mean loss through the hooked model and leave a per-utterance gradient in
    every parameter's `grad_sample` [B, *shape], ready for the DP optimizer. Returns each utterance's
    gradient norm over all parameters, before clipping (NaN where it was not finite).

    Parameters that no loss term reached get zero rows. An utterance whose gradient is not finite gets a
    zero row everywhere: a fixed function of that utterance alone, so its contribution stays within the
    clipping bound and the step is still taken and accounted (skipping the step would depend on the data).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_FULL_BACKWARD_HOOK_WARNING)
        loss.backward()
    sizes = {len(p.grad_sample) for p in params if p.grad_sample is not None}
    if len(sizes) != 1:
        raise HoldttsError(f"per-sample gradients of inconsistent batch sizes {sorted(sizes)}")
    size = sizes.pop()
    for p in params:
        if p.grad_sample is None:
            p.grad_sample = p.new_zeros((size, *p.shape))
    norms = torch.stack([p.grad_sample.reshape(size, -1).norm(2, dim=1) for p in params], dim=1).norm(2, dim=1)
    bad = ~torch.isfinite(norms)
    if bad.any():
        for p in params:
            p.grad_sample[bad] = 0.0
        norms = norms.masked_fill(bad, math.nan)
    return norms


def split_batch(batch: Batch, size: int) -> list[Batch]:
    """Consecutive chunks of at most `size` utterances (all of it when size <= 0), each padded to its own
    longest text and mel."""
    if size <= 0 or len(batch) <= size:
        return [batch]
    chunks = []
    for start in range(0, len(batch), size):
        part = slice(start, start + size)
        tokens, mels = int(batch.token_lengths[part].max()), int(batch.mel_lengths[part].max())
        chunks.append(Batch(batch.utt_ids[part], batch.tokens[part, :tokens], batch.token_lengths[part],
                            batch.mels[part, :, :mels], batch.mel_lengths[part], batch.crop_starts[part],
                            None if batch.speakers is None else batch.speakers[part]))
    return chunks


# --------------------------------------------------------------------------- Poisson sampling

class PoissonBatches(BucketedBatches):
    """Batches drawn as DP-SGD's privacy amplification by subsampling assumes: each utterance joins each
    batch independently with probability q = batch_size / N (Opacus's UniformWithReplacementSampler).

    Batch sizes vary (an empty batch is possible and still makes a noisy step). An "epoch" is
    int(1 / q) batches, as in Opacus's DPDataLoader. Batches and crops are a pure function of
    (seed, epoch, batch index), so a resumed run sees the batches an uninterrupted one would have.
    """

    def __init__(self, store: FeatureStore, utts, batch_size: int, segment_frames: int, seed: int,
                 speakers=None):
        super().__init__(store, utts, batch_size, segment_frames, seed, speakers=speakers)
        self.sample_rate = batch_size / len(self.utts)
        if not 0 < self.sample_rate <= 1:
            raise ConfigError(f"train.batch_size ({batch_size}) must be between 1 and the number of training "
                              f"utterances ({len(self.utts)}) for Poisson sampling")
        self.steps_per_epoch = int(1 / self.sample_rate)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        seed = int(np.random.default_rng([self.seed, epoch, 2]).integers(2 ** 62))
        sampler = UniformWithReplacementSampler(num_samples=len(self.utts), sample_rate=self.sample_rate,
                                                generator=torch.Generator().manual_seed(seed))
        return list(sampler)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def batch(self, epoch: int, index: int, indices) -> Batch:
        if len(indices):
            return super().batch(epoch, index, indices)
        empty = torch.zeros(0, dtype=torch.long)
        return Batch([], empty.view(0, 0), empty, torch.zeros(0, 0, 0), empty, empty,
                     None if self.speakers is None else empty)


# --------------------------------------------------------------------------- accounting

def make_accountant(name: str) -> IAccountant:
    if name not in ACCOUNTANTS:
        raise ConfigError(f"unknown dp.accountant '{name}' (known: {', '.join(ACCOUNTANTS)})")
    return create_accountant(mechanism=name)


def accounted_steps(accountant: IAccountant | None) -> int:
    """Steps the accountant has composed (its len() counts history entries, not steps)."""
    return 0 if accountant is None else sum(int(steps) for _, _, steps in accountant.history)


def epsilon_spent(accountant: IAccountant, delta: float) -> float:
    """The accountant's epsilon at `delta` for the steps it has seen (0 before the first).

    Clamped at 0: with a large delta, RDP's conversion can return a negative epsilon, and a guarantee
    at a larger epsilon still holds."""
    if accounted_steps(accountant) == 0:
        return 0.0
    with _quiet_accounting():
        return max(0.0, float(accountant.get_epsilon(delta=delta)))


@contextlib.contextmanager
def _quiet_accounting():
    """Opacus's accountants warn where nothing is wrong: RDP when the optimal order is at the edge of its
    grid, PRV at q = 1 (full-batch steps, as the study's 8 members give), where log(1 - q) = -inf is
    taken before the np.where that discards it. Both printed at every logged step."""
    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        warnings.filterwarnings("ignore", message="Optimal order is the (largest|smallest) alpha")
        yield


def epsilon_for(noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str) -> float:
    """Epsilon at `delta` after `steps` steps of the sampled Gaussian mechanism (q, sigma)."""
    if steps <= 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    acc = make_accountant(accountant)
    acc.history = [(noise_multiplier, sample_rate, steps)]
    return epsilon_spent(acc, delta)


def calibrate_noise(target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """The smallest noise multiplier (to EPSILON_TOLERANCE in epsilon) whose epsilon after `steps` steps at
    sampling rate q stays at or below target_epsilon (Opacus's bisection)."""
    make_accountant(accountant)
    try:
        with _quiet_accounting():
            return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta,
                                              sample_rate=sample_rate, steps=steps, accountant=accountant,
                                              epsilon_tolerance=EPSILON_TOLERANCE))
    except ValueError as err:
        raise ConfigError(f"dp.target_epsilon={target_epsilon} cannot be reached in {steps} steps at "
                          f"sampling rate {sample_rate:.4g} (delta {delta:.3g}): {err}") from err


def _history_to_plain(accountant: IAccountant) -> dict:
    # weights_only checkpoints: plain lists, not the OrderedDict of tuples Opacus returns
    return {"mechanism": accountant.mechanism(), "history": [list(entry) for entry in accountant.history]}


def _history_from_plain(accountant: IAccountant, state: dict) -> None:
    accountant.load_state_dict({"mechanism": state["mechanism"],
                                "history": [(float(s), float(q), int(n)) for s, q, n in state["history"]]})


# --------------------------------------------------------------------------- the trainer

def check_dp_config(cfg: SystemConfig) -> None:
    """Refuse settings under which the guarantee or the per-sample gradients would not hold."""
    dp, train = cfg.dp, cfg.train
    make_accountant(dp.accountant)
    if dp.target_epsilon is not None and dp.noise_multiplier is not None:
        raise ConfigError("set dp.target_epsilon or dp.noise_multiplier, not both")
    if dp.target_epsilon is not None and not dp.target_epsilon > 0:
        raise ConfigError(f"dp.target_epsilon must be > 0, got {dp.target_epsilon}")
    if dp.noise_multiplier is not None and not dp.noise_multiplier >= 0:
        raise ConfigError(f"dp.noise_multiplier must be >= 0, got {dp.noise_multiplier}")
    if dp.delta is not None and not 0 < dp.delta < 1:
        raise ConfigError(f"dp.delta must be in (0, 1), got {dp.delta}")
    if dp.max_physical_batch_size < 0:
        raise ConfigError(f"dp.max_physical_batch_size must be >= 0, got {dp.max_physical_batch_size}")
    if not dp.max_grad_norm > 0:
        raise ConfigError(f"dp.max_grad_norm must be > 0, got {dp.max_grad_norm}")
    if train.precision != "fp32":
        raise ConfigError(f"dp training runs in fp32 (train.precision={train.precision}): fp16 loss scaling "
                          "would scale the per-utterance gradients before clipping, and reduced-precision "
                          "per-sample gradients are not validated")
    if cfg.loss.t_sampling != "uniform":
        raise ConfigError(f"dp training needs loss.t_sampling=uniform (got {cfg.loss.t_sampling}): stratified "
                          "times are shared across the batch, so one utterance's presence would change the "
                          "others' gradients and the sensitivity bound would not hold")


class DPTrainer(Trainer):
    """The shared Trainer with DP-SGD steps: Poisson batches, per-utterance clipping over all parameters,
    Gaussian noise, an accountant saved with every checkpoint and privacy.json beside it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._resumed_dp: dict | None = None
        self._epsilon_cache: tuple[int, float] | None = None

    # ------------------------------------------------------------------ hooks of the Trainer

    def make_batches(self) -> PoissonBatches:
        utts = self.train_utts()
        self.store.check_utts(utts, self.data_dir / self.cfg.data.train_split)
        return PoissonBatches(self.store, utts, self.cfg.train.batch_size, self.cfg.data.segment_frames,
                              self.cfg.train.seed, speakers=self.utt_speakers(utts))

    def extra_checkpoint_state(self) -> dict:
        return {"dp": {
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "delta": self.delta,
            "planned_steps": self.planned_steps,
            "accountant": None if self.accountant is None else _history_to_plain(self.accountant),
        }}

    def load_extra_checkpoint_state(self, state: dict) -> None:
        if "dp" not in state:
            raise HoldttsError(f"{self.exp_dir}: its checkpoint has no DP accounting state (not a DP run)")
        self._resumed_dp = state["dp"]

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        if self.dist.enabled:
            raise HoldttsError("DP training runs in one process (Opacus's per-sample clipping and accounting "
                               "are set up here for a single device): launch without torchrun")
        check_dp_config(self.cfg)
        super().setup()  # builds the model and Adam, and resumes (the DP state lands in _resumed_dp)
        dp = self.cfg.dp
        self.sample_rate = self.batches.sample_rate
        num_utts = len(self.batches.utts)
        self.delta = dp.delta if dp.delta is not None else 1.0 / num_utts
        resumed = self._resumed_dp
        if resumed is not None:
            if not math.isclose(resumed["sample_rate"], self.sample_rate, rel_tol=1e-12):
                raise HoldttsError(f"{self.exp_dir}: the sampling rate changed ({resumed['sample_rate']:.6g} -> "
                                   f"{self.sample_rate:.6g}: a different training split?)")
            self.noise_multiplier = float(resumed["noise_multiplier"])
            self.planned_steps = int(resumed["planned_steps"])
            if self.planned_steps != self.total_steps and dp.target_epsilon is not None:
                log.warning("the run now ends at step %d, not at the %d steps sigma=%.4g was calibrated for: the "
                            "final epsilon will differ from dp.target_epsilon=%g (privacy.json has the spent one)",
                            self.total_steps, self.planned_steps, self.noise_multiplier, dp.target_epsilon)
        else:
            self.planned_steps = self.total_steps
            self.noise_multiplier = self._initial_noise_multiplier()
        self.accountant = make_accountant(dp.accountant) if self.noise_multiplier > 0 else None
        if resumed is not None and self.accountant is not None:
            _history_from_plain(self.accountant, resumed["accountant"])
        self.wrapped, self.optimizer = make_private(self.model, self.optimizer,
                                                    noise_multiplier=self.noise_multiplier,
                                                    max_grad_norm=dp.max_grad_norm,
                                                    expected_batch_size=self.cfg.train.batch_size)
        if self.accountant is not None:
            self.optimizer.attach_step_hook(self.accountant.get_optimizer_hook_fn(sample_rate=self.sample_rate))
        expected = epsilon_for(self.noise_multiplier, self.sample_rate, self.planned_steps, self.delta,
                               dp.accountant)
        log.info("DP-SGD over %s: q=%.5g (expected batch %d of %d utterances), sigma=%.4g, C=%g, delta=%.3g; "
                 "epsilon after %d steps: %.4g (%s accountant)", COVERS, self.sample_rate,
                 self.cfg.train.batch_size, num_utts, self.noise_multiplier, dp.max_grad_norm, self.delta,
                 self.planned_steps, expected, dp.accountant)

    def _initial_noise_multiplier(self) -> float:
        dp = self.cfg.dp
        if dp.noise_multiplier is not None:
            return float(dp.noise_multiplier)
        if dp.target_epsilon is None:
            log.warning("dp.target_epsilon and dp.noise_multiplier are unset: Poisson sampling and per-utterance "
                        "clipping without noise, the non-private reference (no privacy guarantee)")
            return 0.0
        return calibrate_noise(dp.target_epsilon, self.delta, self.sample_rate, self.planned_steps, dp.accountant)

    # ------------------------------------------------------------------ one step

    def train_step(self, batch: Batch) -> dict[str, float] | None:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        params = self.optimizer.params
        if len(batch) == 0:  # Poisson sampling drew nobody: the step is noise alone, and is accounted
            for p in params:
                p.grad_sample = p.new_zeros((0, *p.shape))
            self._finish_step()
            return None
        weights = self.loss_weights()
        chunks = split_batch(batch, self.cfg.dp.max_physical_batch_size)
        terms_seen: dict[str, list[torch.Tensor]] = {}
        losses, norms = [], []
        for index, chunk in enumerate(chunks):
            chunk = chunk.to(self.device, non_blocking=True)
            terms = self.step_losses(chunk)
            per_utt = sum(weights[k] * terms[k].float() for k in terms if weights.get(k, 0.0))
            norms.append(per_sample_backward(per_utt.mean(), params))
            losses.append(per_utt.detach())
            for k, v in terms.items():
                terms_seen.setdefault(k, []).append(v.detach().float())
            if index < len(chunks) - 1:  # clip and accumulate this chunk; noise and Adam after the last
                self.optimizer.signal_skip_step(do_skip=True)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        norms = torch.cat(norms)
        finite = norms[torch.isfinite(norms)]
        non_finite = len(norms) - len(finite)
        if non_finite:
            self.state.nonfinite_utt_gradients += non_finite
            log.warning("step %d: %d of %d utterances had a non-finite gradient and contribute zero (%s)",
                        self.state.step, non_finite, len(batch), ", ".join(batch.utt_ids))
        self._bad_steps = self._bad_steps + 1 if non_finite == len(batch) else 0
        if self._bad_steps >= MAX_BAD_STEPS:
            raise HoldttsError(f"{MAX_BAD_STEPS} consecutive steps with no finite per-utterance gradient at step "
                               f"{self.state.step}: lower train.lr")
        self._finish_step()
        out = {f"loss_{k}": float(torch.cat(v).mean()) for k, v in terms_seen.items()}
        out["loss"] = float(torch.cat(losses).mean())
        out["batch_size"] = float(len(batch))
        if len(finite):
            out["per_sample_grad_norm"] = float(finite.median())
            out["clipped_fraction"] = float((finite > self.cfg.dp.max_grad_norm).float().mean())
        return out

    def _finish_step(self) -> None:
        self.optimizer.step()  # clip, sum, add noise, scale, Adam; the accountant's hook counts the step
        self.scheduler.step()
        self.ema.update(self.model, self.state.step)
        for module in self.model.modules():
            if isinstance(module, RelativeSelfAttention):
                module.dp_attention_weights.clear()

    # ------------------------------------------------------------------ privacy outputs

    def epsilon(self) -> float:
        """Epsilon spent so far (infinite without noise), cached per step."""
        if self.accountant is None:
            return math.inf
        if self._epsilon_cache is None or self._epsilon_cache[0] != self.state.step:
            self._epsilon_cache = (self.state.step, epsilon_spent(self.accountant, self.delta))
        return self._epsilon_cache[1]

    def log_scalars(self, scalars: dict[str, float]) -> None:
        if self.accountant is not None:
            scalars = {**scalars, "privacy/epsilon": self.epsilon()}
        super().log_scalars(scalars)

    def privacy_record(self) -> dict:
        """What privacy.json holds (the guarantee of the weights at the current step)."""
        dp = self.cfg.dp
        return {
            "epsilon": self.epsilon(),
            "delta": self.delta,
            "target_epsilon": dp.target_epsilon,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": dp.max_grad_norm,
            "sample_rate": self.sample_rate,
            "expected_batch_size": self.cfg.train.batch_size,
            "num_train_utts": len(self.batches.utts),
            "steps": accounted_steps(self.accountant),
            "planned_steps": self.planned_steps,
            "accountant": dp.accountant,
            "auroc_bound": membership_auroc_bound(self.epsilon(), self.delta),
            "covers": COVERS,
            "not_covered": NOT_COVERED,
            "mechanism": "DP-SGD (Opacus): Poisson sampling, per-utterance clipping over all parameters, "
                         "Gaussian noise; add/remove-one-utterance neighbouring datasets",
        }

    def save(self) -> Path | None:
        path = super().save()
        if path is not None and self.accountant is not None:
            write_json_atomic(self.exp_dir / "privacy.json", self.privacy_record())
        return path

    def summary(self, stopped: bool) -> dict:
        out = super().summary(stopped)
        epsilon = self.epsilon()
        out["dp"] = {"epsilon": epsilon if math.isfinite(epsilon) else None, "delta": self.delta,
                     "noise_multiplier": self.noise_multiplier, "max_grad_norm": self.cfg.dp.max_grad_norm,
                     "sample_rate": self.sample_rate, "accountant": self.cfg.dp.accountant, "covers": COVERS,
                     "nonfinite_utt_gradients": self.state.nonfinite_utt_gradients}
        return out
