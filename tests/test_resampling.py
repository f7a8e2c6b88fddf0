"""The seed level shared by the privacy and quality comparisons (holdtts.utils.resampling)."""
import numpy as np
import pytest

from holdtts.utils.resampling import bootstrap_p_value, resampled_seed_mean


def test_one_seed_is_returned_as_it_is_and_draws_nothing():
    rng = np.random.default_rng(0)
    block = np.arange(5.0)[None]
    out = resampled_seed_mean(block, rng)
    assert np.array_equal(out, block[0]) and np.shares_memory(out, block)
    assert rng.integers(0, 1000) == np.random.default_rng(0).integers(0, 1000)


def test_seed_mean_draws_rows_with_replacement():
    # rows 0, 10, 20: every draw's mean is a mean of three of them, so a multiple of 10 / 3 in [0, 20]
    block = np.repeat(np.array([[0.0], [10.0], [20.0]]), 4000, axis=1)
    means = resampled_seed_mean(block, np.random.default_rng(1))
    assert means.shape == (4000,)
    assert np.allclose(means * 3 / 10, np.round(means * 3 / 10))
    assert means.min() == 0.0 and means.max() == 20.0  # all-same picks occur (1 in 27 draws)
    assert means.mean() == pytest.approx(10.0, abs=0.3)  # unbiased for the mean of the seeds
    # identical seeds: resampling them changes nothing
    same = np.tile(np.linspace(0, 1, 50), (3, 1))
    assert np.allclose(resampled_seed_mean(same, np.random.default_rng(2)), same[0])


def test_p_value_closed_forms():
    assert bootstrap_p_value(np.ones(1999)) == pytest.approx(2 / 2000)  # every draw on one side: the floor
    assert bootstrap_p_value(-np.ones(1999)) == pytest.approx(2 / 2000)
    assert bootstrap_p_value(np.array([-1.0, 1.0] * 500)) == 1.0  # balanced: capped at 1
    draws = np.array([-1.0] * 100 + [1.0] * 899)  # 100 of 999 below 0
    assert bootstrap_p_value(draws) == pytest.approx(2 * 101 / 1000)
    zeros = np.zeros(99)  # 0 counts on both sides
    assert bootstrap_p_value(zeros) == 1.0
    # non-finite draws (a ratio over an empty resample) are left out of both the tail and the count
    with_nan = np.concatenate([np.ones(999), [np.nan, np.inf]])
    assert bootstrap_p_value(with_nan) == pytest.approx(2 / 1000)
