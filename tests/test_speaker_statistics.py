"""Speaker-level membership statistics on simulated scores: halves and permutations keep speakers whole, the
likelihood-ratio aggregate never sees the label of the speaker it scores, no signal reads chance, a planted
signal is found, and everything recomputes from the rows (speaker column included)."""
import json

import numpy as np
import pytest

from holdtts.privacy.metrics import compute_metrics, metrics_from_rows, read_rows, write_rows
from holdtts.privacy.speakers import (
    SpeakerSums,
    cross_fit,
    heldout_fit,
    infer_protocol,
    llr_scores,
    speaker_level,
)
from holdtts.privacy.statistics import ScoreTable, auroc, calibration_mask

CELLS = (("loss", "0.3"), ("pia", "0.1"), ("pia", "0.3"))


def speaker_rows(rng, member_speakers=8, nonmember_speakers=8, utts=(2, 7), speaker_sd=1.0, signal=0.0,
                 protocol="speaker"):
    """Rows with a speaker column. Every speaker has its own offset (sd `speaker_sd`, shared by its utterances
    and cells: utterances of a speaker are not independent). Speaker protocol: a speaker's utterances are all
    members or all non-members; utterance protocol: every speaker has members and non-members. Members'
    scores are raised by `signal`."""
    rows = []
    for k in range(member_speakers + nonmember_speakers):
        speaker = f"spk{k:02d}"
        offset = speaker_sd * rng.standard_normal()
        count = int(rng.integers(utts[0], utts[1] + 1))
        for j in range(count):
            member = int(k < member_speakers) if protocol == "speaker" else int(j % 2 == 0)
            base = offset + rng.standard_normal() + signal * member
            for attack, t in CELLS:
                rows.append({"utt_id": f"{speaker}_u{j:02d}", "member": member, "attack": attack, "t": t,
                             "score": float(base + 0.3 * rng.standard_normal()), "speaker": speaker})
    return rows


def table_and_speakers(rows):
    table = ScoreTable.from_rows(rows)
    speakers = {r["utt_id"]: r["speaker"] for r in rows}
    return table, speakers


def test_halves_keep_each_speaker_whole_and_match_the_speaker_split():
    table, speakers = table_and_speakers(speaker_rows(np.random.default_rng(0)))
    groups = [speakers[u] for u in table.utt_ids]
    mask = calibration_mask(table.utt_ids, table.labels, seed=3, groups=groups)
    halves = {}
    for utt, calibration in zip(table.utt_ids, mask):
        assert halves.setdefault(speakers[utt], calibration) == calibration  # one half per speaker
    sums = SpeakerSums.from_table(table, speakers)
    by_speaker = calibration_mask(sums.speakers, sums.labels, seed=3)
    assert {s: bool(c) for s, c in zip(sums.speakers, by_speaker)} == halves
    assert infer_protocol(table, speakers) == "speaker"
    mixed, mixed_speakers = table_and_speakers(speaker_rows(np.random.default_rng(0), protocol="utterance"))
    assert infer_protocol(mixed, mixed_speakers) == "utterance"
    with pytest.raises(ValueError, match="both members and non-members"):
        calibration_mask(mixed.utt_ids, mixed.labels, groups=[mixed_speakers[u] for u in mixed.utt_ids])


def test_the_likelihood_ratio_never_sees_the_label_of_the_speaker_it_scores():
    table, speakers = table_and_speakers(speaker_rows(np.random.default_rng(1), signal=0.8))
    sums = SpeakerSums.from_table(table, speakers)
    folds = cross_fit(sums.speakers, seed=0)
    assert not folds.diagonal().any() and 0.4 < folds.mean() < 0.6
    base = llr_scores(sums, sums.labels, folds)
    for k in (0, 5, 12):  # flipping a speaker's own label leaves its own score as it was
        flipped = sums.labels.copy()
        flipped[k] = 1 - flipped[k]
        assert llr_scores(sums, flipped, folds)[:, k] == pytest.approx(base[:, k], rel=1e-9, abs=1e-9)
    calibration = calibration_mask(sums.speakers, sums.labels, seed=0)
    fit = heldout_fit(sums.speakers, sums.labels, calibration)
    assert not fit[:, ~calibration].any()  # the test half's labels fit nothing
    heldout = llr_scores(sums, sums.labels, fit)
    relabelled = sums.labels.copy()
    relabelled[~calibration] = 1 - relabelled[~calibration]
    assert llr_scores(sums, relabelled, fit) == pytest.approx(heldout, rel=1e-9, abs=1e-9)
    batch = np.stack([sums.labels, relabelled])  # a batch of label vectors gives each one's scores
    assert llr_scores(sums, batch, folds)[0] == pytest.approx(base, rel=1e-9, abs=1e-9)
    with pytest.raises(ValueError, match="own label"):
        llr_scores(sums, sums.labels, np.ones_like(folds))
    # with a planted signal the aggregate ranks member speakers higher
    assert np.mean(base[:, sums.labels == 1]) > np.mean(base[:, sums.labels == 0])


def test_without_signal_the_likelihood_ratio_is_not_reversed():
    """Leave-one-speaker-out fits would rank members below non-members on no signal; cross-fitting does not."""
    rng = np.random.default_rng(11)
    values = []
    for _ in range(40):
        table, speakers = table_and_speakers(speaker_rows(rng, speaker_sd=1.0))
        sums = SpeakerSums.from_table(table, speakers)
        llr = llr_scores(sums, sums.labels, cross_fit(sums.speakers, seed=0))
        values.append(auroc(llr, sums.labels).mean())
    assert abs(np.mean(values) - 0.5) < 0.04


