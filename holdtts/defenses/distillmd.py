"""DistillMD (Tran et al. 2024; THEORY.md section 4): a student GradTTS trained on both halves of the
members, where every training signal for an utterance comes from the teacher that never saw it.

Batches never mix the halves and alternate half1, half2, half1, ... For a batch from one half the other
half's teacher (EMA weights, eval mode, no gradient) supplies everything the student is fitted to:

- alignment: the teacher's monotonic alignment search of its own mu_x against the real mel. The decoder
  crop and the frame-level mu come from it; the student runs no alignment of its own.
- decoder: the teacher's eps_hat at the noised crop u_t = a_t (x0 - mu_T) + C_t eps, the student evaluated
  at the same (u_t, t, mu_T, mask). The drawn noise eps only builds u_t: it never enters the loss.
- encoder: the student's mu_x, expanded along the teacher's alignment, regressed on the teacher's aligned
  mu_T over the whole utterance, 0.5 squared error per element (Grad-TTS's prior loss with the teacher's
  mean in place of the member's mel).
- duration predictor: the student's log-durations regressed on the teacher's predicted log-durations (a
  function of the text), never on the durations the alignment found in the member's recording.

The terms keep Grad-TTS's names (duration, prior, diffusion) and weights (loss.*_weight), so TensorBoard,
train_log.jsonl and the validation loss (the ordinary losses on the valid split) read as for any system.
The student is an ordinary GradTTS checkpoint in the experiment directory: every attack, `synthesize` and
`evaluate` work on it unchanged, with the members (both halves) as its train split.

Multi-speaker systems: the student learns each utterance under its own speaker's row. The teacher is asked
under the same speaker when it trained on that speaker, and under its mean voice (the mean of the rows it
trained) when it never saw the speaker, as happens when the halves are split by speaker: a row the
teacher never trained is its random initialisation, no target for anything.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from holdtts.config import SystemConfig
from holdtts.data.dataset import Batch, BucketedBatches, epoch_loader
from holdtts.defenses.dualmd import (
    TEACHER_DIRS,
    component_facts,
    finished_summary,
    load_halves,
    teacher_speakers,
    train_teachers,
    write_system_info,
)
from holdtts.diffusion.losses import WEIGHTINGS, noised_state, sample_times, score_weight
from holdtts.errors import ConfigError, HoldttsError
from holdtts.models.loading import load_model
from holdtts.models.tts import GradTTS
from holdtts.training.trainer import Trainer
from holdtts.utils.fileio import file_sha256

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- targets and the student's terms


@dataclass
class DistillTargets:
    """What the teacher that never saw a batch says about it (no gradient), for the student's step."""

    logw: Tensor  # [B, 1, L] the teacher's predicted log-durations
    x_mask: Tensor  # [B, 1, L]
    attn: Tensor  # [B, L, T] the teacher's alignment of its mu_x to the real mels
    mu_y: Tensor  # [B, n_feats, T] the teacher's mu_x expanded along attn
    y_mask: Tensor  # [B, 1, T]
    t: Tensor  # [B] diffusion times on the process's clock
    u_t: Tensor  # [B, n, n_feats, S] the noised state of the crop's x0 - mu
    mu: Tensor  # [B, n_feats, S] the crop of mu_y
    mask: Tensor  # [B, 1, S]
    eps: Tensor  # [B, n_feats, S] the teacher's eps_hat(u_t, t, mu, mask): the decoder's target


@torch.no_grad()
def distillation_targets(teacher: GradTTS, student: GradTTS, batch: Batch, generator: torch.Generator | None = None,
                         t_sampling: str = "uniform", teacher_speakers: Tensor | None = None) -> DistillTargets:
    """The teacher's alignment, crop (of the student's segment length), noised point and targets for a batch.
    `teacher_speakers`: the speaker condition the teacher is asked under (multi-speaker systems)."""
    alignment = teacher.align(batch.tokens, batch.token_lengths, batch.mels, batch.mel_lengths, teacher_speakers)
    segment = student.crop(batch.mels, alignment, batch.crop_starts)
    t = sample_times(student.process, len(batch), generator=generator, device=batch.mels.device, method=t_sampling)
    q0 = (segment.x0 - segment.mu) * segment.mask
    u_t, _ = noised_state(student.process, q0, t, generator=generator, mask=segment.mask)
    eps = teacher.eps_hat(u_t, t, segment.mu, segment.mask, teacher_speakers)
    return DistillTargets(alignment.logw, alignment.x_mask, alignment.attn, alignment.mu_y, alignment.y_mask, t,
                          u_t, segment.mu, segment.mask, eps)


