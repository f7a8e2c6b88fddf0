"""Training a HiFi-GAN on the member audio: random segments, the paper's GAN recipe, resumable.

Recipe (the paper and the official train.py): random 8192-sample segments of peak-normalised clips
(each clip scaled to a peak of 0.95; a shorter clip is zero-padded), log-mels computed on the fly, a
discriminator step (MPD + MSD, least squares) then a generator step (least squares + 2 x feature matching
+ 45 x mel L1), AdamW lr 2e-4, betas (0.8, 0.99), weight decay 0.01 (AdamW's default, which the official
code keeps), learning rate times 0.999 after every epoch, no gradient clipping. V1 trained for 2.5M steps
at batch 16; note that an epoch over the members alone is half an LJSpeech epoch, so the same number of
steps decays the rate further.

Differences from the official code, none of which changes what is learned: epochs are reshuffled (the
official loader reuses one shuffled order), crops are a pure function of (seed, epoch, batch), so a
resumed run sees exactly the batches an uninterrupted one would, and the discriminators score real and
generated audio in one batched call (the spectral-norm power iteration then runs once per call, not twice).

Experiment directory (as `holdtts train`):
    config.yaml          the resolved config (checked on resume)
    checkpoints/         step-N.pt (generator, discriminators, optimizers, schedulers, RNG), newest kept
    tensorboard/         losses, learning rate, validation mel error, audio and mels of validation clips
    train_log.jsonl      the logged scalars, one JSON object per log step
    train_summary.json   written when training reaches its step/epoch limit
    .lock                held by the run training into the directory (holdtts.training.lock)
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import soundfile as sf
import torch
from torch import nn

import holdtts
from holdtts.config import FeaturesConfig, config_to_dict, dump_config, ranged
from holdtts.data.corpus import SAMPLE_RATE, WavError, check_wav_complete, resample_audio
from holdtts.data.dataset import epoch_loader
from holdtts.data.mel import mel_spectrogram
from holdtts.data.splits import member_checksum
from holdtts.data.tables import iter_lines, read_table
from holdtts.errors import ConfigError, HoldttsError, InputError
from holdtts.training.loop import MAX_BAD_STEPS, TrainingLoop
from holdtts.vocoder.hifigan import (
    DiscriminatorConfig,
    GeneratorConfig,
    HifiGanDiscriminator,
    HifiGanGenerator,
    check_discriminator_config,
    check_generator_config,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    loss_mel_features,
    mel_loss,
)
from holdtts.vocoder.official import HOLDTTS_FORMAT

log = logging.getLogger(__name__)

# Splits that must stay unheard: the attacks' non-members and the quality test sentences.
PROTECTED_SPLITS = ("nonmembers", "test")
# Keys that may change between a run and its resumption (they do not change what is learned).
RESUMABLE = {"name", "data.valid_clips", "data.sample_clips"}


@dataclass
class VocoderDataConfig:
    segment_size: int = ranged(8192, ge=1)  # samples per training segment (a multiple of the hop)
    # scale each clip to this peak, as the official loader; 0 keeps the level
    peak_normalize: float = ranged(0.95, ge=0, le=1)
    valid_split: str = "valid"
    valid_clips: int = ranged(100, ge=0)  # whole validation clips scored for valid/mel_l1 (0: no validation)
    sample_clips: int = ranged(4, ge=0)  # of those, clips whose audio and mels go to TensorBoard


@dataclass
class VocoderLossConfig:
    mel_weight: float = ranged(45.0, ge=0)
    feature_weight: float = ranged(2.0, ge=0)
    fmax_for_loss: Optional[float] = ranged(None, gt=0)  # None: sample_rate / 2 (the official configs' null)


@dataclass
class VocoderTrainConfig:
    seed: int = 1234
    batch_size: int = ranged(16, ge=1)  # per process
    lr: float = ranged(2e-4, gt=0)
    betas: tuple[float, ...] = ranged((0.8, 0.99), ge=0, lt=1)
    weight_decay: float = ranged(0.01, ge=0)
    lr_decay: float = ranged(0.999, gt=0, le=1)  # multiplies the learning rate after every epoch
    max_steps: int = ranged(0, ge=0)  # 0: no step limit (use max_epochs)
    max_epochs: int = ranged(0, ge=0)  # 0: no epoch limit (use max_steps)
    precision: str = "fp32"  # "fp32" | "bf16" | "fp16" (autocast; reduced precision on the GPU only)
    checkpoint_every: int = ranged(5000, ge=0)
    keep_last: int = ranged(3, ge=1)
    valid_every: int = ranged(1000, ge=0)
    log_every: int = ranged(100, ge=1)
    sample_every: int = ranged(5000, ge=0)
    num_workers: int = ranged(0, ge=0)


@dataclass
class VocoderConfig:
    """A `holdtts train-vocoder` config (conf/vocoder_v1.yaml, ...)."""

    name: str = "hifigan_v1"
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: VocoderLossConfig = field(default_factory=VocoderLossConfig)
    data: VocoderDataConfig = field(default_factory=VocoderDataConfig)
    train: VocoderTrainConfig = field(default_factory=VocoderTrainConfig)


def load_vocoder_config(paths, overrides: Sequence[str] = ()) -> VocoderConfig:
    """Layered YAML files plus `section.key=value` overrides, checked against VocoderConfig."""
    from holdtts.config import load_config

    cfg = load_config(paths, overrides, schema=VocoderConfig)
    check_vocoder_config(cfg)
    return cfg


def check_vocoder_config(cfg: VocoderConfig) -> None:
    check_generator_config(cfg.generator, cfg.features)
    check_discriminator_config(cfg.discriminator)
    hop = cfg.features.hop_length
    if cfg.data.segment_size < hop or cfg.data.segment_size % hop:
        raise ConfigError(f"data.segment_size {cfg.data.segment_size} must be a positive multiple of the "
                          f"hop ({hop})")
    if not 0 <= cfg.data.peak_normalize <= 1:
        raise ConfigError(f"data.peak_normalize must be in [0, 1], got {cfg.data.peak_normalize}")
    if cfg.train.precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"unknown train.precision '{cfg.train.precision}' (known: fp32, bf16, fp16)")
    if cfg.train.max_steps <= 0 and cfg.train.max_epochs <= 0:
        raise ConfigError("set train.max_steps or train.max_epochs (both are 0: training would never end)")
    if len(cfg.train.betas) != 2:
        raise ConfigError(f"train.betas needs two values, got {list(cfg.train.betas)}")


# --------------------------------------------------------------------------- data


class Clip(NamedTuple):
    utt: str
    path: str
    scp: str  # the wav.scp it is listed in, and its line, for error messages
    line: int
    resample_to: int | None = None  # set for a data directory prepared with --defer-resample


def read_clips(data_dir: str | Path, split: str) -> list[Clip]:
    """The clips of data/<split>/wav.scp, sorted by id. A data directory prepared with --defer-resample
    may list audio at another rate: its clips are resampled to 22050 Hz as they are read."""
    from holdtts.data.features import defers_resampling

    scp = Path(data_dir) / split / "wav.scp"
    if not scp.is_file():
        raise InputError(f"no split '{split}' (run `holdtts prepare`)", scp)
    paths = read_table(scp)  # checks duplicates and missing values
    lines = {line.split(maxsplit=1)[0]: number for number, line in iter_lines(scp)}
    resample_to = SAMPLE_RATE if defers_resampling(data_dir) else None
    return [Clip(utt, paths[utt], str(scp), lines[utt], resample_to) for utt in sorted(paths)]


def check_train_split(data_dir: str | Path, split: str) -> None:
    """Refuse to train on audio the attacks and quality tests must find unheard."""
    if split in PROTECTED_SPLITS:
        raise HoldttsError(f"refusing to train a vocoder on '{split}': the {', '.join(PROTECTED_SPLITS)} "
                           "clips must stay unheard by every model (train on 'members', or one of its "
                           "halves)")
    train = {c.utt for c in read_clips(data_dir, split)}
    for name in PROTECTED_SPLITS:
        scp = Path(data_dir) / name / "wav.scp"
        if scp.is_file():
            overlap = sorted(train & set(read_table(scp)))
            if overlap:
                raise HoldttsError(f"refusing to train a vocoder on '{split}': {len(overlap)} of its clips "
                                   f"are in {scp} (e.g. {overlap[0]}), which must stay unheard")


def check_clips(clips: Sequence[Clip], sample_rate: int) -> None:
    """Every clip exists, is mono and has the features' sample rate (before training starts)."""
    for clip in clips:
        try:
            info = sf.info(clip.path)
        except (OSError, RuntimeError, sf.LibsndfileError) as err:
            raise InputError(f"cannot open the audio of '{clip.utt}' ({clip.path}): {err}", clip.scp,
                             clip.line) from err
        if clip.resample_to is None and (info.samplerate != sample_rate or info.channels != 1):
            raise InputError(f"'{clip.utt}' ({clip.path}) is {info.samplerate} Hz with {info.channels} "
                             f"channel(s); the vocoder needs mono {sample_rate} Hz", clip.scp, clip.line)
        try:
            check_wav_complete(clip.path)
        except WavError as err:
            raise InputError(f"'{clip.utt}' ({clip.path}): {err.message}", clip.scp, clip.line) from err


