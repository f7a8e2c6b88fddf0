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
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

import holdtts
from holdtts.config import SystemConfig, config_from_dict, config_to_dict, dump_config
from holdtts.data.dataset import Batch, BucketedBatches, FeatureStore, collate, load_split
from holdtts.data.features import resolve_device
from holdtts.errors import ConfigError, HoldttsError
from holdtts.models.tts import GradTTS
from holdtts.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from holdtts.training.ema import EMA
from holdtts.utils.fileio import ensure_dir, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "holdtts-tts-1"
# Settings that may change between a run and its resumption (they do not change what is learned).
RESUMABLE_CHANGES = {"max_steps", "max_epochs", "checkpoint_every", "keep_last", "valid_every", "log_every",
                     "sample_every", "num_workers", "attack_every_epochs", "attack", "attack_max_utts"}
MAX_BAD_STEPS = 10


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def from_env() -> DistInfo:
        """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK)."""
        return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                        int(os.environ.get("LOCAL_RANK", 0)))


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # the next batch of `epoch` to train on
    elapsed: float = 0.0  # training seconds over all sessions
    utts: int = 0  # utterances seen over all ranks


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


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        where = f"{prefix}.{key}" if prefix else key
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, where)
        elif a != b and not (prefix == "train" and key in RESUMABLE_CHANGES):
            diffs.append(f"{where}: {a!r} -> {b!r}")
    return diffs


