"""Membership of speakers: can an attacker tell whether a person's voice was in the training set?

Two protocols (docs/speakers.md), told apart by the rows alone:

- *speaker*: every speaker's utterances are all members or all non-members (whole speakers were held out).
  The utterance scores of each speaker are aggregated into one score per speaker, and holdtts's held-out
  statistics (holdtts.privacy.statistics) run on speakers: attack, t and aggregate picked on a calibration
  half of the speakers, AUROC with a bootstrap interval on the other half, a permutation p-value that
  relabels whole speakers.
- *utterance*: members and non-members within the training speakers (as PIA did). The pooled analysis is
  the usual one; `per_speaker_auroc` adds the spread of the headline cell's AUROC across speakers that
  have enough members and non-members of their own.

The two aggregates of a speaker's utterance scores s_1..s_m (each cell's scores first standardised by
their mean and standard deviation over all utterances, which needs no labels):

- `mean`: the mean of the s_i. No fitting; the attacker needs no labelled data.
- `llr`: sum_i log N(s_i; m1, v1) - log N(s_i; m0, v0), the log-likelihood ratio of the speaker's scores
  under Gaussian member and non-member densities, treating the speaker's utterances as independent (naive
  Bayes: a speaker with more utterances carries more evidence). A speaker's own label never fits the
  densities it is scored with: the test half's speakers are scored with densities fitted on the calibration
  half; the calibration speakers by two-fold cross-fitting within the calibration half (so the pick on the
  calibration half does not see a speaker's own label); for the permutation test and the in-sample figure,
  by two-fold cross-fitting over all speakers with label-free folds, refitted under every relabelling, so
  the permutation p-value stays exact. (Leave-one-speaker-out would not do: taking a speaker out of its own
  class moves that class's mean away from it; on simulated scores without signal, 8 + 8 speakers, its
  AUROC averaged 0.45 with sd 0.22, against 0.50 and 0.16 for cross-fitting and the mean aggregate, and the
  wider null cost the permutation test its power.) Each class variance is shrunk towards the pooled one by
  PSEUDO_COUNT utterances.
"""
from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from holdtts.privacy.statistics import (
    DEFAULT_ALPHA,
    DEFAULT_PERMUTATIONS,
    Cell,
    ScoreTable,
    _check_alternative,
    auroc,
    calibration_mask,
    group_label_array,
    leakage,
)

AGGREGATES = {
    "mean": "mean of the speaker's standardised utterance scores",
    "llr": "sum over the speaker's utterances of log p_member(s) / p_nonmember(s), Gaussian densities fitted on "
           "other speakers only (the calibration half for test speakers; two-fold cross-fitting within the "
           "calibration half, and over all speakers in the permutations)",
}
MIN_SPEAKERS_PER_CLASS = 4  # each half needs at least 2 member and 2 non-member speakers
MIN_UTTS_PER_CLASS = 3  # a speaker's own AUROC (utterance protocol) needs this many members and non-members
PSEUDO_COUNT = 2.0  # class variances shrunk towards the pooled variance by this many utterances
_CHUNK_ENTRIES = 4_000_000  # permutations x cells x speakers handled at once


# --------------------------------------------------------------------------- which protocol the rows follow


def row_speakers(rows: Sequence[dict]) -> dict[str, str] | None:
    """utterance -> speaker from rows with a speaker column; None for rows without one."""
    if not rows or "speaker" not in rows[0]:
        return None
    speakers: dict[str, str] = {}
    for row in rows:
        if speakers.setdefault(row["utt_id"], row["speaker"]) != row["speaker"]:
            raise ValueError(f"utterance {row['utt_id']} has two speakers ({speakers[row['utt_id']]}, "
                             f"{row['speaker']})")
    return speakers


def infer_protocol(table: ScoreTable, speakers: Mapping[str, str]) -> str:
    """"speaker" when every speaker's utterances are all members or all non-members, with at least two
    speakers of each kind (so that whole speakers can be split into halves); else "utterance"."""
    names, index = np.unique(np.array([speakers[u] for u in table.utt_ids], dtype=object).astype(str),
                             return_inverse=True)
    members = np.bincount(index, weights=table.labels, minlength=len(names))
    sizes = np.bincount(index, minlength=len(names))
    if np.any((members > 0) & (members < sizes)):
        return "utterance"
    member_speakers = int((members > 0).sum())
    return "speaker" if min(member_speakers, len(names) - member_speakers) >= 2 else "utterance"


# --------------------------------------------------------------------------- per-speaker sufficient statistics


