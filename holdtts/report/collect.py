"""Read a recipe's system directories into plain records, checking every file the report takes numbers from.

A system directory (exp/<system>/) may hold, all optional:

    config.yaml            the resolved config              train_summary.json   steps, epochs, members, size
    checkpoints/step-N.pt  (the latest step, when no summary) train_log.jsonl     "attack/<name>/auroc" entries
    system.json            composite systems (dualmd ...)   privacy.json         DP systems: epsilon, delta
    attack/, attack_<label>/   rows.tsv, metrics.json, attack.json (one directory per attacked model or view)
    evaluate/              quality.json (summary), quality.tsv (per utterance)
    evaluate_own/          the same at the system's own sampler and steps (a second quality column)

Nothing here formats or plots; a malformed file is an InputError naming it (and the line, where there is one).
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from holdtts.errors import HoldttsError, InputError
from holdtts.privacy.metrics import METRICS, NO_T, ROW_FIELDS, read_rows
from holdtts.privacy.statistics import ScoreTable
from holdtts.quality.evaluate import error_rate_intervals, read_rows_tsv
from holdtts.utils.fileio import read_json

# The text encoder and duration predictor are trained on the members too; no diffusion defense covers them.
TEXT_SIDE_ATTACKS = ("duration", "prior")
PREFERRED_ORDER = ("vp", "hold2", "hold3", "hold4")
ATTACK_DIR = "attack"
QUALITY_DIR = "evaluate"
OWN_SAMPLER_DIR = "evaluate_own"  # quality at the system's own sampler and steps, where they differ from QUALITY_DIR's
_CHECKPOINT = re.compile(r"^step-(\d+)\.pt$")
# Several training seeds of one system: exp/<system>/, exp/<system>.seed<N>/ (also _seed<N>, -seed<N>).
_SEED_SUFFIX = re.compile(r"^(?P<group>.+?)[._-]seed(?P<seed>\d+)$")
HEADLINE_FIELDS = ("attack", "t", "auroc", "auroc_ci", "p_value", "selection", "calibration_auroc", "direction")
_TRAINING_AUROC = re.compile(r"^attack/(.+)/auroc$")


# --------------------------------------------------------------------------- records


class TrainingPoint(NamedTuple):
    """One held-out AUROC logged by train.attack_every_epochs (holdtts.training.trainer.attack_scalars)."""

    step: int
    epoch: int | None  # epochs completed when the attack ran; None in logs written without an epoch
    auroc: float


@dataclass(frozen=True)
class AttackEntry:
    """One attack at one t in one attack directory: the metrics.json entry, unchanged."""

    source: str  # the attack directory's name: "attack", "attack_teacher1", ...
    attack: str
    t: str  # as in rows.tsv: a horizon fraction, or "-" for attacks without t
    values: dict  # auroc, asr, tpr@1%fpr, tpr@0.1%fpr, their *_ci, num_members, num_nonmembers

    @property
    def auroc(self) -> float:
        return self.values["auroc"]


@dataclass
class AttackRun:
    """One attack*/ directory."""

    source: str
    path: Path
    metrics: dict  # metrics.json, validated
    settings: dict | None  # attack.json
    rows_path: Path | None  # rows.tsv, when present

    _table: ScoreTable | None = None

    @property
    def headline(self) -> dict:
        """metrics.json's held-out headline (attack and t picked on the calibration half, measured on the
        test half, with the permutation p-value over every cell)."""
        return self.metrics["headline"]

    def table(self) -> ScoreTable | None:
        """Every utterance's score per (attack, t), from rows.tsv (None without one); read once."""
        if self._table is None and self.rows_path is not None:
            try:
                self._table = ScoreTable.from_rows(read_rows(self.rows_path), source=self.source)
            except ValueError as err:
                raise InputError(str(err), self.rows_path) from err
        return self._table

    @property
    def attacks(self) -> list[str]:
        listed = (self.settings or {}).get("attacks") or []
        names = list(self.metrics["attacks"])
        # attack.json keeps the order the attacks ran in; metrics.json is sorted
        return [a for a in listed if a in names] + [a for a in names if a not in listed]

    def best(self, attack: str) -> AttackEntry:
        result = self.metrics["attacks"][attack]
        return AttackEntry(self.source, attack, result["best_t"], result["by_t"][result["best_t"]])

    def by_t(self, attack: str) -> list[AttackEntry]:
        items = self.metrics["attacks"][attack]["by_t"]
        return [AttackEntry(self.source, attack, t, items[t]) for t in sorted(items, key=t_sort_key)]


