"""Membership statistics that do not flatter the attacker: held-out selection, a permutation test of "does it
leak at all", and paired comparisons of systems across training seeds.

Why: the maximum AUROC over a grid of (attack, t) cells, picked on the rows it is reported on, sits well
above 0.5 when there is no signal at all (32 vs 32 utterances and ~40 cells: mean about 0.63), and its per-cell
bootstrap interval ignores the pick. So (docs/statistics.md):

- the utterances are split, seeded and stratified, into a calibration half and a test half; each attack's t,
  the direction of its statistic and the strongest attack are chosen on the calibration half, and every
  headline figure is measured on the test half (the pick never sees those rows);
- "does it leak at all" is a label-permutation test of the maximum |AUROC - 0.5| over every cell, on all the
  utterances: the null distribution includes the search over cells, so the p-value is exact;
- two systems are compared on the utterances both were attacked on, each with its own held-out pick, by a
  paired bootstrap of the test-half AUROC difference (utterances resampled jointly, training seeds resampled
  within each system when there are several).

Everything is a function of the rows (ROW_FIELDS of holdtts.privacy.metrics), so it recomputes from rows.tsv.
Scores point one way: higher means "member". A two-sided analysis (the default) lets the calibration half
reverse a statistic (an attacker who sees members score lower learns that too); "greater" keeps each attack's
published direction.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import auc, roc_curve

from holdtts.utils.resampling import bootstrap_p_value, resampled_seed_mean

NO_T = "-"
ALTERNATIVES = ("two-sided", "greater")
DEFAULT_PERMUTATIONS = 1000
DEFAULT_ALPHA = 0.05
# FPR targets; a sample resolves one only with at least 1 / target non-members
FPR_TARGETS = {"tpr@1%fpr": 0.01, "tpr@0.1%fpr": 0.001}
METRICS = ("auroc", "asr", *FPR_TARGETS)


def needed_nonmembers(target: float) -> int:
    return int(round(1.0 / target))


@dataclass(frozen=True)
class Cell:
    """One column of scores: an attack at one t, from one attack directory."""

    attack: str
    t: str  # a horizon fraction as in rows.tsv, or "-"
    source: str = "attack"

    def label(self) -> str:
        t = "" if self.t == NO_T else f" t={self.t}"
        return f"{self.attack}{t}"


@dataclass
class ScoreTable:
    """Every utterance's score for every cell: scores[c, i] for utterance utt_ids[i] (sorted ids)."""

    utt_ids: list[str]
    labels: np.ndarray  # [N] 1 member, 0 non-member
    cells: list[Cell]
    scores: np.ndarray  # [C, N], higher: member

    @classmethod
    def from_rows(cls, rows: Iterable[dict], source: str = "attack") -> ScoreTable:
        """Rows with utt_id, member, attack, t, score. Every cell must score the same utterances."""
        per_cell: dict[tuple[str, str], dict[str, float]] = {}
        labels: dict[str, int] = {}
        for row in rows:
            utt, member = row["utt_id"], int(row["member"])
            if labels.setdefault(utt, member) != member:
                raise ValueError(f"utterance {utt} is labelled both member and non-member")
            per_cell.setdefault((row["attack"], row["t"]), {})[utt] = float(row["score"])
        if not per_cell:
            raise ValueError("no rows")
        utts = sorted(labels)
        keys = sorted(per_cell, key=lambda k: (k[0], _t_key(k[1])))
        for key in keys:
            if len(per_cell[key]) != len(utts):
                missing = sorted(set(utts) - set(per_cell[key]))
                raise ValueError(f"attack {key[0]} at t={key[1]} has no score for {len(missing)} utterance(s), "
                                 f"e.g. {missing[0]}: every cell must score the same utterances")
        scores = np.array([[per_cell[k][u] for u in utts] for k in keys], dtype=np.float64)
        if not np.all(np.isfinite(scores)):
            bad = keys[int(np.flatnonzero(~np.isfinite(scores).all(axis=1))[0])]
            raise ValueError(f"non-finite scores for attack {bad[0]} at t={bad[1]}")
        table = cls(utts, np.array([labels[u] for u in utts], dtype=np.int64),
                    [Cell(a, t, source) for a, t in keys], scores)
        if table.labels.min() == table.labels.max():
            raise ValueError("need both members and non-members")
        return table

    def restrict(self, utts: Sequence[str] | None = None, attacks: Iterable[str] | None = None) -> ScoreTable:
        """The same table on a subset of utterances and/or attacks (order kept)."""
        cols = np.arange(len(self.utt_ids))
        if utts is not None:
            index = {u: i for i, u in enumerate(self.utt_ids)}
            cols = np.array(sorted(index[u] for u in utts), dtype=np.int64)
        rows = np.arange(len(self.cells))
        if attacks is not None:
            keep = set(attacks)
            rows = np.array([i for i, c in enumerate(self.cells) if c.attack in keep], dtype=np.int64)
        return ScoreTable([self.utt_ids[i] for i in cols], self.labels[cols], [self.cells[i] for i in rows],
                          self.scores[np.ix_(rows, cols)])

    @property
    def attacks(self) -> list[str]:
        return list(dict.fromkeys(c.attack for c in self.cells))

    @property
    def num_members(self) -> int:
        return int(self.labels.sum())

    @property
    def num_nonmembers(self) -> int:
        return int(len(self.labels) - self.labels.sum())


