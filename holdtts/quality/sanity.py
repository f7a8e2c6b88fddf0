"""The sanity table: does each quality metric rank audio of known quality in the known order?

Conditions, from best to worst (tiers), each scored on the test sentences (set A) with the same
evaluate_pairs call a system gets, set-level metrics against other real recordings (set B):

  1. real        the real recordings of A
  2. vocoded     A's real mels through the vocoder
  3. noisy       A with white noise at NOISE_SNR_DB;  stretched: A time-stretched by STRETCH_RATE
  4. wrong_text  A's recordings scored against another sentence's text and recording (rotated by one);
     random_mels random log-mels (uniform over the real mels' range) through the vocoder

A metric passes when every condition of a tier scores better than every condition of the next tier that
applies to it. wrong_text applies only to metrics that read the text or the paired recording (WER, CER,
MCD): for the others it is the real audio again. A metric that fails is flagged, and the report says so
beside its numbers.

A pair in the wrong order is not always a failure: two conditions a metric cannot tell apart at this
sample size (real and Griffin-Lim speech are both near 0% WER for a recogniser at its ceiling: 16 word
errors against 14 of 482) come out in either order. For metrics scored per utterance (WER and CER as ratios of
summed errors to summed reference words or characters, DNSMOS, speaker cosine, MCD) the difference is
bootstrapped over the test sentences, paired (the same resampled sentences under both conditions). When
its 95% interval contains 0 the pair is a tie, "not separated at this n", listed under `ties` and not
flagged; when the interval excludes 0 the wrong order is real and the metric is flagged. Set-level
metrics (Frechet and kernel distances) have no pairing and must be strictly ordered.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from holdtts.quality import bootstrap

NOISE_SNR_DB = 5.0
STRETCH_RATE = 1.3  # faster speech: 30% shorter
TIERS = (("real",), ("vocoded",), ("noisy", "stretched"), ("wrong_text", "random_mels"))
CONDITIONS = tuple(c for tier in TIERS for c in tier)
TEXT_OR_PAIR = ("wer", "wer_domain", "wer_espeak", "mcd")  # the metric groups wrong_text applies to


BOOTSTRAP_SAMPLES = bootstrap.SAMPLES
LEVEL = bootstrap.LEVEL


@dataclass(frozen=True)
class SanityMetric:
    key: str
    label: str
    path: tuple[str, ...]
    lower_is_better: bool
    group: str  # the evaluate metric it comes from
    # the per-utterance rows (quality.tsv) the summary value comes from: (numerator, denominator) row keys,
    # the value being sum(numerator) / sum(denominator), or the mean of numerator when denominator is None;
    # None for set-level metrics
    rows: tuple[str, str | None] | None = None


SANITY_METRICS = (
    SanityMetric("fd_speaker", "FD speaker", ("fd_speaker", "value"), True, "fd_speaker"),
    SanityMetric("kid_speaker", "KID speaker", ("kid_speaker", "value"), True, "fd_speaker"),
    SanityMetric("spk_cosine", "speaker cosine", ("fd_speaker", "mean_spk_cosine"), False, "fd_speaker",
                 ("spk_cosine", None)),
    SanityMetric("fd_logmel", "FD log-mel", ("fd_logmel", "value"), True, "fd_logmel"),
    SanityMetric("fd_logmel_inf", "FD_inf log-mel", ("fd_logmel", "vs_n", "fd_inf"), True, "fd_logmel"),
    SanityMetric("kid_logmel", "KID log-mel", ("kid_logmel", "value"), True, "fd_logmel"),
    SanityMetric("dnsmos_ovrl", "DNSMOS OVRL", ("dnsmos", "generated", "ovrl"), False, "dnsmos",
                 ("dnsmos_ovrl", None)),
    *(metric
      for group, name in (("wer", "generic"), ("wer_domain", "domain"), ("wer_espeak", "eSpeak"))
      for metric in (
          SanityMetric(group, f"WER ({name})", (group, "generated", "wer"), True, group,
                       (f"{group}_errors", "wer_ref_words")),
          SanityMetric(group.replace("wer", "cer"), f"CER ({name})", (group, "generated", "cer"), True, group,
                       (f"{group}_char_errors", "wer_ref_chars")))),
    SanityMetric("mcd", "MCD (dB)", ("mcd", "mean"), True, "mcd", ("mcd", None)),
)


def _lookup(summary: dict | None, path: tuple[str, ...]):
    value = summary
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def applies(metric: SanityMetric, condition: str) -> bool:
    return condition != "wrong_text" or metric.group in TEXT_OR_PAIR


def _per_utterance(metric: SanityMetric, rows: list[dict] | None) -> dict[str, tuple[float, float]] | None:
    """utt_id -> (numerator, denominator) of the metric's value, or None without rows (numbers or their
    text, as read back from quality.tsv)."""
    if metric.rows is None or not rows:
        return None
    numerator, denominator = metric.rows
    out = {}
    for row in rows:
        values = (_number(row.get(numerator)), 1.0 if denominator is None else _number(row.get(denominator)))
        if None in values:
            return None  # the rows do not carry this metric: no paired test
        out[str(row["utt_id"])] = values
    return out


def _number(value) -> float | None:
    """A finite number from a row as evaluate_pairs returns it or as quality.tsv holds it (text), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def paired_difference(better: dict[str, tuple[float, float]], worse: dict[str, tuple[float, float]],
                      lower_is_better: bool, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                      level: float = LEVEL) -> tuple[float, tuple[float, float], int] | None:
    """How much better `better` scores than `worse` (positive: the expected order), over the utterances
    both have, with the interval of a paired bootstrap over those utterances (quality.bootstrap). None
    with fewer than 2 shared utterances."""
    first, second = (worse, better) if lower_is_better else (better, worse)
    test = bootstrap.paired_difference(first, second, samples, seed, level)
    return None if test is None else (test["difference"], tuple(test["ci"]), test["n"])