class StudentGradTTS(GradTTS):
    """A GradTTS whose training step can take a teacher's targets in place of the data's. It has exactly
    GradTTS's parameters, so its checkpoint is an ordinary GradTTS checkpoint."""

    def forward(self, tokens, token_lengths, mels=None, mel_lengths=None, crop_starts=None,
                generator: torch.Generator | None = None,
                targets: DistillTargets | None = None, speakers: Tensor | None = None) -> dict[str, Tensor]:
        """Per-utterance distillation terms [B] given `targets`; GradTTS's own terms without (validation).
        The distillation step as `forward`, so DistributedDataParallel sees it."""
        if targets is None:
            return super().forward(tokens, token_lengths, mels, mel_lengths, crop_starts, generator=generator,
                                   speakers=speakers)
        return self.distillation_losses(tokens, token_lengths, targets, speakers)

    def distillation_losses(self, tokens: Tensor, token_lengths: Tensor, targets: DistillTargets,
                            speakers: Tensor | None = None) -> dict[str, Tensor]:
        speakers = self.speaker_vector(speakers, tokens.shape[0]) if self.n_speakers > 1 else speakers
        mu_x, logw, x_mask = self.encode(tokens, token_lengths, speakers)
        duration = ((logw - targets.logw).square() * x_mask).sum((1, 2)) / x_mask.sum((1, 2))
        mu_y = (targets.attn.transpose(1, 2) @ mu_x.transpose(1, 2)).transpose(1, 2)
        y_mask = targets.y_mask
        prior = 0.5 * ((mu_y - targets.mu_y).square() * y_mask).sum((1, 2)) / (y_mask.sum((1, 2)) * self.n_feats)
        eps_hat = self.eps_hat(targets.u_t, targets.t, targets.mu, targets.mask, speakers)
        error = (eps_hat.float() - targets.eps.float()) * targets.mask
        diffusion = error.square().sum((1, 2)) / (targets.mask.sum((1, 2)) * self.n_feats)
        weighting = self.cfg.loss.weighting
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"unknown loss weighting {weighting!r} (known: {', '.join(WEIGHTINGS)})")
        if weighting == "score":
            diffusion = diffusion * score_weight(self.process, targets.t).to(diffusion.dtype)
        return {"duration": duration, "prior": prior, "diffusion": diffusion}


# --------------------------------------------------------------------------- batches


class AlternatingBatches:
    """One epoch: batch i of half 1, batch i of half 2, batch i + 1 of half 1, ... (the larger half's extra
    batches, if any, at the end). Each half is bucketed by length on its own, so no batch mixes halves;
    resuming mid-epoch and DDP sharding work as for BucketedBatches."""

    def __init__(self, halves: Sequence[BucketedBatches]):
        self.halves = list(halves)
        self.utts = sorted(u for half in self.halves for u in half.utts)
        self.seed = self.halves[0].seed

    def epoch_batches(self, epoch: int) -> list[tuple[int, int, list[int]]]:
        """(half, index of the batch within its half's epoch, utterance indices within the half)."""
        per_half = [half.epoch_batches(epoch) for half in self.halves]
        order = []
        for i in range(max(len(batches) for batches in per_half)):
            order += [(k, i, batches[i]) for k, batches in enumerate(per_half) if i < len(batches)]
        return order

    def __len__(self) -> int:
        return len(self.epoch_batches(0))

    def batch(self, epoch: int, position: int) -> Batch:
        return self._batch_of(epoch, position, self.epoch_batches(epoch)[position])

    def _batch_of(self, epoch: int, position: int, entry: tuple[int, int, list[int]]) -> Batch:
        k, index, indices = entry
        return self.halves[k].batch(epoch, index, indices)

    def loader(self, epoch: int, start: int = 0, num_workers: int = 0, pin_memory: bool = False):
        return epoch_loader(self.epoch_batches(epoch), self._batch_of, epoch, start, self.seed, num_workers,
                            pin_memory)


