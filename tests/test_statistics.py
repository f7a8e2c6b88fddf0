"""Held-out selection, the permutation test and paired comparisons: no signal reads as no signal, a real
signal is found, and every number is what the rows say."""
from itertools import product

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from holdtts.privacy.metrics import compute_metrics
from holdtts.privacy.simulate import simulated_rows
from holdtts.privacy.statistics import (
    Cell,
    FixedCell,
    ScoreTable,
    auroc,
    calibration_mask,
    compare,
    leakage,
    low_fpr,
    permutation_test,
    roc_metrics,
    roc_metrics_batch,
    select,
)


def test_no_signal_reads_as_no_signal():
    """200 rows files without any membership signal (32 vs 32, the order-1 grid): the held-out headline
    AUROC averages 0.5, and leakage is "detected" at p < 0.05 in about 5% of them, while the in-sample
    maximum the published attacks report sits far above 0.5."""
    rng = np.random.default_rng(2026)
    headline, detected, in_sample = [], [], []
    for _ in range(200):
        result = leakage(ScoreTable.from_rows(simulated_rows(rng)), permutations=200, bootstrap_samples=0,
                         seed=int(rng.integers(1 << 30)))
        headline.append(result["headline"]["auroc"])
        detected.append(result["headline"]["p_value"] < 0.05)
        in_sample.append(result["in_sample_max"]["auroc"])
    assert abs(np.mean(headline) - 0.5) < 0.02
    assert np.mean(detected) <= 0.07
    assert np.mean(in_sample) > 0.58  # the number the report used to print as its headline


def test_a_real_signal_is_detected_and_held_out():
    rng = np.random.default_rng(7)
    rows = simulated_rows(rng, members=10, nonmembers=40, signal=2.5)
    metrics = compute_metrics(rows, bootstrap_samples=200, seed=3, permutations=1000)
    head = metrics["headline"]
    assert head["attack"] == "pia" and head["direction"] == "as defined"
    assert head["p_value"] < 0.01 and head["detected"]
    assert head["auroc"] > 0.85 and head["auroc_ci"][0] <= head["auroc"] <= head["auroc_ci"][1]
    assert (head["num_members_test"], head["num_nonmembers_test"]) == (5, 20)
    assert metrics["heldout"]["pia"]["p_value"] < 0.01
    assert metrics["heldout"]["loss"]["p_value"] > 0.01  # no signal in loss: its own test does not fire
    assert {"attack", "t", "auroc", "auroc_ci", "p_value", "selection"} <= set(head)
    # TPR at 1% FPR needs 100 non-members: with 20 in the test half it is not printed as if resolved
    assert head["low_fpr"]["tpr@1%fpr"] is None and "needs 100" in head["low_fpr"]["tpr@1%fpr_note"]
    assert 0 <= head["low_fpr"]["tpr@0fpr"] <= 1


def test_headline_is_measured_only_on_the_test_half():
    """Replacing the test half's scores moves the headline AUROC but never the pick."""
    rng = np.random.default_rng(1)
    table = ScoreTable.from_rows(simulated_rows(rng, signal=1.0))
    cal = calibration_mask(table.utt_ids, table.labels, seed=0)
    choice, _ = select(table, cal)
    shuffled = table.scores.copy()
    shuffled[:, ~cal] = rng.normal(size=shuffled[:, ~cal].shape)
    other = ScoreTable(table.utt_ids, table.labels, table.cells, shuffled)
    again, _ = select(other, cal)
    assert again == choice  # the test half never enters the pick
    a = leakage(table, permutations=50, bootstrap_samples=0)["headline"]
    b = leakage(other, permutations=50, bootstrap_samples=0)["headline"]
    assert (a["attack"], a["t"]) == (b["attack"], b["t"]) and a["auroc"] != b["auroc"]
    assert a["auroc"] == pytest.approx(auroc(table.scores[choice.index, ~cal] * choice.direction,
                                             table.labels[~cal]))


def test_calibration_split_is_stratified_seeded_and_shared():
    utts = [f"u{i}" for i in range(21)]
    labels = np.array([1] * 7 + [0] * 14)
    mask = calibration_mask(utts, labels, seed=3)
    assert (labels[mask] == 1).sum() == 3 and (labels[mask] == 0).sum() == 7
    assert np.array_equal(mask, calibration_mask(utts, labels, seed=3))
    assert not np.array_equal(mask, calibration_mask(utts, labels, seed=4))
    with pytest.raises(ValueError, match="at least 2 members"):
        calibration_mask(utts[:15], np.array([1] + [0] * 14), seed=0)


def test_auroc_by_ranks_matches_pairs_and_mann_whitney():
    rng = np.random.default_rng(0)
    labels = np.array([1] * 13 + [0] * 17)
    scores = np.round(rng.normal(size=30) + labels, 1)  # ties on purpose
    pairs = [(p > q) + 0.5 * (p == q) for p, q in product(scores[labels == 1], scores[labels == 0])]
    assert auroc(scores, labels) == pytest.approx(np.mean(pairs))
    u = mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    assert auroc(scores, labels) == pytest.approx(u / (13 * 17))


def test_permutation_p_is_exact_for_one_cell():
    """One cell, few utterances: the permutation p converges to the exact Mann-Whitney p (two-sided)."""
    rng = np.random.default_rng(5)
    labels = np.array([1] * 6 + [0] * 6)
    scores = rng.normal(size=12) + 1.2 * labels
    table = ScoreTable([f"u{i:02d}" for i in range(12)], labels, [Cell("a", "-")], scores[None])
    p = permutation_test(table, permutations=20000, seed=0)["p_value"]
    exact = mannwhitneyu(scores[labels == 1], scores[labels == 0], method="exact").pvalue
    assert p == pytest.approx(exact, abs=0.01)


