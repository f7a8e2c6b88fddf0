"""The toy study (holdtts.toy, `holdtts toy-study`): the speech attacks run unchanged on 2-D points, the
MMD is the unbiased estimator, and a shrunken study runs end to end, resumes, catches a memorising model and
does not accuse an untrained one."""
from __future__ import annotations

import csv
import json

import pytest
import torch
from click.testing import CliRunner

from holdtts.cli import cli
from holdtts.errors import HoldttsError
from holdtts.toy.attack import TOY_ATTACKS, attack_rows
from holdtts.toy.data import make_toy_data
from holdtts.toy.model import ToyDiffusionModel, make_toy_process
from holdtts.toy.quality import mmd2_unbiased, mmd2_with_interval
from holdtts.toy.study import StudyConfig, run_study

FAST_ATTACKS = ("loss", "pia", "sima", "pia_mc")
FAST_PARAMS = {"pia_mc": {"draws": 2}}


def small_config(**changes) -> StudyConfig:
    base = dict(orders=(1,), betas=(10.0,), seeds=(0,), members=12, nonmembers=36, heldout=200, width=32, depth=2,
                fourier_features=16, steps=0, batch_size=96, attacks=FAST_ATTACKS, attack_params=FAST_PARAMS,
                bootstrap=50, permutations=200, sample_steps=20, samples=200, mmd_subsets=4)
    base.update(changes)
    return StudyConfig(**base)


def test_data_split_is_disjoint_and_seeded():
    a, b = make_toy_data(10, 20, 30, seed=3), make_toy_data(10, 20, 30, seed=3)
    assert torch.equal(a.members, b.members) and a.member_ids == b.member_ids
    assert not set(a.member_ids) & set(a.nonmember_ids)
    assert a.members.shape == (10, 2) and a.heldout.shape == (30, 2)
    assert not torch.equal(a.members, make_toy_data(10, 20, 30, seed=4).members)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_every_attack_runs_unchanged_on_points(order):
    torch.manual_seed(0)
    data = make_toy_data(4, 4, 2, seed=0)
    model = ToyDiffusionModel(make_toy_process(order, 2.0), data.data_var, width=16, depth=2)
    params = {"pia_mc": {"draws": 2}, "sima_mc": {"draws": 2}, "secmi_mc": {"draws": 2}, "secmi": {"step": 0.1}}
    rows, ran = attack_rows(model, data.members, data.member_ids, data.nonmembers, data.nonmember_ids,
                            TOY_ATTACKS, params={**params, "secmi_mc": {"draws": 2, "step": 0.1}})
    expected = [a for a in TOY_ATTACKS if order >= 2 or not a.endswith("_mc")]
    assert ran == expected
    assert {r["attack"] for r in rows} == set(expected)
    assert all(torch.isfinite(torch.tensor(r["score"])) for r in rows)
    cells = {(r["attack"], r["t"]) for r in rows}
    assert len(rows) == 8 * len(cells)


def test_mmd_is_the_unbiased_estimator():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 2, generator=gen), torch.randn(40, 2, generator=gen) + 0.5
    h = 0.7

    def k(a, b):
        return torch.exp(-((a.double()[:, None] - b.double()[None]) ** 2).sum(-1) / (2 * h * h))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    brute = ((kxx.sum() - kxx.trace()) / (30 * 29) + (kyy.sum() - kyy.trace()) / (40 * 39) - 2 * kxy.mean())
    assert mmd2_unbiased(x, y, h) == pytest.approx(float(brute), rel=1e-9)
    same = mmd2_with_interval(torch.randn(400, 2, generator=gen), torch.randn(400, 2, generator=gen), 1.0, 8)
    shifted = mmd2_with_interval(torch.randn(400, 2, generator=gen) + 1, torch.randn(400, 2, generator=gen), 1.0, 8)
    assert same["mmd2_ci"][0] < 0 < same["mmd2_ci"][1]
    assert shifted["mmd2_ci"][0] > same["mmd2_ci"][1]


def test_memorising_model_is_caught_untrained_is_not(tmp_path):
    # few members, many steps: the model reproduces its 8 training points
    memorising = run_study(small_config(members=8, steps=500, width=64, depth=3, fourier_features=32, lr=3e-3),
                           tmp_path / "memorising", threads=1)
    untrained = run_study(small_config(steps=0), tmp_path / "untrained", threads=1)
    head = memorising["records"][0]["headline"]
    assert head["p_value"] < 0.01 and head["auroc"] > 0.85, head
    cold = untrained["records"][0]["headline"]
    assert cold["p_value"] > 0.05 and cold["auroc"] < 0.85, cold
    # the memorising model's samples are copies of its members; the untrained one's are not
    copied, cold_ratio = (run["records"][0]["quality"]["copy_ratio"] for run in (memorising, untrained))
    assert copied < 0.6 and cold_ratio > 2 * copied, (copied, cold_ratio)


def test_study_end_to_end_through_the_cli_and_resumes(tmp_path):
    out = tmp_path / "toy"
    args = ["toy-study", "--out-dir", str(out), "--orders", "1,2", "--betas", "10", "--seeds", "0",
            "--members", "12", "--nonmembers", "24", "--heldout", "200", "--width", "32", "--depth", "2",
            "--fourier-features", "16", "--steps", "30", "--batch-size", "48", "--attacks", ",".join(FAST_ATTACKS),
            "--param", "pia_mc.draws=2", "--bootstrap", "50", "--permutations", "100", "--sample-steps", "20",
            "--samples", "200", "--mmd-subsets", "4", "--workers", "1", "--threads", "1"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 model(s), 2 run now" in result.output
    for name in ("results.tsv", "summary.md", "summary.json", "study.json", "samples_beta10.png"):
        assert (out / name).stat().st_size > 0, name
    for model in ("vp_s0", "hold2_b10_s0"):
        for name in ("model.pt", "rows.tsv", "metrics.json", "samples.npy", "model.json"):
            assert (out / "models" / model / name).exists(), (model, name)
    with open(out / "results.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [r["model"] for r in rows] == ["vp_s0", "hold2_b10_s0"]
    assert {r["headline_attack"] for r in rows} <= set(FAST_ATTACKS)
    for r in rows:
        assert 0 <= float(r["headline_ci_low"]) <= float(r["headline_auroc"]) <= float(r["headline_ci_high"]) <= 1
        assert 0 < float(r["headline_p"]) <= 1
    summary = json.loads((out / "summary.json").read_text())
    assert [s["system"] for s in summary["summary"]] == ["vp", "hold2_b10"]
    assert "hold2_b10" in summary["comparisons_with_vp"]
    text = (out / "summary.md").read_text()
    assert "held-out AUROC" in text and "optimistic" in text

    # a second run reuses every model; the report alone rebuilds from them
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert "2 model(s), 0 run now" in again.output
    report = CliRunner().invoke(cli, args + ["--only", "report"], catch_exceptions=False)
    assert report.exit_code == 0, report.output
    # changed settings are an error naming the model, not a silent reuse
    changed = [a if a != "30" else "31" for a in args]
    with pytest.raises(HoldttsError, match="vp_s0.*different settings.*steps"):
        cli.main(args=changed, prog_name="holdtts", standalone_mode=False)


def test_cli_defaults_match_the_study_config():
    from holdtts.commands.toy_study import DEFAULTS

    cfg = StudyConfig()
    for key, value in DEFAULTS.items():
        expected = getattr(cfg, key)
        if isinstance(expected, tuple):
            expected = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in expected)
        assert value == expected, key
