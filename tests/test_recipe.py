"""The recipe driver: stages run in order, re-running skips finished stages, a changed stage is refused,
and option typos are errors."""
import hashlib
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
    first = run(recipe, "--mini-utts", "6", "--num-members", "2", "--nj", "1", "--stop-stage", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    for stage in ("stage 0 (make-corpus): done", "stage 1 (prepare): done", "stage 2 (features): done"):
        assert stage in first.stderr
    assert (recipe / "dump" / "manifest.json").exists()
    assert (recipe / "exp" / "log" / "stage2.features.log").exists()
    markers = sorted(p.name for p in (recipe / "exp" / ".done").iterdir())
    assert markers == ["stage0.make-corpus.done", "stage1.prepare.done", "stage2.features.done"]

    # --nj does not change results
    again = run(recipe, "--mini-utts", "6", "--num-members", "2", "--nj", "2", "--stop-stage", "2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("already done, skipping") == 3 and "start:" not in again.stderr

    changed = run(recipe, "--mini-utts", "6", "--num-members", "2", "--seed", "7", "--stop-stage", "2")
    assert changed.returncode == 1
    assert "stage 0 (make-corpus): ERROR: it was done with a different command" in changed.stderr
    assert "exp/.done/stage0.make-corpus.done" in changed.stderr

    # issue 14: splits remade with another member count under the features (and any model) made from them
    subprocess.run([str(REPO / ".venv" / "bin" / "holdtts"), "prepare", "--corpus-dir", "downloads/mini",
                    "--data-dir", "data", "--num-members", "3", "--num-nonmembers", "1", "--overwrite"],
                   cwd=recipe, check=True, capture_output=True)
    remade = run(recipe, "--mini-utts", "6", "--num-members", "2", "--stage", "2", "--stop-stage", "2")
    assert remade.returncode == 1, remade.stderr[-2000:]
    assert "stage 2 (features): ERROR: it was done with a different command or inputs" in remade.stderr
    assert "already done" not in remade.stderr


def test_an_interrupted_stage_has_no_marker_and_is_redone(recipe):
    if not (REPO / ".venv" / "bin" / "holdtts").exists() and shutil.which("holdtts") is None:
        pytest.skip("holdtts is not installed")
    result = run(recipe, "--mini-utts", "6", "--num-members", "2", "--nj", "1", "--stop-stage", "1", "--systems", "vp")
    assert result.returncode == 0, result.stderr[-2000:]
    (recipe / "data" / "all" / "text").write_text("garbage without an utterance id\n")  # corrupt stage 1 output
    broken = run(recipe, "--mini-utts", "6", "--num-members", "2", "--nj", "1", "--stage", "2", "--stop-stage", "2")
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


# --------------------------------------------------------------------------- the stage driver alone (issue 14)


def drive(tmp_path: Path, *stage_lines: str) -> subprocess.CompletedProcess:
    """Run recipes/stages.sh's run_stage lines in `tmp_path` with stand-in commands."""
    script = tmp_path / "drive.sh"
    script.write_text("set -euo pipefail\nstage=0; stop_stage=100; done_dir=exp/.done; log_dir=exp/log\n"
                      f". {REPO / 'recipes' / 'stages.sh'}\n" + "\n".join(stage_lines) + "\necho recipe-finished\n")
    return subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("status", [130, 143])
def test_an_interrupted_training_is_not_marked_done(tmp_path, status):
    """A training stopped by Ctrl-C or SIGTERM exits 130 or 143 (holdtts train): no marker, and the recipe stops
    with the same status instead of going on to attack a half-trained model."""
    stopped = drive(tmp_path, f"run_stage 4 train-vp bash -c 'echo saved at step 10; exit {status}'")
    assert stopped.returncode == status
    assert f"stage 4 (train-vp): INTERRUPTED (exit {status})" in stopped.stderr
    assert "recipe-finished" not in stopped.stdout
    assert not (tmp_path / "exp" / ".done" / "stage4.train-vp.done").exists()
    assert "saved at step 10" in (tmp_path / "exp" / "log" / "stage4.train-vp.log").read_text()
    failed = drive(tmp_path, "run_stage 4 train-vp bash -c 'exit 2'")
    assert failed.returncode == 1 and "FAILED (exit 2)" in failed.stderr
    done = drive(tmp_path, "run_stage 4 train-vp true")
    assert done.returncode == 0 and (tmp_path / "exp" / ".done" / "stage4.train-vp.done").exists()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_markers_fingerprint_the_content_of_input_directories(tmp_path):
    """Done markers cover what the data, features and experiment directories hold, not only file arguments:
    remade splits (same sizes, other members), new features or a retrained model make a done stage an error."""
    _write(tmp_path / "data" / "splits.json", '{"sizes": {}}\n')
    _write(tmp_path / "data" / "members" / "wav.scp", "LJ1 /a.wav\nLJ2 /b.wav\n")
    _write(tmp_path / "data" / "nonmembers" / "wav.scp", "LJ3 /c.wav\n")
    _write(tmp_path / "dump" / "manifest.json", '{"fingerprint": 1}\n')
    _write(tmp_path / "exp" / "vp" / "train_summary.json", '{"step": 60}\n')
    stage = ("run_stage 4 train-vp true --data-dir data --dump-dir dump --exp-dir exp/vp --device cpu",
             "run_stage 5 attack-vp true --model exp/vp --data-dir data --dump-dir dump")
    first = drive(tmp_path, *stage)
    assert first.returncode == 0, first.stderr
    marker = (tmp_path / "exp" / ".done" / "stage4.train-vp.done").read_text()
    assert "data data " in marker and "features dump " in marker and "trained exp/vp " in marker
    again = drive(tmp_path, *stage)
    assert again.returncode == 0 and again.stderr.count("already done, skipping") == 2

    changes = [
        (tmp_path / "data" / "members" / "wav.scp", "LJ1 /a.wav\nLJ3 /c.wav\n", "stage 4 (train-vp)"),
        (tmp_path / "dump" / "manifest.json", '{"fingerprint": 2}\n', "stage 4 (train-vp)"),
        (tmp_path / "exp" / "vp" / "train_summary.json", '{"step": 120}\n', "stage 5 (attack-vp)"),
    ]
    for path, text, refused in changes:
        before = path.read_text()
        path.write_text(text)
        changed = drive(tmp_path, *[line for line in stage if line.startswith(f"run_stage {refused.split()[1]} ")])
        assert changed.returncode == 1, (path, changed.stderr)
        assert f"{refused}: ERROR: it was done with a different command or inputs" in changed.stderr
        path.write_text(before)
    assert drive(tmp_path, *stage).returncode == 0


def test_markers_fingerprint_inputs_named_by_value(tmp_path):
    """A `KEY=PATH` argument (the study's `--set defense.teachers_dir=DIR`) and $stage_inputs name inputs too:
    their content is in the marker, so retrained teachers make a done student an error; a `KEY=VALUE` that
    names no file adds nothing."""

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    _write(tmp_path / "exp" / "dualmd" / "system.json", '{"train_seconds": 1}\n')
    _write(tmp_path / "exp" / "dualmd" / "teacher1" / "train_summary.json", '{"step": 1}\n')
    _write(tmp_path / "my conf" / "a*.yaml", "a: 1\n")
    _write(tmp_path / "teachers" / "teacher2" / "train_summary.json", '{"step": 2}\n')  # no system.json
    stage = ("run_stage 4 train-student true --set defense.teachers_dir=exp/dualmd --set train.seed=4001",
             "stage_inputs=$'extra=my conf/a*.yaml\\ngone=nothing/here' run_stage 5 other true",
             "run_stage 6 third true --set=defense.teachers_dir=teachers")
    first = drive(tmp_path, *stage)
    assert first.returncode == 0, first.stderr
    system, teacher1 = sha('{"train_seconds": 1}\n'), sha('{"step": 1}\n')
    marker = (tmp_path / "exp" / ".done" / "stage4.train-student.done").read_text().splitlines()
    assert marker[1:] == [f"input defense.teachers_dir=exp/dualmd: system exp/dualmd {system}",
                          f"input defense.teachers_dir=exp/dualmd: trained exp/dualmd/teacher1 {teacher1}"]
    other = (tmp_path / "exp" / ".done" / "stage5.other.done").read_text().splitlines()
    assert other[1:] == ["input extra=my conf/a*.yaml: file " + sha("a: 1\n"), "input gone=nothing/here: absent"]
    third = (tmp_path / "exp" / ".done" / "stage6.third.done").read_text().splitlines()
    assert third[1:] == ["input defense.teachers_dir=teachers: trained teachers/teacher2 " + sha('{"step": 2}\n')]
    assert drive(tmp_path, *stage).stderr.count("already done, skipping") == 3
    for path, text, line in ((tmp_path / "exp" / "dualmd" / "system.json", '{"train_seconds": 2}\n', stage[0]),
                             (tmp_path / "exp" / "dualmd" / "teacher1" / "train_summary.json", "{}\n", stage[0]),
                             (tmp_path / "my conf" / "a*.yaml", "a: 2\n", stage[1]),
                             (tmp_path / "teachers" / "teacher2" / "train_summary.json", "{}\n", stage[2])):
        before = path.read_text()
        path.write_text(text)
        changed = drive(tmp_path, line)
        assert changed.returncode == 1 and "ERROR: it was done with a different command or inputs" in changed.stderr
        path.write_text(before)
    assert drive(tmp_path, *stage).returncode == 0


def test_the_mini_corpus_at_full_size_splits_half_and_half(recipe):
    """The demo's 8 members are a tiny-size default only: --size full (local/gpu_experiment.sh) gets prepare's
    splits, members and non-members half of what validation leaves each."""
    import json

    if not (REPO / ".venv" / "bin" / "holdtts").exists() and shutil.which("holdtts") is None:
        pytest.skip("holdtts is not installed")
    result = run(recipe, "--mini-utts", "12", "--size", "full", "--nj", "1", "--stop-stage", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    splits = json.loads((recipe / "data" / "splits.json").read_text())
    assert splits["arguments"]["num_members"] is None and splits["arguments"]["num_test"] is None
    assert splits["sizes"]["members"] == splits["sizes"]["nonmembers"] == 5  # (12 - 2 valid) / 2


def test_the_mini_default_is_the_demos_calibrated_membership_experiment(recipe):
    """With no counts given, --corpus mini makes the short-sentence corpus and the splits the demo's
    calibration used (docs/demo_calibration.md): 8 members, 128 non-members, 16 test sentences."""
    import json

    if not (REPO / ".venv" / "bin" / "holdtts").exists() and shutil.which("holdtts") is None:
        pytest.skip("holdtts is not installed")
    result = run(recipe, "--nj", "2", "--stop-stage", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    splits = json.loads((recipe / "data" / "splits.json").read_text())["arguments"]
    assert (splits["seed"], splits["num_members"], splits["num_nonmembers"], splits["num_test"]) == (1234, 8, 128, 16)
    corpus = json.loads((recipe / "downloads" / "mini" / "corpus.json").read_text())
    assert (corpus["num_utts"], corpus["max_words"]) == (256, 6)
    # the calibration's member list exactly (docs/demo_calibration: its attack rows name them)
    members = sorted((recipe / "data" / "members" / "wav.scp").read_text().split()[0::2])
    rows = (REPO / "docs" / "demo_calibration" / "vp_seed5002" / "step-400" / "rows.tsv").read_text().splitlines()
    calibrated = sorted({line.split("\t")[0] for line in rows[1:] if line.split("\t")[1] == "1"})
    assert members == calibrated