@dataclass
class SpeakerSums:
    """Per cell and speaker: the count, sum and sum of squares of the standardised utterance scores."""

    speakers: list[str]  # sorted
    labels: np.ndarray  # [K]
    cells: list[Cell]
    count: np.ndarray  # [K]
    total: np.ndarray  # [C, K]
    square: np.ndarray  # [C, K]

    @classmethod
    def from_table(cls, table: ScoreTable, speakers: Mapping[str, str]) -> SpeakerSums:
        names, index = np.unique(np.array([speakers[u] for u in table.utt_ids], dtype=object).astype(str),
                                 return_inverse=True)
        labels = group_label_array(index, table.labels, len(names))
        mean = table.scores.mean(axis=1, keepdims=True)
        sd = table.scores.std(axis=1, keepdims=True)
        z = (table.scores - mean) / np.where(sd > 0, sd, 1.0)
        count = np.bincount(index, minlength=len(names)).astype(np.float64)
        total = np.stack([np.bincount(index, weights=row, minlength=len(names)) for row in z])
        square = np.stack([np.bincount(index, weights=row * row, minlength=len(names)) for row in z])
        return cls(list(names), labels, list(table.cells), count, total, square)

    def mean_scores(self) -> np.ndarray:
        return self.total / self.count

    def subset(self, cells: Sequence[int]) -> SpeakerSums:
        cells = list(cells)
        return SpeakerSums(self.speakers, self.labels, [self.cells[i] for i in cells], self.count,
                           self.total[cells], self.square[cells])