def _t_key(t: str) -> float:
    return -math.inf if t == NO_T else float(t)


# --------------------------------------------------------------------------- one set of labelled scores


def roc_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUROC, ASR (best balanced accuracy over thresholds) and TPR at fixed FPRs (the largest TPR whose FPR
    does not exceed the target, Carlini et al.'s convention) for one set of labelled scores."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    out = {"auroc": float(auc(fpr, tpr)), "asr": float(np.max((tpr + 1 - fpr) / 2))}
    for name, target in FPR_TARGETS.items():
        out[name] = float(tpr[fpr <= target].max()) if np.any(fpr <= target) else 0.0
    return out


def roc_metrics_batch(labels: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """`roc_metrics` of every row of labels and scores [S, N] at once (each row needs both classes).

    The ROC points are the ends of each row's runs of equal scores in descending order, plus the origin,
    exactly the points roc_curve(drop_intermediate=False) gives; AUROC is Mann-Whitney's, which equals
    the trapezoid area under those points.
    """
    labels = np.atleast_2d(labels).astype(np.float64)
    scores = np.atleast_2d(scores)
    order = np.argsort(-scores, axis=1, kind="stable")
    ordered = np.take_along_axis(scores, order, axis=1)
    hits = np.take_along_axis(labels, order, axis=1)
    tp, fp = np.cumsum(hits, axis=1), np.cumsum(1.0 - hits, axis=1)
    tpr, fpr = tp / tp[:, -1:], fp / fp[:, -1:]
    end = np.ones(ordered.shape, dtype=bool)
    end[:, :-1] = ordered[:, :-1] != ordered[:, 1:]
    out = {"auroc": auroc(scores, labels)}
    out["asr"] = np.maximum(0.5, np.where(end, (tpr + 1 - fpr) / 2, 0.0).max(axis=1))
    for name, target in FPR_TARGETS.items():
        out[name] = np.where(end & (fpr <= target), tpr, 0.0).max(axis=1)
    return out


def bootstrap(labels: np.ndarray, scores: np.ndarray, samples: int, seed: int, level: float = 0.95):
    """Percentile intervals of every metric over `samples` resamplings of the utterances (stratified:
    members and non-members are resampled separately, so each resample has both classes). No samples:
    no intervals (None)."""
    if samples <= 0:
        return dict.fromkeys(METRICS)
    index = stratified_resamples(labels, samples, np.random.default_rng(seed))
    values = roc_metrics_batch(labels[index], scores[index])
    tail = (1 - level) / 2 * 100
    return {m: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] for m, v in values.items()}


# --------------------------------------------------------------------------- AUROC by ranks


def auroc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of every row of scores [..., N] against labels [N], or against its own row of labels
    [..., N] (Mann-Whitney: ties count a half)."""
    ranks = rankdata(scores, axis=-1)
    n1 = labels.sum(axis=-1)
    n0 = labels.shape[-1] - n1
    return ((ranks * labels).sum(axis=-1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def _resampled_auroc(scores: np.ndarray, labels: np.ndarray, index: np.ndarray) -> np.ndarray:
    """AUROC of each row of scores [K, N] on each resample index [S, N] (stratified, so labels[index] has
    the same counts every time): [K, S]."""
    return auroc(scores[:, index], labels[index[0]])


def stratified_resamples(labels: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """[samples, N] bootstrap indices drawing members and non-members separately (each resample keeps the
    counts; the members come first in every row)."""
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    return np.concatenate([rng.choice(pos, (samples, len(pos))), rng.choice(neg, (samples, len(neg)))], axis=1)


def oriented(value: np.ndarray | float, direction: int):
    """AUROC of the statistic times `direction` (+1 as defined, -1 reversed)."""
    return value if direction > 0 else 1.0 - value


# --------------------------------------------------------------------------- the calibration / test split


def calibration_mask(utt_ids: Sequence[str], labels: np.ndarray, seed: int = 0,
                     groups: Sequence[str] | None = None) -> np.ndarray:
    """True for the calibration half. Stratified (half the members, half the non-members; an odd count gives
    the extra utterance to the test half) and seeded; an utterance's place depends only on (seed, its id) and
    which utterances are in the set, so systems attacked on the same utterances share the split.

    With `groups` (each utterance's speaker, whose utterances must share one label) whole groups go to one
    half: the split of the group ids themselves, so it is the speaker-level analysis's split too."""
    if groups is not None:
        names, index = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
        group_labels = group_label_array(index, labels, len(names))
        return calibration_mask(list(names), group_labels, seed)[index]
    mask = np.zeros(len(utt_ids), dtype=bool)
    for cls in (0, 1):
        members = np.flatnonzero(labels == cls)
        if len(members) < 2:
            raise ValueError(f"need at least 2 {'members' if cls else 'non-members'} to split into a calibration "
                             f"and a test half, have {len(members)}")
        order = sorted(members, key=lambda i: (zlib.crc32(f"{seed}|{utt_ids[i]}".encode()), utt_ids[i]))
        mask[order[:len(members) // 2]] = True
    return mask


def group_label_array(index: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Each group's label from its utterances' (which must agree): [count]."""
    members = np.bincount(index, weights=labels, minlength=count)
    sizes = np.bincount(index, minlength=count)
    if np.any((members > 0) & (members < sizes)):
        raise ValueError("a group (speaker) has both members and non-members: it cannot be split as a whole")
    return (members > 0).astype(np.int64)


# --------------------------------------------------------------------------- selection on the calibration half


@dataclass(frozen=True)
class Choice:
    """One cell picked on the calibration half, with the direction its statistic is read in."""

    cell: Cell
    index: int  # row of the table's scores
    direction: int  # +1: higher means member (as the attack defines it); -1: reversed on calibration
    calibration_auroc: float  # oriented AUROC on the calibration half


@dataclass(frozen=True)
class FixedCell:
    """A cell chosen before the models it scores were attacked (pre-registered): no calibration half is
    spent on choosing it, so every shared utterance counts."""

    attack: str
    t: str
    direction: int = 1  # +1 as the attack defines it, -1 reversed

    @classmethod
    def from_dict(cls, entry: dict) -> FixedCell:
        direction = entry.get("direction", "as defined")
        if direction not in ("as defined", "reversed"):
            raise ValueError(f"a cell's direction is 'as defined' or 'reversed', got {direction!r}")
        attack, t = entry["attack"], entry["t"]
        if not isinstance(attack, str) or not attack:
            raise ValueError(f"a cell's attack is a name, got {attack!r}")
        if t != NO_T and not (isinstance(t, (str, int, float)) and not isinstance(t, bool) and _finite(t)):
            raise ValueError(f"a cell's t is a number or '{NO_T}' (no t), got {t!r}")
        return cls(attack, str(t), 1 if direction == "as defined" else -1)

    def label(self) -> str:
        return Cell(self.attack, self.t).label() + ("" if self.direction > 0 else " (reversed)")


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def fixed_choice(table: ScoreTable, cell: FixedCell) -> Choice | None:
    """The table's row for a pre-registered cell (t compared as numbers: "0.8" is "0.80"), or None."""
    for i, c in enumerate(table.cells):
        if c.attack == cell.attack and (c.t == cell.t or (NO_T not in (c.t, cell.t)
                                                          and math.isclose(float(c.t), float(cell.t)))):
            return Choice(c, i, cell.direction, math.nan)
    return None


def consensus_cell(tables: Sequence[ScoreTable], attacks: Iterable[str] | None = None) -> tuple[FixedCell, dict]:
    """The cell to pre-register from calibration models (e.g. several training seeds of the baseline): among
    the cells every table scored (restricted to `attacks`), the one whose AUROC on all of each table's
    utterances, averaged over the tables, is farthest from 0.5; its direction is the side of 0.5 that mean
    is on. Ties go to the earlier cell (attacks in name order, smaller t first). Returns the cell and what
    it was picked on."""
    keep = None if attacks is None else set(attacks)
    keys = [(c.attack, c.t) for c in tables[0].cells if keep is None or c.attack in keep]
    for table in tables[1:]:
        present = {(c.attack, c.t) for c in table.cells}
        keys = [k for k in keys if k in present]
    if not keys:
        raise ValueError("no cell is scored by every calibration table")
    values = []
    for table in tables:
        index = {(c.attack, c.t): i for i, c in enumerate(table.cells)}
        values.append(auroc(table.scores[[index[k] for k in keys]], table.labels))
    values = np.array(values)  # [tables, cells]
    mean = values.mean(axis=0)
    best = int(np.argmax(np.abs(mean - 0.5)))  # argmax keeps the first of equal values
    direction = 1 if mean[best] >= 0.5 else -1
    cell = FixedCell(keys[best][0], keys[best][1], direction)
    return cell, {"mean_auroc": float(oriented(mean[best], direction)),
                  "per_table_auroc": [float(oriented(v, direction)) for v in values[:, best]],
                  "cells_considered": len(keys), "tables": len(tables)}


def select(table: ScoreTable, calibration: np.ndarray, alternative: str = "two-sided") -> tuple[Choice,
                                                                                                 dict[str, Choice]]:
    """Each attack's t (and direction) and the strongest attack, chosen on the calibration half only. Ties go
    to the earlier cell (attacks in name order, smaller t first)."""
    _check_alternative(alternative)
    values = auroc(table.scores[:, calibration], table.labels[calibration])
    per_attack: dict[str, Choice] = {}
    for i, cell in enumerate(table.cells):
        direction = -1 if alternative == "two-sided" and values[i] < 0.5 else 1
        choice = Choice(cell, i, direction, float(oriented(values[i], direction)))
        best = per_attack.get(cell.attack)
        if best is None or choice.calibration_auroc > best.calibration_auroc:
            per_attack[cell.attack] = choice
    strongest = None
    for choice in per_attack.values():
        if strongest is None or choice.calibration_auroc > strongest.calibration_auroc:
            strongest = choice
    return strongest, per_attack


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}")


# --------------------------------------------------------------------------- the permutation test


def permutation_test(table: ScoreTable, permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0,
                     alternative: str = "two-sided", groups: Sequence[str] | None = None) -> dict:
    """p-value of "no cell tells members from non-members": the maximum over all cells of |AUROC - 0.5|
    (two-sided) or of AUROC (greater) on all the utterances, against its distribution under random
    relabelling (member and non-member counts kept). p = (1 + #{permuted >= observed}) / (1 + permutations),
    so it is never 0 and is exact for any number of cells.

    With `groups` (each utterance's speaker, whose utterances share one label) whole groups are relabelled:
    the null of the speaker protocol, where utterances of one speaker are not exchangeable with others'."""
    _check_alternative(alternative)
    ranks = rankdata(table.scores, axis=-1)  # [C, N], invariant under relabelling
    index = group_labels = None
    if groups is not None:
        names, index = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
        group_labels = group_label_array(index, table.labels, len(names))

    def statistic(rank_sums: np.ndarray, n1) -> np.ndarray:
        n1 = np.asarray(n1, dtype=np.float64)[..., None] if np.ndim(n1) else n1
        n0 = len(table.labels) - n1
        values = (rank_sums - n1 * (n1 + 1) / 2) / (n1 * n0)
        return np.abs(values - 0.5).max(axis=-1) if alternative == "two-sided" else values.max(axis=-1)

    observed = float(statistic(ranks @ table.labels.astype(np.float64), table.num_members))
    rng = np.random.default_rng(seed)
    exceed = 0
    chunk = max(1, min(permutations, 2_000_000 // max(1, len(table.labels))))
    done = 0
    while done < permutations:
        size = min(chunk, permutations - done)
        if groups is None:
            labels = np.stack([rng.permutation(table.labels) for _ in range(size)]).astype(np.float64)  # [S, N]
            counts = table.num_members
        else:
            labels = np.stack([rng.permutation(group_labels)[index] for _ in range(size)]).astype(np.float64)
            counts = labels.sum(axis=1)
        exceed += int((statistic(labels @ ranks.T, counts) >= observed - 1e-12).sum())
        done += size
    out = {"p_value": (1 + exceed) / (1 + permutations), "permutations": permutations, "seed": seed,
           "statistic": "max |AUROC - 0.5|" if alternative == "two-sided" else "max AUROC",
           "observed": observed, "cells": len(table.cells), "alternative": alternative}
    if groups is not None:
        out["relabelled"] = f"whole speakers ({len(group_labels)})"
    return out


# --------------------------------------------------------------------------- figures on the test half


def low_fpr(labels: np.ndarray, scores: np.ndarray) -> dict:
    """TPR at 1% and 0.1% FPR where the non-members can resolve them (at least 100 and 1000), else None
    with the reason; and the TPR at zero false positives, which any sample resolves."""
    n0 = int((labels == 0).sum())
    threshold = scores[labels == 0].max()
    out = {"tpr@0fpr": float((scores[labels == 1] > threshold).mean()), "num_nonmembers": n0}
    values = roc_metrics(labels, scores)
    for name, target in FPR_TARGETS.items():
        needed = needed_nonmembers(target)
        out[name] = values[name] if n0 >= needed else None
        if n0 < needed:
            out[f"{name}_note"] = f"n/a (needs {needed} non-members, has {n0})"
    return out


def leakage(table: ScoreTable, split_seed: int = 0, permutations: int = DEFAULT_PERMUTATIONS,
            bootstrap_samples: int = 1000, seed: int = 0, alternative: str = "two-sided",
            alpha: float = DEFAULT_ALPHA, groups: Sequence[str] | None = None,
            permutation: Callable[[ScoreTable], dict] | None = None,
            in_sample: ScoreTable | None = None, unit: str = "utterances") -> dict:
    """The held-out analysis of one table: `headline` (the strongest attack picked on the calibration half,
    measured on the test half, with the permutation p-value over every cell), `heldout` (each attack at its
    calibration-picked t, measured on the test half, with its own permutation p over its t grid), and
    `in_sample_max` (the published way: the best cell on all rows; an optimistic upper bound).

    `groups` (each utterance's speaker; the speaker protocol): the halves and the permutations keep each
    speaker's utterances together. `permutation(sub_table)` replaces the permutation test (the speaker-level
    analysis refits its likelihood-ratio cells under each relabelling), and `in_sample` the table the
    in-sample maximum is read from."""
    calibration = calibration_mask(table.utt_ids, table.labels, split_seed, groups)
    test = ~calibration
    strongest, per_attack = select(table, calibration, alternative)
    test_labels = table.labels[test]
    if permutation is None:
        def permutation(sub: ScoreTable) -> dict:
            return permutation_test(sub, permutations, seed, alternative, groups)
    perm = permutation(table)

    def measured(choice: Choice, full_bootstrap: bool) -> dict:
        scores = choice.direction * table.scores[choice.index, test]
        values = roc_metrics(test_labels, scores)
        key_seed = zlib.crc32(f"{seed}|heldout|{choice.cell.source}|{choice.cell.attack}|{choice.cell.t}".encode())
        if full_bootstrap:
            cis = bootstrap(test_labels, scores, bootstrap_samples, key_seed)
        else:
            cis = {"auroc": _auroc_interval(test_labels, scores, bootstrap_samples, key_seed)}
        out = {"attack": choice.cell.attack, "t": choice.cell.t, "source": choice.cell.source,
               "direction": "as defined" if choice.direction > 0 else "reversed",
               "auroc": values["auroc"], "auroc_ci": cis["auroc"],
               "calibration_auroc": choice.calibration_auroc}
        if full_bootstrap:
            out.update({"asr": values["asr"], "asr_ci": cis["asr"], "low_fpr": low_fpr(test_labels, scores)})
        return out

    n_cal = (int(table.labels[calibration].sum()), int((table.labels[calibration] == 0).sum()))
    n_test = (int(test_labels.sum()), int((test_labels == 0).sum()))
    headline = measured(strongest, True)
    headline.update({
        "p_value": perm["p_value"],
        "detected": perm["p_value"] < alpha,
        "alpha": alpha,
        "selection": (f"strongest of {len(table.cells)} (attack, t) cells by AUROC on a calibration half "
                      f"({n_cal[0]} members / {n_cal[1]} non-members{'' if unit == 'utterances' else ' ' + unit}"
                      f", split seed {split_seed}"
                      f"{', speakers kept whole' if groups is not None else ''}, {alternative}); measured on the "
                      f"other half ({n_test[0]} / {n_test[1]}); p from a label permutation test of the "
                      f"{perm['statistic']} over all {len(table.cells)} cells and all {unit} "
                      f"({perm['permutations']} permutations"
                      f"{', whole speakers relabelled' if groups is not None else ''})"),
        "num_members_test": n_test[0], "num_nonmembers_test": n_test[1],
        "num_members_calibration": n_cal[0], "num_nonmembers_calibration": n_cal[1],
    })
    heldout = {}
    for attack, choice in per_attack.items():
        entry = measured(choice, False)
        sub = table.restrict(attacks=[attack])
        entry["p_value"] = permutation(sub)["p_value"]
        entry["cells"] = len(sub.cells)
        heldout[attack] = entry
    whole = table if in_sample is None else in_sample
    best = max(range(len(whole.cells)), key=lambda i: (auroc(whole.scores[i], whole.labels), -i))
    return {
        "headline": headline,
        "heldout": heldout,
        "permutation": perm,
        "split": {"seed": split_seed, "calibration": {"members": n_cal[0], "nonmembers": n_cal[1]},
                  "test": {"members": n_test[0], "nonmembers": n_test[1]},
                  **({} if groups is None else {"grouped_by": "speaker"})},
        "alternative": alternative,
        "in_sample_max": {"attack": whole.cells[best].attack, "t": whole.cells[best].t,
                          "source": whole.cells[best].source,
                          "auroc": float(auroc(whole.scores[best], whole.labels)),
                          "note": "the best cell picked on all rows it is reported on (as the published attacks "
                                  "report it): an optimistic upper bound, above 0.5 even without any signal"},
    }


def _auroc_interval(labels: np.ndarray, scores: np.ndarray, samples: int, seed: int) -> list[float] | None:
    if samples <= 0:
        return None
    index = stratified_resamples(labels, samples, np.random.default_rng(seed))
    values = _resampled_auroc(scores[None], labels, index)[0]
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


# --------------------------------------------------------------------------- paired comparisons across seeds


@dataclass
class _Prepared:
    scores: np.ndarray  # [N_test] oriented scores of the picked cell on the shared test half
    choice: Choice


def shared_utterances(tables: Sequence[ScoreTable]) -> tuple[list[str], np.ndarray]:
    """The utterances every table scored, with their labels (which must agree)."""
    common = set(tables[0].utt_ids)
    for table in tables[1:]:
        common &= set(table.utt_ids)
    utts = sorted(common)
    labels = None
    for table in tables:
        index = {u: i for i, u in enumerate(table.utt_ids)}
        these = table.labels[[index[u] for u in utts]]
        if labels is not None and not np.array_equal(labels, these):
            raise ValueError("the systems disagree on which shared utterances are members")
        labels = these
    return utts, labels


def compare(system: Sequence[ScoreTable], baseline: Sequence[ScoreTable], split_seed: int = 0,
            samples: int = 2000, seed: int = 0, alternative: str = "two-sided",
            attacks: Iterable[str] | None = None, cell: FixedCell | None = None) -> dict | None:
    """Held-out AUROC of `system` minus `baseline`, each a list of tables (one per training seed), on the
    utterances all of them were attacked on. Each table picks its own strongest cell (restricted to `attacks`
    when given) on the calibration half of the shared utterances; the difference of the seed-mean test-half
    AUROCs gets a paired bootstrap: test utterances resampled jointly for every model (stratified), seeds
    resampled within each system when it has several. p = twice the smaller tail of the bootstrap differences
    around 0 (at least 2 / (samples + 1)). None when nothing is shared or an `attacks` filter leaves a table
    empty.

    With `cell` (pre-registered) nothing is picked: every model is read at that cell and direction on all
    the shared utterances, and None when a table lacks the cell."""
    tables = [*system, *baseline]
    if cell is not None:
        attacks = [cell.attack]
    if attacks is not None:
        attacks = list(attacks)
        tables = [t.restrict(attacks=attacks) for t in tables]
        if any(not t.cells for t in tables):
            return None
    utts, labels = shared_utterances(tables)
    if min(int(labels.sum()), int((labels == 0).sum())) < 4:
        return None
    tables = [t.restrict(utts=utts) for t in tables]
    if cell is None:
        calibration = calibration_mask(utts, labels, split_seed)
        choices = [select(table, calibration, alternative)[0] for table in tables]
    else:
        calibration = np.zeros(len(utts), dtype=bool)  # nothing spent on choosing
        choices = [fixed_choice(table, cell) for table in tables]
        if any(choice is None for choice in choices):
            return None
    test_labels = labels[~calibration]
    prepared = [_Prepared(choice.direction * table.scores[choice.index, ~calibration], choice)
                for table, choice in zip(tables, choices)]
    scores = np.stack([p.scores for p in prepared])  # [K, N_test]
    observed = auroc(scores, test_labels)
    k_sys = len(system)
    rng = np.random.default_rng(seed)
    index = stratified_resamples(test_labels, samples, rng)
    boot = _resampled_auroc(scores, test_labels, index)  # [K, S]
    # seeds resampled within each system per bootstrap draw, from the same stream after the utterances
    differences = resampled_seed_mean(boot[:k_sys], rng) - resampled_seed_mean(boot[k_sys:], rng)
    difference = float(observed[:k_sys].mean() - observed[k_sys:].mean())
    return {
        "difference": difference,
        "ci": [float(np.percentile(differences, 2.5)), float(np.percentile(differences, 97.5))],
        "p_value": bootstrap_p_value(differences),
        "system": _seed_summary(observed[:k_sys], prepared[:k_sys]),
        "baseline": _seed_summary(observed[k_sys:], prepared[k_sys:]),
        "num_members_test": int(test_labels.sum()), "num_nonmembers_test": int((test_labels == 0).sum()),
        "num_shared": len(utts), "samples": samples, "seed": seed,
        "split_seed": split_seed if cell is None else None, "alternative": alternative,
        "preregistered_cell": None if cell is None else cell.label(),
    }


def _seed_summary(values: np.ndarray, prepared: list[_Prepared]) -> dict:
    return {"mean_auroc": float(values.mean()),
            "sd_auroc": float(values.std(ddof=1)) if len(values) > 1 else None,
            "seeds": len(values),
            "per_seed": [{"auroc": float(v), "attack": p.choice.cell.attack, "t": p.choice.cell.t,
                          "source": p.choice.cell.source,
                          "direction": "as defined" if p.choice.direction > 0 else "reversed"}
                         for v, p in zip(values, prepared)]}
