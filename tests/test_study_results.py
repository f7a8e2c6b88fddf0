"""The CPU study's results round-trip through git: finished model stages are saved with their done markers,
and only complete models come back onto a fresh work dir, never over files already there."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "egs" / "ljspeech" / "local" / "study_results.py"
spec = importlib.util.spec_from_file_location("study_results", SCRIPT)
study_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study_results)


def _model(work: Path, name: str, stages: dict[str, list[str]]) -> None:
    """stages: marker name -> files (relative to exp/<name>) that stage wrote."""
    for marker, files in stages.items():
        for relative in files:
            path = work / "exp" / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{name}/{relative}")
        (work / ".done").mkdir(parents=True, exist_ok=True)
        (work / ".done" / marker).write_text(f"fingerprint of {marker}")


def _full(name: str, sys: str, k: int) -> dict[str, list[str]]:
    return {f"stage5.train-{sys}-seed{k}.done": ["config.yaml", "train_summary.json"],
            f"stage6.attack-{sys}-seed{k}.done": ["attack/rows.tsv", "attack/metrics.json"],
            f"stage6.attack-{sys}-seed{k}-blackbox.done": ["attack_blackbox/rows.tsv"],
            f"stage7.evaluate-{sys}-seed{k}.done": ["evaluate/quality.json"]}


def _dualmd() -> dict[str, list[str]]:
    """A complete DualMD model of seed 1 (the teachers of distillmd): its stages and the files each wrote."""
    return {"stage5.train-dualmd-seed1.done": ["system.json", "teacher1/train_summary.json",
                                               "teacher2/train_summary.json"],
            "stage6.attack-dualmd-seed1-teacher1.done": ["attack_teacher1/rows.tsv"],
            "stage6.attack-dualmd-seed1-teacher2.done": ["attack_teacher2/rows.tsv"],
            "stage6.attack-dualmd-seed1-blackbox.done": ["attack_blackbox/rows.tsv"],
            "stage7.evaluate-dualmd-seed1.done": ["evaluate/quality.json"]}


def test_names_map_to_cpu_study_stage_markers():
    assert study_results.system_and_seed("vp") == ("vp", 1)
    assert study_results.system_and_seed("vp_dp.seed3") == ("vp_dp", 3)
    assert study_results.marker_name(study_results.TRAIN_STAGE, "hold3.seed2") == "stage5.train-hold3-seed2.done"


def test_finished_stages_round_trip_and_partial_models_are_redone(tmp_path):
    work, results = tmp_path / "study", tmp_path / "docs"
    _model(work, "vp", _full("vp", "vp", 1))
    partial = _full("hold3.seed2", "hold3", 2)
    partial.pop("stage7.evaluate-hold3-seed2.done")
    _model(work, "hold3.seed2", partial)
    (work / "exp" / "vp" / "checkpoints").mkdir()
    (work / "exp" / "vp" / "checkpoints" / "step-1.pt").write_text("weights")
    (work / "exp" / "vp" / "evaluate" / "sample.wav").write_text("audio")
    # a stage without its marker (unfinished) is not saved
    (work / "exp" / "hold3.seed2" / "evaluate").mkdir()
    (work / "exp" / "hold3.seed2" / "evaluate" / "quality.json").write_text("partial")
    study_results.save(work, results)
    bundle = results / "main" / "models"
    assert (bundle / "vp" / "attack" / "metrics.json").read_text() == "vp/attack/metrics.json"
    assert not (bundle / "vp" / "checkpoints").exists() and not (bundle / "vp" / "evaluate" / "sample.wav").exists()
    assert not (bundle / "hold3.seed2" / "evaluate").exists()

    fresh = tmp_path / "fresh"
    study_results.restore(fresh, results)
    assert (fresh / "exp" / "vp" / "attack" / "rows.tsv").read_text() == "vp/attack/rows.tsv"
    marker = "stage7.evaluate-vp-seed1.done"
    assert (fresh / ".done" / marker).read_text() == f"fingerprint of {marker}"
    assert not (fresh / "exp" / "hold3.seed2").exists()  # incomplete: its checkpoints are gone, so it is redone


def test_restore_never_overwrites_and_waits_for_the_distilled_student(tmp_path, capsys):
    work, results = tmp_path / "study", tmp_path / "docs"
    _model(work, "dualmd", _dualmd())
    _model(work, "vp", _full("vp", "vp", 1))
    study_results.save(work, results)
    fresh = tmp_path / "fresh"
    study_results.restore(fresh, results)
    assert not (fresh / "exp" / "dualmd").exists()  # distillmd still needs the teachers' checkpoints
    assert "dualmd: complete, but restored only with its DistillMD student" in capsys.readouterr().out

    _model(work, "distillmd", _full("distillmd", "distillmd", 1))
    study_results.save(work, results)
    (fresh / ".done" / "stage6.attack-vp-seed1.done").unlink()
    (fresh / "exp" / "vp" / "attack" / "rows.tsv").write_text("newer")
    study_results.restore(fresh, results)
    assert (fresh / "exp" / "dualmd" / "teacher1" / "train_summary.json").is_file()
    assert (fresh / "exp" / "distillmd" / "evaluate" / "quality.json").is_file()
    assert (fresh / "exp" / "vp" / "attack" / "rows.tsv").read_text() == "newer"  # a model here is never touched
    assert not (fresh / ".done" / "stage6.attack-vp-seed1.done").exists()


def _data_dir(folder: Path, wav_root: str, text: str) -> None:
    (folder / "members").mkdir(parents=True)
    (folder / "splits.json").write_text("{}")
    (folder / "members" / "wav.scp").write_text(f"u1 {wav_root}/wavs/u1.wav\n")
    (folder / "members" / "text").write_text(f"u1 {text}\n")


def test_restore_recomputes_the_machine_dependent_checksums_of_the_same_data(tmp_path, monkeypatch):
    """A fresh clone elsewhere: the same splits with other absolute paths are accepted (the marker's data
    line recomputed here); other texts are refused."""
    for where, text in (("same", "hello there"), ("other", "goodbye")):
        root = tmp_path / where
        monkeypatch.chdir(tmp_path)
        _data_dir(Path("machine1") / "data", "/first/place", "hello there")
        fingerprint = "\n".join(["command: holdtts train --data-dir machine1/data",
                                  *study_results.local_fingerprint("machine1/data")])
        stages = _full("vp", "vp", 1)
        _model(root / "study", "vp", stages)
        for marker in stages:
            (root / "study" / ".done" / marker).write_text(fingerprint + "\n")
        study_results.save(root / "study", root / "docs")
        shutil.rmtree("machine1")
        _data_dir(Path("machine1") / "data", "/second/place", text)  # the fresh machine's copy
        study_results.restore(root / "fresh", root / "docs")
        restored = root / "fresh" / ".done" / "stage5.train-vp-seed1.done"
        if text == "hello there":
            assert restored.read_text() == "\n".join(["command: holdtts train --data-dir machine1/data",
                                                      *study_results.local_fingerprint("machine1/data")]) + "\n"
            assert restored.read_text() != fingerprint + "\n"  # wav.scp's paths changed the raw checksum
            # saving the restored model again keeps the committed marker: no churn from machine lines alone
            study_results.save(root / "fresh", root / "docs")
            saved = root / "docs" / "main" / "models" / "vp" / ".done" / "stage5.train-vp-seed1.done"
            assert saved.read_text() == fingerprint + "\n"
        else:
            assert not restored.exists() and not (root / "fresh" / "exp" / "vp").exists()
        shutil.rmtree("machine1")


def test_own_sampler_quality_is_its_own_stage_and_optional(tmp_path):
    """evaluate_own/ (the HOLD++ systems' own sampler) is saved under its own marker, not as training files;
    a model finished before that stage existed is complete without it."""
    work, results = tmp_path / "study", tmp_path / "docs"
    _model(work, "hold2.seed2", {**_full("hold2.seed2", "hold2", 2),
                                 "stage7.evaluate-own-hold2-seed2.done": ["evaluate_own/quality.json"]})
    _model(work, "hold2", _full("hold2", "hold2", 1))
    assert study_results.stage_files(work / "exp" / "hold2.seed2")["7:evaluate-own-{sys}-seed{k}"] == [
        Path("evaluate_own/quality.json")]
    study_results.save(work, results)
    fresh = tmp_path / "fresh"
    study_results.restore(fresh, results)
    assert (fresh / "exp" / "hold2.seed2" / "evaluate_own" / "quality.json").read_text() == (
        "hold2.seed2/evaluate_own/quality.json")
    assert (fresh / ".done" / "stage7.evaluate-own-hold2-seed2.done").is_file()
    assert (fresh / "exp" / "hold2" / "evaluate" / "quality.json").is_file()  # restored without evaluate_own


def test_a_pipeline_saves_only_its_own_model(tmp_path):
    work, results = tmp_path / "study", tmp_path / "docs"
    _model(work, "vp", _full("vp", "vp", 1))
    _model(work, "hold2", _full("hold2", "hold2", 1))
    study_results.save(work, results, model="hold2")
    assert sorted(p.name for p in (results / "main" / "models").iterdir()) == ["hold2"]


TIMES = Path(__file__).resolve().parents[1] / "egs" / "ljspeech" / "local" / "study_times.py"
times_spec = importlib.util.spec_from_file_location("study_times", TIMES)
study_times = importlib.util.module_from_spec(times_spec)
times_spec.loader.exec_module(study_times)


def _write(path: Path, value) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value))


def test_the_wall_time_table_adds_each_part_and_says_what_was_not_recorded(tmp_path):
    import json

    models = tmp_path / "models"
    attack_line = {"step": 200, "epoch": 200, "attack/headline/auroc": 0.5}
    for teacher, seconds in (("teacher1", 100.0), ("teacher2", 120.0)):  # DualMD: both teachers count
        _write(models / "dualmd" / teacher / "train_summary.json", {"train_seconds": seconds})
        _write(models / "dualmd" / teacher / "train_log.jsonl",
               json.dumps({"step": 10, "epoch": 9}) + "\n" + json.dumps({**attack_line, "time/attack_seconds": 7.5}))
        _write(models / "dualmd" / f"attack_{teacher}" / "attack.json",
               {"timing": {"loss": {"seconds": 10.0}, "pia": {"seconds": 5.0}}})
    _write(models / "dualmd" / "attack_blackbox" / "attack.json", {"timing": {"synth_distance": {"seconds": 40.0}}})
    _write(models / "dualmd" / "evaluate" / "quality.json",
           {"timing": {"synthesis_seconds": 3.0, "references_and_scoring_seconds": 4.0}})
    _write(models / "vp" / "train_summary.json", {"train_seconds": 50.0})  # an older model: no time records
    _write(models / "vp" / "train_log.jsonl", json.dumps(attack_line))
    _write(models / "vp" / "attack" / "attack.json", {"timing": {"loss": {"seconds": 2.0}}})
    _write(models / "vp" / "evaluate" / "quality.json", {"wer": {}})

    assert study_times.model_times(models / "dualmd") == {
        "training steps": 220.0, "in-training attacks": 15.0, "white-box attacks": 30.0,
        "black-box attack": 40.0, "quality": 7.0, "own-sampler quality": "-"}
    assert study_times.model_times(models / "vp") == {
        "training steps": 50.0, "in-training attacks": None, "white-box attacks": 2.0,
        "black-box attack": None, "quality": None, "own-sampler quality": "-"}
    # a resumed run logs an epoch's attack twice: its last line counts; a teacher's attack not finished: none
    log = models / "dualmd" / "teacher1" / "train_log.jsonl"
    log.write_text(log.read_text() + "\n" + json.dumps({**attack_line, "time/attack_seconds": 9.5}))
    times = study_times.model_times(models / "dualmd")
    assert times["in-training attacks"] == 17.0
    shutil.rmtree(models / "dualmd" / "attack_teacher2")
    assert study_times.model_times(models / "dualmd")["white-box attacks"] is None
    shutil.copytree(models / "dualmd" / "attack_teacher1", models / "dualmd" / "attack_teacher2")
    log.write_text(log.read_text().rsplit("\n", 1)[0])
    # a HOLD++ model's second quality stage (its own sampler), in a column of its own; unfinished: not recorded
    _write(models / "hold2" / "train_summary.json", {"train_seconds": 60.0})
    _write(models / "hold2" / "evaluate_own" / "quality.json", {"timing": {"synthesis_seconds": 11.0}})
    assert study_times.model_times(models / "hold2")["own-sampler quality"] == 11.0
    rows = study_times.table(models).splitlines()
    assert rows[2] == "| dualmd | 220 | 15 | 30 | 40 | 7 | - |"
    assert rows[3] == "| hold2 | 60 | not recorded | not recorded | not recorded | not recorded | 11 |"
    assert rows[4] == "| vp | 50 | not recorded | 2 | not recorded | not recorded | - |"
    assert rows[5] == "| **sum (models recorded)** | 330 (3) | 15 (1) | 32 (2) | 40 (1) | 7 (1) | 11 (1) |"
    _write(models / "hold2.seed2" / "train_summary.json", {"train_seconds": 180.0})
    spans = study_times.ranges(models).splitlines()
    assert spans[2] == "| order 1 (vp) | 1-1 (1) | - | 0-0 (1) | - | - | - |"
    assert spans[3] == "| HOLD++ | 1-3 (2) | - | - | - | - | 0-0 (1) |"
    assert spans[4] == "| DualMD (two teachers) | 4-4 (1) | 0-0 (1) | 0-0 (1) | 1-1 (1) | 0-0 (1) | - |"
    (models / "hold2" / "evaluate_own" / "quality.json").unlink()
    assert study_times.model_times(models / "hold2")["own-sampler quality"] is None


def test_a_restored_students_marker_still_matches_its_restored_teachers(tmp_path, monkeypatch):
    """A DistillMD student's train marker records its teachers (recipes/stages.sh's "input" lines for
    `--set defense.teachers_dir=...`): after save, a fresh work dir and restore, the same fingerprint is
    computed from the restored teachers, so the study skips the student instead of refusing it; teachers
    that differ are refused."""
    import subprocess

    monkeypatch.chdir(tmp_path)
    work, results = Path("study"), tmp_path / "docs"
    _model(work, "dualmd", _dualmd())
    _model(work, "distillmd", _full("distillmd", "distillmd", 1))
    command = ["holdtts", "train", "--set", "defense.teachers_dir=study/exp/dualmd", "--exp-dir", "study/exp/distillmd"]

    def fingerprint() -> str:
        script = '. "$0"; _stage_fingerprint "$@"'
        return subprocess.run(["bash", "-c", script, str(study_results.STAGES_SH), *command],
                              capture_output=True, text=True, check=True).stdout

    recorded = fingerprint()
    assert recorded.count("input defense.teachers_dir=study/exp/dualmd: ") == 3  # system.json, both teachers
    (work / ".done" / "stage5.train-distillmd-seed1.done").write_text(recorded)
    study_results.save(work, results)
    shutil.rmtree(work)
    study_results.restore(work, results)
    assert (work / ".done" / "stage5.train-distillmd-seed1.done").read_text() == recorded == fingerprint()
    (work / "exp" / "dualmd" / "teacher2" / "train_summary.json").write_text("trained again")
    assert fingerprint() != recorded
