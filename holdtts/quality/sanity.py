"""The sanity table: does each quality metric rank audio of known quality in the known order?

Conditions, from best to worst (tiers), each scored on the test sentences (set A) with the same
evaluate_pairs call a system gets, set-level metrics against other real recordings (set B):

  1. real        the real recordings of A
  2. vocoded     A's real mels through the vocoder
  3. noisy       A with white noise at NOISE_SNR_DB;  stretched: A time-stretched by STRETCH_RATE
  4. wrong_text  A's recordings scored against another sentence's text and recording (rotated by one);
     random_mels random log-mels (uniform over the real mels' range) through the vocoder

A metric passes when every condition of a tier scores strictly better than every condition of the next
tier that applies to it. wrong_text applies only to metrics that read the text or the paired recording
(WER, CER, MCD): for the others it is the real audio again. A metric that fails is flagged, and the
report says so beside its numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOISE_SNR_DB = 5.0
STRETCH_RATE = 1.3  # faster speech: 30% shorter
TIERS = (("real",), ("vocoded",), ("noisy", "stretched"), ("wrong_text", "random_mels"))
CONDITIONS = tuple(c for tier in TIERS for c in tier)
TEXT_OR_PAIR = ("wer", "wer_domain", "wer_espeak", "mcd")  # the metric groups wrong_text applies to


@dataclass(frozen=True)
class SanityMetric:
    key: str
    label: str
    path: tuple[str, ...]
    lower_is_better: bool
    group: str  # the evaluate metric it comes from


SANITY_METRICS = (
    SanityMetric("fd_speaker", "FD speaker", ("fd_speaker", "value"), True, "fd_speaker"),
    SanityMetric("kid_speaker", "KID speaker", ("kid_speaker", "value"), True, "fd_speaker"),
    SanityMetric("spk_cosine", "speaker cosine", ("fd_speaker", "mean_spk_cosine"), False, "fd_speaker"),
    SanityMetric("fd_logmel", "FD log-mel", ("fd_logmel", "value"), True, "fd_logmel"),
    SanityMetric("fd_logmel_inf", "FD_inf log-mel", ("fd_logmel", "vs_n", "fd_inf"), True, "fd_logmel"),
    SanityMetric("kid_logmel", "KID log-mel", ("kid_logmel", "value"), True, "fd_logmel"),
    SanityMetric("dnsmos_ovrl", "DNSMOS OVRL", ("dnsmos", "generated", "ovrl"), False, "dnsmos"),
    SanityMetric("wer", "WER (generic)", ("wer", "generated", "wer"), True, "wer"),
    SanityMetric("cer", "CER (generic)", ("wer", "generated", "cer"), True, "wer"),
    SanityMetric("wer_domain", "WER (domain)", ("wer_domain", "generated", "wer"), True, "wer_domain"),
    SanityMetric("cer_domain", "CER (domain)", ("wer_domain", "generated", "cer"), True, "wer_domain"),
    SanityMetric("wer_espeak", "WER (eSpeak)", ("wer_espeak", "generated", "wer"), True, "wer_espeak"),
    SanityMetric("cer_espeak", "CER (eSpeak)", ("wer_espeak", "generated", "cer"), True, "wer_espeak"),
    SanityMetric("mcd", "MCD (dB)", ("mcd", "mean"), True, "mcd"),
)


def _lookup(summary: dict | None, path: tuple[str, ...]):
    value = summary
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def applies(metric: SanityMetric, condition: str) -> bool:
    return condition != "wrong_text" or metric.group in TEXT_OR_PAIR


def sanity_table(summaries: dict[str, dict]) -> dict:
    """summaries: condition -> its quality summary. Returns the JSON-able table: per metric, the value
    under each condition, whether it ranks the tiers correctly, and the first pair it gets wrong."""
    out = {"tiers": [list(t) for t in TIERS], "conditions": {}, "metrics": {}}
    for metric in SANITY_METRICS:
        values = {c: _lookup(summaries.get(c), metric.path) for c in CONDITIONS if applies(metric, c)}
        values = {c: v for c, v in values.items() if v is not None}
        if "real" not in values or len(values) < 2:
            continue  # not computed
        failures = []
        tiers = [[c for c in tier if c in values] for tier in TIERS]
        tiers = [t for t in tiers if t]
        for better, worse in zip(tiers, tiers[1:]):
            for b in better:
                for w in worse:
                    ok = values[b] < values[w] if metric.lower_is_better else values[b] > values[w]
                    if not ok:
                        failures.append(f"{b} {values[b]:.4g} vs {w} {values[w]:.4g}")
        out["metrics"][metric.key] = {
            "label": metric.label, "lower_is_better": metric.lower_is_better, "values": values,
            "ranks_correctly": not failures, "failures": failures}
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
