"""Sample quality on the toy: the unbiased squared MMD with a Gaussian (RBF) kernel, and its interval.

    MMD^2_u = mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)

(Gretton et al. 2012, eq. 3): zero in expectation when samples and data share a distribution, so it can
come out slightly negative. One bandwidth for every model of a study, so the numbers compare across
models; it must be small next to the data's structure (on the Swiss roll, the median pairwise distance
makes a Gaussian with the data's covariance look nearly as good as the spiral).
"""
from __future__ import annotations

import numpy as np
import torch


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Unbiased MMD^2 between x [n, d] and y [m, d] (n, m >= 2), k(a, b) = exp(-|a - b|^2 / (2 h^2))."""
    if len(x) < 2 or len(y) < 2:
        raise ValueError("the unbiased MMD needs at least 2 points on each side")
    x, y = x.double(), y.double()
    gamma = 1.0 / (2.0 * bandwidth**2)

    def kernel_sum(a, b, exclude_diagonal):
        k = torch.exp(-gamma * torch.cdist(a, b).square())
        total = k.sum()
        if exclude_diagonal:
            total = total - k.diagonal().sum()
        return total

    n, m = len(x), len(y)
    return float(kernel_sum(x, x, True) / (n * (n - 1)) + kernel_sum(y, y, True) / (m * (m - 1))
                 - 2 * kernel_sum(x, y, False) / (n * m))


def mmd2_with_interval(samples: torch.Tensor, reference: torch.Tensor, bandwidth: float,
                       subsets: int = 10) -> dict:
    """MMD^2 on all points, with a 95% interval from `subsets` disjoint equal subsets of both sides.

    The estimate's standard error is taken as sd(subset estimates) / sqrt(subsets): each subset sees
    1/subsets of the points, and the U-statistic's variance falls as 1/n. Interval: estimate +- 1.96 se.
    """
    value = mmd2_unbiased(samples, reference, bandwidth)
    size = min(len(samples), len(reference)) // subsets
    parts = []
    if subsets >= 2 and size >= 2:
        parts = [mmd2_unbiased(samples[i * size:(i + 1) * size], reference[i * size:(i + 1) * size], bandwidth)
                 for i in range(subsets)]
    se = float(np.std(parts, ddof=1) / np.sqrt(len(parts))) if len(parts) >= 2 else float("nan")
    return {"mmd2": value, "mmd2_ci": [value - 1.96 * se, value + 1.96 * se], "mmd2_se": se,
            "num_samples": len(samples), "num_reference": len(reference), "subsets": len(parts),
            "bandwidth": bandwidth, "kernel": "rbf"}


def copy_ratio(samples: torch.Tensor, members: torch.Tensor, reference: torch.Tensor) -> float:
    """Median distance from a sample to its nearest member, divided by the same for held-out points: about
    1 when the samples sit among the members like fresh data do, near 0 when the model reproduces its
    training points (the MMD to held-out data cannot tell a copy of a few points from a poor fit)."""
    def nearest(points):
        return torch.cdist(points.double(), members.double()).min(dim=1).values.median()

    return float(nearest(samples) / nearest(reference))
