"""DualMD (Tran et al. 2024; THEORY.md section 4): two teachers trained with the ordinary objective on
disjoint halves of the members, and a synthesis pipeline that alternates their score networks step by step.

`holdtts train --config conf/dualmd.yaml --exp-dir exp/dualmd` runs the shared trainer once per teacher:

    exp/dualmd/teacher1/    an ordinary GradTTS experiment on defense.halves[0] (half1)
    exp/dualmd/teacher2/    the same on defense.halves[1] (half2)
    exp/dualmd/config.yaml  the system's config (synthesis reads its sampler, steps, temperature)
    exp/dualmd/system.json  {"kind": "dualmd", "components": {...}, "parameters": both, "train_seconds": both}

Re-running resumes whichever teacher is unfinished. `holdtts.load_model("exp/dualmd")` gives a
`DualGradTTS`, which `holdtts synthesize`, `holdtts evaluate` and black-box attacks use like a GradTTS.

Synthesis: sampler step i (i = 0 at the horizon) uses teacher 1 when i is even and teacher 2 when it is
odd, in every sampler (samplers announce their steps, so Heun's two calls of a step use one network). The
text side is averaged: mu_x is the mean of the two encoders' outputs per token and the log-durations are
averaged (a geometric mean of the durations); docs/defenses.md gives the reasons.

Multi-speaker: both teachers index one speaker table layout (the data directory's spk2id); each is asked
under the speaker's own row where it trained it and under its own mean voice where it did not (halves
split by speaker), so no teacher is conditioned on a row it never trained.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

import holdtts
from holdtts.config import DefenseConfig, SystemConfig, dump_config, load_config
from holdtts.data.dataset import load_split
from holdtts.errors import CheckpointError, ConfigError, HoldttsError, InputError
from holdtts.models.loading import load_model, register_loader
from holdtts.models.tts import MEAN_SPEAKER, GradTTS
from holdtts.utils.checkpoint import list_checkpoints
from holdtts.utils.fileio import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

SYSTEM_JSON = "system.json"
TEACHER_DIRS = ("teacher1", "teacher2")


# --------------------------------------------------------------------------- the teachers


def teacher_config(cfg: SystemConfig, index: int) -> SystemConfig:
    """Teacher `index` (0 or 1): the system's model, trained on defense.halves[index] as an ordinary system."""
    data = dataclasses.replace(cfg.data, train_split=cfg.defense.halves[index])
    return dataclasses.replace(cfg, name=f"{cfg.name}_teacher{index + 1}", data=data, defense=DefenseConfig())


def load_halves(cfg: SystemConfig, data_dir: str | Path) -> list[list[str]]:
    """The utterances of the two halves, checked: disjoint, and together exactly data.train_split."""
    halves = tuple(cfg.defense.halves)
    if len(halves) != 2:
        raise ConfigError(f"defense.halves must name two splits, got {list(halves)}")
    utts = [load_split(data_dir, name) for name in halves]
    shared = sorted(set(utts[0]) & set(utts[1]))
    if shared:
        raise HoldttsError(f"{data_dir}: splits '{halves[0]}' and '{halves[1]}' share {len(shared)} utterances "
                           f"(e.g. '{shared[0]}'): each teacher must never see the other's data")
    members = set(load_split(data_dir, cfg.data.train_split))
    if set(utts[0]) | set(utts[1]) != members:
        raise HoldttsError(f"{data_dir}: splits '{halves[0]}' ({len(utts[0])}) and '{halves[1]}' ({len(utts[1])}) "
                           f"do not make up the train split '{cfg.data.train_split}' ({len(members)} utterances), "
                           "so attacks would test the wrong members")
    return utts


def train_teachers(cfg: SystemConfig, exp_dir: str | Path, data_dir: str | Path, dump_dir: str | Path,
                   device: str = "auto", progress_bar: bool | None = None) -> list[dict]:
    """Train, resume or confirm finished both teachers in exp_dir/teacher1 and teacher2 with the shared trainer.

    Returns their summaries; stops after a teacher that did not finish (an interrupted run).
    """
    from holdtts.training.factory import make_trainer

    summaries = []
    for index, name in enumerate(TEACHER_DIRS):
        tcfg = teacher_config(cfg, index)
        log.info("teacher %d of %s: split '%s' -> %s", index + 1, cfg.name, tcfg.data.train_split,
                 Path(exp_dir) / name)
        summary = make_trainer(tcfg, Path(exp_dir) / name, data_dir, dump_dir, device=device,
                               progress_bar=progress_bar).run()
        summaries.append(summary)
        if not summary["finished"]:
            break
    return summaries


def is_main_rank() -> bool:
    return int(os.environ.get("RANK", 0)) == 0


# --------------------------------------------------------------------------- system.json


def read_system_info(system_dir: str | Path) -> dict:
    path = Path(system_dir) / SYSTEM_JSON
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InputError("not found (train the system first)", path) from err
    except json.JSONDecodeError as err:
        raise InputError(f"invalid JSON ({err.msg})", path, err.lineno) from err
    if not isinstance(info, dict) or not isinstance(info.get("components"), dict):
        raise InputError("not a holdtts system file (no 'components')", path)
    return info