@dataclass
class SystemRecord:
    name: str
    path: Path
    config: dict | None = None  # config.yaml as a mapping
    config_text: str | None = None
    train_summary: dict | None = None
    latest_checkpoint_step: int | None = None
    system_info: dict | None = None  # system.json
    privacy: dict | None = None  # privacy.json
    attack_runs: list[AttackRun] = field(default_factory=list)
    quality: dict | None = None  # evaluate/quality.json
    quality_path: Path | None = None
    quality_rows_path: Path | None = None
    quality_own: dict | None = None  # evaluate_own/quality.json: the system's own sampler (a second column)
    quality_own_rows_path: Path | None = None  # evaluate_own/quality.tsv
    training_aurocs: dict[str, list[TrainingPoint]] = field(default_factory=dict)  # attack -> by step
    # a model trained in parts (DualMD: teacher1/, teacher2/) logs per part: part -> attack -> by step
    part_training_aurocs: dict[str, dict[str, list[TrainingPoint]]] = field(default_factory=dict)

    # -- description

    def _config_value(self, section: str, key: str):
        value = (self.config or {}).get(section)
        return value.get(key) if isinstance(value, dict) else None

    @property
    def kind(self) -> str | None:
        if self.system_info and isinstance(self.system_info.get("kind"), str):
            return self.system_info["kind"]
        return self._config_value("process", "kind")

    @property
    def order(self) -> int | None:
        return self._config_value("process", "order")

    @property
    def seed(self) -> int | None:
        return self._config_value("train", "seed")

    def train_setting(self, key: str):
        """A value of config.yaml's train section (None without a config, or where it lacks the key)."""
        return self._config_value("train", key)

    @property
    def attack_every_epochs(self) -> int | None:
        return self._config_value("train", "attack_every_epochs")

    @property
    def group(self) -> str:
        """The system this directory is one training seed of (vp.seed2 -> vp)."""
        return system_group(self.name)

    def _training_fact(self, key: str):
        for source in (self.train_summary, self.system_info):
            if source and source.get(key) is not None:
                return source[key]
        return None

    def _cost_fact(self, key: str):
        """A defense's cost is the whole system's (both teachers and the student: system.json), not the
        deployed model's alone (train_summary.json)."""
        for source in (self.system_info, self.train_summary):
            if source and source.get(key) is not None:
                return source[key]
        return None

    @property
    def parameters(self) -> int | None:
        return self._cost_fact("parameters")

    @property
    def train_seconds(self) -> float | None:
        return self._cost_fact("train_seconds")

    @property
    def steps(self) -> int | None:
        return self._training_fact("step")

    @property
    def epochs(self) -> int | None:
        return self._training_fact("epoch")

    @property
    def num_train_utts(self) -> int | None:
        return self._training_fact("num_train_utts")

    @property
    def epsilon(self) -> float:
        """The DP guarantee's epsilon; infinite for systems trained without one."""
        return float(self.privacy["epsilon"]) if self.privacy else math.inf

    # -- privacy

    @property
    def attack_names(self) -> list[str]:
        return list(dict.fromkeys(a for run in self.attack_runs for a in run.attacks))

    def best_entries(self, attack: str) -> list[AttackEntry]:
        """The attack's best t in each attack directory that ran it."""
        return [run.best(attack) for run in self.attack_runs if attack in run.metrics["attacks"]]

    def strongest_for(self, attack: str) -> AttackEntry | None:
        return _max_auroc(self.best_entries(attack))

    def in_sample_max(self, decoder_only: bool = False) -> AttackEntry | None:
        """The highest AUROC over every attack directory, attack and t, picked on the rows it is reported on:
        the optimistic upper bound the published attacks report, never a finding. `decoder_only` leaves out
        the text-side attacks."""
        return _max_auroc([e for a in self.attack_names if not (decoder_only and a in TEXT_SIDE_ATTACKS)
                           for e in self.best_entries(a)])

    def headline(self) -> AttackEntry | None:
        """The held-out headline: of the attack directories' headlines, the one whose pick was strongest on
        its calibration half (never on the test half). With several directories the permutation p-value is
        Bonferroni-adjusted over them (values["p_value_adjusted"], values["directories"])."""
        best = None
        for run in self.attack_runs:
            if best is None or run.headline["calibration_auroc"] > best.headline["calibration_auroc"]:
                best = run
        if best is None:
            return None
        h = best.headline
        runs = len(self.attack_runs)
        values = {**h, "source": best.source, "p_value_adjusted": min(1.0, h["p_value"] * runs), "directories": runs}
        return AttackEntry(best.source, h["attack"], h["t"], values)

    def attack_step(self, run: AttackRun) -> int | None:
        return (run.settings or {}).get("step")


    # -- quality

    def _quality_field(self, keys: tuple[str, ...] | None):
        value = self.quality if keys is not None else None
        for key in keys or ():
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def quality_value(self, metric: QualityMetric, side: str = "generated") -> float | None:
        """The set-level value for the generated audio, or (side="reference") for the real recordings."""
        return self._quality_field(metric.reference if side == "reference" else metric.generated)

    def quality_sizes(self, metric: QualityMetric) -> list[int | None]:
        return [self._quality_field(keys) for keys in metric.sizes]


