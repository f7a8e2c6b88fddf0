"""What every training loop here shares (the TTS `Trainer`, its DP and DistillMD subclasses, the HiFi-GAN
`VocoderTrainer`): torchrun's ranks, the progress counters saved in each checkpoint, the device and
autocast choice, the step budget, checkpoint saving, the scalar log and the stop-on-signal protocol.

A subclass sets `cfg` (its `train` section holds max_steps, max_epochs, precision, keep_last, log_every,
valid_every, sample_every, checkpoint_every, num_workers) and, in `setup()`, `batches` (with `len()` and
`loader(epoch, start, num_workers, pin_memory)`); it writes `setup`, `train_step`, `checkpoint_state`,
`validate`, `write_samples`, `summary`, `describe` and `current_lr`, and sets `members_sha256` (the
checksum of the ids it trains on, `holdtts.data.splits.member_checksum`) before resuming.

What a run guarantees (docs/reliability.md): an exclusive lock on the experiment directory for its
lifetime; temporary files of writes a kill interrupted are swept at start; a partial last line of
train_log.jsonl is cut on resume; a resume onto another member list is refused; a run stopped by a
signal saves a checkpoint and reports it (`interrupted_by`), so the command exits 128 + the signal's
number (130 for SIGINT, 143 for SIGTERM) and a recipe never marks it done.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from holdtts.data.features import resolve_device
from holdtts.errors import ConfigError, HoldttsError, MembershipMismatchError
from holdtts.training.lock import ExperimentLock
from holdtts.utils.checkpoint import (
    CHECKPOINT_DIR,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from holdtts.utils.fileio import ensure_dir, sweep_temp_files, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

# train.* settings that may change between a run and its resumption (they do not change what is learned).
RESUMABLE_CHANGES = {"max_steps", "max_epochs", "checkpoint_every", "keep_last", "valid_every", "log_every",
                     "sample_every", "num_workers", "attack_every_epochs", "attack", "attack_max_utts"}
MAX_BAD_STEPS = 10  # consecutive non-finite losses before training stops with an error


class StopNow(KeyboardInterrupt):
    """A second SIGINT/SIGTERM during a run: stop at once, without the final checkpoint."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def exit_status(summary: dict) -> int:
    """The exit status of a training command from its summary: 0 when it finished; 128 + the signal's
    number (130 SIGINT, 143 SIGTERM) when a signal stopped it (the shells' convention, so a recipe does
    not mark it done); 1 when it stopped for another reason. A defense's summary lists its teachers'."""
    if summary.get("finished"):
        return 0
    for part in [summary, *summary.get("teachers", [])]:
        name = part.get("interrupted_by")
        if name:
            return 128 + int(signal.Signals[name])
    return 1


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
    utts: int = 0  # utterances (or audio segments) seen over all ranks
    # steps skipped for a non-finite loss or gradient, and (DP-SGD) utterances whose own gradient was
    # non-finite and counted as zero; a checkpoint written before holdtts counted them resumes them from 0
    skipped_steps: int = 0
    nonfinite_utt_gradients: int = 0


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The settings that differ between a saved config and the current one, as 'key: old -> new' lines,
    leaving out the train.* settings a resumed run may change."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        where = f"{prefix}.{key}" if prefix else key
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, where)
        elif a != b and not (prefix == "train" and key in RESUMABLE_CHANGES):
            diffs.append(f"{where}: {a!r} -> {b!r}")
    return diffs