# --------------------------------------------------------------------------- the trainer


class DistillTrainer(Trainer):
    """The shared training loop with DistillMD's step: alternating half batches, targets from the other
    half's teacher. `teacher_dirs[k]` must hold a finished teacher trained on defense.halves[k]."""

    def __init__(self, cfg: SystemConfig, exp_dir: str | Path, data_dir: str | Path, dump_dir: str | Path,
                 teacher_dirs: Sequence[str | Path], device: str = "auto", progress_bar: bool | None = None):
        if cfg.dp.enabled:
            raise ConfigError("defense.kind distillmd does not combine with dp.enabled")
        if len(teacher_dirs) != 2:
            raise ValueError(f"DistillMD needs two teachers, got {len(teacher_dirs)}")
        super().__init__(cfg, exp_dir, data_dir, dump_dir, device=device, progress_bar=progress_bar)
        self.teacher_dirs = [Path(d) for d in teacher_dirs]
        self.teachers: list[GradTTS] = []
        self.teacher_sha256: list[str] = []  # each teacher checkpoint's, read once at setup

    def setup(self) -> None:
        self.halves = load_halves(self.cfg, self.data_dir)
        self.half_of = {utt: k for k, utts in enumerate(self.halves) for utt in utts}
        self.teachers = [self._load_teacher(k) for k in range(2)]
        # tells teachers trained again to the same step apart (a fresh machine retrains DualMD teachers
        # whose checkpoints were never kept)
        self.teacher_sha256 = [file_sha256(teacher.checkpoint) for teacher in self.teachers]
        super().setup()

    def _load_teacher(self, k: int) -> GradTTS:
        teacher = load_model(self.teacher_dirs[k], device=self.device)
        split = teacher.checkpoint_state.get("train_split")
        if split != self.cfg.defense.halves[k]:
            raise HoldttsError(f"{teacher.checkpoint}: teacher {k + 1} was trained on '{split}', not on "
                               f"'{self.cfg.defense.halves[k]}': it could have seen the utterances it would teach")
        return teacher

    def build_model(self, n_vocab: int) -> StudentGradTTS:
        student = StudentGradTTS(self.cfg, n_vocab)
        for teacher in self.teachers:
            where = teacher.checkpoint
            if teacher.process.to_dict() != student.process.to_dict():
                raise HoldttsError(f"{where}: the teacher's process {teacher.process.to_dict()} differs from the "
                                   f"student's {student.process.to_dict()}; its eps_hat is no target for it")
            if teacher.symbols != self.symbols or teacher.n_feats != student.n_feats:
                raise HoldttsError(f"{where}: the teacher's symbols or mel bands differ from {self.dump_dir}")
            recorded = teacher.checkpoint_state.get("speakers")
            if (recorded or {}).get("sha256") != (None if self.speaker_map is None else self.speaker_map.checksum):
                raise HoldttsError(f"{where}: the teacher's speaker table (spk2id) differs from the student's "
                                   f"data directory {self.data_dir}")
            if teacher.pad_frames(student.segment_frames) != student.segment_frames:
                raise HoldttsError(f"{where}: the teacher's U-Net does not take {student.segment_frames}-frame "
                                   "crops; choose data.segment_frames a multiple of both U-Nets' length unit")
        return student

    def train_utts(self) -> list[str]:
        return sorted(self.half_of)

    def make_batches(self) -> AlternatingBatches:
        t, d = self.cfg.train, self.cfg.data
        for k, utts in enumerate(self.halves):
            self.store.check_utts(utts, self.data_dir / self.cfg.defense.halves[k])
        return AlternatingBatches([
            BucketedBatches(self.store, utts, t.batch_size, d.segment_frames, t.seed + k, d.bucket_size,
                            self.dist.rank, self.dist.world_size, speakers=self.utt_speakers(utts))
            for k, utts in enumerate(self.halves)])

    def teacher_for(self, batch: Batch) -> int:
        """The index of the teacher that never saw the batch: the other half's."""
        halves = {self.half_of[utt] for utt in batch.utt_ids}
        if len(halves) != 1:
            raise HoldttsError(f"a batch mixes the halves: {', '.join(batch.utt_ids)}")
        return 1 - halves.pop()

    def step_losses(self, batch: Batch) -> dict[str, Tensor]:
        teacher = self.teachers[self.teacher_for(batch)]
        targets = distillation_targets(teacher, self.model, batch, t_sampling=self.cfg.loss.t_sampling,
                                       teacher_speakers=teacher_speakers(teacher, batch.speakers))
        if batch.speakers is None:
            return self.wrapped(batch.tokens, batch.token_lengths, targets=targets)
        return self.wrapped(batch.tokens, batch.token_lengths, targets=targets, speakers=batch.speakers)

    def _teacher_record(self) -> list[dict]:
        return [{"path": str(d), "step": teacher.step, "train_split": teacher.checkpoint_state.get("train_split"),
                 "sha256": digest}
                for d, teacher, digest in zip(self.teacher_dirs, self.teachers, self.teacher_sha256)]

    def extra_checkpoint_state(self) -> dict:
        return {"distillation_teachers": self._teacher_record()}

    def load_extra_checkpoint_state(self, state: dict) -> None:
        then, now = state.get("distillation_teachers"), self._teacher_record()
        if then is None:
            return
        # a record from before the checksum was kept compares on step and split alone
        keys = [[key for key in ("step", "train_split", "sha256") if key in old] for old in then]
        if len(then) != len(now) or any(old[k] != new[k] for old, new, ks in zip(then, now, keys) for k in ks):
            raise HoldttsError(f"{self.exp_dir}: the student was distilled so far from teachers {then}, now they "
                               f"are {now}; resuming would mix two targets. Use a new --exp-dir.")