@dataclass(frozen=True)
class QualityMetric:
    """Where a set-level quality number sits in quality.json, and which way is better."""

    key: str
    label: str
    lower_is_better: bool
    generated: tuple[str, ...]
    reference: tuple[str, ...] | None = None  # the real recordings' own value (clip-level metrics only)
    sizes: tuple[tuple[str, ...], ...] = ()  # the sample sizes the value was computed from


QUALITY_METRICS = (
    QualityMetric("fd_speaker", "FD speaker", True, ("fd_speaker", "value"),
                  sizes=(("fd_speaker", "n_generated"), ("fd_speaker", "n_reference"))),
    QualityMetric("kid_speaker", "KID speaker", True, ("kid_speaker", "value"),
                  sizes=(("kid_speaker", "n_generated"), ("kid_speaker", "n_reference"))),
    QualityMetric("fd_logmel", "FD log-mel", True, ("fd_logmel", "value"),
                  sizes=(("fd_logmel", "n_generated"), ("fd_logmel", "n_reference"))),
    QualityMetric("kid_logmel", "KID log-mel", True, ("kid_logmel", "value"),
                  sizes=(("kid_logmel", "n_generated"), ("kid_logmel", "n_reference"))),
    QualityMetric("dnsmos_ovrl", "DNSMOS OVRL", False, ("dnsmos", "generated", "ovrl"),
                  ("dnsmos", "reference", "ovrl")),
    QualityMetric("wer", "WER", True, ("wer", "generated", "wer"), ("wer", "reference", "wer")),
    QualityMetric("cer", "CER", True, ("wer", "generated", "cer"), ("wer", "reference", "cer")),
    QualityMetric("wer_domain", "WER (domain)", True, ("wer_domain", "generated", "wer"),
                  ("wer_domain", "reference", "wer")),
    QualityMetric("cer_domain", "CER (domain)", True, ("wer_domain", "generated", "cer"),
                  ("wer_domain", "reference", "cer")),
    QualityMetric("wer_espeak", "WER (eSpeak)", True, ("wer_espeak", "generated", "wer"),
                  ("wer_espeak", "reference", "wer")),
    QualityMetric("cer_espeak", "CER (eSpeak)", True, ("wer_espeak", "generated", "cer"),
                  ("wer_espeak", "reference", "cer")),
    QualityMetric("mcd", "MCD (dB)", True, ("mcd", "mean"), sizes=(("mcd", "n"),)),
)


def _max_auroc(entries: list[AttackEntry]) -> AttackEntry | None:
    best = None
    for entry in entries:  # ties keep the first: the order of the directories and attacks
        if best is None or entry.auroc > best.auroc:
            best = entry
    return best


