"""Membership-inference attacks (a registry anyone can extend) and their metrics.

    from holdtts.privacy import register_attack, get_attack, compute_metrics

Names are imported lazily, so reading metrics (numpy and scikit-learn only) does not import torch.
"""
from __future__ import annotations

import importlib

_LAZY = {
    **dict.fromkeys(("ATTACKS", "DEFAULT_ATTACKS", "Attack", "AttackInputs", "NoiseSource", "get_attack",
                     "masked_lp", "process_times", "register_attack"), "holdtts.privacy.attacks"),
    **dict.fromkeys(("compute_metrics", "metrics_from_rows", "read_rows", "roc_metrics", "write_rows"),
                    "holdtts.privacy.metrics"),
    **dict.fromkeys(("per_speaker_auroc", "speaker_level"), "holdtts.privacy.speakers"),
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'holdtts.privacy' has no attribute {name!r}")


def __dir__():
    return __all__