def test_low_fpr_figures_need_enough_nonmembers():
    labels = np.array([1] * 50 + [0] * 150)
    scores = np.concatenate([np.linspace(1, 2, 50), np.linspace(0, 1.5, 150)])
    out = low_fpr(labels, scores)
    assert out["tpr@1%fpr"] is not None and out["tpr@0.1%fpr"] is None
    assert "needs 1000" in out["tpr@0.1%fpr_note"]
    assert out["tpr@0fpr"] == pytest.approx(np.mean(scores[:50] > 1.5))


def test_paired_comparison_finds_a_lower_system_and_not_a_copy():
    base_rows = [simulated_rows(np.random.default_rng(s), members=40, nonmembers=80, signal=1.5) for s in range(3)]
    safe_rows = [simulated_rows(np.random.default_rng(10 + s), members=40, nonmembers=80, signal=0.0)
                 for s in range(3)]
    base = [ScoreTable.from_rows(r) for r in base_rows]
    safe = [ScoreTable.from_rows(r) for r in safe_rows]
    lower = compare(safe, base, samples=500, seed=0)
    assert lower["difference"] < -0.2 and lower["ci"][1] < 0 and lower["p_value"] < 0.01
    assert lower["system"]["seeds"] == 3 and lower["baseline"]["sd_auroc"] is not None
    same = compare(base, base, samples=500, seed=0)
    assert same["difference"] == pytest.approx(0.0) and same["ci"][0] <= 0 <= same["ci"][1]
    assert same["p_value"] > 0.5
    one = compare(safe[:1], base[:1], samples=300, seed=1)
    assert one["system"]["sd_auroc"] is None and one["difference"] < 0
    # restricted to one family; a family a system lacks gives no comparison
    assert compare(safe, base, samples=100, attacks=["duration", "prior"]) is not None
    assert compare(safe, base, samples=100, attacks=["pia_mc"]) is None


def test_a_preregistered_cell_is_read_on_every_utterance_without_a_pick():
    base = [ScoreTable.from_rows(simulated_rows(np.random.default_rng(s), members=8, nonmembers=64, signal=3.0))
            for s in range(3)]
    safe = [ScoreTable.from_rows(simulated_rows(np.random.default_rng(10 + s), members=8, nonmembers=64))
            for s in range(3)]
    t = base[0].cells[[c.attack for c in base[0].cells].index("pia")].t
    cell = FixedCell("pia", t)
    out = compare(safe, base, samples=500, seed=0, cell=cell)
    # all 8 members count (the held-out comparison keeps 4 for the test half)
    assert (out["num_members_test"], out["num_nonmembers_test"]) == (8, 64) and out["split_seed"] is None
    assert out["preregistered_cell"] == f"pia t={t}"
    # the baseline's mean AUROC is exactly that cell's AUROC on all utterances, seed by seed
    index = [c.t for c in base[0].cells if c.attack == "pia"].index(t)
    expected = [float(auroc(b.restrict(attacks=["pia"]).scores[index], b.labels)) for b in base]
    assert out["baseline"]["mean_auroc"] == pytest.approx(np.mean(expected))
    assert {p["attack"] for p in out["baseline"]["per_seed"]} == {"pia"}
    assert out["difference"] < -0.2 and out["ci"][1] < 0 and out["p_value"] < 0.01
    # reversed reads 1 - AUROC; "0.10" finds the cell "0.1"; a cell a table lacks gives no comparison
    flipped = compare(safe, base, samples=100, cell=FixedCell("pia", t, -1))
    assert flipped["baseline"]["mean_auroc"] == pytest.approx(1 - np.mean(expected))
    padded = f"{float(t):.4f}"
    assert padded != t and compare(safe, base, samples=100, cell=FixedCell("pia", padded)) is not None
    assert compare(safe, base, samples=100, cell=FixedCell("pia_mc", t)) is None
    assert FixedCell.from_dict({"attack": "loss", "t": "0.8", "direction": "reversed"}) == FixedCell("loss", "0.8", -1)
    with pytest.raises(ValueError, match="direction"):
        FixedCell.from_dict({"attack": "loss", "t": "0.8", "direction": "up"})
    for bad in (None, "", "abc", "nan", True):
        with pytest.raises(ValueError, match="t is a number"):
            FixedCell.from_dict({"attack": "loss", "t": bad})
    assert FixedCell.from_dict({"attack": "prior", "t": "-"}) == FixedCell("prior", "-", 1)
    assert FixedCell.from_dict({"attack": "loss", "t": 0.8}).t == "0.8"


def test_paired_comparison_uses_only_shared_utterances():
    a = ScoreTable.from_rows(simulated_rows(np.random.default_rng(0), signal=1.0))
    b = ScoreTable.from_rows(simulated_rows(np.random.default_rng(1), signal=1.0))
    b_sub = b.restrict(utts=b.utt_ids[:12] + b.utt_ids[32:52])
    out = compare([a], [b_sub], samples=100)
    assert out["num_shared"] == 32


@pytest.mark.parametrize("ties", [False, True])
def test_batched_roc_metrics_equal_sklearns_row_by_row(ties):
    rng = np.random.default_rng(5 + ties)
    labels = np.tile(np.r_[np.ones(7), np.zeros(150)], (40, 1))
    for row in labels:
        rng.shuffle(row)
    scores = rng.integers(0, 6, labels.shape).astype(float) if ties else rng.standard_normal(labels.shape)
    batch = roc_metrics_batch(labels, scores)
    for i in range(len(labels)):
        for name, value in roc_metrics(labels[i], scores[i]).items():
            assert batch[name][i] == pytest.approx(value, abs=1e-12), (name, i)