def system_and_seed(name: str) -> tuple[str, int]:
    """An experiment folder's system and training seed: exp/vp is seed 1, exp/vp.seed2 seed 2."""
    match = _SEED_SUFFIX.match(name)
    return (match.group("group"), int(match.group("seed"))) if match else (name, 1)


def system_group(name: str) -> str:
    return system_and_seed(name)[0]


def t_sort_key(t: str) -> float:
    return -math.inf if t == NO_T else float(t)


# --------------------------------------------------------------------------- reading files


def _read_mapping(path: Path) -> dict:
    value = read_json(path)
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object, got {type(value).__name__}", path)
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def validate_metrics(metrics: Any, path: Path) -> dict:
    """Check a metrics.json (holdtts.privacy.metrics.compute_metrics) has every field the report reads."""
    if not isinstance(metrics, dict) or not isinstance(metrics.get("attacks"), dict) or not metrics["attacks"]:
        raise InputError("not an attack metrics file: no 'attacks' mapping", path)
    for attack, result in metrics["attacks"].items():
        by_t = result.get("by_t") if isinstance(result, dict) else None
        if not isinstance(by_t, dict) or not by_t:
            raise InputError(f"attack '{attack}' has no 'by_t' results", path)
        if result.get("best_t") not in by_t:
            raise InputError(f"attack '{attack}': best_t {result.get('best_t')!r} is not among its t values", path)
        for t, entry in by_t.items():
            where = f"attack '{attack}' at t={t}"
            if t != NO_T:
                try:
                    float(t)
                except ValueError as err:
                    raise InputError(f"{where}: t must be a number or '{NO_T}'", path) from err
            if not isinstance(entry, dict):
                raise InputError(f"{where}: expected an object of metrics", path)
            for name in METRICS:
                value, ci = entry.get(name), entry.get(f"{name}_ci")
                if not _is_number(value) or not 0.0 <= value <= 1.0:
                    raise InputError(f"{where}: '{name}' must be a number in [0, 1], got {value!r}", path)
                if (not isinstance(ci, list) or len(ci) != 2 or not all(_is_number(v) for v in ci)
                        or not ci[0] <= ci[1]):
                    raise InputError(f"{where}: '{name}_ci' must be [low, high], got {ci!r}", path)
            for name in ("num_members", "num_nonmembers"):
                if not _is_count(entry.get(name)):
                    raise InputError(f"{where}: '{name}' must be a count, got {entry.get(name)!r}", path)
    headline = metrics.get("headline")
    if not isinstance(headline, dict):
        raise InputError("no held-out 'headline' (an older holdtts wrote this file): recompute it from rows.tsv "
                         "(holdtts.privacy.metrics.metrics_from_rows) or re-run holdtts attack --overwrite", path)
    missing = [k for k in HEADLINE_FIELDS if k not in headline]
    if missing:
        raise InputError(f"'headline' lacks {', '.join(missing)}", path)
    for name in ("auroc", "p_value", "calibration_auroc"):
        if not _is_number(headline[name]) or not 0.0 <= headline[name] <= 1.0:
            raise InputError(f"'headline.{name}' must be a number in [0, 1], got {headline[name]!r}", path)
    reported = metrics["attacks"].get(headline["attack"], {}).get("by_t", {})
    if headline["t"] not in reported:
        raise InputError(f"'headline' names attack {headline['attack']!r} at t={headline['t']!r}, which the file "
                         "does not report", path)
    return metrics


def _check_number(summary: dict, keys: tuple[str, ...], path: Path, count: bool = False) -> None:
    value = summary
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    ok = _is_count(value) if count else (value is None or _is_number(value))  # NaN was written as null
    if not ok:
        raise InputError(f"'{'.'.join(keys)}' must be {'a count' if count else 'a number'}, got {value!r}", path)


def _check_interval(summary: dict, keys: tuple[str, ...], path: Path) -> None:
    value = summary
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if value is not None and (not isinstance(value, list) or len(value) != 2 or not all(_is_number(v) for v in value)):
        raise InputError(f"'{'.'.join(keys)}' must be [low, high] or null, got {value!r}", path)


