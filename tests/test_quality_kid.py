"""The kernel distance (KID) against its closed form, exact unbiasedness, and the Frechet distance's
dependence on n (FD_inf fit)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from holdtts.quality import kid


def _moment_closed_form(points_a, weights_a, points_b, weights_b) -> float:
    """sum_k C(3, k) d^-k |M_k(X) - M_k(Y)|^2 with M_k the k-th raw moment tensor of each distribution."""
    d = points_a.shape[1]
    total = 0.0
    for k in (1, 2, 3):
        def moment(points, weights, k=k):
            out = 0.0
            for p, w in zip(points, weights):
                tensor = p
                for _ in range(k - 1):
                    tensor = np.multiply.outer(tensor, p)
                out = out + w * tensor
            return out
        diff = moment(points_a, weights_a) - moment(points_b, weights_b)
        total += math.comb(3, k) * d ** -k * float(np.sum(diff ** 2))
    return total


def _brute_force(x, y) -> float:
    k = lambda u, v: (u @ v / len(u) + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_matches_the_double_loop_and_blocks():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((5, 3)) + 0.4
    assert kid.mmd2_unbiased(x, y) == pytest.approx(_brute_force(x, y), rel=1e-12)
    big_x, big_y = rng.standard_normal((300, 4)), rng.standard_normal((250, 4))
    whole = kid.mmd2_unbiased(big_x, big_y)
    old = kid.BLOCK
    try:
        kid.BLOCK = 64  # blocks that do not divide the set
        assert kid.mmd2_unbiased(big_x, big_y) == pytest.approx(whole, rel=1e-10)
    finally:
        kid.BLOCK = old


def test_mmd2_is_exactly_unbiased_on_discrete_distributions():
    # Every sample of m = 2 and n = 3 points from two 3-point distributions in 2-D, weighted by its
    # probability: the expectation of the estimator is the population MMD^2 exactly.
    points_a = np.array([[0.0, 1.0], [1.0, -1.0], [2.0, 0.5]])
    weights_a = np.array([0.2, 0.5, 0.3])
    points_b = np.array([[0.5, 0.5], [-1.0, 0.0], [1.5, 1.5]])
    weights_b = np.array([0.6, 0.1, 0.3])
    expected = 0.0
    for ia in itertools.product(range(3), repeat=2):
        for ib in itertools.product(range(3), repeat=3):
            p = np.prod(weights_a[list(ia)]) * np.prod(weights_b[list(ib)])
            expected += p * kid.mmd2_unbiased(points_a[list(ia)], points_b[list(ib)])
    closed = _moment_closed_form(points_a, weights_a, points_b, weights_b)
    assert closed > 0.1
    assert expected == pytest.approx(closed, rel=1e-10)
    # identical distributions: expectation 0 (single samples may be negative)
    same = sum(np.prod(weights_a[list(i)]) * np.prod(weights_a[list(j)]) *
               kid.mmd2_unbiased(points_a[list(i)], points_a[list(j)])
               for i in itertools.product(range(3), repeat=2) for j in itertools.product(range(3), repeat=2))
    assert same == pytest.approx(0.0, abs=1e-12)


def test_kid_of_gaussians_matches_the_moment_closed_form():
    # 1-D N(0, 1) against N(0.5, 1): 3 (0.5)^2 + 3 (1.25 - 1)^2 + (1.625 - 0)^2 = 3.578125
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2000, 1))
    y = rng.standard_normal((2000, 1)) + 0.5
    result = kid.kernel_distance(x, y, n_subsets=10, max_samples=2000, subset_max_samples=1000)
    assert result.value == pytest.approx(3.578125, rel=0.1)
    assert result.low < result.value < result.high
    assert (result.n_a, result.n_b, result.groups_a, result.dim, result.subsets) == (2000, 2000, 2000, 1, 10)
    same = kid.kernel_distance(x, rng.standard_normal((2000, 1)), n_subsets=0)
    assert abs(same.value) < 0.05 and same.low is None


def test_kid_does_not_drift_with_n_where_frechet_does():
    rng = np.random.default_rng(2)
    dim = 8
    values = {}
    for n in (20, 200):
        kids, fds = [], []
        for _ in range(30):
            a, b = rng.standard_normal((n, dim)), rng.standard_normal((n, dim))
            kids.append(kid.mmd2_unbiased(a, b))
            from holdtts.quality.frechet import frechet_distance
            fds.append(frechet_distance(a, b).value)
        values[n] = (np.mean(kids), np.mean(fds))
    assert abs(values[20][0]) < 0.05 and abs(values[200][0]) < 0.01  # no bias at either n
    assert values[20][1] > 5 * values[200][1] > 0  # the Frechet distance shrinks about as 1/n


def test_kernel_distance_subsets_by_group_and_caps_samples():
    rng = np.random.default_rng(3)
    a = [rng.standard_normal((rng.integers(20, 40), 5)) for _ in range(10)]
    b = [rng.standard_normal((rng.integers(20, 40), 5)) + 1.0 for _ in range(12)]
    result = kid.kernel_distance(a, b, unit="frames", max_samples=100, n_subsets=10)
    assert (result.n_a, result.n_b, result.groups_a, result.groups_b, result.unit) == (100, 100, 10, 12, "frames")
    assert result.value > 0.5 and result.low > 0
    again = kid.kernel_distance(a, b, unit="frames", max_samples=100, n_subsets=10)
    assert again == result  # seeded
    few = kid.kernel_distance(a[:3], b[:3], n_subsets=10)
    assert few.low is None and few.subsets == 0
    with pytest.raises(ValueError, match="at least 2"):
        kid.mmd2_unbiased(np.zeros((1, 3)), np.zeros((4, 3)))


def test_frechet_vs_n_extrapolates_to_the_population_distance():
    rng = np.random.default_rng(4)
    dim = 6
    shift = np.full(dim, 0.3)  # population FD = |shift|^2 = 0.54 (equal covariances)
    a = [rng.standard_normal((50, dim)) for _ in range(16)]
    b = [rng.standard_normal((50, dim)) + shift for _ in range(16)]
    fit = kid.frechet_vs_n(a, b)
    assert fit is not None and fit["slope"] > 0
    assert fit["fd_inf"] == pytest.approx(0.54, abs=0.06)
    assert max(fit["fd"]) > fit["fd_inf"]
    assert kid.frechet_vs_n(a[:5], b[:5]) is None  # too few utterances to fit
    assert kid.frechet_vs_n(rng.standard_normal((10, 20)), rng.standard_normal((10, 20))) is None  # n <= dim
