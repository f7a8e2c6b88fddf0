"""Membership-inference attacks (a registry anyone can extend) and their metrics."""
from __future__ import annotations

from holdtts.privacy.attacks import (
    ATTACKS,
    DEFAULT_ATTACKS,
    Attack,
    AttackInputs,
    NoiseSource,
    get_attack,
    masked_lp,
    process_times,
    register_attack,
)
from holdtts.privacy.metrics import compute_metrics, metrics_from_rows, read_rows, roc_metrics, write_rows

__all__ = [
    "ATTACKS", "DEFAULT_ATTACKS", "Attack", "AttackInputs", "NoiseSource", "compute_metrics", "get_attack",
    "masked_lp", "metrics_from_rows", "process_times", "read_rows", "register_attack", "roc_metrics",
    "write_rows",
]
