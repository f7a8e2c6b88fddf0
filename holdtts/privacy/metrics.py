"""Attack metrics from the rows file, with members as the positive class (scikit-learn's ROC arithmetic).

Per (attack, t), on all rows: AUROC, ASR, TPR at 1% and 0.1% FPR with stratified bootstrap 95% intervals
(descriptive: each cell alone). Per rows file, the held-out analysis of holdtts.privacy.statistics: the
`headline` (the strongest attack and its t picked on a calibration half, measured on the test half, with a
label-permutation p-value over every cell), each attack at its calibration-picked t (`heldout`), and the
in-sample maximum labelled as the optimistic upper bound it is. Everything is a function of the rows alone,
so `metrics_from_rows` on a rows file reproduces the JSON exactly.

Rows of multi-speaker data carry a speaker column (holdtts.privacy.speakers). When every speaker is wholly a
member or a non-member (the speaker protocol), the utterance-level halves and permutations keep speakers
whole and `speaker_level` adds the analysis on speakers; otherwise (the utterance protocol) `per_speaker`
gives the spread of the headline's AUROC across speakers.
"""
from __future__ import annotations

import csv
import math
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from holdtts.errors import InputError
from holdtts.privacy.speakers import infer_protocol, per_speaker_auroc, row_speakers, speaker_level
from holdtts.privacy.statistics import (
    DEFAULT_PERMUTATIONS,
    FPR_TARGETS,
    METRICS,
    NO_T,
    ScoreTable,
    bootstrap,
    leakage,
    roc_metrics,
)
from holdtts.utils.fileio import atomic_open

ROW_FIELDS = ("utt_id", "member", "attack", "t", "score")
SPEAKER_FIELD = "speaker"  # rows of multi-speaker data carry the utterance's speaker as a sixth column
__all__ = ["FPR_TARGETS", "METRICS", "NO_T", "ROW_FIELDS", "bootstrap", "compute_metrics", "format_t",
           "metrics_from_rows", "read_rows", "roc_metrics", "write_rows"]


def format_t(t: float | None) -> str:
    return NO_T if t is None else f"{t:g}"


def compute_metrics(rows: Iterable[dict], bootstrap_samples: int = 1000, seed: int = 0,
                    permutations: int = DEFAULT_PERMUTATIONS, split_seed: int = 0,
                    alternative: str = "two-sided") -> dict:
    """Metrics JSON from rows with the columns of ROW_FIELDS (member 0/1, t a string, score a float)."""
    rows = list(rows)
    groups: dict[tuple[str, str], list[tuple[int, float, str]]] = {}
    for row in rows:
        groups.setdefault((row["attack"], row["t"]), []).append((int(row["member"]), float(row["score"]),
                                                                 row["utt_id"]))
    results: dict[str, dict] = {}
    members = nonmembers = 0
    for (attack, t), items in sorted(groups.items()):
        items.sort(key=lambda x: x[2])  # a fixed order, so the bootstrap does not depend on row order
        labels = np.array([m for m, _, _ in items])
        scores = np.array([s for _, s, _ in items])
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"non-finite scores for attack {attack} at t={t}")
        if labels.min() == labels.max():
            raise ValueError(f"attack {attack} at t={t}: need both members and non-members")
        members, nonmembers = int(labels.sum()), int(len(labels) - labels.sum())
        entry = roc_metrics(labels, scores)
        key_seed = zlib.crc32(f"{seed}|{attack}|{t}".encode())
        entry.update({f"{m}_ci": ci for m, ci in bootstrap(labels, scores, bootstrap_samples, key_seed).items()})
        entry.update({"num_members": members, "num_nonmembers": nonmembers})
        results.setdefault(attack, {"by_t": {}})["by_t"][t] = entry
    for result in results.values():  # descriptive only: picked on the rows it is reported on
        best_t = max(result["by_t"], key=lambda t: (result["by_t"][t]["auroc"], _t_value(t)))
        result["best_t"] = best_t
        result["best"] = result["by_t"][best_t]
    table = ScoreTable.from_rows(rows)
    speakers = row_speakers(rows)
    protocol = None if speakers is None else infer_protocol(table, speakers)
    groups = [speakers[u] for u in table.utt_ids] if protocol == "speaker" else None
    analysis = leakage(table, split_seed=split_seed, permutations=permutations,
                       bootstrap_samples=bootstrap_samples, seed=seed, alternative=alternative, groups=groups)
    extra: dict = {}
    if speakers is not None:
        extra["protocol"] = protocol
        extra["num_speakers"] = len(set(speakers.values()))
        if protocol == "speaker":
            extra["speaker_level"] = speaker_level(table, speakers, split_seed=split_seed, permutations=permutations,
                                                   bootstrap_samples=bootstrap_samples, seed=seed,
                                                   alternative=alternative)
        else:
            extra["per_speaker"] = per_speaker_auroc(table, speakers, analysis["headline"])
    return {
        "positive_class": "member",
        "bootstrap": {"samples": bootstrap_samples, "seed": seed, "level": 0.95, "stratified": True},
        "num_members": members,
        "num_nonmembers": nonmembers,
        **analysis,
        "attacks": results,
        **extra,
        "note": "headline and heldout: attack and t picked on a calibration half, measured on the test half; "
                "by_t, best_t and in_sample_max: on all rows (best_t and in_sample_max are optimistic upper "
                "bounds for the attacker, not findings)",
    }


