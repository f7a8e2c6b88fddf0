"""The demo's calibration rule (egs/ljspeech/local/demo_calibration.py): the fewest candidate steps at which
every seed qualifies, cells pre-registered from those runs among the demo's attacks, a choice never
replaced; and the committed choice recomputes from the committed rows."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "egs" / "ljspeech" / "local" / "demo_calibration.py"
spec = importlib.util.spec_from_file_location("demo_calibration", SCRIPT)
demo_calibration = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo_calibration)


def _run(results: Path, seed: int, step: int, auroc: float, low: float, p: float, strong: str) -> None:
    """One attacked checkpoint: its headline, and rows in which `strong` separates 2 members from 4
    non-members perfectly while every other cell is reversed or chance."""
    folder = results / f"vp_seed{seed}" / f"step-{step}"
    folder.mkdir(parents=True)
    headline = {"attack": "loss", "t": "0.3", "direction": "as defined", "auroc": auroc, "auroc_ci": [low, 1.0],
                "p_value": p, "num_members_test": 1, "num_nonmembers_test": 2}
    (folder / "metrics.json").write_text(json.dumps({"headline": headline}))
    lines = ["utt_id\tmember\tattack\tt\tscore"]
    for i, member in enumerate([1, 1, 0, 0, 0, 0]):
        for attack, t in (("loss", "0.3"), ("pia", "0.1"), ("secmi", "0.2"), ("duration", "-"), ("prior", "-")):
            score = (10.0 + i if member else float(i)) if attack in (strong, "duration") else float(i % 2)
            if attack == "secmi":  # stronger than any other cell, but not an attack the demo runs
                score = 100.0 if member else 0.0
            lines.append(f"u{i}\t{member}\t{attack}\t{t}\t{score}")
    (folder / "rows.tsv").write_text("\n".join(lines) + "\n")


def test_the_fewest_steps_at_which_every_seed_qualifies(tmp_path, capsys):
    for seed in (1, 2, 3):
        _run(tmp_path, seed, 200, 0.95 if seed != 2 else 0.85, 0.85, 0.001, "loss")  # seed 2 fails at 200
        _run(tmp_path, seed, 400, 0.99, 0.9, 0.001, "pia")
    out = demo_calibration.decide(tmp_path)
    assert out["steps"] == 400 and out["seeds"] == [1, 2, 3]
    # the strongest cell among the demo's attacks (secmi is stronger, but the demo does not run it)
    assert out["cells"]["decoder"] == {"attack": "pia", "t": "0.1", "direction": "as defined"}
    assert out["cells"]["text"] == {"attack": "duration", "t": "-", "direction": "as defined"}
    assert out["evidence"]["decoder"]["per_table_auroc"] == [1.0, 1.0, 1.0]
    assert json.loads((tmp_path / "chosen.json").read_text()) == out
    assert (tmp_path / "calibration.tsv").read_text().count("\n") == 7
    assert "| 2 | 200 | 0.850" in capsys.readouterr().out
    # deciding again on the same runs keeps the file; a different choice on record is never replaced
    assert demo_calibration.decide(tmp_path) == out
    (tmp_path / "chosen.json").write_text(json.dumps({**out, "steps": 200}))
    with pytest.raises(SystemExit, match="never replaced"):
        demo_calibration.decide(tmp_path)
    assert json.loads((tmp_path / "chosen.json").read_text())["steps"] == 200


def test_fewer_than_three_seeds_or_an_unattacked_seed_choose_nothing(tmp_path):
    for seed in (1, 2):
        _run(tmp_path, seed, 400, 0.99, 0.9, 0.001, "pia")
    with pytest.raises(SystemExit, match="no candidate"):
        demo_calibration.decide(tmp_path)
    # a third seed attacked only at another step count: 400 is not failed by anyone but not known either
    _run(tmp_path, 3, 800, 0.99, 0.9, 0.001, "pia")
    with pytest.raises(SystemExit, match="attack the others"):
        demo_calibration.decide(tmp_path)
    assert not (tmp_path / "chosen.json").exists() and not (tmp_path / "calibration.tsv").exists()


def test_the_rule_is_the_studys():
    # the criteria come from the study's grid, not a second copy of them
    assert demo_calibration.CRITERIA == {"auroc": 0.9, "ci_low": 0.8, "p_value": 0.01, "seeds": 3}
    row = {"auroc": 0.95, "auroc_ci_low": None, "p_value": 0.001}
    assert not demo_calibration.study_calibration.qualifies(row, demo_calibration.CRITERIA)


def test_the_committed_choice_recomputes_from_the_committed_rows(tmp_path):
    committed = REPO / "docs" / "demo_calibration"
    copy = tmp_path / "demo_calibration"
    shutil.copytree(committed, copy)
    (copy / "chosen.json").unlink()
    demo_calibration.decide(copy)
    assert json.loads((copy / "chosen.json").read_text()) == json.loads((committed / "chosen.json").read_text())
    assert (copy / "calibration.tsv").read_text() == (committed / "calibration.tsv").read_text()
