"""The recipe's --jobs (recipes/jobs.sh, recipes/tts_stages.sh), driven with a stand-in `holdtts` that logs
when each command starts and ends: stages 4-6 run at most --jobs commands at once, each stage after the
one before has ended, a DistillMD student after its teachers, the report last; the threads each job gets;
one command at a time with --jobs 1; a failed command stopping the recipe once the others have ended."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Logs "start ID THREADS" and "end ID" (ID: the subcommand and its --exp-dir/--out-dir/--model); fails with
# status 3 when ID is $FAIL. Long enough a sleep that two commands started together overlap in the log.
FAKE_HOLDTTS = r"""#!/usr/bin/env bash
name=$1; shift
id=$name
while [ $# -gt 0 ]; do
  case "$1" in --exp-dir|--out-dir) id="$name:$2" ;; esac
  shift
done
echo "start $id ${OMP_NUM_THREADS:-unset}" >> "$EVENTS"
trap 'echo "stopped $id" >> "$EVENTS"; exit 143' TERM  # as holdtts train does: a checkpoint, then 143
sleep "${SLEEP:-0.4}" & wait $!
echo "end $id" >> "$EVENTS"
[ "$id" != "${FAIL:-}" ] || exit 3
"""


@pytest.fixture
def recipe(tmp_path):
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    egs = tmp_path / "egs" / "ljspeech"
    egs.mkdir(parents=True)
    for name in ("run.sh", "path.sh", "conf"):
        source = REPO / "egs" / "ljspeech" / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, egs / name)
    fake = tmp_path / "bin" / "holdtts"
    fake.parent.mkdir()
    fake.write_text(FAKE_HOLDTTS)
    fake.chmod(0o755)
    return egs


def environment(egs: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(PATH=f"{egs.parents[1] / 'bin'}:{os.environ['PATH']}", EVENTS=str(egs / "events.log"), **extra)
    return env


def run(egs: Path, *args: str, fail: str = "") -> tuple[subprocess.CompletedProcess, list[str]]:
    events = egs / "events.log"
    events.write_text("")
    done = subprocess.run(["bash", str(egs / "run.sh"), "--stage", "4", *args], cwd=egs,
                          env=environment(egs, FAIL=fail), capture_output=True, text=True, timeout=120)
    return done, events.read_text().splitlines()


def spans(events: list[str]) -> dict[str, tuple[int, int]]:
    """Each command's (start, end) positions in the log."""
    events = [e for e in events if not e.startswith("stopped ")]
    start = {e.split()[1]: i for i, e in enumerate(events) if e.startswith("start ")}
    end = {e.split()[1]: i for i, e in enumerate(events) if e.startswith("end ")}
    assert start.keys() == end.keys(), events
    return {k: (start[k], end[k]) for k in start}


def most_at_once(events: list[str]) -> int:
    running = most = 0
    for e in events:
        running += 1 if e.startswith("start ") else -1
        most = max(most, running)
    return most


SYSTEMS = "vp dualmd distillmd hold3"