HELDOUT_ONLY = "headline and heldout only; attacks.*.by_t carry no interval"


def heldout_interval_metrics(rows: Iterable[dict], bootstrap_samples: int = 1000, seed: int = 0,
                             permutations: int = DEFAULT_PERMUTATIONS) -> dict:
    """compute_metrics's JSON with bootstrap intervals on the held-out figures only (the headline and each
    attack's held-out AUROC; `bootstrap.scope` says so). The descriptive per-(attack, t) intervals are left
    out: with many models of small data (the toy study) they cost minutes each and no finding uses them."""
    rows = list(rows)
    metrics = compute_metrics(rows, 0, seed=seed, permutations=permutations)
    metrics.update(leakage(ScoreTable.from_rows(rows), bootstrap_samples=bootstrap_samples, seed=seed,
                           permutations=permutations))
    metrics["bootstrap"] = {**metrics["bootstrap"], "samples": bootstrap_samples, "scope": HELDOUT_ONLY}
    return metrics


def _t_value(t: str) -> float:
    return -math.inf if t == NO_T else -float(t)  # ties: prefer the smaller t


def write_rows(path: str | Path, rows: Iterable[dict]) -> None:
    """rows.tsv: the ROW_FIELDS columns, and the speaker column when the rows have one (multi-speaker data)."""
    rows = list(rows)
    fields = ROW_FIELDS + ((SPEAKER_FIELD,) if rows and SPEAKER_FIELD in rows[0] else ())
    with atomic_open(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=fields, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in fields})


def read_rows(path: str | Path) -> list[dict]:
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t")
            if reader.fieldnames is None or any(c not in reader.fieldnames for c in ROW_FIELDS):
                raise InputError(f"a rows file needs the columns {', '.join(ROW_FIELDS)}", path, 1)
            rows = []
            speakers = SPEAKER_FIELD in reader.fieldnames
            for line, row in enumerate(reader, 2):
                if speakers and not row[SPEAKER_FIELD]:
                    raise InputError("the speaker column is empty", path, line)
                if row["member"] not in ("0", "1"):
                    raise InputError(f"member must be 0 or 1, got {row['member']!r}", path, line)
                try:
                    float(row["score"])
                except (TypeError, ValueError) as err:
                    raise InputError(f"score is not a number: {row['score']!r}", path, line) from err
                rows.append(row)
    except FileNotFoundError as err:
        raise InputError("rows file not found", path) from err
    return rows


def metrics_from_rows(path: str | Path, bootstrap_samples: int = 1000, seed: int = 0, **options) -> dict:
    return compute_metrics(read_rows(path), bootstrap_samples, seed, **options)