def read_clip(clip: Clip, peak: float) -> np.ndarray:
    """Float32 samples in [-1, 1], scaled to `peak` (librosa.util.normalize(y) * peak) when peak > 0."""
    try:
        wav, sr = sf.read(clip.path, dtype="float32", always_2d=clip.resample_to is not None)
    except (OSError, RuntimeError, sf.LibsndfileError) as err:
        raise InputError(f"cannot decode the audio of '{clip.utt}' ({clip.path}): {err}", clip.scp,
                         clip.line) from err
    if clip.resample_to is not None:
        wav = resample_audio(wav, sr, clip.resample_to).astype(np.float32)
    if peak > 0:
        top = float(np.abs(wav).max(initial=0.0))
        if top > 0:
            wav = wav * np.float32(peak / top)
    return wav


class SegmentBatches:
    """Batches of random segments, one deterministic order per epoch.

    Epoch e: a permutation drawn from (seed, e), cut into full batches (the last partial one is dropped,
    as the official loader); with several ranks each takes every world_size-th batch. The crop of each
    clip in batch b is drawn from (seed, e, b), so a batch is a pure function of (seed, epoch, index).
    """

    def __init__(self, clips: Sequence[Clip], batch_size: int, segment_size: int, seed: int, peak: float,
                 rank: int = 0, world_size: int = 1):
        self.clips = list(clips)
        self.batch_size, self.segment_size = batch_size, segment_size
        self.seed, self.peak = seed, peak
        self.rank, self.world_size = rank, world_size
        if len(self.clips) // batch_size < world_size:
            raise HoldttsError(f"{len(self.clips)} clips make fewer full batches of {batch_size} than there "
                               f"are ranks ({world_size}): lower train.batch_size")

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.clips))
        batches = [order[i:i + self.batch_size].tolist()
                   for i in range(0, len(order) - self.batch_size + 1, self.batch_size)]
        per_rank = len(batches) // self.world_size
        return batches[self.rank: per_rank * self.world_size: self.world_size]

    def __len__(self) -> int:
        return len(self.clips) // self.batch_size // self.world_size

    def batch(self, epoch: int, index: int, indices: Sequence[int]) -> torch.Tensor:
        """[batch, segment_size] float32."""
        rng = np.random.default_rng([self.seed, epoch, index, self.rank, 2])
        out = np.zeros((len(indices), self.segment_size), dtype=np.float32)
        for row, i in enumerate(indices):
            wav = read_clip(self.clips[i], self.peak)
            if wav.shape[0] >= self.segment_size:
                start = int(rng.integers(0, wav.shape[0] - self.segment_size + 1))
                out[row] = wav[start:start + self.segment_size]
            else:
                out[row, : wav.shape[0]] = wav  # zero-padded, as the official loader
        return torch.from_numpy(out)

    def iterate(self, epoch: int, start: int = 0) -> Iterator[torch.Tensor]:
        for index, indices in enumerate(self.epoch_batches(epoch)):
            if index >= start:
                yield self.batch(epoch, index, indices)

    def loader(self, epoch: int, start: int = 0, num_workers: int = 0, pin_memory: bool = False):
        """A DataLoader over `iterate(epoch, start)` that decodes in worker processes."""
        return epoch_loader(self.epoch_batches(epoch), self.batch, epoch, start, self.seed, num_workers, pin_memory)


