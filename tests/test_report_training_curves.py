"""The report's AUROC-during-training figure: held-out AUROCs read with their epoch from train_log.jsonl,
pooled over each system's training seeds (mean, min, max per epoch), drawn one panel per attack."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from holdtts.config import ProcessConfig, SystemConfig, dump_config
from holdtts.report import load_system, write_report
from holdtts.report.collect import TrainingPoint, read_training_aurocs
from holdtts.report.figures import CurvePoint, plot_training_aurocs, training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# model -> (steps per epoch, [(epochs completed, headline AUROC, loss AUROC)] in the order they are logged)
LOGS = {
    "vp": (1, [(100, 0.5, 0.6), (200, 0.6, 0.7), (300, 0.7, 0.8)]),
    # resumed from a checkpoint at epoch 200's last step: the attack ran, and was logged, twice
    "vp.seed2": (1, [(100, 0.6, 0.6), (200, 0.95, 0.9), (200, 0.8, 0.7), (300, 0.9, 0.9)]),
    "vp.seed3": (1, [(100, 0.7, 0.6), (200, 0.9, 0.8)]),  # still training
    # two steps an epoch (a teacher on half the members has half as many): epochs are not steps
    "hold2": (2, [(100, 0.5, 0.5), (200, 0.55, 0.5), (300, 0.6, 0.5)]),
    "hold2.seed2": (2, [(100, 0.45, 0.5), (200, 0.65, 0.5), (300, 0.5, 0.5)]),
}


def write_log(path: Path, steps_per_epoch: int, attacks: list[tuple[int, float, float]]) -> None:
    """train_log.jsonl as the loop writes it: a step's own line carries its epoch's 0-based index, the
    attack line after the epoch's last step the number of epochs completed."""
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "train_log.jsonl", "w") as f:
        for epochs, headline, loss in attacks:
            step = epochs * steps_per_epoch
            f.write(json.dumps({"step": step, "epoch": epochs - 1, "train/loss": 1.0}) + "\n")
            f.write(json.dumps({"step": step, "epoch": epochs, "attack/headline/auroc": headline,
                                "attack/headline/p_value": 0.5, "attack/loss/auroc": loss,
                                "attack/loss/auroc_t0.5": 0.99}) + "\n")


def make_exp(root: Path) -> Path:
    exp = root / "exp"
    for name, (steps_per_epoch, attacks) in LOGS.items():
        write_log(exp / name, steps_per_epoch, attacks)
        process = ProcessConfig("hold", 2) if name.startswith("hold2") else ProcessConfig()
        config = SystemConfig(name=name, process=process)
        config.train.attack_every_epochs = 100
        (exp / name / "config.yaml").write_text(dump_config(config))
        (exp / name / "evaluate").mkdir()
        (exp / name / "evaluate" / "quality.json").write_text("{}")  # a result, so the report lists it
    return exp


@pytest.fixture
def exp(tmp_path) -> Path:
    return make_exp(tmp_path)


def test_points_carry_the_logged_epoch_and_a_resumed_step_once(exp):
    points = read_training_aurocs(exp / "vp.seed2" / "train_log.jsonl")
    assert set(points) == {"headline", "loss"}  # not the per-t "auroc_t0.5"
    assert points["headline"] == [TrainingPoint(100, 100, 0.6), TrainingPoint(200, 200, 0.8),
                                  TrainingPoint(300, 300, 0.9)]  # the resumed run's line kept
    assert [p.epoch for p in read_training_aurocs(exp / "hold2" / "train_log.jsonl")["loss"]] == [100, 200, 300]
    assert [p.step for p in read_training_aurocs(exp / "hold2" / "train_log.jsonl")["loss"]] == [200, 400, 600]


def test_seeds_are_pooled_per_epoch(exp):
    records = [load_system(exp / name) for name in LOGS]
    curves = training_curves(records)
    assert curves.axis == "epoch" and curves.every == [100]
    assert curves.attacks == ["headline", "loss"]
    assert list(curves.systems) == ["vp", "hold2"]
    assert curves.systems["vp"].models == ["vp", "vp.seed2", "vp.seed3"]
    expected = {
        "vp": [(100, 0.6, 0.5, 0.7, 3), (200, (0.6 + 0.8 + 0.9) / 3, 0.6, 0.9, 3), (300, 0.8, 0.7, 0.9, 2)],
        "hold2": [(100, 0.475, 0.45, 0.5, 2), (200, 0.6, 0.55, 0.65, 2), (300, 0.55, 0.5, 0.6, 2)],
    }
    for system, points in expected.items():
        got = curves.systems[system].attacks["headline"]
        assert [(p.x, p.seeds) for p in got] == [(x, n) for x, *_, n in points]
        assert [v for p in got for v in (p.mean, p.low, p.high)] == pytest.approx([v for p in points for v in p[1:4]])
    assert curves.systems["hold2"].attacks["loss"] == [CurvePoint(x, 0.5, 0.5, 0.5, 2) for x in (100, 200, 300)]


