"""Kernel distance ("KID", Binkowski et al. 2018) beside each Frechet distance, and how a Frechet
distance moves with the sample size.

KID is the squared maximum mean discrepancy between two sample sets under the cubic polynomial kernel

    k(x, y) = (x . y / d + 1)^3          (d: the feature size)

estimated without bias (a U-statistic: the within-set sums leave out i = j):

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
              - 2 sum_{i, j} k(x_i, y_j) / (m n).

Its expectation is the population MMD^2 whatever m and n (so, unlike a Frechet distance, values at
different sample sizes can be compared), and it can be negative when the sets come from the same
distribution. Expanding the kernel, MMD^2 = sum_{k=1..3} C(3, k) d^-k |M_k(X) - M_k(Y)|^2, where M_k
is the k-th raw moment tensor: it compares means, second and third moments (tests/test_quality_kid.py
checks this closed form).

Interval: the estimate is recomputed on `n_subsets` random subsets holding half of the groups
(utterances) of each set, drawn without replacement, and the 2.5-97.5 percentiles of those estimates
are reported. A half-size subset varies more than the whole set, so the interval is conservative
(about sqrt(2) too wide for a statistic whose variance falls as 1/n). Frames of one utterance are not
independent, which is why subsets are drawn by utterance, not by frame.

Frechet distance against n: FD is biased upward by roughly a constant over n (Chong & Forsyth 2020,
"FID_inf"). `frechet_vs_n` recomputes it on subsets of 50-100% of the utterances, fits
FD(n) = FD_inf + slope / n by least squares and reports both, with the points it fitted.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from holdtts.quality.frechet import frechet_distance

BLOCK = 2048  # rows of the kernel matrix computed at once
MAX_SAMPLES = 4000  # samples per set for the point estimate (a seeded random choice beyond that)
SUBSET_MAX_SAMPLES = 1000  # samples per set in each subset
N_SUBSETS = 50


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / d + 1)^3 for every row pair: [m, d] x [n, d] -> [m, n]."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _kernel_sum(x: np.ndarray, y: np.ndarray | None) -> float:
    """Sum of k over all pairs of x and y; y None: over pairs i != j of x."""
    total = 0.0
    other = x if y is None else y
    for start in range(0, len(x), BLOCK):
        block = polynomial_kernel(x[start:start + BLOCK], other)
        total += float(block.sum())
        if y is None:  # drop the diagonal k(x_i, x_i) that falls in this block
            rows = np.arange(start, min(start + BLOCK, len(x)))
            total -= float(block[rows - start, rows].sum())
    return total


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD between sample sets x [m, d] and y [n, d] (m, n >= 2), cubic kernel."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected [m, d] and [n, d] sample sets, got {x.shape} and {y.shape}")
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased kernel distance needs at least 2 samples per set, got {m} and {n}")
    return (_kernel_sum(x, None) / (m * (m - 1)) + _kernel_sum(y, None) / (n * (n - 1))
            - 2.0 * _kernel_sum(x, y) / (m * n))


@dataclass(frozen=True)
class KidResult:
    """KID with its interval from subsets and what it was computed from.

    value: unbiased MMD^2 on n_a and n_b samples (unit: utterances or frames); low, high: the 2.5-97.5
    percentiles over `subsets` subsets of half the groups of each set (None when a set has fewer than 4
    groups); groups_a, groups_b: the utterances behind each set.
    """

    value: float
    low: float | None
    high: float | None
    n_a: int
    n_b: int
    groups_a: int
    groups_b: int
    dim: int
    unit: str
    subsets: int
    subset_max_samples: int
    kernel: str = "(x.y/d + 1)^3"

    def as_dict(self) -> dict:
        return asdict(self)


def _as_groups(samples) -> list[np.ndarray]:
    """A [n, d] array (one sample per group) or a list of [n_i, d] arrays (one per utterance)."""
    if isinstance(samples, np.ndarray) and samples.ndim == 2:
        return [row[None, :] for row in np.asarray(samples, np.float64)]
    groups = [np.atleast_2d(np.asarray(g, np.float64)) for g in samples]
    if not groups:
        raise ValueError("no samples")
    return groups


def _cap(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= limit else x[np.sort(rng.choice(len(x), limit, replace=False))]


def kernel_distance(a, b, unit: str = "samples", n_subsets: int = N_SUBSETS, max_samples: int = MAX_SAMPLES,
                    subset_max_samples: int = SUBSET_MAX_SAMPLES, seed: int = 0) -> KidResult:
    """KID between sets a and b, each a [n, d] array (one sample per utterance) or a list of per-utterance
    [n_i, d] arrays (e.g. log-mel frames). Seeded: the same inputs give the same result."""
    groups_a, groups_b = _as_groups(a), _as_groups(b)
    rng = np.random.default_rng(seed)
    x, y = np.concatenate(groups_a), np.concatenate(groups_b)
    xs, ys = _cap(x, max_samples, rng), _cap(y, max_samples, rng)
    value = mmd2_unbiased(xs, ys)
    low = high = None
    if len(groups_a) >= 4 and len(groups_b) >= 4 and n_subsets > 0:
        estimates = []
        for _ in range(n_subsets):
            pick_a = rng.choice(len(groups_a), len(groups_a) // 2, replace=False)
            pick_b = rng.choice(len(groups_b), len(groups_b) // 2, replace=False)
            sub_a = _cap(np.concatenate([groups_a[i] for i in pick_a]), subset_max_samples, rng)
            sub_b = _cap(np.concatenate([groups_b[i] for i in pick_b]), subset_max_samples, rng)
            estimates.append(mmd2_unbiased(sub_a, sub_b))
        low, high = (float(v) for v in np.percentile(estimates, [2.5, 97.5]))
    return KidResult(value=float(value), low=low, high=high, n_a=len(xs), n_b=len(ys), groups_a=len(groups_a),
                     groups_b=len(groups_b), dim=x.shape[1], unit=unit, subsets=n_subsets if low is not None else 0,
                     subset_max_samples=subset_max_samples)


def frechet_vs_n(a, b, fractions: Sequence[float] = (0.5, 0.625, 0.75, 0.875, 1.0), draws: int = 4,
                 seed: int = 0) -> dict | None:
    """Frechet distance on subsets of 50-100% of the groups of each set and the fit FD(n) = FD_inf +
    slope / n, n the samples in the smaller set. None when there are too few groups (< 8 a set) or
    when even the full sets have no more samples than dimensions (every covariance singular: the
    1/n law does not hold there)."""
    groups_a, groups_b = _as_groups(a), _as_groups(b)
    dim = groups_a[0].shape[1]
    full_n = min(sum(len(g) for g in groups_a), sum(len(g) for g in groups_b))
    if min(len(groups_a), len(groups_b)) < 8 or full_n <= dim:
        return None
    rng = np.random.default_rng(seed)
    sizes, values = [], []
    for fraction in fractions:
        for _ in range(1 if fraction >= 1.0 else draws):
            pick_a = rng.choice(len(groups_a), max(2, round(fraction * len(groups_a))), replace=False)
            pick_b = rng.choice(len(groups_b), max(2, round(fraction * len(groups_b))), replace=False)
            sub_a = np.concatenate([groups_a[i] for i in pick_a])
            sub_b = np.concatenate([groups_b[i] for i in pick_b])
            n = min(len(sub_a), len(sub_b))
            if n <= dim:
                continue
            sizes.append(n)
            values.append(frechet_distance(sub_a, sub_b).value)
    if len(set(sizes)) < 2:
        return None
    design = np.stack([np.ones(len(sizes)), 1.0 / np.asarray(sizes, np.float64)], axis=1)
    (fd_inf, slope), *_ = np.linalg.lstsq(design, np.asarray(values), rcond=None)
    return {"fd_inf": float(fd_inf), "slope": float(slope), "n": [int(s) for s in sizes],
            "fd": [float(v) for v in values], "model": "FD(n) = fd_inf + slope / n, n = samples in the smaller set"}
