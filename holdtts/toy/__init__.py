"""The toy study: the HOLD++ defense paper's 2-D Swiss-roll experiment, reproduced with holdtts's own
processes, samplers and attacks (`holdtts toy-study`, egs/toy/run.sh, docs/toy_study.md).

Only the `holdtts toy-study` command imports this package; it imports holdtts.diffusion and
holdtts.privacy, never the other way round.
"""
from __future__ import annotations

from holdtts.toy.study import ModelSpec, StudyConfig, run_study

__all__ = ["ModelSpec", "StudyConfig", "run_study"]
