"""The recipe's --jobs (recipes/jobs.sh, recipes/tts_stages.sh), driven with a stand-in `holdtts` that logs
when each command starts and ends: stages 4-6 run at most --jobs commands at once, each stage after the
one before has ended, a DistillMD student after its teachers, the report last; the threads each job gets and
where its output goes; one command at a time with --jobs 1; a failed command stopping the recipe once the
rest of its stage has run; a Ctrl-C or kill reaching every job and the recipe waiting for them to save."""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Logs "start ID THREADS" and "end ID" (ID: the subcommand and its --exp-dir or --out-dir), prints a line to
# its output, sleeps $SLEEP seconds (1.5 when ID is in $SLOW) and fails with status 3 when ID is $FAIL. On
# SIGTERM it takes a second to "save" (as holdtts train writes a checkpoint), logs "stopped ID", exits 143.
# `train` writes a new train_summary.json into its --exp-dir (each training's differs); `train
# --print-value defense.teachers_dir` prints exp/dualmd for a distillmd config (else nothing), logs nothing.
FAKE_HOLDTTS = r"""#!/usr/bin/env bash
name=$1; shift
id=$name; exp=; printing=0; student=0
while [ $# -gt 0 ]; do
  case "$1" in
    --exp-dir|--out-dir) id="$name:$2"; exp=$2 ;;
    --print-value) printing=1 ;;
    *distillmd*) student=1 ;;
  esac
  shift
done
if [ $printing = 1 ]; then
  if [ $student = 1 ]; then echo exp/dualmd; else echo; fi
  exit 0
fi
trap 'sleep 1; echo "stopped $id" >> "$EVENTS"; exit 143' TERM
echo "start $id ${OMP_NUM_THREADS:-unset}" >> "$EVENTS"
echo "output of $id"
pause=${SLEEP:-0.4}
[[ " ${SLOW:-} " != *" $id "* ]] || pause=1.5
sleep "$pause" & wait $!
echo "end $id" >> "$EVENTS"
[ "$id" != "${FAIL:-}" ] || exit 3
if [ "$name" = train ]; then mkdir -p "$exp" && echo "$id $(date +%s%N)" > "$exp/train_summary.json"; fi
"""
# `python -c '...cuda...'` of the auto rule: exit $CUDA_EXIT (0: no GPU, 1: a GPU)
FAKE_PYTHON = "#!/usr/bin/env bash\nexit ${CUDA_EXIT:-0}\n"


@pytest.fixture
def recipe(tmp_path):
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    egs = tmp_path / "egs" / "ljspeech"
    egs.mkdir(parents=True)
    for name in ("run.sh", "path.sh", "conf"):
        source = REPO / "egs" / "ljspeech" / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, egs / name)
    (tmp_path / "bin").mkdir()
    for name, text in (("holdtts", FAKE_HOLDTTS), ("python", FAKE_PYTHON)):
        (tmp_path / "bin" / name).write_text(text)
        (tmp_path / "bin" / name).chmod(0o755)
    return egs