class VocoderTrainer(TrainingLoop):
    """Trains a HiFi-GAN generator and its discriminators on one split (the members by default)."""

    checkpoint_format = HOLDTTS_FORMAT
    item_name = "segments"

    def __init__(self, cfg: VocoderConfig, exp_dir: str | Path, data_dir: str | Path, split: str = "members",
                 device: str = "auto", progress_bar: bool | None = None):
        check_vocoder_config(cfg)
        super().__init__(exp_dir, device, progress_bar)
        self.cfg = cfg
        self.data_dir = Path(data_dir)
        self.split = split
        self.loss_features = loss_mel_features(cfg.features, cfg.loss.fmax_for_loss)
        self._valid_audio: list[np.ndarray] | None = None
        self._logged_ground_truth = False

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        check_train_split(self.data_dir, self.split)
        clips = read_clips(self.data_dir, self.split)
        self.valid_clips: list[Clip] = []
        if self.cfg.data.valid_clips > 0 and self.cfg.train.valid_every > 0:
            valid = read_clips(self.data_dir, self.cfg.data.valid_split)
            self.valid_clips = valid[: self.cfg.data.valid_clips]
            heard = {c.utt for c in clips} & {c.utt for c in valid}
            if heard:
                raise HoldttsError(f"the validation split '{self.cfg.data.valid_split}' shares {len(heard)} "
                                   f"clips with the training split '{self.split}' (e.g. {sorted(heard)[0]})")
        check_clips(clips + self.valid_clips, self.cfg.features.sample_rate)
        self._start_processes()
        t = self.cfg.train
        self.batches = SegmentBatches(clips, t.batch_size, self.cfg.data.segment_size, t.seed,
                                      self.cfg.data.peak_normalize, self.dist.rank, self.dist.world_size)
        self.members_sha256 = member_checksum(c.utt for c in clips)
        torch.manual_seed(t.seed + self.dist.rank)
        np.random.seed(t.seed + self.dist.rank)
        self.generator = HifiGanGenerator(self.cfg.generator, self.cfg.features.n_mels).to(self.device)
        self.discriminator = HifiGanDiscriminator(self.cfg.discriminator).to(self.device)
        self.g_wrapped, self.d_wrapped = self.generator, self.discriminator
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_wrapped = nn.parallel.DistributedDataParallel(self.generator, device_ids=ids)
            self.d_wrapped = nn.parallel.DistributedDataParallel(self.discriminator, device_ids=ids)
        self.optim_g = torch.optim.AdamW(self.generator.parameters(), t.lr, betas=tuple(t.betas),
                                         weight_decay=t.weight_decay)
        self.optim_d = torch.optim.AdamW(self.discriminator.parameters(), t.lr, betas=tuple(t.betas),
                                         weight_decay=t.weight_decay)
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.optim_g, gamma=t.lr_decay)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.optim_d, gamma=t.lr_decay)
        fp16 = self.device.type == "cuda" and t.precision == "fp16"
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=fp16)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=fp16)
        self._resume()

    def _resume(self) -> None:
        latest = self._latest_state(dump_config(self.cfg))
        if latest is None:
            return
        checkpoint, state = latest
        self._check_same_config(state["config"], config_to_dict(self.cfg), RESUMABLE)
        if state["train_split"] != self.split:
            raise HoldttsError(f"{checkpoint}: trained on split '{state['train_split']}', asked to go on "
                               f"with '{self.split}'")
        self._check_same_members(checkpoint, state)
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        for name in ("optim_g", "optim_d", "sched_g", "sched_d", "scaler_g", "scaler_d"):
            getattr(self, name).load_state_dict(state[name])
        self._restore_progress(checkpoint, state, dump_config(self.cfg))

    # ------------------------------------------------------------------ checkpoints and logs

    def checkpoint_state(self) -> dict:
        return {
            "format": self.checkpoint_format,
            "holdtts_version": holdtts.__version__,
            "config": config_to_dict(self.cfg),
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "optim_g": self.optim_g.state_dict(),
            "optim_d": self.optim_d.state_dict(),
            "sched_g": self.sched_g.state_dict(),
            "sched_d": self.sched_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "progress": vars(self.state).copy(),
            "rng": self._rng_states(),
            "world_size": self.dist.world_size,
            "train_split": self.split,
            "num_train_utts": len(self.batches.clips),
            "members_sha256": self.members_sha256,
        }

    # ------------------------------------------------------------------ one step

    def train_step(self, audio: torch.Tensor) -> dict[str, float] | None:
        """One discriminator update then one generator update on a batch of segments [B, samples]."""
        self.generator.train()
        self.discriminator.train()
        y = audio.to(self.device, non_blocking=True).unsqueeze(1)
        with torch.no_grad():
            mels = mel_spectrogram(y.squeeze(1), self.cfg.features)
        with self._autocast():
            y_hat = self.g_wrapped(mels)

        with self._autocast():
            real_scores, fake_scores, _, _ = self.d_wrapped(y, y_hat.detach())
            loss_d = discriminator_loss(real_scores, fake_scores)
        self.optim_d.zero_grad(set_to_none=True)
        if not self._finite(loss_d, "discriminator"):
            return None
        self.scaler_d.scale(loss_d).backward()
        self.scaler_d.unscale_(self.optim_d)
        grad_norm_d = _grad_norm(self.discriminator.parameters())
        self.scaler_d.step(self.optim_d)
        self.scaler_d.update()

        loss_cfg = self.cfg.loss
        with self._autocast():
            _, fake_scores, real_fmaps, fake_fmaps = self.d_wrapped(y, y_hat)
            loss_adv = generator_adversarial_loss(fake_scores)
            loss_fm = feature_matching_loss(real_fmaps, fake_fmaps)
        loss_mel = mel_loss(y, y_hat, self.loss_features)
        loss_g = loss_adv + loss_cfg.feature_weight * loss_fm + loss_cfg.mel_weight * loss_mel
        self.optim_g.zero_grad(set_to_none=True)
        if not self._finite(loss_g, "generator"):
            return None
        self._bad_steps = 0
        self.scaler_g.scale(loss_g).backward()
        self.scaler_g.unscale_(self.optim_g)
        grad_norm_g = _grad_norm(self.generator.parameters())
        self.scaler_g.step(self.optim_g)
        self.scaler_g.update()
        losses = {"loss_d": loss_d, "loss_g": loss_g, "loss_g_adv": loss_adv, "loss_fm": loss_fm,
                  "loss_mel": loss_mel}
        return {**{k: float(v.detach()) for k, v in losses.items()}, "grad_norm_g": grad_norm_g,
                "grad_norm_d": grad_norm_d}

    def _finite(self, loss: torch.Tensor, which: str) -> bool:
        if torch.isfinite(loss):
            return True
        self._bad_steps += 1
        self.state.skipped_steps += 1
        log.warning("step %d: non-finite %s loss (%s); step skipped", self.state.step, which, loss.item())
        if self._bad_steps >= MAX_BAD_STEPS:
            raise HoldttsError(f"{MAX_BAD_STEPS} consecutive non-finite losses at step {self.state.step}: "
                               "lower train.lr or use train.precision=fp32")
        return False

    # ------------------------------------------------------------------ validation and samples

    def _validation_audio(self) -> list[np.ndarray]:
        if self._valid_audio is None:
            self._valid_audio = [read_clip(c, self.cfg.data.peak_normalize) for c in self.valid_clips]
        return self._valid_audio

    @torch.no_grad()
    def _vocode_clip(self, wav: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(real [1, samples], vocoded [1, frames * hop]) of a whole clip."""
        y = torch.from_numpy(wav).to(self.device).unsqueeze(0)
        with self._autocast():
            y_hat = self.generator(mel_spectrogram(y, self.cfg.features))
        return y, y_hat.squeeze(1).float()

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss-mel L1 between the whole validation clips and their vocoded mels (official metric)."""
        self.generator.eval()
        errors = []
        for wav in self._validation_audio():
            y, y_hat = self._vocode_clip(wav)
            errors.append(float(mel_loss(y, y_hat, self.loss_features)))
        return {"valid/mel_l1": float(np.mean(errors))}

    @torch.no_grad()
    def write_samples(self) -> None:
        """Vocoded audio and mels of the first validation clips (the real ones the first time)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.generator.eval()
        rate = self.cfg.features.sample_rate
        for clip, wav in list(zip(self.valid_clips, self._validation_audio()))[: self.cfg.data.sample_clips]:
            y, y_hat = self._vocode_clip(wav)
            y = y[:, : y_hat.shape[-1]]
            real_mel = mel_spectrogram(y[0], self.cfg.features).cpu().numpy()
            fake_mel = mel_spectrogram(y_hat[0], self.cfg.features).cpu().numpy()
            if not self._logged_ground_truth:
                self.writer.add_audio(f"real/{clip.utt}", y.cpu(), self.state.step, sample_rate=rate)
            self.writer.add_audio(f"generated/{clip.utt}", y_hat.cpu(), self.state.step, sample_rate=rate)
            fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
            for ax, mel, title in zip(axes, (real_mel, fake_mel), ("real", "vocoded (mel of the output)")):
                ax.imshow(mel, origin="lower", aspect="auto", interpolation="none", vmin=-11.5, vmax=2.5)
                ax.set_title(f"{clip.utt}: {title}")
            fig.tight_layout()
            self.writer.add_figure(f"mel/{clip.utt}", fig, self.state.step)
            plt.close(fig)
        self._logged_ground_truth = True

    # ------------------------------------------------------------------ the loop

    def describe(self) -> str:
        return (f"training vocoder {self.cfg.name} on '{self.split}': {len(self.batches.clips)} clips, "
                f"{len(self.batches)} batches/epoch")

    def current_lr(self) -> float:
        return self.sched_g.get_last_lr()[0]

    def batch_items(self, audio: torch.Tensor) -> int:
        return audio.shape[0]

    def wants_validation(self) -> bool:
        return bool(self.valid_clips)

    def num_train_items(self) -> int:
        return len(self.batches.clips)

    def on_epoch_end(self, epoch: int) -> None:
        # the paper's schedule: the learning rates decay once per epoch
        self.sched_g.step()
        self.sched_d.step()

    def summary(self, stopped: bool) -> dict:
        return {**super().summary(stopped), "train_split": self.split, "num_train_utts": len(self.batches.clips),
                "segments_per_second": self.items_per_second(),
                "generator_parameters": sum(p.numel() for p in self.generator.parameters()),
                "discriminator_parameters": sum(p.numel() for p in self.discriminator.parameters())}


def _grad_norm(parameters) -> float:
    grads = [p.grad for p in parameters if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))
