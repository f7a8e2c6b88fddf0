"""Percentile bootstrap over utterances, for the quality metrics scored per utterance.

An utterance holds one value (the statistic is their mean: DNSMOS, MCD, speaker cosine) or a
(numerator, denominator) pair (the statistic is a ratio of sums: corpus WER is total errors over total
reference words, not the mean of per-sentence rates). Resampling draws utterances with replacement, so
an interval says how far the statistic could move with other sentences of the same kind; a paired
difference resamples the same sentences on both sides. One seed, one draw of indices: every interval
recomputes exactly from the per-utterance rows (quality.tsv).
"""
from __future__ import annotations

import numpy as np

from holdtts.utils.resampling import bootstrap_p_value, resampled_seed_mean

SAMPLES = 2000
SEED = 0
LEVEL = 0.95


def statistic(values: np.ndarray) -> np.ndarray:
    """[..., n, k] -> [...]: the mean over n (k = 1) or sum(numerator) / sum(denominator) (k = 2)."""
    if values.shape[-1] == 1:
        return values[..., 0].mean(axis=-1)
    return values[..., 0].sum(axis=-1) / values[..., 1].sum(axis=-1)


def _indices(n: int, samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def _percentiles(draws: np.ndarray, level: float) -> list[float] | None:
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return None
    alpha = 100 * (1 - level) / 2
    return [float(np.percentile(draws, alpha)), float(np.percentile(draws, 100 - alpha))]


def interval(values, samples: int = SAMPLES, seed: int = SEED, level: float = LEVEL) -> list[float] | None:
    """Percentile interval of statistic(values) over utterances; values: [n] or [n, k]. None below 2."""
    x = np.asarray(values, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if len(x) < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return _percentiles(statistic(x[_indices(len(x), samples, seed)]), level)


def paired_difference(a: dict[str, tuple[float, ...]], b: dict[str, tuple[float, ...]],
                      samples: int = SAMPLES, seed: int = SEED, level: float = LEVEL) -> dict | None:
    """statistic(a) - statistic(b) over the utterances both were scored on (utt -> its value tuple), with
    the percentile interval of a paired bootstrap (the same resampled sentences on both sides). None when
    fewer than 2 utterances are shared."""
    utts = sorted(set(a) & set(b))
    if len(utts) < 2:
        return None
    x = np.array([a[u] for u in utts], dtype=np.float64)
    y = np.array([b[u] for u in utts], dtype=np.float64)
    idx = _indices(len(utts), samples, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ci = _percentiles(statistic(x[idx]) - statistic(y[idx]), level)
    if ci is None:
        return None
    return {"difference": float(statistic(x) - statistic(y)), "ci": ci, "n": len(utts),
            "samples": samples, "seed": seed, "level": level}


def paired_difference_over_seeds(system: list[dict[str, tuple[float, ...]]],
                                 baseline: list[dict[str, tuple[float, ...]]],
                                 samples: int = SAMPLES, seed: int = SEED, level: float = LEVEL) -> dict | None:
    """Two systems, each a list of trained models (one per training seed, each utt -> its value tuple): the
    seed-mean of statistic() for `system` minus that of `baseline`, over the sentences every model was scored
    on. The bootstrap resamples those sentences jointly for every model (paired) and, where a side has
    several seeds, its seeds with replacement, as holdtts.privacy.statistics.compare does for AUROC; p is
    twice the smaller tail of the draws around 0 (at least 2 / (samples + 1)). With one model a side the
    difference and interval are paired_difference()'s. None when fewer than 2 sentences are shared."""
    if not system or not baseline:
        return None
    models = [*system, *baseline]
    utts = sorted(set.intersection(*(set(m) for m in models)))
    if len(utts) < 2:
        return None
    values = np.stack([np.array([m[u] for u in utts], dtype=np.float64) for m in models])  # [K, n, k]
    if values.ndim == 2:
        values = values[..., None]
    idx = _indices(len(utts), samples, seed)  # the same sentences for every model
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = statistic(values)  # [K]
        draws = statistic(values[:, idx])  # [K, samples]
    rng = np.random.default_rng(seed + 1)  # seeds drawn apart from the sentences
    k = len(system)
    differences = resampled_seed_mean(draws[:k], rng) - resampled_seed_mean(draws[k:], rng)
    ci = _percentiles(differences, level)
    if ci is None:
        return None
    return {"difference": float(observed[:k].mean() - observed[k:].mean()), "ci": ci,
            "p_value": bootstrap_p_value(differences),
            "system": {"mean": float(observed[:k].mean()), "per_seed": [float(v) for v in observed[:k]],
                       "seeds": k},
            "baseline": {"mean": float(observed[k:].mean()), "per_seed": [float(v) for v in observed[k:]],
                         "seeds": len(baseline)},
            "n": len(utts), "samples": samples, "seed": seed, "level": level}
