"""egs/vctk and egs/libritts: option checks, and stages 0-2 on the multi-voice mini corpus and on a small
VCTK-layout copy (import-corpus, prepare --defer-resample, features)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from speaker_factory import make_libritts, make_vctk, vctk_ids

REPO = Path(__file__).resolve().parents[1]


def copy_recipe(tmp_path: Path, name: str) -> Path:
    """A copy of egs/<name> (its sources only: not the outputs of a run in the checkout), egs/ljspeech/conf
    (the system configs it uses) and recipes/."""
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    (tmp_path / "egs" / name).mkdir(parents=True)
    for entry in ("run.sh", "path.sh", "conf"):
        source = REPO / "egs" / name / entry
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / "egs" / name / entry)
    shutil.copytree(REPO / "egs" / "ljspeech" / "conf", tmp_path / "egs" / "ljspeech" / "conf")
    return tmp_path / "egs" / name


def run(egs: Path, *args: str) -> subprocess.CompletedProcess:
    # the holdtts of this checkout: its virtualenv's bin, or the running interpreter's, on PATH
    bins = [str(REPO / ".venv" / "bin"), str(Path(sys.executable).parent)]
    env = {**os.environ, "PATH": ":".join([*bins, os.environ["PATH"]]), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(["bash", str(egs / "run.sh"), *args], cwd=egs, env=env, capture_output=True, text=True,
                          timeout=600)


def needs_holdtts():
    if not (REPO / ".venv" / "bin" / "holdtts").exists() and not (Path(sys.executable).parent / "holdtts").exists():
        pytest.skip("holdtts is not installed")


@pytest.mark.parametrize("name", ["vctk", "libritts"])
def test_options_are_checked(tmp_path, name):
    egs = copy_recipe(tmp_path, name)
    bogus = run(egs, "--corpus", "timit", "--stop-stage", "-1")
    assert bogus.returncode == 2 and f"--corpus must be mini or {name}" in bogus.stderr
    protocol = run(egs, "--protocol", "voices", "--stop-stage", "-1")
    assert protocol.returncode == 2 and "--protocol must be utterance or speaker" in protocol.stderr
    helped = run(egs, "--help")
    assert helped.returncode == 0 and "--mini-speakers" in helped.stdout and "--num-member-speakers" in helped.stdout
    missing = run(egs, "--stage", "4", "--stop-stage", "4", "--systems", "vp")
    assert missing.returncode == 1 and "no data/spk2id" in missing.stderr


def test_vctk_mini_stages_0_to_2(tmp_path):
    needs_holdtts()
    egs = copy_recipe(tmp_path, "vctk")
    first = run(egs, "--mini-utts", "12", "--mini-speakers", "3", "--protocol", "speaker", "--num-member-speakers",
                "2", "--nj", "1", "--stop-stage", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    for stage in ("stage 0 (make-corpus): done", "stage 1 (prepare): done", "stage 2 (features): done"):
        assert stage in first.stderr
    assert (egs / "data" / "utt2spk").read_text().count("\n") == 12
    assert (egs / "data" / "spk2id").read_text().count("\n") == 2
    marker = (egs / "exp" / ".done" / "stage1.prepare.done").read_text()
    assert "speakers data " in marker  # the speaker tables are part of the data fingerprint
    again = run(egs, "--mini-utts", "12", "--mini-speakers", "3", "--protocol", "speaker", "--num-member-speakers",
                "2", "--nj", "1", "--stop-stage", "2")
    assert again.returncode == 0 and again.stderr.count("already done, skipping") == 3


def test_vctk_existing_copy_stages_0_to_2(tmp_path):
    needs_holdtts()
    source = make_vctk(tmp_path / "source")
    egs = copy_recipe(tmp_path, "vctk")
    result = run(egs, "--corpus", "vctk", "--vctk-dir", str(source), "--protocol", "speaker", "--num-member-speakers",
                 "2", "--nj", "1", "--stop-stage", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stage 0 (import-corpus): done" in result.stderr and "stage 0 (download)" not in result.stderr
    assert sorted((egs / "data" / "utt2spk").read_text().split()[::2]) == vctk_ids()
    assert (egs / "dump" / "manifest.json").exists()


def test_libritts_existing_copy_stage_0_and_1(tmp_path):
    needs_holdtts()
    base = make_libritts(tmp_path / "source", speakers={"103": (1241, 5), "1034": (121119, 4), "1040": (133433, 4)})
    egs = copy_recipe(tmp_path, "libritts")
    result = run(egs, "--corpus", "libritts", "--libritts-dir", str(base), "--nj", "1", "--stop-stage", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stage 1 (prepare): done" in result.stderr
    assert (egs / "downloads" / "libritts_corpus" / "metadata.csv").exists()
    assert (egs / "data" / "spk2utt").read_text().count("\n") == 3
