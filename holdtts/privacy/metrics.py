"""Attack metrics from the rows file, with members as the positive class (scikit-learn's ROC arithmetic).

For each (attack, t): AUROC, ASR (the best balanced accuracy over thresholds), TPR at 1% and 0.1% FPR
(the largest TPR whose FPR does not exceed the target, Carlini et al.'s convention), each with a
percentile bootstrap 95% interval over utterances; each attack's best t (highest AUROC) and the
strongest (attack, t) overall. Everything is a function of the rows alone, so `metrics_from_rows` on a
rows file reproduces the JSON exactly.
"""
from __future__ import annotations

import csv
import math
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from sklearn.metrics import auc, roc_curve

from holdtts.errors import InputError
from holdtts.utils.fileio import atomic_open

ROW_FIELDS = ("utt_id", "member", "attack", "t", "score")
NO_T = "-"
FPR_TARGETS = {"tpr@1%fpr": 0.01, "tpr@0.1%fpr": 0.001}
METRICS = ("auroc", "asr", *FPR_TARGETS)


def format_t(t: float | None) -> str:
    return NO_T if t is None else f"{t:g}"


def roc_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUROC, ASR and TPR at fixed FPRs for one set of labelled scores."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    out = {"auroc": float(auc(fpr, tpr)), "asr": float(np.max((tpr + 1 - fpr) / 2))}
    for name, target in FPR_TARGETS.items():
        out[name] = float(tpr[fpr <= target].max()) if np.any(fpr <= target) else 0.0
    return out


def bootstrap(labels: np.ndarray, scores: np.ndarray, samples: int, seed: int, level: float = 0.95):
    """Percentile intervals of every metric over `samples` resamplings of the utterances (stratified:
    members and non-members are resampled separately, so each resample has both classes). No samples:
    no intervals (None)."""
    if samples <= 0:
        return dict.fromkeys(METRICS)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    values = {m: np.empty(samples) for m in METRICS}
    for i in range(samples):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        for m, v in roc_metrics(labels[idx], scores[idx]).items():
            values[m][i] = v
    tail = (1 - level) / 2 * 100
    return {m: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] for m, v in values.items()}


def compute_metrics(rows: Iterable[dict], bootstrap_samples: int = 1000, seed: int = 0) -> dict:
    """Metrics JSON from rows with the columns of ROW_FIELDS (member 0/1, t a string, score a float)."""
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
    strongest = None
    for attack, result in results.items():
        best_t = max(result["by_t"], key=lambda t: (result["by_t"][t]["auroc"], _t_value(t)))
        result["best_t"] = best_t
        result["best"] = result["by_t"][best_t]
        if strongest is None or result["best"]["auroc"] > strongest["auroc"]:
            strongest = {"attack": attack, "t": best_t, **result["best"]}
    return {
        "positive_class": "member",
        "bootstrap": {"samples": bootstrap_samples, "seed": seed, "level": 0.95, "stratified": True},
        "num_members": members,
        "num_nonmembers": nonmembers,
        "attacks": results,
        "strongest": strongest,
        "note": "best t and the strongest attack are selected on the evaluation rows themselves "
                "(as the published attacks report them): an optimistic upper bound for the attacker",
    }


def _t_value(t: str) -> float:
    return -math.inf if t == NO_T else -float(t)  # ties: prefer the smaller t


def write_rows(path: str | Path, rows: Iterable[dict]) -> None:
    with atomic_open(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=ROW_FIELDS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in ROW_FIELDS})


def read_rows(path: str | Path) -> list[dict]:
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t")
            if reader.fieldnames is None or any(c not in reader.fieldnames for c in ROW_FIELDS):
                raise InputError(f"a rows file needs the columns {', '.join(ROW_FIELDS)}", path, 1)
            rows = []
            for line, row in enumerate(reader, 2):
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


def metrics_from_rows(path: str | Path, bootstrap_samples: int = 1000, seed: int = 0) -> dict:
    return compute_metrics(read_rows(path), bootstrap_samples, seed)
