"""The CPU study's freeze rule: the epochs it freezes are the epochs the calibration checkpoint had
trained, and the pick prefers more members, then less training time, within the budget."""
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


def test_pick_prefers_members_then_time_within_budget():
    grid = {"max_model_minutes": 25}
    rows = [{"setting": "a", "members": 8, "qualifies": True, "train_seconds": 700.0},
            {"setting": "b", "members": 8, "qualifies": True, "train_seconds": 600.0},
            {"setting": "c", "members": 16, "qualifies": True, "train_seconds": 1600.0},  # over 25 min
            {"setting": "d", "members": 16, "qualifies": False, "train_seconds": 300.0}]
    assert study_calibration.pick(rows, grid)["setting"] == "b"
    rows.append({"setting": "e", "members": 16, "qualifies": True, "train_seconds": 1400.0})
    assert study_calibration.pick(rows, grid)["setting"] == "e"
    assert study_calibration.pick([rows[3]], grid) is None