class DistillMDTraining:
    """`holdtts train` for defense.kind "distillmd": the teachers (defense.teachers_dir, or trained first into
    <exp-dir>/teacher1 and teacher2), then the student in <exp-dir>, then system.json."""

    def __init__(self, cfg: SystemConfig, exp_dir: str | Path, data_dir: str | Path, dump_dir: str | Path,
                 device: str = "auto", progress_bar: bool | None = None):
        self.cfg, self.exp_dir, self.data_dir, self.dump_dir = cfg, Path(exp_dir), Path(data_dir), Path(dump_dir)
        self.device, self.progress_bar = device, progress_bar

    def teacher_dirs(self) -> list[Path]:
        base = Path(self.cfg.defense.teachers_dir) if self.cfg.defense.teachers_dir else self.exp_dir
        return [base / name for name in TEACHER_DIRS]

    def run(self) -> dict:
        load_halves(self.cfg, self.data_dir)
        if not self.cfg.defense.teachers_dir:
            summaries = train_teachers(self.cfg, self.exp_dir, self.data_dir, self.dump_dir, self.device,
                                       self.progress_bar)
            if len(summaries) < len(TEACHER_DIRS) or not summaries[-1]["finished"]:
                return {"system": self.cfg.name, "finished": False, "teachers": summaries}
        teacher_dirs = self.teacher_dirs()
        for directory in teacher_dirs:
            finished_summary(directory)
        summary = DistillTrainer(self.cfg, self.exp_dir, self.data_dir, self.dump_dir, teacher_dirs, self.device,
                                 self.progress_bar).run()
        if not summary["finished"]:
            return summary
        components = {name: component_facts(self.exp_dir, directory, "teacher")
                      for name, directory in zip(TEACHER_DIRS, teacher_dirs)}
        components["student"] = component_facts(self.exp_dir, self.exp_dir, "student")
        return {**write_system_info(self.exp_dir, self.cfg, components, deployed=("student",)), "finished": True}