class TrainingLoop:
    """The parts of a resumable, distributed training loop that do not depend on what is trained."""

    def __init__(self, exp_dir: str | Path, device: str, progress_bar: bool | None):
        self.exp_dir = Path(exp_dir)
        self.dist = DistInfo.from_env()
        self.device = self._device(device)
        self.progress_bar = sys.stderr.isatty() if progress_bar is None else progress_bar
        self.state = Progress()
        self._stop_signal: int | None = None
        self._bad_steps = 0
        self.writer = None
        self.lock = ExperimentLock(self.exp_dir)
        self.members_sha256: str | None = None

    # ------------------------------------------------------------------ what a subclass writes

    item_name = "utts"  # what a batch holds, for the throughput scalar (train/<item_name>_per_sec)

    def setup(self) -> None:
        raise NotImplementedError

    def train_step(self, batch) -> dict[str, float] | None:
        """One optimisation step; its scalars, or None for a skipped (non-finite) step."""
        raise NotImplementedError

    def checkpoint_state(self) -> dict:
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        raise NotImplementedError

    def write_samples(self) -> None:
        raise NotImplementedError

    def summary(self, stopped: bool) -> dict:
        """train_summary.json's fields every trainer writes; subclasses add their data and sizes."""
        return {
            "system": self.cfg.name,
            "finished": not stopped and self._finished(),
            "step": self.state.step,
            "epoch": self.state.epoch,
            "train_seconds": round(self.state.elapsed, 2),
            "skipped_steps": self.state.skipped_steps,
            "world_size": self.dist.world_size,
            "device": str(self.device),
            "checkpoint": str(latest_checkpoint(self.exp_dir)),
        }

    def items_per_second(self) -> float:
        return round(self.state.utts / max(self.state.elapsed, 1e-9), 2)

    def describe(self) -> str:
        """The line logged when training starts."""
        raise NotImplementedError

    def current_lr(self) -> float:
        raise NotImplementedError

    def batch_items(self, batch) -> int:
        return len(batch)

    def wants_validation(self) -> bool:
        return True

    def on_epoch_end(self, epoch: int) -> None:
        """Called after each full epoch, `epoch` being the number of epochs done."""

    def _start_processes(self) -> None:
        """Join torchrun's process group, set up the GPU for speed, create the experiment directory."""
        if self.dist.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        if self.dist.is_main:
            ensure_dir(self.exp_dir)
            self.lock.acquire()  # before anything is written into the experiment
            self._sweep_temp_files()

    def _sweep_temp_files(self) -> None:
        """Remove what writes killed before their rename left (partial checkpoints, logs, summaries)."""
        for folder in (self.exp_dir, self.exp_dir / CHECKPOINT_DIR):
            removed = sweep_temp_files(folder)
            if removed:
                log.warning("removed %d temporary file(s) of interrupted writes from %s (%.1f MB): %s",
                            len(removed), folder, sum(size for _, size in removed) / 1e6,
                            ", ".join(p.name for p, _ in removed))

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

    def _finished(self) -> bool:
        t = self.cfg.train
        return ((t.max_steps > 0 and self.state.step >= t.max_steps)
                or (t.max_epochs > 0 and self.state.epoch >= t.max_epochs))

    # ------------------------------------------------------------------ checkpoints and logs

    def _rng_states(self) -> list:
        """Every rank's RNG states (each rank joins the gather), for the checkpoint."""
        rngs = [rng_state()]
        if self.dist.enabled:
            gathered = [None] * self.dist.world_size
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        return rngs

    def _latest_state(self, config_text: str) -> tuple[Path, dict] | None:
        """The newest checkpoint of the experiment and its contents (its format checked), or None for a fresh
        start. Either way config.yaml ends up holding `config_text`, the config of this run."""
        checkpoint = latest_checkpoint(self.exp_dir)
        if checkpoint is None:
            if self.dist.is_main:
                write_text_atomic(self.exp_dir / "config.yaml", config_text)
                self._truncate_log(0)  # lines of a run killed before its first checkpoint are redone
            return None
        state = load_checkpoint(checkpoint)
        if state.get("format") != self.checkpoint_format:
            raise HoldttsError(f"{checkpoint}: a '{state.get('format')}' checkpoint; this trainer writes "
                               f"'{self.checkpoint_format}' (use another --exp-dir)")
        return checkpoint, state

    def _check_same_config(self, saved: dict, current: dict, also_resumable: set[str] = frozenset()) -> None:
        diffs = [d for d in config_differences(saved, current) if d.split(":", 1)[0] not in also_resumable]
        if diffs:
            raise ConfigError(f"{self.exp_dir} was trained with a different config; resuming would mix two "
                              "experiments. Differences: " + "; ".join(diffs)
                              + ". Use a new --exp-dir, or the original config.")

    def _check_same_members(self, checkpoint: Path, state: dict) -> None:
        """Refuse to go on training onto another member list than the checkpoint's (splits remade since)."""
        then, now = state.get("members_sha256"), self.members_sha256
        if then is None:
            count = state.get("num_train_utts")
            if count is not None and now is not None and count != self.num_train_items():
                raise MembershipMismatchError(
                    f"{checkpoint}: trained on {count} utterances, the training split now has "
                    f"{self.num_train_items()}: the splits were remade. Use a new --exp-dir.")
            log.warning("%s: an older checkpoint without the member list's checksum; cannot check that the "
                        "training split is the one it was trained on", checkpoint)
            return
        if then != now:
            raise MembershipMismatchError(
                f"{checkpoint}: trained on another member list (sha256 {then[:12]}..., now {str(now)[:12]}...): "
                "the splits were remade since, so resuming would train on utterances that are now "
                "non-members or test sentences. Use a new --exp-dir (or the data directory it was trained on).")

    def num_train_items(self) -> int:
        return len(self.batches.utts)

    def _restore_progress(self, checkpoint: Path, state: dict, config_text: str) -> None:
        """Step counters and RNG streams from a checkpoint; the log is cut back to its step."""
        self.state = Progress(**state["progress"])
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            set_rng_state(rngs[self.dist.rank])
        else:
            log.warning("resuming on %d ranks from a run on %d: random streams restart from the seed",
                        self.dist.world_size, len(rngs))
        if self.dist.is_main:
            write_text_atomic(self.exp_dir / "config.yaml", config_text)
            self._truncate_log(self.state.step)
        log.info("resumed %s at step %d (epoch %d, batch %d)", checkpoint, self.state.step, self.state.epoch,
                 self.state.batch_in_epoch)

    def save(self) -> Path | None:
        state = self.checkpoint_state()  # every rank joins the RNG gather
        self._saved_step = self.state.step
        if not self.dist.is_main:
            return None
        return save_checkpoint(state, self.exp_dir, self.state.step, self.cfg.train.keep_last)

    def _truncate_log(self, step: int) -> None:
        """Drop log lines past `step` (a resumed run logs those steps again). A kill during an append leaves
        a partial last line: the log is cut back to its last complete line, with a warning."""
        path = self.exp_dir / "train_log.jsonl"
        if not path.exists():
            return
        text = path.read_text(encoding="utf-8", errors="replace")
        kept = []
        for number, line in enumerate(text.split("\n"), 1):
            if not line:
                continue
            try:
                record = json.loads(line)
                line_step = int(record["step"])
            except (ValueError, KeyError, TypeError):
                log.warning("%s:%d: an incomplete line (a run killed while writing it); the log is cut back to "
                            "the last complete line before it", path, number)
                break
            if line_step <= step:
                kept.append(line)
        write_text_atomic(path, "".join(line + "\n" for line in kept))

    def log_scalars(self, scalars: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        step = self.state.step
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)
        with open(self.exp_dir / "train_log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "epoch": self.state.epoch, **scalars}) + "\n")

    def _handle_signal(self, signum, frame) -> None:
        if self._stop_signal is not None:  # a second signal: stop now
            raise StopNow(signum)
        self._stop_signal = signum
        log.warning("signal %d: saving a checkpoint after this step, then stopping", signum)

    def _should_stop(self) -> bool:
        """Whether any rank was asked to stop (all ranks stop at the same step)."""
        if self.dist.enabled:
            tensor = torch.tensor([float(self._stop_signal or 0)], device=self.device)
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
            if tensor.item() > 0 and self._stop_signal is None:
                self._stop_signal = int(tensor.item())  # another rank's signal
        return self._stop_signal is not None

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict:
        """Train until the step/epoch limit (or a SIGINT/SIGTERM); returns a summary dict.

        A signal finishes the current step, saves a checkpoint and returns without train_summary.json,
        with "interrupted_by" (the signal's name) in the summary, so the same command resumes (mid-epoch,
        at the next batch) and `exit_status` gives the command's exit status. The experiment stays
        locked from setup to return.
        """
        try:
            return self._run()
        finally:
            if self.writer is not None:
                self.writer.close()
            self.lock.release()

    def _run(self) -> dict:
        self.setup()
        from torch.utils.tensorboard import SummaryWriter

        if self.dist.is_main:
            self.writer = SummaryWriter(str(self.exp_dir / "tensorboard"), purge_step=self.state.step + 1)
        previous = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self._saved_step = self.state.step if latest_checkpoint(self.exp_dir) else -1
        if self.dist.is_main and not self._finished():
            # a longer run than the one it describes: it no longer says where the checkpoints are
            (self.exp_dir / "train_summary.json").unlink(missing_ok=True)
        t = self.cfg.train
        bar = None
        if self.progress_bar and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=self._total_steps(), initial=self.state.step, unit="step", dynamic_ncols=True)
        log.info("%s, device %s, %d rank(s)", self.describe(), self.device, self.dist.world_size)
        rate_key = f"train/{self.item_name}_per_sec"
        window_start, window_items, window_steps = time.perf_counter(), 0, 0
        running: dict[str, float] = {}
        stopped = False
        try:
            while not self._finished() and not stopped:
                loader = self.batches.loader(self.state.epoch, self.state.batch_in_epoch, t.num_workers,
                                             pin_memory=self.device.type == "cuda")
                for batch in loader:
                    step_start = time.perf_counter()
                    scalars = self.train_step(batch)
                    items = self.batch_items(batch) * self.dist.world_size
                    self.state.step += 1
                    self.state.batch_in_epoch += 1
                    self.state.utts += items
                    self.state.elapsed += time.perf_counter() - step_start
                    window_items += items
                    window_steps += 1
                    for k, v in (scalars or {}).items():
                        running[k] = running.get(k, 0.0) + v
                    step = self.state.step
                    if bar is not None:
                        bar.update(1)
                    if step % t.log_every == 0 and window_steps:
                        seconds = time.perf_counter() - window_start
                        means = {f"train/{k}": v / window_steps for k, v in running.items()}
                        means["train/lr"] = self.current_lr()
                        means[rate_key] = window_items / max(seconds, 1e-9)
                        means["train/epoch"] = self.state.epoch
                        self.log_scalars(means)
                        losses = {k[len("train/"):]: v for k, v in means.items() if k.startswith("train/loss")}
                        if bar is not None:
                            bar.set_postfix(**{k: f"{v:.3f}" for k, v in losses.items()},
                                            **{f"{self.item_name}_s": f"{means[rate_key]:.1f}"},
                                            epoch=self.state.epoch)
                        elif self.dist.is_main:
                            log.info("step %d epoch %d %s (%.1f %s/s)", step, self.state.epoch,
                                     " ".join(f"{k} {v:.4f}" for k, v in losses.items()), means[rate_key],
                                     self.item_name)
                        window_start, window_items, window_steps, running = time.perf_counter(), 0, 0, {}
                    if self.dist.is_main and self.wants_validation():
                        if t.valid_every and step % t.valid_every == 0:
                            self.log_scalars(self.validate())
                        if t.sample_every and step % t.sample_every == 0:
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
        summary["members_sha256"] = self.members_sha256
        if stopped:
            summary["interrupted_by"] = signal.Signals(self._stop_signal).name
        if self.dist.is_main:
            if not stopped:
                write_json_atomic(self.exp_dir / "train_summary.json", summary)
        if self.dist.enabled:
            dist.barrier()
        return summary