class Trainer:
    checkpoint_format = CHECKPOINT_FORMAT

    def __init__(self, cfg: SystemConfig, exp_dir: str | Path, data_dir: str | Path, dump_dir: str | Path,
                 device: str = "auto", progress_bar: bool | None = None):
        self.cfg = cfg
        self.exp_dir = Path(exp_dir)
        self.data_dir = Path(data_dir)
        self.dump_dir = Path(dump_dir)
        self.dist = DistInfo.from_env()
        self.device = self._device(device)
        self.progress_bar = sys.stderr.isatty() if progress_bar is None else progress_bar
        self.state = Progress()
        self._stop_signal: int | None = None
        self._bad_steps = 0
        self.writer = None

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
                               self.dist.world_size)

    def step_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-utterance loss terms for one batch through the (possibly DDP-wrapped) model."""
        return self.wrapped(batch.tokens, batch.token_lengths, batch.mels, batch.mel_lengths, batch.crop_starts)

    def loss_weights(self) -> dict[str, float]:
        loss = self.cfg.loss
        return {"duration": loss.duration_weight, "prior": loss.prior_weight, "diffusion": loss.diffusion_weight}

    def extra_checkpoint_state(self) -> dict:
        return {}

    def load_extra_checkpoint_state(self, state: dict) -> None:
        pass

    def on_epoch_end(self, epoch: int) -> None:
        t = self.cfg.train
        if t.attack_every_epochs and epoch % t.attack_every_epochs == 0 and self.dist.is_main:
            self.log_scalars(self.attack_scalars())

    @torch.no_grad()
    def attack_scalars(self) -> dict[str, float]:
        """AUROC of train.attack on the EMA model, members of the training split against non-members:
        membership leakage as training goes (the published speech result is AUROC by epoch)."""
        from holdtts.privacy.metrics import compute_metrics
        from holdtts.privacy.runner import AttackTarget, run_attacks

        t = self.cfg.train
        target = AttackTarget.from_splits(self.data_dir, self.cfg.data.train_split, "nonmembers",
                                          max_utts=t.attack_max_utts, seed=t.seed)
        names = [a.strip() for a in t.attack.split(",") if a.strip()]
        rows, _ = run_attacks(self.ema.model, self.store, target, names, batch_size=t.batch_size, seed=t.seed)
        metrics = compute_metrics(rows, bootstrap_samples=0)
        scalars = {}
        for name, result in metrics["attacks"].items():
            scalars[f"attack/{name}/auroc"] = result["best"]["auroc"]
            scalars[f"attack/{name}/tpr@1%fpr"] = result["best"]["tpr@1%fpr"]
            for t_value, entry in result["by_t"].items():
                if t_value != "-":
                    scalars[f"attack/{name}/auroc_t{t_value}"] = entry["auroc"]
        return scalars

    # ------------------------------------------------------------------ setup

    def _device(self, device: str) -> torch.device:
        if self.dist.enabled and torch.cuda.is_available() and device in ("auto", "cuda"):
            return torch.device("cuda", self.dist.local_rank)
        return resolve_device(device)

    def _autocast(self):
        precision = self.cfg.train.precision
        if precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"unknown train.precision '{precision}' (known: fp32, bf16, fp16)")
        if precision == "fp32" or self.device.type != "cuda":
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

    def _total_steps(self) -> int:
        t = self.cfg.train
        if t.max_steps <= 0 and t.max_epochs <= 0:
            raise ConfigError("set train.max_steps or train.max_epochs (both are 0: training would never end)")
        by_epochs = t.max_epochs * len(self.batches) if t.max_epochs > 0 else None
        if t.max_steps > 0 and by_epochs:
            return min(t.max_steps, by_epochs)
        return t.max_steps if t.max_steps > 0 else by_epochs

    def setup(self) -> None:
        if self.dist.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        if self.dist.is_main:
            ensure_dir(self.exp_dir)
        self.store = FeatureStore(self.dump_dir)
        self.symbols = self.store.symbols
        self.batches = self.make_batches()
        self.total_steps = self._total_steps()

        torch.manual_seed(self.cfg.train.seed + self.dist.rank)
        np.random.seed(self.cfg.train.seed + self.dist.rank)
        self.model = self.build_model(self.symbols.n_vocab).to(self.device)
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

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def _resume(self) -> None:
        config_path = self.exp_dir / "config.yaml"
        checkpoint = latest_checkpoint(self.exp_dir)
        if checkpoint is None:
            if self.dist.is_main:
                write_text_atomic(config_path, dump_config(self.cfg))
            return
        state = load_checkpoint(checkpoint)
        if state.get("format") != self.checkpoint_format:
            raise HoldttsError(f"{checkpoint}: a '{state.get('format')}' checkpoint, this trainer writes "
                               f"'{self.checkpoint_format}'")
        # through the schema first, so sections added to holdtts since the checkpoint compare as defaults
        saved = config_to_dict(config_from_dict(state["config"], source=str(checkpoint)))
        diffs = config_differences(saved, config_to_dict(self.cfg))
        if diffs:
            raise ConfigError(f"{self.exp_dir} was trained with a different config; resuming would mix two "
                              "experiments. Differences: " + "; ".join(diffs)
                              + ". Use a new --exp-dir, or the original config.")
        if state["symbols"] != self.symbols.to_list():
            raise HoldttsError(f"{checkpoint}: its symbol table differs from {self.dump_dir}/symbols.txt")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.state = Progress(**state["progress"])
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            set_rng_state(rngs[self.dist.rank])
        else:
            log.warning("resuming on %d ranks from a run on %d: random streams restart from the seed",
                        self.dist.world_size, len(rngs))
        self.load_extra_checkpoint_state(state)
        if self.dist.is_main:
            write_text_atomic(config_path, dump_config(self.cfg))
            self._truncate_log(self.state.step)
        log.info("resumed %s at step %d (epoch %d, batch %d)", checkpoint, self.state.step, self.state.epoch,
                 self.state.batch_in_epoch)

    # ------------------------------------------------------------------ checkpoints and logs

    def checkpoint_state(self) -> dict:
        rngs = [rng_state()]
        if self.dist.enabled:
            gathered = [None] * self.dist.world_size
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
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
            "rng": rngs,
            "world_size": self.dist.world_size,
            "train_split": self.cfg.data.train_split,
            "num_train_utts": len(self.batches.utts),
        }
        state.update(self.extra_checkpoint_state())
        return state

    def save(self) -> Path | None:
        state = self.checkpoint_state()  # every rank joins the RNG gather
        self._saved_step = self.state.step
        if not self.dist.is_main:
            return None
        return save_checkpoint(state, self.exp_dir, self.state.step, self.cfg.train.keep_last)

    def _truncate_log(self, step: int) -> None:
        path = self.exp_dir / "train_log.jsonl"
        if path.exists():
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            write_text_atomic(path, "".join(line + "\n" for line in kept))

    def log_scalars(self, scalars: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        step = self.state.step
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)
        with open(self.exp_dir / "train_log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "epoch": self.state.epoch, **scalars}) + "\n")

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
            self._bad_steps += 1
            log.warning("step %d: non-finite loss (%s) on %s; step skipped", self.state.step, loss.item(),
                        ", ".join(batch.utt_ids))
            if self._bad_steps >= MAX_BAD_STEPS:
                raise HoldttsError(f"{MAX_BAD_STEPS} consecutive non-finite losses at step {self.state.step}: "
                                   "lower train.lr or use train.precision=fp32")
            return None
        self._bad_steps = 0
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), self.cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.ema.update(self.model, self.state.step)
        out = {f"loss_{k}": float(v.detach().float().mean()) for k, v in terms.items()}
        out["loss"] = float(loss.detach())
        out["grad_norm"] = float(grad_norm)
        return out

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
            batch = collate(self.store, utts[start:start + size], self.cfg.data.segment_frames, rng).to(self.device)
            with self._autocast():
                terms = self.validation_losses(model, batch, generator)
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + float(v.float().sum())
        return {f"valid/loss_{k}": v / len(utts) for k, v in totals.items()}

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
        batch = collate(self.store, [utt], self.cfg.data.segment_frames).to(self.device)
        generator = torch.Generator(device=self.device).manual_seed(self.cfg.train.seed)
        mels, lengths = self.ema.model.synthesize(batch.tokens, batch.token_lengths, generator=generator)
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

    def _finished(self) -> bool:
        t = self.cfg.train
        return ((t.max_steps > 0 and self.state.step >= t.max_steps)
                or (t.max_epochs > 0 and self.state.epoch >= t.max_epochs))

    def _handle_signal(self, signum, frame) -> None:
        if self._stop_signal is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self._stop_signal = signum
        log.warning("signal %d: saving a checkpoint after this step, then stopping", signum)

    def _should_stop(self) -> bool:
        flag = self._stop_signal is not None
        if self.dist.enabled:
            tensor = torch.tensor([float(flag)], device=self.device)
            dist.all_reduce(tensor)
            flag = bool(tensor.item())
        return flag

    def run(self) -> dict:
        """Train until the step/epoch limit (or a SIGINT/SIGTERM); returns a summary dict."""
        self.setup()
        from torch.utils.tensorboard import SummaryWriter

        if self.dist.is_main:
            self.writer = SummaryWriter(str(self.exp_dir / "tensorboard"), purge_step=self.state.step + 1)
        previous = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self._saved_step = self.state.step if latest_checkpoint(self.exp_dir) else -1
        bar = None
        if self.progress_bar and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=self.state.step, unit="step", dynamic_ncols=True)
        t = self.cfg.train
        log.info("training %s: %d utterances, %d batches/epoch, %d steps, device %s, %d rank(s)",
                 self.cfg.name, len(self.batches.utts), len(self.batches), self.total_steps, self.device,
                 self.dist.world_size)
        window_start, window_utts, window_steps = time.perf_counter(), 0, 0
        running: dict[str, float] = {}
        stopped = False
        try:
            while not self._finished() and not stopped:
                loader = self.batches.loader(self.state.epoch, self.state.batch_in_epoch, t.num_workers,
                                             pin_memory=self.device.type == "cuda")
                for batch in loader:
                    step_start = time.perf_counter()
                    scalars = self.train_step(batch)
                    self.state.step += 1
                    self.state.batch_in_epoch += 1
                    self.state.utts += len(batch) * self.dist.world_size
                    self.state.elapsed += time.perf_counter() - step_start
                    window_utts += len(batch) * self.dist.world_size
                    window_steps += 1
                    if scalars:
                        for k, v in scalars.items():
                            running[k] = running.get(k, 0.0) + v
                    step = self.state.step
                    if bar is not None:
                        bar.update(1)
                        if scalars:
                            bar.set_postfix(loss=f"{scalars['loss']:.3f}", epoch=self.state.epoch)
                    if step % t.log_every == 0 and window_steps:
                        seconds = time.perf_counter() - window_start
                        means = {f"train/{k}": v / window_steps for k, v in running.items()}
                        means["train/lr"] = self.scheduler.get_last_lr()[0]
                        means["train/utts_per_sec"] = window_utts / max(seconds, 1e-9)
                        means["train/epoch"] = self.state.epoch
                        self.log_scalars(means)
                        if bar is not None:
                            bar.set_postfix(loss=f"{means.get('train/loss', float('nan')):.3f}",
                                            utts_s=f"{means['train/utts_per_sec']:.1f}", epoch=self.state.epoch)
                        elif self.dist.is_main:
                            log.info("step %d epoch %d loss %.4f (%.1f utts/s)", step, self.state.epoch,
                                     means.get("train/loss", float("nan")), means["train/utts_per_sec"])
                        window_start, window_utts, window_steps, running = time.perf_counter(), 0, 0, {}
                    if t.valid_every and step % t.valid_every == 0 and self.dist.is_main:
                        self.log_scalars(self.validate())
                    if t.sample_every and step % t.sample_every == 0 and self.dist.is_main:
                        self.write_samples()
                    if t.checkpoint_every and step % t.checkpoint_every == 0:
                        self.save()
                    if self._finished():
                        break
                    if self._should_stop():
                        stopped = True
                        break
                else:
                    self.state.epoch += 1
                    self.state.batch_in_epoch = 0
                    self.on_epoch_end(self.state.epoch)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if bar is not None:
                bar.close()
        if self._saved_step != self.state.step:
            self.save()
        summary = self.summary(stopped)
        if self.dist.is_main:
            if not stopped:
                write_json_atomic(self.exp_dir / "train_summary.json", summary)
            self.writer.close()
        if self.dist.enabled:
            dist.barrier()
        return summary

    def summary(self, stopped: bool) -> dict:
        return {
            "system": self.cfg.name,
            "finished": not stopped and self._finished(),
            "step": self.state.step,
            "epoch": self.state.epoch,
            "train_split": self.cfg.data.train_split,
            "num_train_utts": len(self.batches.utts),
            "train_seconds": round(self.state.elapsed, 2),
            "utts_per_second": round(self.state.utts / max(self.state.elapsed, 1e-9), 2),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "world_size": self.dist.world_size,
            "device": str(self.device),
            "checkpoint": str(latest_checkpoint(self.exp_dir)),
        }


def make_trainer(cfg: SystemConfig, exp_dir: str | Path, data_dir: str | Path, dump_dir: str | Path,
                 device: str = "auto", progress_bar: bool | None = None) -> Trainer:
    """The trainer a config asks for (the private and the defense trainers are subclasses of Trainer)."""
    if cfg.dp.enabled:
        from holdtts.training.dp import DPTrainer

        return DPTrainer(cfg, exp_dir, data_dir, dump_dir, device=device, progress_bar=progress_bar)
    return Trainer(cfg, exp_dir, data_dir, dump_dir, device=device, progress_bar=progress_bar)
