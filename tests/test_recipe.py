"""The recipe driver: stages run in order, re-running skips finished stages, a changed stage is refused,
and option typos are errors."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def recipe(tmp_path):
    """A copy of egs/ljspeech (and the shared recipes/) so the test writes nothing into the checkout."""
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    egs = tmp_path / "egs" / "ljspeech"
    egs.mkdir(parents=True)
    for name in ("run.sh", "path.sh", "conf", "local"):
        source = REPO / "egs" / "ljspeech" / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, egs / name)
    return egs


def run(egs: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(egs / "run.sh"), *args], cwd=egs, env=env, capture_output=True, text=True,
                          timeout=600)


def test_stages_0_to_2_then_skip_then_refuse_a_change(recipe):
    if not (REPO / ".venv" / "bin" / "holdtts").exists() and shutil.which("holdtts") is None:
        pytest.skip("holdtts is not installed")
    first = run(recipe, "--mini-utts", "6", "--nj", "1", "--stop-stage", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    for stage in ("stage 0 (make-corpus): done", "stage 1 (prepare): done", "stage 2 (features): done"):
        assert stage in first.stderr
    assert (recipe / "dump" / "manifest.json").exists()
    assert (recipe / "exp" / "log" / "stage2.features.log").exists()
    markers = sorted(p.name for p in (recipe / "exp" / ".done").iterdir())
    assert markers == ["stage0.make-corpus.done", "stage1.prepare.done", "stage2.features.done"]

    again = run(recipe, "--mini-utts", "6", "--nj", "2", "--stop-stage", "2")  # --nj does not change results
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("already done, skipping") == 3 and "start:" not in again.stderr

    changed = run(recipe, "--mini-utts", "6", "--seed", "7", "--stop-stage", "2")
    assert changed.returncode == 1
    assert "stage 0 (make-corpus): ERROR: it was done with a different command" in changed.stderr
    assert "exp/.done/stage0.make-corpus.done" in changed.stderr


def test_an_interrupted_stage_has_no_marker_and_is_redone(recipe):
    if not (REPO / ".venv" / "bin" / "holdtts").exists() and shutil.which("holdtts") is None:
        pytest.skip("holdtts is not installed")
    result = run(recipe, "--mini-utts", "6", "--nj", "1", "--stop-stage", "1", "--systems", "vp")
    assert result.returncode == 0, result.stderr[-2000:]
    (recipe / "data" / "all" / "text").write_text("garbage without an utterance id\n")  # corrupt stage 1 output
    broken = run(recipe, "--mini-utts", "6", "--nj", "1", "--stage", "2", "--stop-stage", "2")
    assert broken.returncode == 1 and "stage 2 (features): FAILED" in broken.stderr
    assert not (recipe / "exp" / ".done" / "stage2.features.done").exists()
    assert not (recipe / "dump" / "manifest.json").exists()


def test_option_typos_and_bad_values_are_errors(recipe):
    typo = run(recipe, "--stop-stag", "0")
    assert typo.returncode == 2 and "unknown option --stop-stag" in typo.stderr
    bogus = run(recipe, "--corpus", "timit", "--stop-stage", "-1")
    assert bogus.returncode == 2 and "--corpus must be mini or ljspeech" in bogus.stderr
    helped = run(recipe, "--help")
    assert helped.returncode == 0 and "--stop-stage" in helped.stdout and "--attack-utts" in helped.stdout
    missing = run(recipe, "--stage", "4", "--stop-stage", "4", "--systems", "nosuch")
    assert missing.returncode == 2 and "no conf/nosuch.yaml" in missing.stderr


def test_train_params_reach_every_training_command(recipe):
    if not (REPO / ".venv" / "bin" / "holdtts").exists() and shutil.which("holdtts") is None:
        pytest.skip("holdtts is not installed")
    result = run(recipe, "--stage", "4", "--stop-stage", "4", "--systems", "vp", "--train-params", "train.nosuch=1")
    assert result.returncode == 1 and "stage 4 (train-vp): FAILED" in result.stderr
    log = (recipe / "exp" / "log" / "stage4.train-vp.log").read_text()
    assert "unknown config key 'train.nosuch'" in log
    assert "--set train.nosuch=1" in result.stderr  # the stage's logged command


def test_gpu_experiment_checks_its_options(recipe):
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    script = recipe / "local" / "gpu_experiment.sh"
    bad = subprocess.run(["bash", str(script), "--out", str(recipe / "out"), "--phases", "nosuch"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown phase 'nosuch'" in bad.stderr
    helped = subprocess.run(["bash", str(script), "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--steps" in helped.stdout and "--attack-utts" in helped.stdout