def validate_quality(summary: Any, path: Path) -> dict:
    """Check the fields of a quality.json (holdtts.quality.evaluate) that the report reads; metrics that
    were not computed are simply absent."""
    if not isinstance(summary, dict):
        raise InputError("not a quality summary: expected a JSON object", path)
    for name in ("fd_speaker", "fd_logmel", "kid_speaker", "kid_logmel"):
        if name in summary:
            _check_number(summary, (name, "value"), path)
            _check_number(summary, (name, "n_generated"), path, count=True)
            _check_number(summary, (name, "n_reference"), path, count=True)
    for name in ("kid_speaker", "kid_logmel"):
        _check_interval(summary, (name, "interval"), path)
    if "dnsmos" in summary:
        for side in ("generated", "reference"):
            _check_number(summary, ("dnsmos", side, "ovrl"), path)
    for name in ("wer", "wer_domain", "wer_espeak"):
        if name in summary:
            for side in ("generated", "reference"):
                _check_number(summary, (name, side, "wer"), path)
                _check_number(summary, (name, side, "cer"), path)  # absent (null) in older files
                for key in ("wer_interval", "cer_interval"):  # absent in older files
                    _check_interval(summary, (name, side, key), path)
    if "mcd" in summary:
        _check_number(summary, ("mcd", "mean"), path)
        _check_number(summary, ("mcd", "n"), path, count=True)
    _check_number(summary, ("decoder_rtf",), path)
    return summary


def _validate_privacy(privacy: dict, path: Path) -> dict:
    epsilon = privacy.get("epsilon")
    if not _is_number(epsilon) or not epsilon > 0:
        raise InputError(f"'epsilon' must be a positive number, got {epsilon!r}", path)
    if "delta" in privacy and (not _is_number(privacy["delta"]) or not 0 <= privacy["delta"] < 1):
        raise InputError(f"'delta' must be a number in [0, 1), got {privacy['delta']!r}", path)
    return privacy


def _validate_training_facts(facts: dict, path: Path) -> dict:
    for key in ("step", "epoch", "num_train_utts", "parameters"):
        if facts.get(key) is not None and not _is_count(facts[key]):
            raise InputError(f"'{key}' must be a count, got {facts[key]!r}", path)
    return facts


def read_training_aurocs(path: Path) -> dict[str, list[TrainingPoint]]:
    """AUROCs logged during training ("attack/<name>/auroc" keys of train_log.jsonl), by attack, one point
    per step. The attack line's "epoch" is the number of epochs completed: the loop counts the epoch done
    before on_epoch_end attacks (the step lines before it carry the 0-based index of their epoch). A step
    logged twice (a run resumed from a checkpoint at an epoch's last step attacks again) keeps its last line."""
    out: dict[str, dict[int, TrainingPoint]] = {}
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"invalid JSON ({err.msg})", path, line_number) from err
            if not isinstance(entry, dict) or not _is_count(entry.get("step")):
                raise InputError("a log line needs a JSON object with an integer 'step'", path, line_number)
            epoch = entry.get("epoch")
            if epoch is not None and not _is_count(epoch):
                raise InputError(f"'epoch' must be a count, got {epoch!r}", path, line_number)
            for key, value in entry.items():
                match = _TRAINING_AUROC.match(key)
                if match:
                    if not _is_number(value):
                        raise InputError(f"'{key}' must be a number, got {value!r}", path, line_number)
                    step = entry["step"]
                    out.setdefault(match.group(1), {})[step] = TrainingPoint(step, epoch, float(value))
    return {name: [points[s] for s in sorted(points)] for name, points in out.items()}


