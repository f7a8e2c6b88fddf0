"""The dual-model defenses (docs/defenses.md): two teachers trained on disjoint halves of the members, then

- DualMD: synthesis alternates the two teachers' score networks step by step (`DualGradTTS`);
- DistillMD: a student trained on both halves, every signal from the teacher that never saw the utterance
  (`DistillTrainer`).

`holdtts train` dispatches here when the config's defense.kind is not "none" (`defense_training`).
Importing this package registers DualMD's loader with holdtts.models.loading, so `holdtts.load_model` of a
DualMD system directory gives its pipeline. Attacks on every system, the black-box `synth_distance`
included, live in holdtts.privacy (which never imports this package).
"""
from __future__ import annotations

from pathlib import Path

from holdtts.config import SystemConfig
from holdtts.defenses.distillmd import (
    AlternatingBatches,
    DistillMDTraining,
    DistillTargets,
    DistillTrainer,
    StudentGradTTS,
    distillation_targets,
)
from holdtts.defenses.dualmd import (
    AlternatingEpsFn,
    DualGradTTS,
    DualMDTraining,
    is_dual_system,
    load_dual_model,
    teacher_config,
    train_teachers,
)
from holdtts.errors import ConfigError

DEFENSE_KINDS = ("none", "dualmd", "distillmd")


def defense_training(cfg: SystemConfig, exp_dir: str | Path, data_dir: str | Path, dump_dir: str | Path,
                     device: str = "auto", progress_bar: bool | None = None) -> DualMDTraining | DistillMDTraining:
    """The training run of a defense config; `.run()` trains (or resumes) it and returns its summary."""
    runs = {"dualmd": DualMDTraining, "distillmd": DistillMDTraining}
    if cfg.defense.kind not in runs:
        raise ConfigError(f"unknown defense.kind '{cfg.defense.kind}' (known: {', '.join(DEFENSE_KINDS)})")
    return runs[cfg.defense.kind](cfg, exp_dir, data_dir, dump_dir, device=device, progress_bar=progress_bar)


__all__ = [
    "DEFENSE_KINDS", "AlternatingBatches", "AlternatingEpsFn", "DistillMDTraining", "DistillTargets",
    "DistillTrainer", "DualGradTTS", "DualMDTraining", "StudentGradTTS", "defense_training",
    "distillation_targets", "is_dual_system", "load_dual_model", "teacher_config", "train_teachers",
]