def llr_scores(sums: SpeakerSums, labels: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """The `llr` aggregate of every speaker, [S, C, K] for label vectors [S, K] (or [C, K] for [K]).

    fit [K, K] (bool): row k marks the speakers whose labels fit the two densities speaker k is scored with;
    it must not mark k itself (see `cross_fit`, `heldout_fit`). Each class's variance is shrunk towards the
    pooled variance of the fit set by PSEUDO_COUNT utterances; a class with no speaker in the fit set takes
    the pooled mean and variance."""
    single = labels.ndim == 1
    L = np.atleast_2d(labels).astype(np.float64)  # [S, K]
    F = fit.astype(np.float64)  # [K (scored), K (fit)]
    if np.any(np.diag(F)):
        raise ValueError("a speaker's own label must not fit the densities it is scored with")
    n, s, q = sums.count, sums.total, sums.square  # [K], [C, K], [C, K]
    Np = F @ n  # [K]: the fit set of each scored speaker, label-free
    Sp = s @ F.T  # [C, K]
    Qp = q @ F.T
    safe = np.maximum(Np, 1.0)
    mp = Sp / safe
    vp = np.maximum(Qp / safe - mp * mp, 1e-6)
    llr = 0.0
    for sign, weights in ((1.0, L), (-1.0, 1.0 - L)):  # this class's speakers, [S, K]
        N = ((weights * n) @ F.T)[:, None, :]  # [S, 1, K]
        S = (weights[:, None, :] * s[None]) @ F.T  # [S, C, K]
        Q = (weights[:, None, :] * q[None]) @ F.T
        safe_n = np.maximum(N, 1.0)
        m = np.where(N > 0, S / safe_n, mp[None])
        scatter = np.where(N > 0, np.maximum(Q - S * S / safe_n, 0.0), 0.0)  # N * (class variance)
        v = (scatter + PSEUDO_COUNT * vp[None]) / (N + PSEUDO_COUNT)
        loglik = -0.5 * n * np.log(v) - (q - 2 * m * s + n * m * m) / (2 * v)
        llr = llr + sign * loglik
    return llr[0] if single else llr


def _folds(speakers: Sequence[str], seed: int) -> np.ndarray:
    """Two folds by a seeded hash order of the speaker ids (alternating), label-free: [K] of 0/1."""
    order = sorted(range(len(speakers)), key=lambda i: (zlib.crc32(f"{seed}|fold|{speakers[i]}".encode()), speakers[i]))
    folds = np.zeros(len(speakers), dtype=np.int64)
    folds[order[1::2]] = 1
    return folds


def cross_fit(speakers: Sequence[str], seed: int = 0) -> np.ndarray:
    """Two-fold cross-fitting over all speakers with label-free folds: each speaker is scored with densities
    fitted on the other fold. Used for the permutation test and the in-sample figure: under every relabelling
    the same folds, so the test stays exact, and a speaker's score never depends on its own label, nor is it
    biased against it (leave-one-out is: removing a speaker moves its own class's mean away from it)."""
    folds = _folds(speakers, seed)
    return folds[:, None] != folds[None, :]


def heldout_fit(speakers: Sequence[str], labels: np.ndarray, calibration: np.ndarray, seed: int = 0) -> np.ndarray:
    """The held-out analysis's fits: a test speaker is scored with densities fitted on the whole calibration
    half; a calibration speaker with densities fitted on the other of two folds of the calibration half
    (stratified by label, which the attacker knows there), so the pick on the calibration half never uses a
    speaker's own label and the test half's labels are never used at all."""
    K = len(speakers)
    fit = np.zeros((K, K), dtype=bool)
    fit[~calibration] = calibration
    folds = np.full(K, -1)
    for cls in (0, 1):
        members = np.flatnonzero(calibration & (labels == cls))
        sub = _folds([speakers[i] for i in members], seed)
        folds[members] = sub
    cal = np.flatnonzero(calibration)
    fit[np.ix_(cal, cal)] = folds[cal][:, None] != folds[cal][None, :]
    return fit


# --------------------------------------------------------------------------- the permutation test on speakers


def speaker_permutation(sums: SpeakerSums, permutations: int, seed: int, alternative: str):
    """A `permutation(sub_table)` for holdtts.privacy.statistics.leakage on speaker tables: the maximum
    |AUROC - 0.5| (or AUROC) over the sub-table's cells on all speakers, mean cells as they are and llr cells
    refitted (two-fold cross-fitting over all speakers, `cross_fit`) under each relabelling of whole speakers."""
    _check_alternative(alternative)
    position = {(c.attack, c.t): i for i, c in enumerate(sums.cells)}
    mean_scores = sums.mean_scores()
    K = len(sums.speakers)
    folds = cross_fit(sums.speakers, seed)

    def statistic(values: np.ndarray) -> np.ndarray:  # [..., C] AUROCs -> [...]
        return np.abs(values - 0.5).max(axis=-1) if alternative == "two-sided" else values.max(axis=-1)

    def aurocs(labels: np.ndarray, mean_rows: list[int], llr_sums: SpeakerSums | None) -> np.ndarray:
        """AUROC of every wanted cell for label vectors [S, K] -> [S, C_mean + C_llr]."""
        parts = []
        if mean_rows:
            parts.append(auroc(np.broadcast_to(mean_scores[mean_rows], (len(labels), len(mean_rows), K)),
                               labels[:, None, :]))
        if llr_sums is not None:
            parts.append(auroc(llr_scores(llr_sums, labels, folds), labels[:, None, :]))
        return np.concatenate(parts, axis=1)

    def run(sub: ScoreTable) -> dict:
        mean_rows = [position[(c.attack, c.t)] for c in sub.cells if c.source == "mean"]
        llr_rows = [position[(c.attack, c.t)] for c in sub.cells if c.source == "llr"]
        llr_sums = sums.subset(llr_rows) if llr_rows else None
        observed = float(statistic(aurocs(sums.labels[None], mean_rows, llr_sums))[0])
        rng = np.random.default_rng(seed)
        chunk = max(1, min(permutations, _CHUNK_ENTRIES // max(1, len(sub.cells) * K)))
        exceed = done = 0
        while done < permutations:
            size = min(chunk, permutations - done)
            labels = np.stack([rng.permutation(sums.labels) for _ in range(size)])
            exceed += int((statistic(aurocs(labels, mean_rows, llr_sums)) >= observed - 1e-12).sum())
            done += size
        return {"p_value": (1 + exceed) / (1 + permutations), "permutations": permutations, "seed": seed,
                "statistic": "max |AUROC - 0.5|" if alternative == "two-sided" else "max AUROC",
                "observed": observed, "cells": len(sub.cells), "alternative": alternative,
                "relabelled": f"whole speakers ({K}); llr cells refitted (two-fold cross-fitting) under each "
                              "relabelling"}

    return run


# --------------------------------------------------------------------------- the speaker-level analysis


def _speaker_table(sums: SpeakerSums, llr: np.ndarray, aggregates: Sequence[str]) -> ScoreTable:
    cells, scores = [], []
    for aggregate in aggregates:
        values = sums.mean_scores() if aggregate == "mean" else llr
        cells += [Cell(c.attack, c.t, aggregate) for c in sums.cells]
        scores.append(values)
    return ScoreTable(list(sums.speakers), sums.labels.copy(), cells, np.concatenate(scores, axis=0))


def speaker_level(table: ScoreTable, speakers: Mapping[str, str], split_seed: int = 0,
                  permutations: int = DEFAULT_PERMUTATIONS, bootstrap_samples: int = 1000, seed: int = 0,
                  alternative: str = "two-sided", alpha: float = DEFAULT_ALPHA) -> dict:
    """The held-out analysis on speakers (the speaker protocol): `headline` over both aggregates (its
    `aggregate` says which was picked), `heldout` per attack, `permutation`, `split`, `in_sample_max` as in
    holdtts.privacy.statistics.leakage, with speakers as the unit; `by_aggregate` gives each aggregate's own
    headline. Speakers are split into halves exactly as the utterance-level analysis groups them."""
    sums = SpeakerSums.from_table(table, speakers)
    n1 = int(sums.labels.sum())
    n0 = len(sums.labels) - n1
    counts = sums.count
    out = {
        "unit": "speaker",
        "num_speakers": len(sums.speakers), "num_member_speakers": n1, "num_nonmember_speakers": n0,
        "utterances_per_speaker": {"min": int(counts.min()), "median": float(np.median(counts)),
                                   "max": int(counts.max())},
        "aggregates": dict(AGGREGATES),
    }
    if min(n1, n0) < MIN_SPEAKERS_PER_CLASS:
        out.update({"available": False,
                    "note": f"needs at least {MIN_SPEAKERS_PER_CLASS} member and {MIN_SPEAKERS_PER_CLASS} non-member "
                            f"speakers, has {n1} and {n0}"})
        return out
    calibration = calibration_mask(sums.speakers, sums.labels, split_seed)
    heldout_llr = llr_scores(sums, sums.labels, heldout_fit(sums.speakers, sums.labels, calibration, split_seed))
    all_llr = llr_scores(sums, sums.labels, cross_fit(sums.speakers, seed))
    options = dict(split_seed=split_seed, bootstrap_samples=bootstrap_samples, seed=seed, alternative=alternative,
                   alpha=alpha, unit="speakers",
                   permutation=speaker_permutation(sums, permutations, seed, alternative))

    def analyse(aggregates: Sequence[str]) -> dict:
        result = leakage(_speaker_table(sums, heldout_llr, aggregates),
                         in_sample=_speaker_table(sums, all_llr, aggregates), **options)
        for entry in (result["headline"], *result["heldout"].values(), result["in_sample_max"]):
            entry["aggregate"] = entry.pop("source")
        return result

    out.update({"available": True, **analyse(tuple(AGGREGATES))})
    out["by_aggregate"] = {name: {k: v for k, v in analyse((name,)).items() if k in ("headline", "heldout")}
                           for name in AGGREGATES}
    return out


def per_speaker_auroc(table: ScoreTable, speakers: Mapping[str, str], headline: dict,
                      min_per_class: int = MIN_UTTS_PER_CLASS) -> dict:
    """The utterance protocol's spread across speakers: the headline cell (attack, t and direction picked on
    the calibration half) scored on each speaker's own utterances (both halves; descriptive), for speakers
    with at least `min_per_class` members and non-members."""
    index = next(i for i, c in enumerate(table.cells) if c.attack == headline["attack"] and c.t == headline["t"])
    direction = -1.0 if headline.get("direction") == "reversed" else 1.0
    by_speaker: dict[str, list[int]] = {}
    for i, utt in enumerate(table.utt_ids):
        by_speaker.setdefault(speakers[utt], []).append(i)
    entries, skipped = {}, 0
    for speaker in sorted(by_speaker):
        cols = np.array(by_speaker[speaker])
        labels = table.labels[cols]
        members, nonmembers = int(labels.sum()), int(len(labels) - labels.sum())
        if min(members, nonmembers) < min_per_class:
            skipped += 1
            continue
        value = float(auroc(direction * table.scores[index, cols], labels))
        entries[speaker] = {"auroc": value, "num_members": members, "num_nonmembers": nonmembers}
    values = np.array([e["auroc"] for e in entries.values()])
    summary = None
    if len(values):
        summary = {"count": len(values), "min": float(values.min()), "median": float(np.median(values)),
                   "max": float(values.max()), "sd": float(values.std(ddof=1)) if len(values) > 1 else None}
    return {"attack": headline["attack"], "t": headline["t"], "direction": headline.get("direction"),
            "min_per_class": min_per_class, "speakers": entries, "summary": summary, "skipped_speakers": skipped,
            "note": "descriptive: the headline cell, picked on the calibration half, scored on each speaker's "
                    "own utterances (both halves)"}
