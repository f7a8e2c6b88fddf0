"""The trainer a config asks for. It lives apart from both trainers so that neither imports the other:
dp.py subclasses trainer.py's Trainer, and only this module knows both."""
from __future__ import annotations

from pathlib import Path

from holdtts.config import SystemConfig
from holdtts.training.trainer import Trainer


def make_trainer(cfg: SystemConfig, exp_dir: str | Path, data_dir: str | Path, dump_dir: str | Path,
                 device: str = "auto", progress_bar: bool | None = None) -> Trainer:
    """A DPTrainer when dp.enabled (Opacus is imported only then), else the plain Trainer. The defense
    trainers (holdtts.defenses) call this once per teacher."""
    if cfg.dp.enabled:
        from holdtts.training.dp import DPTrainer

        return DPTrainer(cfg, exp_dir, data_dir, dump_dir, device=device, progress_bar=progress_bar)
    return Trainer(cfg, exp_dir, data_dir, dump_dir, device=device, progress_bar=progress_bar)