def test_logs_without_epochs_fall_back_to_steps(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "train_log.jsonl").write_text(
        json.dumps({"step": 10, "attack/pia/auroc": 0.6}) + "\n" + json.dumps({"step": 20, "attack/pia/auroc": 0.7})
        + "\n")
    record = load_system(tmp_path / "old")
    assert record.training_aurocs == {"pia": [TrainingPoint(10, None, 0.6), TrainingPoint(20, None, 0.7)]}
    curves = training_curves([record])
    assert curves.axis == "step" and curves.every == []
    assert [p.x for p in curves.systems["old"].attacks["pia"]] == [10, 20]
    plot_training_aurocs(curves, tmp_path / "curves.png")  # one seed, no headline panel
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_SIGNATURE


def test_report_draws_the_figure_and_tabulates_complete_epochs(exp):
    result = write_report(exp)
    assert result.summary["figures"]["auroc_during_training"] == "auroc_during_training.png"
    assert (result.out_dir / "auroc_during_training.png").read_bytes()[:8] == PNG_SIGNATURE
    saved = json.loads((result.out_dir / "report.json").read_text())
    assert saved["systems"]["vp.seed2"]["training_aurocs"]["headline"][1] == {"step": 200, "epoch": 200,
                                                                              "auroc": 0.8}
    assert saved["training_curves"]["systems"]["vp"]["attacks"]["headline"][2] == {
        "x": 300, "mean": pytest.approx(0.8), "low": 0.7, "high": 0.9, "seeds": 2}
    markdown = (result.out_dir / "report.md").read_text()
    assert "every 100 epochs (train.attack_every_epochs)" in markdown and "against the epochs completed" in markdown
    # epoch 300: vp.seed3 has not logged it, so vp's mean over its seeds is not tabulated there
    assert "| system (training seeds) | epoch 100 | epoch 200 | epoch 300 |" in markdown
    assert "| vp (3 seeds) | 0.600 | 0.767 | — |" in markdown
    assert "| hold2 (2 seeds) | 0.475 | 0.600 | 0.550 |" in markdown


def test_dualmd_curves_pool_its_teachers_logs(exp):
    """DualMD trains no model of its own: each teacher logs its attacks against its own members, and the
    system's line pools the teachers of every seed."""
    for seed, name in ((1, "dualmd"), (2, "dualmd.seed2")):
        for teacher, base in (("teacher1", 0.6), ("teacher2", 0.7)):
            write_log(exp / name / teacher, 1, [(100, base, 0.5), (200, base + 0.1 * seed, 0.5)])
        config = SystemConfig(name=name)
        config.train.attack_every_epochs = 100
        (exp / name / "config.yaml").write_text(dump_config(config))
        (exp / name / "evaluate").mkdir()
        (exp / name / "evaluate" / "quality.json").write_text("{}")
    record = load_system(exp / "dualmd")
    assert record.training_aurocs == {} and set(record.part_training_aurocs) == {"teacher1", "teacher2"}
    curves = training_curves([load_system(exp / n) for n in ("vp", "dualmd", "dualmd.seed2")])
    assert curves.systems["dualmd"].models == ["dualmd/teacher1", "dualmd/teacher2", "dualmd.seed2/teacher1",
                                               "dualmd.seed2/teacher2"]
    got = curves.systems["dualmd"].attacks["headline"]
    assert [(p.x, p.seeds) for p in got] == [(100, 4), (200, 4)]
    assert [v for p in got for v in (p.mean, p.low, p.high)] == pytest.approx([0.65, 0.6, 0.7, 0.8, 0.7, 0.9])
    markdown = (write_report(exp).out_dir / "report.md").read_text()
    assert "| dualmd (4 teacher logs, 2 seeds) | 0.650 | 0.800 | — |" in markdown