def environment(egs: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(PATH=f"{egs.parents[1] / 'bin'}:{os.environ['PATH']}", EVENTS=str(egs / "events.log"), **extra)
    return env


def run(egs: Path, *args: str, **extra: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    events = egs / "events.log"
    events.write_text("")
    done = subprocess.run(["bash", str(egs / "run.sh"), "--stage", "4", *args], cwd=egs,
                          env=environment(egs, **extra), capture_output=True, text=True, timeout=120)
    return done, events.read_text().splitlines()


def spans(events: list[str]) -> dict[str, tuple[int, int]]:
    """Each command's (start, end) positions in the log; every command once."""
    starts = [e.split()[1] for e in events if e.startswith("start ")]
    assert len(starts) == len(set(starts)), f"a command ran twice: {events}"
    start = {e.split()[1]: i for i, e in enumerate(events) if e.startswith("start ")}
    end = {e.split()[1]: i for i, e in enumerate(events) if e.startswith("end ")}
    assert start.keys() == end.keys(), events
    return {k: (start[k], end[k]) for k in start}


def most_at_once(events: list[str]) -> int:
    running = most = 0
    for e in events:
        running += 1 if e.startswith("start ") else -1 if e.startswith("end ") else 0
        most = max(most, running)
    return most


def overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


CORES = len(os.sched_getaffinity(0))
SYSTEMS = "vp dualmd distillmd hold3"


def test_two_jobs_run_each_stage_side_by_side_in_order(recipe):
    done, events = run(recipe, "--systems", SYSTEMS, "--jobs", "2", SLOW="train:exp/dualmd")
    assert done.returncode == 0, done.stderr[-3000:]
    s = spans(events)
    trains = [k for k in s if k.startswith("train:")]
    attacks = [k for k in s if k.startswith("attack:")]
    evaluates = [k for k in s if k.startswith("evaluate:")]
    assert sorted(trains) == sorted(f"train:exp/{x}" for x in SYSTEMS.split())
    # vp, hold3 and distillmd (white box, black box); dualmd's two teachers and its black box
    assert len(attacks) == 9 and len(evaluates) == 5  # the reference and four systems
    assert most_at_once(events) == 2
    # the student after its (slower) teachers and vp; hold3 beside it
    assert s["train:exp/distillmd"][0] > max(s["train:exp/vp"][1], s["train:exp/dualmd"][1])
    assert overlap(s["train:exp/hold3"], s["train:exp/distillmd"])
    # each stage after every command of the one before; the recogniser before the evaluations; report last
    assert min(s[k][0] for k in attacks) > max(s[k][1] for k in trains)
    assert s["build-recognizer"][0] > max(s[k][1] for k in attacks)
    assert min(s[k][0] for k in evaluates) > s["build-recognizer"][1]
    assert s["report:exp"][0] > max(s[k][1] for k in evaluates) and events[-1] == "end report:exp"
    # side by side: one thread each on 2 cores, output in the stage's log only; alone: as before
    threads = str(max(1, CORES // 2))
    for k in trains + attacks + evaluates:
        assert events[s[k][0]] == f"start {k} {threads}"
    assert events[s["report:exp"][0]] == "start report:exp unset"
    assert f"OMP_NUM_THREADS={threads} each, their output in exp/log/" in done.stderr
    assert "output of train:exp/vp" not in done.stderr + done.stdout
    assert "output of train:exp/vp" in (recipe / "exp" / "log" / "stage4.train-vp.log").read_text()
    assert "output of report:exp" in done.stdout
    # a second run skips every finished stage
    again, events = run(recipe, "--systems", SYSTEMS, "--jobs", "2")
    assert again.returncode == 0 and events == ["start report:exp unset", "end report:exp"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_students_marker_records_its_teachers(recipe, jobs):
    """A DistillMD student's done marker records what its teachers (its config's defense.teachers_dir, read
    with `holdtts train --print-value`) hold: teachers retrained after it make the finished student an error
    naming its marker, not a silent reuse. A marker from before inputs were recorded is taken as done, as it
    was then, and gets its inputs written."""
    args = ("--systems", "dualmd distillmd", "--stop-stage", "4", "--jobs", jobs)
    done, events = run(recipe, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    marker = recipe / "exp" / ".done" / "stage4.train-distillmd.done"
    teachers = (recipe / "exp" / "dualmd" / "train_summary.json").read_text()
    assert hashlib.sha256(teachers.encode()).hexdigest() in marker.read_text()
    assert "input defense.teachers_dir=exp/dualmd: trained exp/dualmd " in marker.read_text()
    assert "teachers_dir" not in (recipe / "exp" / ".done" / "stage4.train-dualmd.done").read_text()
    again, events = run(recipe, *args)
    assert again.returncode == 0 and events == [] and again.stderr.count("already done, skipping") == 2

    # written before inputs were recorded: taken as done, and recorded from now on
    full = marker.read_text()
    marker.write_text("".join(line for line in full.splitlines(keepends=True) if not line.startswith("input ")))
    legacy, events = run(recipe, *args)
    assert legacy.returncode == 0 and events == [], legacy.stderr[-3000:]
    assert "stage 4 (train-distillmd): already done, skipping; its marker predates recorded inputs" in legacy.stderr
    assert marker.read_text() == full

    # the teachers trained again (their marker removed, as the recipe's error tells): the student is refused
    (recipe / "exp" / ".done" / "stage4.train-dualmd.done").unlink()
    retrained, events = run(recipe, *args)
    assert retrained.returncode == 1 and [e.split()[:2] for e in events] == [["start", "train:exp/dualmd"],
                                                                            ["end", "train:exp/dualmd"]]
    assert "stage 4 (train-distillmd): ERROR: it was done with a different command or inputs" in retrained.stderr
    assert "input defense.teachers_dir=exp/dualmd: trained exp/dualmd" in retrained.stderr  # the diff says what


def test_a_users_thread_setting_is_kept(recipe):
    done, events = run(recipe, "--systems", "vp hold3", "--jobs", "2", "--stop-stage", "4", OMP_NUM_THREADS="3")
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(e for e in events if e.startswith("start ")) == ["start train:exp/hold3 3", "start train:exp/vp 3"]


def test_one_job_runs_one_command_at_a_time_as_before(recipe):
    done, events = run(recipe, "--systems", "vp hold3", "--jobs", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert most_at_once(events) == 1 and len(spans(events)) == 11  # with the recogniser and the report
    assert {e.split()[2] for e in events if e.startswith("start ")} == {"unset"}
    assert "commands at once" not in done.stderr and "output of train:exp/vp" in done.stdout
    shutil.rmtree(recipe / "exp")
    failed, events = run(recipe, "--systems", "vp hold3", "--jobs", "1", FAIL="train:exp/vp")
    assert failed.returncode == 1 and "stage 4 (train-vp): FAILED (exit 3)" in failed.stderr
    assert events == ["start train:exp/vp unset", "end train:exp/vp"]  # stopped at once, in the foreground


@pytest.mark.parametrize("corpus, device, cuda_exit, expected", [
    ("mini", "cpu", "1", 2), ("mini", "auto", "0", 2), ("mini", "auto", "1", 1), ("mini", "cuda", "0", 1),
    ("ljspeech", "cpu", "0", 1)])
def test_auto_is_two_jobs_only_for_the_mini_corpus_on_a_cpu(recipe, corpus, device, cuda_exit, expected):
    done, events = run(recipe, "--corpus", corpus, "--systems", "vp hold3", "--device", device,
                       "--stop-stage", "4", CUDA_EXIT=cuda_exit)
    assert done.returncode == 0, done.stderr[-3000:]
    assert most_at_once(events) == (expected if CORES >= 2 else 1)


def test_a_failed_job_stops_the_recipe_when_the_rest_of_its_stage_has_run(recipe):
    # vp fails at once while hold2 trains: hold3 still takes the free core, then the recipe stops
    done, events = run(recipe, "--systems", "vp hold2 hold3", "--jobs", "2", FAIL="train:exp/vp",
                       SLOW="train:exp/hold2")
    assert done.returncode == 1
    assert "stage 4 (train-vp): FAILED (exit 3)" in done.stderr
    assert sorted(spans(events)) == ["train:exp/hold2", "train:exp/hold3", "train:exp/vp"]
    assert not (recipe / "exp" / ".done" / "stage4.train-vp.done").exists()
    assert (recipe / "exp" / ".done" / "stage4.train-hold3.done").exists()
    # a student whose teachers (or anything trained before it) failed is not started
    shutil.rmtree(recipe / "exp")
    done, events = run(recipe, "--systems", "dualmd distillmd hold3", "--jobs", "2", FAIL="train:exp/dualmd")
    assert done.returncode == 1
    assert "stage 4 (train-distillmd): not started: a training before it failed" in done.stderr
    assert sorted(spans(events)) == ["train:exp/dualmd", "train:exp/hold3"]


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_every_job_and_the_recipe_waits_for_them(recipe, signum, status):
    """Background commands of a script ignore SIGINT: the recipe's trap passes a Ctrl-C (or a kill) on to
    its jobs' processes, and exits only once every one has saved, with nothing marked done."""
    events = recipe / "events.log"
    events.write_text("")
    recipe_run = subprocess.Popen(["bash", str(recipe / "run.sh"), "--stage", "4", "--systems", "vp hold3",
                                   "--jobs", "2"], cwd=recipe, env=environment(recipe, SLEEP="300"),
                                  stderr=subprocess.PIPE, text=True, start_new_session=True,
                                  # as from a terminal: a test runner's worker may ignore SIGINT, and a shell
                                  # cannot trap a signal ignored when it started
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60  # both jobs started (slow to come on a loaded machine; they sleep 300 s)
        while events.read_text().count("start ") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert events.read_text().count("start ") == 2, "the two jobs did not start within a minute"
        recipe_run.send_signal(signum)
        _, stderr = recipe_run.communicate(timeout=30)
    finally:  # a failed test leaves no recipe running
        if recipe_run.poll() is None:
            os.killpg(recipe_run.pid, signal.SIGKILL)
            recipe_run.wait()
    assert recipe_run.returncode == status, stderr[-2000:]
    # both had "saved" (a second each) before the recipe ended
    assert sorted(events.read_text().splitlines()[2:]) == ["stopped train:exp/hold3", "stopped train:exp/vp"]
    assert stderr.count("stopped by a signal: what ran is not marked done") == 2
    assert not list((recipe / "exp" / ".done").glob("*.done"))


@pytest.mark.parametrize("given, passed", [(None, "auto,-wer,-wer_domain"), ("auto,wer", "auto,wer")])
def test_the_mini_quality_stage_uses_the_espeak_recogniser_unless_told(recipe, given, passed):
    """The mini corpus's default drops pocketsphinx's two recognisers (docs/quality.md) and still builds the
    eSpeak one; --eval-metrics keeps what the user gives."""
    done, events = run(recipe, "--systems", "vp", "--jobs", "1", *(["--eval-metrics", given] if given else []))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "start build-recognizer" in " ".join(events)
    for marker in ("stage6.evaluate-reference.done", "stage6.evaluate-vp.done"):
        command = shlex.split((recipe / "exp" / ".done" / marker).read_text().splitlines()[0])  # quoted as %q
        assert command[command.index("--metrics") + 1] == passed, command


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_jobs_values_are_errors(recipe, value):
    done, events = run(recipe, "--jobs", value)
    assert done.returncode == 2 and f"--jobs must be auto or a positive number, got '{value}'" in done.stderr
    assert events == []


@pytest.mark.parametrize("value", ["small", "Tiny", ""])
def test_bad_size_values_are_errors(recipe, value):
    """--size full used to be whatever was not tiny: a typo trained the published model size."""
    done, events = run(recipe, "--size", value)
    assert done.returncode == 2 and f"--size must be auto, tiny or full, got '{value}'" in done.stderr
    assert events == []
