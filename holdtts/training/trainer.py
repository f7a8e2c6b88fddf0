"""The training loop shared by every system: resume, mixed precision, DDP, EMA, TensorBoard, checkpoints.

`Trainer` trains a GradTTS system on one split (members, or one half for the dual-model teachers).
Subclasses change what a step optimises (`step_losses`) or how batches are drawn (`make_batches`);
the loop, the checkpoints and the logging stay the same.

Experiment directory:
    config.yaml          the resolved config (checked on resume)
    checkpoints/         step-N.pt, the newest `train.keep_last` kept
    tensorboard/         loss terms, learning rate, gradient norm, throughput, mel images, audio
    train_log.jsonl      the logged scalars, one JSON object per log step (for plots without TensorBoard)
    train_summary.json   written when training reaches its step/epoch limit
    .lock                held by the run training into the directory (holdtts.training.lock)

`holdtts.training.factory.make_trainer` picks the trainer a config asks for (this one, or the DP-SGD
subclass in holdtts.training.dp), so this module never imports its subclasses.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import holdtts
from holdtts.config import SystemConfig, config_from_dict, config_to_dict, dump_config
from holdtts.data.dataset import Batch, BucketedBatches, FeatureStore, collate, load_split
from holdtts.data.mel import silence_nonfinite
from holdtts.data.speaker_map import check_checkpoint_speakers, training_speaker_map
from holdtts.data.splits import member_checksum
from holdtts.errors import ConfigError, HoldttsError
from holdtts.models.tts import MEAN_SPEAKER, GradTTS
from holdtts.training.ema import EMA
from holdtts.training.loop import MAX_BAD_STEPS, TrainingLoop

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "holdtts-tts-1"


def lr_lambda(cfg: SystemConfig, total_steps: int):
    """Multiplier of the base learning rate at a step: linear warm-up, then the configured schedule."""
    warmup, schedule = cfg.train.warmup_steps, cfg.train.lr_schedule
    if schedule not in ("constant", "cosine", "linear"):
        raise ConfigError(f"unknown train.lr_schedule '{schedule}' (known: constant, cosine, linear)")

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress

    return factor


class Trainer(TrainingLoop):
    checkpoint_format = CHECKPOINT_FORMAT

    def __init__(self, cfg: SystemConfig, exp_dir: str | Path, data_dir: str | Path, dump_dir: str | Path,
                 device: str = "auto", progress_bar: bool | None = None):
        super().__init__(exp_dir, device, progress_bar)
        self.cfg = cfg
        self.data_dir = Path(data_dir)
        self.dump_dir = Path(dump_dir)

    # ------------------------------------------------------------------ hooks for subclasses

    def build_model(self, n_vocab: int) -> nn.Module:
        return GradTTS(self.cfg, n_vocab)

    def train_utts(self) -> list[str]:
        return load_split(self.data_dir, self.cfg.data.train_split)

    def make_batches(self) -> BucketedBatches:
        utts = self.train_utts()
        self.store.check_utts(utts, self.data_dir / self.cfg.data.train_split)
        return BucketedBatches(self.store, utts, self.cfg.train.batch_size, self.cfg.data.segment_frames,
                               self.cfg.train.seed, self.cfg.data.bucket_size, self.dist.rank,
                               self.dist.world_size, speakers=self.utt_speakers(utts))

    def utt_speakers(self, utts) -> dict[str, int] | None:
        """Each utterance's row of the speaker table (multi-speaker models), else None."""
        return None if self.speaker_map is None else self.speaker_map.utt_rows(utts)

    def step_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-utterance loss terms for one batch through the (possibly DDP-wrapped) model."""
        if batch.speakers is None:
            return self.wrapped(batch.tokens, batch.token_lengths, batch.mels, batch.mel_lengths,
                                batch.crop_starts)
        return self.wrapped(batch.tokens, batch.token_lengths, batch.mels, batch.mel_lengths, batch.crop_starts,
                            speakers=batch.speakers)

    def loss_weights(self) -> dict[str, float]:
        loss = self.cfg.loss
        return {"duration": loss.duration_weight, "prior": loss.prior_weight, "diffusion": loss.diffusion_weight}

    def extra_checkpoint_state(self) -> dict:
        return {}

    def load_extra_checkpoint_state(self, state: dict) -> None:
        pass

    def describe(self) -> str:
        return (f"training {self.cfg.name}: {len(self.batches.utts)} utterances, {len(self.batches)} batches/epoch, "
                f"{self.total_steps} steps")

    def current_lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def on_epoch_end(self, epoch: int) -> None:
        t = self.cfg.train
        if t.attack_every_epochs and epoch % t.attack_every_epochs == 0 and self.dist.is_main:
            started = time.perf_counter()
            scalars = self.attack_scalars()
            scalars["time/attack_seconds"] = time.perf_counter() - started  # wall time they add to training
            self.log_scalars(scalars)

    @torch.no_grad()
    def attack_scalars(self) -> dict[str, float]:
        """AUROC of train.attack on the EMA model, members of the training split against non-members:
        membership leakage as training goes (the published speech result is AUROC by epoch). Each attack's
        AUROC is held out (t picked on a calibration half, measured on the other half); "headline" is the
        strongest attack picked the same way, with its permutation p-value; AUROC per t is descriptive."""
        from holdtts.privacy.metrics import compute_metrics
        from holdtts.privacy.runner import AttackTarget, run_attacks

        t = self.cfg.train
        target = AttackTarget.from_splits(self.data_dir, self.cfg.data.train_split, "nonmembers",
                                          max_utts=t.attack_max_utts, seed=t.seed)
        names = [a.strip() for a in t.attack.split(",") if a.strip()]
        rows, _ = run_attacks(self.ema.model, self.store, target, names, batch_size=t.batch_size, seed=t.seed)
        bad = [r for r in rows if not math.isfinite(float(r["score"]))]
        if bad:  # the model's outputs overflow on these inputs: training has diverged, whatever its loss says
            cells = sorted({f"{r['attack']} at t={r['t']}" for r in bad})
            raise HoldttsError(f"training diverged: at epoch {self.state.epoch} (step {self.state.step}) the "
                               f"in-training attack's scores are non-finite for {len(bad)} of {len(rows)} rows "
                               f"({', '.join(cells[:3])}{', ...' if len(cells) > 3 else ''}), so the EMA model's "
                               "outputs overflow; lower train.lr or use train.precision=fp32")
        metrics = compute_metrics(rows, bootstrap_samples=0)
        scalars = {"attack/headline/auroc": metrics["headline"]["auroc"],
                   "attack/headline/p_value": metrics["headline"]["p_value"]}
        for name, result in metrics["attacks"].items():
            scalars[f"attack/{name}/auroc"] = metrics["heldout"][name]["auroc"]
            for t_value, entry in result["by_t"].items():
                if t_value != "-":
                    scalars[f"attack/{name}/auroc_t{t_value}"] = entry["auroc"]
        return scalars

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        self._start_processes()
        self.store = FeatureStore(self.dump_dir)
        self.symbols = self.store.symbols
        self.speaker_map = training_speaker_map(self.cfg.model.n_speakers, self.data_dir, self.train_utts(),
                                                self.cfg.data.train_split)
        self.batches = self.make_batches()
        self.members_sha256 = member_checksum(self.train_utts())
        self.total_steps = self._total_steps()

        torch.manual_seed(self.cfg.train.seed + self.dist.rank)
        np.random.seed(self.cfg.train.seed + self.dist.rank)
        self.model = self.build_model(self.symbols.n_vocab).to(self.device)
        if self.speaker_map is not None:  # before the EMA copy, which keeps them
            self.model.speaker_ids = list(self.speaker_map.speakers)
            self.model.trained_speaker_rows = self.trained_speaker_rows()
        self.ema = EMA(self.model, self.cfg.train.ema_decay)
        self.wrapped = self.model
        if self.dist.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        t = self.cfg.train
        self.optimizer = torch.optim.Adam(self.trainable_parameters(), lr=t.lr, betas=tuple(t.betas),
                                          weight_decay=t.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(self.cfg, self.total_steps))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda" and t.precision == "fp16")
        self._resume()

    def trained_speaker_rows(self) -> list[int]:
        """The speaker-table rows of the training split's speakers."""
        return sorted(set(self.speaker_map.utt_rows(self.train_utts()).values()))

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def _resume(self) -> None:
        latest = self._latest_state(dump_config(self.cfg))
        if latest is None:
            return
        checkpoint, state = latest
        # through the schema first, so sections added to holdtts since the checkpoint compare as defaults
        saved = config_to_dict(config_from_dict(state["config"], source=str(checkpoint)))
        self._check_same_config(saved, config_to_dict(self.cfg))
        self._check_same_members(checkpoint, state)
        if state["symbols"] != self.symbols.to_list():
            raise HoldttsError(f"{checkpoint}: its symbol table differs from {self.dump_dir}/symbols.txt")
        check_checkpoint_speakers(state.get("speakers"), self.speaker_map, str(checkpoint))
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self._restore_progress(checkpoint, state, dump_config(self.cfg))
        self.load_extra_checkpoint_state(state)

    # ------------------------------------------------------------------ checkpoints and logs

    def checkpoint_state(self) -> dict:
        state = {
            "format": self.checkpoint_format,
            "holdtts_version": holdtts.__version__,
            "config": config_to_dict(self.cfg),
            "symbols": self.symbols.to_list(),
            "process": self.model.process.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "progress": vars(self.state).copy(),
            "rng": self._rng_states(),
            "world_size": self.dist.world_size,
            "train_split": self.cfg.data.train_split,
            "num_train_utts": len(self.batches.utts),
            "members_sha256": self.members_sha256,
        }
        if self.speaker_map is not None:  # single-speaker checkpoints keep exactly their old entries
            state["speakers"] = self.speaker_map.to_state(self.trained_speaker_rows())
        state.update(self.extra_checkpoint_state())
        return state

    # ------------------------------------------------------------------ one step

    def train_step(self, batch: Batch) -> dict[str, float] | None:
        self.model.train()
        batch = batch.to(self.device, non_blocking=True)
        weights = self.loss_weights()
        with self._autocast():
            terms = self.step_losses(batch)
            loss = sum(weights[k] * terms[k].float().mean() for k in terms if weights.get(k, 0.0))
        self.optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            self._bad_step(f"non-finite loss ({loss.item()})", batch)
            return None
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), self.cfg.train.grad_clip)
        if not self.scaler.is_enabled() and not torch.isfinite(grad_norm):
            # a finite loss with an inf/NaN gradient: clipping would turn it into NaN weights for good (fp16's
            # scaler skips such steps itself)
            self.optimizer.zero_grad(set_to_none=True)
            self._bad_step(f"non-finite gradient norm ({float(grad_norm)})", batch)
            return None
        self._bad_steps = 0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.ema.update(self.model, self.state.step)
        out = {f"loss_{k}": float(v.detach().float().mean()) for k, v in terms.items()}
        out["loss"] = float(loss.detach())
        out["grad_norm"] = float(grad_norm)
        return out

    def _bad_step(self, what: str, batch: Batch) -> None:
        self._bad_steps += 1
        self.state.skipped_steps += 1
        log.warning("step %d: %s on %s; step skipped", self.state.step, what, ", ".join(batch.utt_ids))
        if self._bad_steps >= MAX_BAD_STEPS:
            raise HoldttsError(f"{MAX_BAD_STEPS} consecutive non-finite steps at step {self.state.step}: "
                               "lower train.lr or use train.precision=fp32")

    # ------------------------------------------------------------------ validation and samples

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Loss terms of the EMA model on the validation split, with fixed crops, times and noise."""
        utts = load_split(self.data_dir, self.cfg.data.valid_split)
        model = self.ema.model
        rng = np.random.default_rng([self.cfg.train.seed, 7])
        generator = torch.Generator(device=self.device).manual_seed(self.cfg.train.seed)
        totals: dict[str, float] = {}
        size = self.cfg.train.batch_size
        for start in range(0, len(utts), size):
            chunk = utts[start:start + size]
            batch = collate(self.store, chunk, self.cfg.data.segment_frames, rng,
                            self.validation_speakers(chunk)).to(self.device)
            with self._autocast():
                terms = self.validation_losses(model, batch, generator)
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + float(v.float().sum())
        return {f"valid/loss_{k}": v / len(utts) for k, v in totals.items()}

    def validation_speakers(self, utts) -> dict[str, int] | None:
        """Rows of the speaker table for validation utterances: their own speaker's row, or the mean voice
        (MEAN_SPEAKER) for a speaker the table does not have."""
        if self.speaker_map is None:
            return None
        return {u: self.speaker_map.utt_rows([u]).get(u, MEAN_SPEAKER) for u in utts}

    def validation_losses(self, model: nn.Module, batch: Batch, generator) -> dict[str, torch.Tensor]:
        return model.losses(batch, generator=generator)

    @torch.no_grad()
    def write_samples(self) -> None:
        """A generated mel beside its target, and its Griffin-Lim audio, to TensorBoard."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from holdtts.vocoder import GriffinLimVocoder

        utt = load_split(self.data_dir, self.cfg.data.valid_split)[0]
        batch = collate(self.store, [utt], self.cfg.data.segment_frames,
                        speakers=self.validation_speakers([utt])).to(self.device)
        generator = torch.Generator(device=self.device).manual_seed(self.cfg.train.seed)
        mels, lengths = self.ema.model.synthesize(batch.tokens, batch.token_lengths, generator=generator,
                                                  speakers=batch.speakers)
        mels, failed = silence_nonfinite(mels, lengths)  # the one rule for a diverged synthesis: silence
        if bool(failed[0]):
            log.warning("the TensorBoard sample at step %d diverged (NaN or infinite values): drawn as silence",
                        self.state.step)
        generated = mels[0, :, : int(lengths[0])].float().cpu()
        target = batch.mels[0, :, : int(batch.mel_lengths[0])].float().cpu()
        fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
        for ax, mel, title in zip(axes, (target, generated), ("target (real)", "generated (EMA)")):
            ax.imshow(mel.numpy(), origin="lower", aspect="auto", interpolation="none", vmin=-11.5, vmax=2.5)
            ax.set_title(f"{utt}: {title}")
        fig.tight_layout()
        self.writer.add_figure("samples/mel", fig, self.state.step)
        plt.close(fig)
        vocoder = GriffinLimVocoder(self.cfg.features)
        wav = vocoder(generated.unsqueeze(0))[0]
        self.writer.add_audio("samples/audio_griffin_lim", wav.unsqueeze(0), self.state.step,
                              sample_rate=self.cfg.features.sample_rate)

    # ------------------------------------------------------------------ the loop

    def summary(self, stopped: bool) -> dict:
        return {**super().summary(stopped), "train_split": self.cfg.data.train_split,
                "num_train_utts": len(self.batches.utts), "utts_per_second": self.items_per_second(),
                "parameters": sum(p.numel() for p in self.model.parameters())}

