"""What does a system cost in audio quality against its baseline? Paired differences across training seeds.

The quality half of the report's main question, beside the privacy comparisons (holdtts.report.comparisons)
and for the same pairs of systems: every system against vp, and a defense of order n also against the plain
order-n system. Each difference is holdtts.quality.bootstrap.paired_difference_over_seeds on the test
sentences every model of both systems was scored on: the seed-mean of each metric (a mean per sentence, or
a ratio of sums for WER/CER), the sentences resampled jointly, the seeds within each system.

Two readings:
- common: every model at the one sampler and step count of evaluate/ (what makes the systems comparable);
- own: every model at its own sampler (evaluate_own/, or evaluate/ when that was the model's own sampler
  already, as for vp); a model with neither (evaluated at the common sampler only, though its own differs)
  is left out of this reading, and the entry names the models it used.
Nothing is picked, so, like a pre-registered privacy cell, a reading over one seed a side is resolved for
those trained models, not for the systems.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from holdtts.quality.bootstrap import paired_difference_over_seeds
from holdtts.report.collect import SystemRecord, per_sentence_values, read_quality_rows
from holdtts.report.comparisons import MIN_SEEDS, Group, baselines_for, group_records

ALPHA = 0.05
SAMPLES = 2000
SEED = 0
READINGS = ("common", "own")
READING_LABELS = {"common": "the common sampler (evaluate/)", "own": "each system's own sampler"}


@dataclass(frozen=True)
class PairedMetric:
    key: str
    label: str
    lower_is_better: bool
    columns: tuple[str, ...]  # quality.tsv columns: one value, or (numerator, denominator) of a ratio of sums


METRICS = (
    PairedMetric("dnsmos_ovrl", "DNSMOS OVRL", False, ("dnsmos_ovrl",)),
    PairedMetric("mcd", "MCD (dB)", True, ("mcd",)),
    PairedMetric("wer_espeak", "WER (eSpeak)", True, ("wer_espeak_errors", "wer_ref_words")),
    PairedMetric("cer_espeak", "CER (eSpeak)", True, ("wer_espeak_char_errors", "wer_ref_chars")),
    PairedMetric("wer", "WER (generic)", True, ("wer_errors", "wer_ref_words")),
)


def _own_rows(record: SystemRecord) -> Path | None:
    """The per-sentence rows of the model at its own sampler: evaluate_own/, or evaluate/ when that ran at
    the sampler and step count of the model's own config."""
    if record.quality_own_rows_path is not None:
        return record.quality_own_rows_path
    if record.quality is None or record.quality_rows_path is None:
        return None
    own = (record.config or {}).get("synthesis") or {}
    used = (record.quality.get("sampler"), record.quality.get("steps"))
    return record.quality_rows_path if (own.get("sampler"), own.get("steps")) == used else None


def _rows_path(record: SystemRecord, reading: str) -> Path | None:
    return record.quality_rows_path if reading == "common" else _own_rows(record)


def _side(group: Group, reading: str, metric: PairedMetric, cache: dict) -> tuple[list[dict], list[str]]:
    """Each model of the group with rows for this reading and metric, and their names."""
    models, names = [], []
    for record in group.records:
        path = _rows_path(record, reading)
        if path is None:
            continue
        if path not in cache:
            cache[path] = read_quality_rows(path)
        values = per_sentence_values(cache[path], metric.columns, path)
        if values:
            models.append(values)
            names.append(record.name)
    return models, names


def quality_verdict(result: dict, lower_is_better: bool, alpha: float = ALPHA) -> str:
    """Plain words for one quality difference (system minus baseline)."""
    low, high = result["ci"]
    if result["p_value"] < alpha and (high < 0 or low > 0):
        words = "better" if (high < 0) == lower_is_better else "worse"
    else:
        words = "no difference resolved"
    if min(result["system"]["seeds"], result["baseline"]["seeds"]) < MIN_SEEDS:
        words += f" (for these trained models; fewer than {MIN_SEEDS} training seeds a side, so not for the systems)"
    return words


def compare_quality(group: Group, baseline: Group, reading: str, metric: PairedMetric, cache: dict,
                    samples: int = SAMPLES, seed: int = SEED) -> dict:
    system, system_names = _side(group, reading, metric, cache)
    base, base_names = _side(baseline, reading, metric, cache)
    out = {"result": None, "why": None, "system_models": system_names, "baseline_models": base_names}
    if not system or not base:
        lacking = group.name if not system else baseline.name
        out["unmeasured"] = True  # the evaluation left the metric out (the report then shows no column)
        out["why"] = f"{lacking} has no per-sentence {metric.label} at {READING_LABELS[reading]}"
        return out
    result = paired_difference_over_seeds(system, base, samples=samples, seed=seed)
    if result is None:
        out["why"] = "fewer than 2 sentences scored by every model"
        return out
    out["result"] = result
    out["verdict"] = quality_verdict(result, metric.lower_is_better)
    return out


def quality_comparisons(records: list[SystemRecord], reference_name: str, samples: int = SAMPLES,
                        seed: int = SEED) -> list[dict]:
    """One entry per (system group, baseline group), the pairs of the privacy comparisons: per reading and
    metric, the paired difference over seeds (or why not)."""
    groups = group_records(records)
    reference = next((g for g in groups if g.name == reference_name), groups[0])
    cache: dict[Path, dict] = {}
    out = []
    for group in groups:
        for baseline in baselines_for(group, groups, reference):
            readings = {reading: {m.key: compare_quality(group, baseline, reading, m, cache, samples, seed)
                                  for m in METRICS} for reading in READINGS}
            out.append({"system": group.name, "baseline": baseline.name, "readings": readings})
    return out


def first_result(items: dict) -> dict | None:
    """Of one reading's metrics, the first that has a result (its models, seeds and sentences describe the
    row), or None."""
    return next((items[m.key] for m in METRICS if items[m.key]["result"] is not None), None)


def own_is_common(readings: dict) -> bool:
    """Whether the pair's own-sampler reading is its common one: the same models and results for every
    metric (the reasons a metric has no result name the reading, so they are not compared)."""
    def gist(item: dict) -> tuple:
        return item["result"], item["system_models"], item["baseline_models"]

    own, common = readings["own"], readings["common"]
    return all(gist(own[m.key]) == gist(common[m.key]) for m in METRICS)


def has_own_reading(entries: list[dict]) -> bool:
    """Whether any system's own-sampler reading differs from its common one (used other rows)."""
    return not all(own_is_common(e["readings"]) for e in entries)