def finished_summary(component_dir: Path) -> dict:
    """A component's train_summary.json, required to say it finished."""
    path = component_dir / "train_summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise HoldttsError(f"{component_dir}: not trained to the end (no train_summary.json); run its "
                           "`holdtts train` first") from err
    except json.JSONDecodeError as err:
        raise InputError(f"invalid JSON ({err.msg})", path, err.lineno) from err
    checkpoints = list_checkpoints(component_dir)
    if not summary.get("finished") or not checkpoints or checkpoints[-1][0] != summary.get("step"):
        raise HoldttsError(f"{component_dir}: training stopped before its step/epoch limit; resume it first")
    return summary


def component_facts(system_dir: Path, component_dir: Path, role: str) -> dict:
    """Provenance and cost of one trained component, paths relative to the system directory."""
    summary = finished_summary(component_dir)

    def relative(path) -> str:
        return os.path.relpath(os.path.abspath(path), os.path.abspath(system_dir))

    return {"role": role, "path": relative(component_dir), "train_split": summary["train_split"],
            "num_train_utts": summary["num_train_utts"], "parameters": summary["parameters"],
            "train_seconds": summary["train_seconds"], "step": summary["step"], "epoch": summary["epoch"],
            "checkpoint": relative(list_checkpoints(component_dir)[-1][1])}


def write_system_info(system_dir: Path, cfg: SystemConfig, components: dict[str, dict],
                      deployed: Sequence[str]) -> dict:
    """system.json: the components, and the defense's whole cost (every component's parameters and
    training seconds) beside what synthesis runs (`deployed_parameters`)."""
    info = {
        "kind": cfg.defense.kind,
        "name": cfg.name,
        "order": cfg.process.order,
        "train_split": cfg.data.train_split,
        "num_train_utts": sum(components[name]["num_train_utts"] for name in TEACHER_DIRS),
        "components": components,
        "parameters": sum(c["parameters"] for c in components.values()),
        "train_seconds": round(sum(c["train_seconds"] for c in components.values()), 2),
        "deployed_parameters": sum(components[name]["parameters"] for name in deployed),
        "holdtts_version": holdtts.__version__,
    }
    if is_main_rank():
        write_json_atomic(system_dir / SYSTEM_JSON, info)
    return info


class DualMDTraining:
    """`holdtts train` for defense.kind "dualmd": both teachers, then config.yaml and system.json."""

    def __init__(self, cfg: SystemConfig, exp_dir: str | Path, data_dir: str | Path, dump_dir: str | Path,
                 device: str = "auto", progress_bar: bool | None = None):
        self.cfg, self.exp_dir, self.data_dir, self.dump_dir = cfg, Path(exp_dir), Path(data_dir), Path(dump_dir)
        self.device, self.progress_bar = device, progress_bar

    def run(self) -> dict:
        load_halves(self.cfg, self.data_dir)
        summaries = train_teachers(self.cfg, self.exp_dir, self.data_dir, self.dump_dir, self.device,
                                   self.progress_bar)
        if len(summaries) < len(TEACHER_DIRS) or not summaries[-1]["finished"]:
            return {"system": self.cfg.name, "finished": False, "teachers": summaries}
        if is_main_rank():
            write_text_atomic(self.exp_dir / "config.yaml", dump_config(self.cfg))
        components = {name: component_facts(self.exp_dir, self.exp_dir / name, "teacher") for name in TEACHER_DIRS}
        return {**write_system_info(self.exp_dir, self.cfg, components, deployed=TEACHER_DIRS), "finished": True}


# --------------------------------------------------------------------------- synthesis


def teacher_speakers(teacher: GradTTS, speakers: Tensor | None) -> Tensor | None:
    """The rows a teacher is asked under: the utterance's own speaker where the teacher trained that row,
    the teacher's mean voice (MEAN_SPEAKER) where it never saw the speaker."""
    if speakers is None or teacher.trained_speaker_rows is None:
        return speakers
    trained = torch.as_tensor(teacher.trained_speaker_rows, dtype=speakers.dtype, device=speakers.device)
    return torch.where(torch.isin(speakers, trained), speakers, torch.full_like(speakers, MEAN_SPEAKER))


class AlternatingEpsFn:
    """An eps_fn that gives sampler step i to network i mod k (DualMD: even steps teacher 1, odd teacher 2).

    The samplers of holdtts.diffusion announce each step (`begin_step`), so every call within a step, such
    as Heun's predictor and corrector, goes to the same network. Called by a sampler that makes no
    announcements, it alternates per call.
    """

    def __init__(self, eps_fns: Sequence[Callable[[Tensor, Tensor], Tensor]]):
        self.eps_fns = list(eps_fns)
        self.step: int | None = None
        self.calls = 0

    def begin_step(self, i: int) -> None:
        self.step = i

    def network(self) -> int:
        """Index of the network the next call goes to."""
        return (self.calls if self.step is None else self.step) % len(self.eps_fns)

    def __call__(self, u: Tensor, t: Tensor) -> Tensor:
        index = self.network()
        self.calls += 1
        return self.eps_fns[index](u, t)