def test_two_jobs_run_each_stage_side_by_side_in_order(recipe):
    done, events = run(recipe, "--systems", SYSTEMS, "--jobs", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    s = spans(events)
    trains = [k for k in s if k.startswith("train:")]
    attacks = [k for k in s if k.startswith("attack:")]
    evaluates = [k for k in s if k.startswith("evaluate:")]
    assert sorted(trains) == sorted(f"train:exp/{x}" for x in SYSTEMS.split())
    # vp, hold3 and distillmd (white box, black box); dualmd's two teachers and its black box
    assert len(attacks) == 9 and len(evaluates) == 5  # the reference and four systems
    assert most_at_once(events) == 2
    # the student after its teachers (and whatever trained before them); hold3 beside it
    assert s["train:exp/distillmd"][0] > max(s["train:exp/vp"][1], s["train:exp/dualmd"][1])
    assert s["train:exp/hold3"][0] > s["train:exp/distillmd"][0]
    # each stage after every command of the one before; the recogniser before the evaluations; report last
    assert min(s[k][0] for k in attacks) > max(s[k][1] for k in trains)
    assert s["build-recognizer"][0] > max(s[k][1] for k in attacks)
    assert min(s[k][0] for k in evaluates) > s["build-recognizer"][1]
    assert s["report:exp"][0] > max(s[k][1] for k in evaluates) and events[-1] == "end report:exp"
    threads = str(max(1, len(os.sched_getaffinity(0)) // 2))
    assert {e.split()[2] for e in events if e.startswith("start ")} == {threads}
    assert f"stages 4-6: 2 commands at once, {threads} threads each" in done.stderr
    # a second run skips every finished stage
    again, events = run(recipe, "--systems", SYSTEMS, "--jobs", "2")
    assert again.returncode == 0 and events == ["start report:exp " + threads, "end report:exp"]


def test_one_job_runs_one_command_at_a_time_with_the_threads_it_had(recipe):
    done, events = run(recipe, "--systems", "vp hold3", "--jobs", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert most_at_once(events) == 1 and len(spans(events)) == 11  # with the recogniser and report
    assert {e.split()[2] for e in events if e.startswith("start ")} == {"unset"}
    assert "commands at once" not in done.stderr


def test_auto_is_two_jobs_for_the_mini_corpus_on_the_cpu_and_one_for_the_real_corpus(recipe):
    done, events = run(recipe, "--systems", "vp hold3", "--device", "cpu", "--stop-stage", "4")
    assert done.returncode == 0, done.stderr[-3000:]
    assert most_at_once(events) == (2 if len(os.sched_getaffinity(0)) >= 2 else 1)
    shutil.rmtree(recipe / "exp")
    real, events = run(recipe, "--corpus", "ljspeech", "--systems", "vp hold3", "--device", "cpu",
                       "--stop-stage", "4")
    assert real.returncode == 0, real.stderr[-3000:]
    assert most_at_once(events) == 1


def test_a_failed_job_stops_the_recipe_after_the_others_end(recipe):
    done, events = run(recipe, "--systems", "vp hold3", "--jobs", "2", fail="train:exp/vp")
    assert done.returncode == 1
    assert "stage 4 (train-vp): FAILED (exit 3)" in done.stderr
    assert "stage 4 (train-hold3): done" in done.stderr  # it was not cut off
    assert not any(e.startswith("start attack") for e in events)
    assert not (recipe / "exp" / ".done" / "stage4.train-vp.done").exists()
    assert (recipe / "exp" / ".done" / "stage4.train-hold3.done").exists()


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_jobs_values_are_errors(recipe, value):
    done, events = run(recipe, "--jobs", value)
    assert done.returncode == 2 and f"--jobs must be auto or a positive number, got '{value}'" in done.stderr
    assert events == []


def test_ctrl_c_stops_every_job_and_marks_nothing_done(recipe):
    """Background commands of a script ignore SIGINT: the recipe's trap passes a Ctrl-C on to its jobs
    (its own process group here, as a terminal's foreground job has)."""
    events = recipe / "events.log"
    events.write_text("")
    recipe_run = subprocess.Popen(["bash", str(recipe / "run.sh"), "--stage", "4", "--systems", "vp hold3",
                                   "--jobs", "2"], cwd=recipe, env=environment(recipe, SLEEP="60"),
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
    for _ in range(200):
        if events.read_text().count("start ") == 2:
            break
        time.sleep(0.05)
    recipe_run.send_signal(signal.SIGINT)
    _, stderr = recipe_run.communicate(timeout=30)
    assert recipe_run.returncode == 130, stderr[-2000:]
    assert sorted(events.read_text().splitlines()[2:]) == ["stopped train:exp/hold3", "stopped train:exp/vp"]
    assert not list((recipe / "exp" / ".done").glob("*.done"))
