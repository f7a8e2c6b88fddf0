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
from holdtts.privacy.metrics import metrics_from_rows
from holdtts.quality import asr
from holdtts.quality.evaluate import read_rows_tsv

ATTACK_FILES = ("metrics.json", "rows.tsv")
QUALITY_FILES = ("quality.json", "quality.tsv")
SET_LEVEL = ("fd_speaker", "kid_speaker", "fd_logmel", "kid_logmel")  # need what is not committed
WER_METRICS = ("wer", "wer_domain", "wer_espeak")


@dataclass
class Check:
    """One result folder: what was recomputed, what differed, and what could not be checked."""

    path: Path
    kind: str  # "attack" or "quality"
    checked: int = 0  # values compared
    mismatches: list[str] = field(default_factory=list)  # "key: committed X, recomputed Y"
    unchecked: list[str] = field(default_factory=list)  # keys that the rows cannot give

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON ({err.msg})", path, err.lineno) from err


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
    saved = _load_json(folder / "metrics.json")
    check = Check(folder, "attack")
    try:
        options = {"bootstrap_samples": saved["bootstrap"]["samples"], "seed": saved["bootstrap"]["seed"],
                   "permutations": saved["permutation"]["permutations"], "split_seed": saved["split"]["seed"],
                   "alternative": saved["alternative"]}
    except (KeyError, TypeError) as err:
        raise InputError(f"does not record the setting {err} it was computed with (an older holdtts wrote it; "
                         "run `holdtts attack` again)", folder / "metrics.json") from err
    try:
        again = metrics_from_rows(folder / "rows.tsv", **options)
    except ValueError as err:
        raise InputError(str(err), folder / "rows.tsv") from err
    _compare(saved, json.loads(json.dumps(again)), "", check)
    return check


def _mean(values: list[float]) -> float:  # holdtts.quality.evaluate's arithmetic, on the rows' repr floats
    return float(np.mean(values))


def _word_errors(rows: list[dict], prefix: str) -> list[asr.WordErrors]:
    return [asr.WordErrors(reference=row["text"], hypothesis=row[f"{prefix}_hyp"],
                           substitutions=int(row[f"{prefix}_sub"]), deletions=int(row[f"{prefix}_del"]),
                           insertions=int(row[f"{prefix}_ins"]), char_errors=int(row[f"{prefix}_char_errors"]))
            for row in rows]


def _floats(rows: list[dict], column: str, path: Path) -> list[float]:
    try:
        return [float(row[column]) for row in rows]
    except KeyError as err:
        raise InputError(f"no column {err} for the statistic quality.json reports", path) from err
    except ValueError as err:
        raise InputError(f"column {column}: {err}", path) from err


def verify_quality(folder: str | os.PathLike) -> Check:
    """The per-utterance statistics of quality.json recomputed from quality.tsv."""
    folder = Path(folder)
    saved = _load_json(folder / "quality.json")
    table = folder / "quality.tsv"
    rows = read_rows_tsv(table)
    check = Check(folder, "quality")
    _compare(saved.get("n_utterances"), len(rows), "n_utterances.", check)
    again: dict = {}
    if "mean_spk_cosine" in saved.get("fd_speaker", {}):
        again["fd_speaker"] = {"mean_spk_cosine": _mean(_floats(rows, "spk_cosine", table))}
    if "dnsmos" in saved:
        again["dnsmos"] = {side: {key: _mean(_floats(rows, f"{prefix}_{key}", table)) for key in saved["dnsmos"][side]}
                           for side, prefix in (("generated", "dnsmos"), ("reference", "ref_dnsmos"))
                           if side in saved["dnsmos"]}
    if "mcd" in saved:
        values = _floats(rows, "mcd", table)
        again["mcd"] = {"mean": _mean(values), "std": float(np.std(values)), "n": len(values)}
    for metric in WER_METRICS:
        if metric not in saved:
            continue
        again[metric] = {}
        for side in ("generated", "reference"):
            if side not in saved[metric]:
                continue
            prefix = metric if side == "generated" else f"ref_{metric}"
            try:
                again[metric][side] = asr.corpus_wer(_word_errors(rows, prefix))
            except KeyError as err:
                raise InputError(f"no column {err} for {metric} ({side})", table) from err
    for name, recomputed in json.loads(json.dumps(again)).items():
        committed = saved[name]
        for part, values in recomputed.items():
            # only what the rows determine; a summary written before a key existed keeps its own keys
            if isinstance(values, dict):
                values = {k: v for k, v in values.items() if k in committed.get(part, {})}
                _compare({k: committed[part][k] for k in values}, values, f"{name}.{part}.", check)
            else:
                _compare(committed[part], values, f"{name}.{part}.", check)
    check.unchecked = [f"{name}.value" for name in SET_LEVEL if name in saved]
    return check


def result_folders(paths: list[str | os.PathLike]) -> list[tuple[str, Path]]:
    """(kind, folder) for every attack and evaluation result at or under the paths (a file names its folder)."""
    found: set[tuple[str, Path]] = set()
    for root in map(Path, paths):
        if not root.exists():
            raise InputError("no such file or directory", root)
        for kind, (summary, rows) in (("attack", ATTACK_FILES), ("quality", QUALITY_FILES)):
            candidates = [root.parent] if root.is_file() else [root, *(p.parent for p in root.rglob(summary))]
            found.update((kind, folder) for folder in candidates
                         if (folder / summary).is_file() and (folder / rows).is_file())
    return sorted(found, key=lambda item: (str(item[1]), item[0]))


def verify(paths: list[str | os.PathLike]) -> list[Check]:
    return [verify_attack(folder) if kind == "attack" else verify_quality(folder)
            for kind, folder in result_folders(paths)]