def read_scores(path: Path, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(labels, scores) of the rows.tsv rows of each wanted (attack, t), streamed: a full LJSpeech rows file
    has millions of rows and only a few (attack, t) are needed."""
    found: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or any(c not in header for c in ROW_FIELDS):
            raise InputError(f"a rows file needs the columns {', '.join(ROW_FIELDS)}", path, 1)
        col = {c: header.index(c) for c in ROW_FIELDS}
        for line_number, row in enumerate(reader, 2):
            if len(row) != len(header):
                raise InputError(f"expected {len(header)} tab-separated fields, got {len(row)}", path, line_number)
            key = (row[col["attack"]], row[col["t"]])
            if key not in wanted:
                continue
            member = row[col["member"]]
            if member not in ("0", "1"):
                raise InputError(f"member must be 0 or 1, got {member!r}", path, line_number)
            try:
                score = float(row[col["score"]])
            except ValueError as err:
                raise InputError(f"score is not a number: {row[col['score']]!r}", path, line_number) from err
            labels, scores = found.setdefault(key, ([], []))
            labels.append(int(member))
            scores.append(score)
    for attack, t in sorted(wanted - set(found)):
        raise InputError(f"no rows for attack '{attack}' at t={t}, which metrics.json reports", path)
    return {key: (np.array(labels), np.array(scores)) for key, (labels, scores) in found.items()}


def read_quality_rows(path: Path) -> dict[str, dict[str, str]]:
    """quality.tsv (holdtts.quality.evaluate.write_rows_tsv) as utt_id -> column -> raw text."""
    return {row["utt_id"]: row for row in read_rows_tsv(path)}


def quality_column(rows: dict[str, dict[str, str]], column: str, path: Path) -> dict[str, float] | None:
    """A numeric per-utterance column (None when the table lacks it); 'nan' and empty cells are dropped."""
    if not rows or column not in next(iter(rows.values())):
        return None
    out = {}
    for utt, row in rows.items():
        raw = row[column]
        try:
            value = float(raw) if raw else math.nan
        except ValueError as err:
            raise InputError(f"utterance {utt}: '{column}' is not a number: {raw!r}", path) from err
        if math.isfinite(value):
            out[utt] = value
    return out


def per_sentence_values(rows: dict[str, dict[str, str]], columns: tuple[str, ...],
                        path: Path) -> dict[str, tuple[float, ...]] | None:
    """utt -> the tuple of `columns` (one value, or a ratio's numerator and denominator) for every sentence
    that has all of them; None when the table lacks a column."""
    values = [quality_column(rows, c, path) for c in columns]
    if any(v is None for v in values):
        return None
    shared = set.intersection(*(set(v) for v in values))
    return {u: tuple(v[u] for v in values) for u in shared}


def read_splits(data_dir: str | os.PathLike | None) -> tuple[Path | None, dict | None]:
    """data/splits.json (holdtts prepare) when there is one."""
    if data_dir is None:
        return None, None
    from holdtts.data.splits import SPLITS_JSON, load_splits_meta

    path = Path(data_dir) / SPLITS_JSON
    return path, load_splits_meta(data_dir) if path.exists() else None


# --------------------------------------------------------------------------- systems


def _attack_dirs(path: Path) -> list[Path]:
    dirs = [d for d in path.iterdir() if d.is_dir() and (d.name == ATTACK_DIR or d.name.startswith(ATTACK_DIR + "_"))]
    return sorted(dirs, key=lambda d: (d.name != ATTACK_DIR, d.name))


def has_results(path: Path) -> bool:
    return (path / QUALITY_DIR / "quality.json").is_file() or any(
        (d / "metrics.json").is_file() for d in _attack_dirs(path))


def load_system(path: str | os.PathLike) -> SystemRecord:
    """Read and check everything the report uses from one system directory."""
    from holdtts.config import read_yaml

    path = Path(path)
    record = SystemRecord(path.name, path)
    if (path / "config.yaml").is_file():
        record.config, _ = read_yaml(path / "config.yaml")
        record.config_text = (path / "config.yaml").read_text(encoding="utf-8")
    if (path / "train_summary.json").is_file():
        record.train_summary = _validate_training_facts(_read_mapping(path / "train_summary.json"),
                                                        path / "train_summary.json")
    checkpoints = [int(m.group(1)) for p in (path / "checkpoints").glob("step-*.pt")
                   if (m := _CHECKPOINT.match(p.name))]
    record.latest_checkpoint_step = max(checkpoints, default=None)
    if (path / "system.json").is_file():
        record.system_info = _validate_training_facts(_read_mapping(path / "system.json"), path / "system.json")
    if (path / "privacy.json").is_file():
        record.privacy = _validate_privacy(_read_mapping(path / "privacy.json"), path / "privacy.json")
    if (path / "train_log.jsonl").is_file():
        record.training_aurocs = read_training_aurocs(path / "train_log.jsonl")
    else:  # DualMD has no training of its own: each teacher logged its attacks against its own members
        for log in sorted(path.glob("teacher*/train_log.jsonl")):
            record.part_training_aurocs[log.parent.name] = read_training_aurocs(log)
    for run_dir in _attack_dirs(path):
        metrics_path = run_dir / "metrics.json"
        if not metrics_path.is_file():
            continue
        settings = _read_mapping(run_dir / "attack.json") if (run_dir / "attack.json").is_file() else None
        rows = run_dir / "rows.tsv"
        record.attack_runs.append(AttackRun(run_dir.name, run_dir, validate_metrics(read_json(metrics_path),
                                                                                    metrics_path),
                                            settings, rows if rows.is_file() else None))
    record.quality, record.quality_rows_path = _read_quality(path / QUALITY_DIR)
    record.quality_path = path / QUALITY_DIR / "quality.json" if record.quality is not None else None
    record.quality_own, record.quality_own_rows_path = _read_quality(path / OWN_SAMPLER_DIR)
    return record


def _read_quality(folder: Path) -> tuple[dict | None, Path | None]:
    """An evaluation folder's checked quality.json (None when absent), its WER/CER intervals filled from
    quality.tsv where an older summary lacks them, and that table's path (None when absent)."""
    summary = folder / "quality.json"
    if not summary.is_file():
        return None, None
    quality = validate_quality(read_json(summary), summary)
    rows = folder / "quality.tsv"
    if not rows.is_file():
        return quality, None
    fill_error_rate_intervals(quality, rows)
    return quality, rows


def fill_error_rate_intervals(quality: dict, rows_path: Path) -> None:
    """A quality.json written before corpus_wer gave WER/CER intervals: recompute them from its quality.tsv,
    with the same bootstrap and seed (holdtts.quality.evaluate.error_rate_intervals), so every model of a
    report carries them. A summary that has them, or rows without the error columns, is left as it is."""
    missing = [(name, side) for name in ("wer", "wer_domain", "wer_espeak") for side in ("generated", "reference")
               if isinstance((quality.get(name) or {}).get(side), dict)
               and not {"wer_interval", "cer_interval"} <= set(quality[name][side])]
    if not missing:
        return
    rows = read_rows_tsv(rows_path)
    for name, side in missing:
        try:
            quality[name][side].update(error_rate_intervals(rows, name, side))
        except (KeyError, ValueError):  # rows from before the per-utterance error columns
            continue


def order_systems(names: list[str]) -> list[str]:
    """vp, hold2, hold3, hold4 first (the order of the paper's comparison), then the rest alphabetically."""
    known = [n for n in PREFERRED_ORDER if n in names]
    return known + sorted(n for n in names if n not in PREFERRED_ORDER)


def discover_systems(exp_dir: str | os.PathLike, exclude: tuple[str | os.PathLike, ...] = ()) -> list[str]:
    """Every subdirectory of exp_dir with attack results or a quality summary, in report order."""
    exp_dir = Path(exp_dir)
    skip = {Path(p).resolve() for p in exclude}
    names = [d.name for d in exp_dir.iterdir()
             if d.is_dir() and not d.name.startswith(".") and d.resolve() not in skip and has_results(d)]
    return order_systems(names)


def collect_systems(exp_dir: str | os.PathLike, systems: list[str] | None = None,
                    exclude: tuple[str | os.PathLike, ...] = ()) -> list[SystemRecord]:
    """The records of the named systems (in that order), or of every system found in exp_dir."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise HoldttsError(f"{exp_dir}: no such experiment directory")
    if systems is None:
        systems = discover_systems(exp_dir, exclude)
        if not systems:
            raise HoldttsError(f"{exp_dir}: no system directory with attack*/metrics.json or "
                               f"{QUALITY_DIR}/quality.json; run `holdtts attack` or `holdtts evaluate` first")
    records = []
    for name in dict.fromkeys(systems):
        path = exp_dir / name
        if not path.is_dir():
            raise HoldttsError(f"{path}: no such system directory")
        if not has_results(path):
            raise HoldttsError(f"{path}: no attack*/metrics.json or {QUALITY_DIR}/quality.json to report")
        records.append(load_system(path))
    return records
