"""Recompute committed results from the per-utterance rows beside them, and name every value that differs.

- An attack's metrics.json is a function of its rows.tsv and of the settings the file itself records
  (bootstrap samples and seed, permutations, split seed, alternative): holdtts.privacy.metrics computes
  the whole file again and every leaf is compared exactly.
- An evaluation's quality.json holds per-utterance statistics that are functions of its quality.tsv:
  WER/CER counts, rates and bootstrap intervals of every recogniser, the DNSMOS means, MCD's mean and
  spread, and the mean speaker cosine. Those are recomputed the way holdtts.quality.evaluate computes them.
  The set-level metrics (FD, KID) need the embeddings and frames, which are not committed: they are
  listed as not checked, never as passed.

`holdtts verify DIR...` runs both over every result folder under the given paths.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from holdtts.errors import InputError
from holdtts.privacy.metrics import HELDOUT_ONLY, compute_metrics, heldout_interval_metrics, read_rows
from holdtts.quality import asr
from holdtts.quality.evaluate import read_rows_tsv, speaker_similarity_means
from holdtts.utils.fileio import read_json, strict_json

SET_LEVEL = ("fd_speaker", "kid_speaker", "fd_logmel", "kid_logmel")  # need what is not committed
WER_METRICS = ("wer", "wer_domain", "wer_espeak")


@dataclass
class Check:
    """One result folder: what was recomputed, what differed, and what could not be checked."""

    path: Path
    kind: str  # "attack" or "quality"
    checked: int = 0  # values compared
    mismatches: list[str] = field(default_factory=list)  # "key: committed X, recomputed Y"
    unchecked: list[str] = field(default_factory=list)  # entries that the rows cannot give
    not_checkable: str | None = None  # why nothing in the file could be recomputed

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.not_checkable is None


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _compare(committed, recomputed, key: str, check: Check) -> None:
    """Every leaf of `committed` against the same path of `recomputed` (exact: both are the same arithmetic
    on the same numbers)."""
    if isinstance(committed, dict) and isinstance(recomputed, dict):
        for name in committed:
            if name not in recomputed:
                check.mismatches.append(f"{key}{name}: committed but not recomputed")
            else:
                _compare(committed[name], recomputed[name], f"{key}{name}.", check)
        for name in recomputed:
            if name not in committed:
                check.mismatches.append(f"{key}{name}: recomputed but not in the committed file")
        return
    if isinstance(committed, list) and isinstance(recomputed, list) and len(committed) == len(recomputed):
        for index, (a, b) in enumerate(zip(committed, recomputed)):
            _compare(a, b, f"{key}{index}.", check)
        return
    check.checked += 1
    if not _same(committed, recomputed):
        check.mismatches.append(f"{key.rstrip('.')}: committed {committed!r}, recomputed {recomputed!r}")


def verify_attack(folder: str | os.PathLike) -> Check:
    """metrics.json recomputed in full from rows.tsv with the settings it records."""
    folder = Path(folder)
    check = Check(folder, "attack")
    if not (folder / "rows.tsv").is_file():
        check.not_checkable = "no rows.tsv beside metrics.json"
        return check
    saved = read_json(folder / "metrics.json")
    try:
        options = {"bootstrap_samples": saved["bootstrap"]["samples"], "seed": saved["bootstrap"]["seed"],
                   "permutations": saved["permutation"]["permutations"]}
        split_seed, alternative = saved["split"]["seed"], saved["alternative"]
    except (KeyError, TypeError) as err:
        check.not_checkable = f"an older holdtts wrote it: it does not record the setting {err} it was computed with"
        return check
    rows = read_rows(folder / "rows.tsv")
    try:
        if saved["bootstrap"].get("scope") == HELDOUT_ONLY:  # the toy study's intervals
            again = heldout_interval_metrics(rows, **options)
        else:
            again = compute_metrics(rows, split_seed=split_seed, alternative=alternative, **options)
    except ValueError as err:
        raise InputError(str(err), folder / "rows.tsv") from err
    _compare(saved, json.loads(json.dumps(again)), "", check)
    return check


def _mean(values: list[float]) -> float:  # holdtts.quality.evaluate's arithmetic, on the rows' repr floats
    return float(np.mean(values))


def _column(rows: list[dict], column: str, kind, table: Path) -> list:
    values = []
    for line, row in enumerate(rows, 2):
        try:
            values.append(kind(row[column]))
        except KeyError as err:
            raise InputError(f"no column {err} for a statistic that quality.json reports", table, 1) from err
        except ValueError as err:
            raise InputError(f"column {column}: {err}", table, line) from err
    return values


def _word_errors(rows: list[dict], prefix: str, table: Path) -> list[asr.WordErrors]:
    counts = {part: _column(rows, f"{prefix}_{part}", int, table) for part in ("sub", "del", "ins", "char_errors")}
    return [asr.WordErrors(reference=row["text"], hypothesis=row[f"{prefix}_hyp"], substitutions=counts["sub"][i],
                           deletions=counts["del"][i], insertions=counts["ins"][i],
                           char_errors=counts["char_errors"][i])
            for i, row in enumerate(rows)]


def _speaker_similarity(rows: list[dict], table: Path) -> dict:
    columns = {name: _column(rows, name, kind, table)
               for name, kind in (("speaker", str), ("spk_cosine", float), ("spk_cosine_speaker", float))}
    return speaker_similarity_means([dict(zip(columns, values)) for values in zip(*columns.values())])


def verify_quality(folder: str | os.PathLike) -> Check:
    """The per-utterance statistics of quality.json recomputed from quality.tsv."""
    folder = Path(folder)
    check = Check(folder, "quality")
    table = folder / "quality.tsv"
    if not table.is_file():
        check.not_checkable = "no quality.tsv beside quality.json"
        return check
    saved = read_json(folder / "quality.json")
    rows = read_rows_tsv(table)
    if not rows:
        raise InputError("no utterances", table)
    _compare(saved.get("n_utterances"), len(rows), "n_utterances.", check)
    again: dict = {}
    if "mean_spk_cosine" in saved.get("fd_speaker", {}):
        again["fd_speaker"] = {"mean_spk_cosine": _mean(_column(rows, "spk_cosine", float, table))}
    if "speaker_similarity" in saved:
        again["speaker_similarity"] = _speaker_similarity(rows, table)
    if "dnsmos" in saved:
        again["dnsmos"] = {side: {key: _mean(_column(rows, f"{prefix}_{key}", float, table))
                                  for key in saved["dnsmos"][side]}
                           for side, prefix in (("generated", "dnsmos"), ("reference", "ref_dnsmos"))
                           if side in saved["dnsmos"]}
    if "mcd" in saved:
        values = _column(rows, "mcd", float, table)
        again["mcd"] = {"mean": _mean(values), "std": float(np.std(values)), "n": len(values)}
    for metric in WER_METRICS:
        if metric in saved:
            again[metric] = {side: asr.corpus_wer(_word_errors(rows, metric if side == "generated" else f"ref_{metric}",
                                                               table))
                             for side in ("generated", "reference") if side in saved[metric]}
    # evaluate writes NaN as null (strict JSON): the same conversion before comparing
    for name, recomputed in json.loads(json.dumps(strict_json(again))).items():
        committed = saved[name]
        for part, values in recomputed.items():
            # only what the rows determine; a summary written before a key existed keeps its own keys
            if isinstance(values, dict):
                values = {k: v for k, v in values.items() if k in committed.get(part, {})}
                _compare({k: committed[part][k] for k in values}, values, f"{name}.{part}.", check)
            else:
                _compare(committed[part], values, f"{name}.{part}.", check)
    check.unchecked = [f"{name} (all but mean_spk_cosine)" if name == "fd_speaker" else name
                       for name in SET_LEVEL if name in saved]
    return check


def result_folders(paths: list[str | os.PathLike]) -> list[tuple[str, Path]]:
    """(kind, folder) for every attack and evaluation summary at or under the paths (a file names its folder);
    a summary without its rows is listed too, and verify says it cannot be checked."""
    found: set[tuple[str, Path]] = set()
    for root in map(Path, paths):
        if not root.exists():
            raise InputError("no such file or directory", root)
        for kind, summary in (("attack", "metrics.json"), ("quality", "quality.json")):
            candidates = [root.parent] if root.is_file() else [root, *(p.parent for p in root.rglob(summary))]
            found.update((kind, folder) for folder in candidates if (folder / summary).is_file())
    return sorted(found, key=lambda item: (str(item[1]), item[0]))


def verify(paths: list[str | os.PathLike]) -> list[Check]:
    return [verify_attack(folder) if kind == "attack" else verify_quality(folder)
            for kind, folder in result_folders(paths)]