def sanity_table(summaries: dict[str, dict], rows: dict[str, list[dict]] | None = None,
                 samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict:
    """summaries: condition -> its quality summary; rows: condition -> its per-utterance rows (quality.tsv),
    which give the paired test of the module docstring (without them every pair must be strictly ordered).
    Returns the JSON-able table: per metric, the value under each condition, whether it ranks the tiers
    correctly, the pairs it gets wrong (`failures`) and those it cannot separate at this n (`ties`)."""
    out = {"tiers": [list(t) for t in TIERS], "conditions": {}, "metrics": {},
           "paired_test": {"samples": samples, "level": LEVEL, "seed": seed, "unit": "test sentences"}}
    for metric in SANITY_METRICS:
        values = {c: _lookup(summaries.get(c), metric.path) for c in CONDITIONS if applies(metric, c)}
        values = {c: v for c, v in values.items() if v is not None}
        if "real" not in values or len(values) < 2:
            continue  # not computed
        failures, ties = [], []
        tiers = [[c for c in tier if c in values] for tier in TIERS]
        tiers = [t for t in tiers if t]
        for better, worse in zip(tiers, tiers[1:]):
            for b in better:
                for w in worse:
                    ok = values[b] < values[w] if metric.lower_is_better else values[b] > values[w]
                    if ok:
                        continue
                    text = f"{b} {values[b]:.4g} vs {w} {values[w]:.4g}"
                    per_b, per_w = (_per_utterance(metric, (rows or {}).get(c)) for c in (b, w))
                    test = None if per_b is None or per_w is None else paired_difference(
                        per_b, per_w, metric.lower_is_better, samples, seed)
                    if test is not None and test[1][0] <= 0 <= test[1][1]:
                        ties.append(f"{text} (difference {test[0]:+.3g}, {LEVEL:.0%} interval "
                                    f"[{test[1][0]:+.3g}, {test[1][1]:+.3g}] over {test[2]} sentences)")
                    else:
                        failures.append(text if test is None else
                                        f"{text} (difference {test[0]:+.3g}, {LEVEL:.0%} interval "
                                        f"[{test[1][0]:+.3g}, {test[1][1]:+.3g}])")
        out["metrics"][metric.key] = {
            "label": metric.label, "lower_is_better": metric.lower_is_better, "values": values,
            "ranks_correctly": not failures, "failures": failures, "ties": ties}
    return out


def flagged(table: dict) -> list[str]:
    """Keys of the metrics that do not rank the conditions correctly."""
    return [key for key, entry in table.get("metrics", {}).items() if not entry["ranks_correctly"]]


# ------------------------------------------------------------------------------- degradations

def add_noise(wav: np.ndarray, snr_db: float = NOISE_SNR_DB, seed: int = 0) -> np.ndarray:
    """White Gaussian noise at `snr_db` below the clip's mean power (seeded)."""
    wav = np.asarray(wav, np.float64)
    noise = np.random.default_rng(seed).standard_normal(len(wav))
    noise *= np.sqrt(np.mean(wav ** 2) / 10 ** (snr_db / 10))
    return np.clip(wav + noise, -1, 1).astype(np.float32)


def time_stretch(wav: np.ndarray, rate: float = STRETCH_RATE) -> np.ndarray:
    """librosa's phase-vocoder time stretch (rate > 1: faster, shorter)."""
    import librosa

    return np.clip(librosa.effects.time_stretch(np.asarray(wav, np.float32), rate=rate), -1, 1).astype(np.float32)


def random_mel(like: np.ndarray, low: float, high: float, seed: int = 0) -> np.ndarray:
    """Log-mels of `like`'s shape drawn uniformly from [low, high] (seeded)."""
    return np.random.default_rng(seed).uniform(low, high, size=like.shape).astype(np.float32)