def test_no_signal_reads_chance_at_the_speaker_level():
    """Strong speaker offsets, no membership signal: held-out AUROC near 0.5 on average and few detections,
    at the speaker level and at the utterance level (halves and permutations by speaker)."""
    rng = np.random.default_rng(7)
    heads, speaker_p, utterance_p = [], [], []
    for _ in range(30):
        metrics = compute_metrics(speaker_rows(rng, speaker_sd=1.5), bootstrap_samples=0, permutations=100)
        level = metrics["speaker_level"]
        assert metrics["protocol"] == "speaker" and level["available"]
        heads.append(level["headline"]["auroc"])
        speaker_p.append(level["headline"]["p_value"])
        utterance_p.append(metrics["headline"]["p_value"])
    assert abs(np.mean(heads) - 0.5) < 0.08
    assert np.mean(np.array(speaker_p) < 0.05) <= 0.2
    assert np.mean(np.array(utterance_p) < 0.05) <= 0.2


def test_a_planted_signal_is_detected_at_the_speaker_level():
    rows = speaker_rows(np.random.default_rng(3), member_speakers=10, nonmember_speakers=10, speaker_sd=0.5,
                        signal=1.5)
    level = speaker_level(*table_and_speakers(rows), permutations=200, bootstrap_samples=100)
    head = level["headline"]
    assert head["detected"] and head["p_value"] < 0.01 and head["auroc"] > 0.8
    assert head["aggregate"] in ("mean", "llr") and head["auroc_ci"][0] > 0.5
    assert set(level["by_aggregate"]) == {"mean", "llr"}
    for part in level["by_aggregate"].values():
        assert part["headline"]["auroc"] > 0.75
    assert level["split"]["calibration"]["members"] + level["split"]["test"]["members"] == 10
    assert "speakers" in level["headline"]["selection"]


def test_too_few_speakers_says_so():
    rows = speaker_rows(np.random.default_rng(0), member_speakers=3, nonmember_speakers=5)
    level = compute_metrics(rows, bootstrap_samples=0, permutations=20)["speaker_level"]
    assert not level["available"] and "at least 4" in level["note"]


def test_metrics_recompute_from_rows_with_the_speaker_column(tmp_path):
    rows = speaker_rows(np.random.default_rng(4), signal=0.7)
    metrics = compute_metrics(rows, bootstrap_samples=30, seed=2, permutations=50)
    write_rows(tmp_path / "rows.tsv", rows)
    header = (tmp_path / "rows.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["utt_id", "member", "attack", "t", "score", "speaker"]
    assert read_rows(tmp_path / "rows.tsv")[0]["speaker"] == rows[0]["speaker"]
    again = metrics_from_rows(tmp_path / "rows.tsv", bootstrap_samples=30, seed=2, permutations=50)
    assert json.loads(json.dumps(again)) == json.loads(json.dumps(metrics))
    assert metrics["split"].get("grouped_by") == "speaker"
    assert "whole speakers" in metrics["permutation"]["relabelled"]


def test_the_utterance_protocol_reports_the_spread_across_speakers():
    rows = speaker_rows(np.random.default_rng(5), utts=(6, 10), signal=1.0, protocol="utterance")
    metrics = compute_metrics(rows, bootstrap_samples=0, permutations=50)
    assert metrics["protocol"] == "utterance" and "speaker_level" not in metrics
    spread = metrics["per_speaker"]
    assert spread["attack"] == metrics["headline"]["attack"] and spread["t"] == metrics["headline"]["t"]
    assert spread["summary"]["count"] == len(spread["speakers"]) > 0
    assert spread["summary"]["min"] <= spread["summary"]["median"] <= spread["summary"]["max"]
    assert all(min(e["num_members"], e["num_nonmembers"]) >= spread["min_per_class"]
               for e in spread["speakers"].values())


def test_rows_without_speakers_give_the_metrics_of_before():
    rows = [{k: v for k, v in r.items() if k != "speaker"} for r in speaker_rows(np.random.default_rng(6))]
    metrics = compute_metrics(rows, bootstrap_samples=0, permutations=20)
    assert not {"protocol", "speaker_level", "per_speaker", "num_speakers"} & set(metrics)
    assert "grouped_by" not in metrics["split"] and "relabelled" not in metrics["permutation"]


def test_the_report_prints_both_levels(tmp_path):
    from holdtts.report import write_report

    exp = tmp_path / "exp"
    for name, protocol in (("spk", "speaker"), ("utt", "utterance")):
        out = exp / name / "attack"
        out.mkdir(parents=True)
        rows = speaker_rows(np.random.default_rng(8), utts=(6, 8), signal=1.0, protocol=protocol)
        write_rows(out / "rows.tsv", rows)
        metrics = metrics_from_rows(out / "rows.tsv", bootstrap_samples=20, permutations=50)
        (out / "metrics.json").write_text(json.dumps(metrics))
        (out / "attack.json").write_text(json.dumps({"attacks": ["loss", "pia"], "step": 10, "order": 1,
                                                     "protocol": protocol, "speaker_condition": "own"}))
    write_report(exp)
    text = (exp / "report" / "report.md").read_text()
    assert "## Speakers" in text and "speaker-level AUROC" in text and "Spread across speakers" in text
    summary = json.loads((exp / "report" / "report.json").read_text())
    spk = summary["systems"]["spk"]["speakers"]["attack"]
    assert spk["protocol"] == "speaker" and spk["speaker_level"]["available"]
    assert spk["speaker_level"]["headline"]["aggregate"] in ("mean", "llr")
    assert summary["systems"]["utt"]["speakers"]["attack"]["per_speaker"]["summary"]["count"] > 0
