"""The seed level of the paired bootstraps that compare two systems across training seeds.

holdtts.privacy.statistics.compare (AUROC) and holdtts.quality.bootstrap.paired_difference_over_seeds (the
quality metrics) share it: each resamples the utterances itself (stratified by membership, or sentences), then
draws each system's training seeds with replacement per bootstrap draw, and reads p off the draws of the
difference in the same way.
"""
from __future__ import annotations

import numpy as np


def resampled_seed_mean(block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[k, S] -> [S]: per bootstrap draw (column), the mean over k training seeds drawn with replacement from
    the block's rows; one seed is returned as it is (and draws nothing from rng)."""
    k = block.shape[0]
    if k == 1:
        return block[0]
    pick = rng.integers(0, k, size=(block.shape[1], k))
    return np.take_along_axis(block.T, pick, axis=1).mean(axis=1)


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided p of "no difference" from bootstrap draws of a difference: twice the smaller share of the
    finite draws on either side of 0 (0 itself counted on both), with the +1 that keeps it at least
    2 / (draws + 1), capped at 1."""
    finite = differences[np.isfinite(differences)]
    tail = min(int((finite <= 0).sum()), int((finite >= 0).sum()))
    return min(1.0, 2 * (1 + tail) / (1 + finite.size))