class DualGradTTS(nn.Module):
    """DualMD's inference pipeline over two GradTTS teachers, with GradTTS's synthesis interface
    (`text_to_mu`, `decode`, `synthesize`; attributes process, cfg, and from `load_dual_model` config,
    symbols, step, checkpoint). The text side is the mean of the two encoders (mu_x and log-durations);
    the score networks alternate per sampler step. It has no white-box interface (`eps_hat`, `align`):
    attack each teacher for that.
    """

    def __init__(self, teachers: Sequence[GradTTS], cfg: SystemConfig):
        super().__init__()
        if len(teachers) != 2:
            raise ValueError(f"DualMD combines two teachers, got {len(teachers)}")
        first, second = teachers
        if first.process.to_dict() != second.process.to_dict():
            raise ValueError(f"the teachers' processes differ ({first.process.to_dict()} vs "
                             f"{second.process.to_dict()}): their steps cannot alternate")
        if (first.n_feats, first.n_vocab) != (second.n_feats, second.n_vocab):
            raise ValueError("the teachers differ in mel bands or vocabulary")
        self.teachers = nn.ModuleList(teachers)
        self.cfg = cfg
        self.process = first.process
        self.n_feats = first.n_feats
        self.n_vocab = first.n_vocab
        self.segment_frames = max(teacher.segment_frames for teacher in teachers)
        self.n_speakers = first.n_speakers
        self.speaker_ids = first.speaker_ids

    def speaker_index(self, speaker: str) -> int:
        return self.teachers[0].speaker_index(speaker)

    def _teacher_speakers(self, teacher: GradTTS, speakers: Tensor | None) -> Tensor | None:
        if speakers is not None and speakers.is_floating_point():
            raise HoldttsError("a DualMD pipeline takes speaker indices, not vectors (each teacher has its own table)")
        return teacher_speakers(teacher, speakers)

    def encode(self, tokens: Tensor, token_lengths: Tensor,
               speakers: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """tokens [B, L] -> (mu_x, logw, x_mask): the teachers' encoder outputs and log-durations averaged."""
        outputs = [teacher.encode(tokens, token_lengths, self._teacher_speakers(teacher, speakers))
                   for teacher in self.teachers]
        mu_x = torch.stack([mu for mu, _, _ in outputs]).mean(0)
        logw = torch.stack([w for _, w, _ in outputs]).mean(0)
        return mu_x, logw, outputs[0][2]

    def pad_frames(self, frames: int) -> int:
        """Frames padded so that both U-Nets accept them (powers of two: the larger unit serves both)."""
        return max(teacher.pad_frames(frames) for teacher in self.teachers)

    def eps_fn(self, mu: Tensor, mask: Tensor, speakers: Tensor | None = None) -> AlternatingEpsFn:
        return AlternatingEpsFn([teacher.eps_fn(mu, mask, self._teacher_speakers(teacher, speakers))
                                 for teacher in self.teachers])

    # GradTTS's synthesis, run on the averaged text side and the alternating networks above.
    text_to_mu = GradTTS.text_to_mu
    decode = GradTTS.decode
    synthesize = GradTTS.synthesize


def is_dual_system(path: str | Path) -> bool:
    """Whether `path` is a DualMD system directory (a system.json of kind "dualmd")."""
    path = Path(path)
    return path.is_dir() and (path / SYSTEM_JSON).is_file() and read_system_info(path).get("kind") == "dualmd"


def load_dual_model(path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> DualGradTTS:
    """The DualMD pipeline of a system directory: both teachers (EMA weights by default) and its config."""
    path = Path(path)
    info = read_system_info(path)
    missing = [name for name in TEACHER_DIRS if name not in info["components"]]
    if missing:
        raise InputError(f"no component '{missing[0]}' in a dualmd system", path / SYSTEM_JSON)
    teachers = [load_model(path / info["components"][name]["path"], device=device, ema=ema) for name in TEACHER_DIRS]
    if teachers[0].symbols != teachers[1].symbols:
        raise CheckpointError("the two teachers have different symbol tables", teachers[1].checkpoint)
    if teachers[0].speaker_ids != teachers[1].speaker_ids:
        raise CheckpointError("the two teachers have different speaker tables (spk2id)", teachers[1].checkpoint)
    cfg = load_config(path / "config.yaml")
    model = DualGradTTS(teachers, cfg).eval().requires_grad_(False).to(device)
    model.config = cfg
    model.symbols = teachers[0].symbols
    model.steps = [teacher.step for teacher in teachers]
    model.step = min(model.steps)
    model.checkpoint = path
    model.checkpoint_state = {"train_split": info.get("train_split", cfg.data.train_split),
                              "num_train_utts": info.get("num_train_utts")}
    return model


# `holdtts.load_model` (holdtts.models.loading) loads a DualMD system directory through this loader.
register_loader(is_dual_system, load_dual_model)
