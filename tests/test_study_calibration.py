"""The CPU study's freeze rule: the epochs it freezes are the epochs the calibration checkpoint had
trained; a setting qualifies only on every one of its training seeds (at least criteria.seeds of them);
the pick prefers more members, then less training time (the slowest seed's), within the budget."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "egs" / "ljspeech" / "local" / "study_calibration.py"
spec = importlib.util.spec_from_file_location("study_calibration", SCRIPT)
study_calibration = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study_calibration)


def _log(steps_per_epoch: int, last_step: int, every: int = 10) -> list[tuple[int, int]]:
    # what the trainer writes: each logged step with the 0-based index of the epoch it belongs to
    return [(s, (s - 1) // steps_per_epoch) for s in range(every, last_step + 1, every)]


def test_epochs_done_counts_the_epoch_a_checkpoint_completes():
    # one batch an epoch (8 members, batch 8): step 500 has trained 500 epochs, though it logs epoch 499
    assert study_calibration.epochs_done(_log(1, 1000), 500) == 500
    # two batches an epoch (16 members, batch 8), checkpoint on an epoch boundary
    assert study_calibration.epochs_done(_log(2, 1600), 400) == 200
    # a checkpoint between two logged steps (375 with a log every 10 steps)
    assert study_calibration.epochs_done(_log(1, 1500), 375) == 375
    assert study_calibration.epochs_done([], 100) is None


def test_epoch_and_seconds_reads_the_run(tmp_path):
    lines = [f'{{"step": {s}, "epoch": {e}, "train/loss": 1.0}}' for s, e in _log(1, 1000)]
    (tmp_path / "train_log.jsonl").write_text("\n".join(lines) + "\n{\"step\": 10")  # a torn last line
    (tmp_path / "train_summary.json").write_text('{"step": 1000, "train_seconds": 1500.0}')
    assert study_calibration._epoch_and_seconds(tmp_path, 500) == (500, 750.0)


def _grid(*settings, seeds=3):
    return {"max_model_minutes": 25, "criteria": {"seeds": seeds},
            "settings": [{"name": n, **({"replicate_of": r} if r else {})} for n, r in settings]}


def _row(setting, epoch, qualifies, seconds, members=8):
    return {"setting": setting, "epoch": epoch, "members": members, "qualifies": qualifies,
            "train_seconds": seconds, "nonmembers": 128, "step": epoch}


def test_pick_needs_every_seed_to_qualify():
    grid = _grid(("a", None), ("a_s2", "a"), ("a_s3", "a"), ("b", None))
    rows = [_row("a", 500, True, 700.0), _row("a_s2", 500, False, 710.0), _row("a_s3", 500, True, 705.0),
            _row("a", 1000, True, 1400.0), _row("a_s2", 1000, True, 1420.0), _row("a_s3", 1000, True, 1410.0),
            _row("b", 300, True, 300.0)]  # one seed only: an in-sample maximum over training runs
    chosen = study_calibration.pick(rows, grid)
    assert (chosen["group"], chosen["epoch"], len(chosen["runs"])) == ("a", 1000, 3)
    assert chosen["train_seconds"] == 1420.0  # the slowest seed is what the budget must fit
    # a replicate that never reached 1000 epochs cannot make 1000 fail, but two seeds are not enough
    assert study_calibration.pick([r for r in rows if r["setting"] != "a_s3"], grid) is None
    # with the old single-seed rule, b (the cheapest) would win
    assert study_calibration.pick(rows, _grid(("a", None), ("a_s2", "a"), ("a_s3", "a"), ("b", None),
                                              seeds=1))["group"] == "b"


def test_pick_prefers_members_then_time_within_budget():
    grid = _grid(("a", None), ("b", None), ("c", None), ("d", None), ("e", None), seeds=1)
    rows = [_row("a", 500, True, 700.0), _row("b", 500, True, 600.0),
            _row("c", 500, True, 1600.0, members=16),  # over 25 min
            _row("d", 500, False, 300.0, members=16)]
    assert study_calibration.pick(rows, grid)["group"] == "b"
    rows.append(_row("e", 500, True, 1400.0, members=16))
    assert study_calibration.pick(rows, grid)["group"] == "e"
    assert study_calibration.pick([rows[3]], grid) is None


def test_replication_table_lists_each_seed(tmp_path):
    header = "\t".join(study_calibration.COLUMNS)
    lines = [header]
    for name, p, q in (("a", 0.001, True), ("a_s2", 0.07, False), ("a_s3", 0.002, True)):
        row = {"setting": name, "members": 8, "nonmembers": 128, "step": 500, "epoch": 500,
               "train_seconds": 700.0, "headline_attack": "loss", "headline_t": "0.1", "direction": "as defined",
               "auroc": 0.9, "auroc_ci_low": 0.82, "auroc_ci_high": 0.97, "p_value": p, "num_members_test": 4,
               "num_nonmembers_test": 64, "in_sample_max_auroc": 0.9, "qualifies": q}
        lines.append("\t".join(str(row[c]) for c in study_calibration.COLUMNS))
    (tmp_path / "calibration.tsv").write_text("\n".join(lines) + "\n")
    text = study_calibration.replication_table(tmp_path, _grid(("a", None), ("a_s2", "a"), ("a_s3", "a")))
    assert "| a | 500 | 3 | first run: 0.900 (0.001); s2: 0.900 (0.07); s3: 0.900 (0.002) | False |" in text


def test_consensus_cell_averages_the_calibration_seeds():
    import numpy as np

    from holdtts.privacy.simulate import simulated_rows
    from holdtts.privacy.statistics import ScoreTable, consensus_cell

    # pia leaks in every seed; a cell that is strong in one seed by chance must not win on the average
    tables = [ScoreTable.from_rows(simulated_rows(np.random.default_rng(s), members=8, nonmembers=64, signal=2.0))
              for s in range(3)]
    cell, evidence = consensus_cell(tables)
    assert cell.attack == "pia" and cell.direction == 1 and evidence["tables"] == 3
    assert evidence["mean_auroc"] == np.mean(evidence["per_table_auroc"]) > 0.8
    # a family without the leaking attack gets its own cell; a signal below 0.5 is read reversed
    reversed_tables = [ScoreTable.from_rows(simulated_rows(np.random.default_rng(s), members=8, nonmembers=64,
                                                           signal=-2.0, leaking=("prior",))) for s in range(3)]
    text, _ = consensus_cell(reversed_tables, ["duration", "prior"])
    assert (text.attack, text.t, text.direction) == ("prior", "-", -1)


def test_preregister_writes_once_from_the_frozen_runs(tmp_path):
    import json

    import numpy as np
    import pytest

    from holdtts.privacy.metrics import write_rows
    from holdtts.privacy.simulate import simulated_rows

    evidence = []
    for seed, name in enumerate(("m8", "m8_seed2", "m8_seed3")):
        folder = tmp_path / "calibration" / name / "step-1000"
        folder.mkdir(parents=True)
        write_rows(folder / "rows.tsv", simulated_rows(np.random.default_rng(seed), members=8, nonmembers=64,
                                                       signal=2.0, leaking=("loss", "prior")))
        evidence.append({"setting": name, "step": 1000})
    (tmp_path / "frozen.json").write_text(json.dumps({"setting": "m8", "epochs": 1000, "evidence": evidence}))
    out = study_calibration.preregister(tmp_path)
    assert out["cells"]["decoder"]["attack"] == "loss" and out["cells"]["text"]["attack"] == "prior"
    assert out["calibration_rows"][0] == "calibration/m8/step-1000/rows.tsv"
    saved = json.loads((tmp_path / "preregistered.json").read_text())
    assert saved["cells"] == out["cells"]
    assert study_calibration.preregister(tmp_path)["cells"] == out["cells"]  # the same pick: unchanged
    saved["cells"]["decoder"]["t"] = "0.95"
    (tmp_path / "preregistered.json").write_text(json.dumps(saved))
    with pytest.raises(SystemExit, match="never replaced"):
        study_calibration.preregister(tmp_path)
