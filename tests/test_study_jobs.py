"""The CPU study's scheduler (egs/ljspeech/local/study_jobs.sh), driven with a stand-in model pipeline that
logs when it starts and ends: never more than $jobs models at once, a DistillMD student only after its own
teachers (wherever it stands in the systems list) and on the first core that frees after them, no core idle
while teachers train, and a failed teachers' pipeline skipping its student and failing the final barrier."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

JOBS_SH = Path(__file__).resolve().parents[1] / "egs" / "ljspeech" / "local" / "study_jobs.sh"

# dualmd_hold3 of seed 1 (the teachers) runs until vp of seed 2 has started: the other core must go on to
# the next seed meanwhile, or the run times out and the test fails. dualmd of seed 2 fails.
DRIVER = r"""
set -euo pipefail
jobs=2
log=$1
exp_of() { echo "exp/$1.seed$2"; }
model_pipeline() {
  echo "start $*" >> "$log"
  trap "echo 'end $1 $2' >> '$log'" EXIT  # logged as the pipeline's process ends
  if [ "$1 $2" = "dualmd_hold3 1" ]; then
    for _ in $(seq 200); do grep -q "^start vp 2" "$log" && break; sleep 0.05; done
    grep -q "^start vp 2" "$log" || { echo "timeout" >> "$log"; return 1; }
  else
    sleep 0.3
  fi
  [ "$1 $2" != "dualmd 2" ]
}
. "$2"
run_models 3 "$3"
status=0
wait_all || status=$?
echo "barrier $status" >> "$log"
"""


def _run(tmp_path: Path, systems: str) -> tuple[list[str], str]:
    log = tmp_path / "events.log"
    log.touch()
    done = subprocess.run(["bash", "-c", DRIVER, "driver", str(log), str(JOBS_SH), systems], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines(), done.stderr


@pytest.mark.parametrize("systems", ["vp dualmd distillmd dualmd_hold3 distillmd_hold3 vp_dp",
                                     "distillmd_hold3 distillmd vp dualmd dualmd_hold3 vp_dp"])
def test_study_schedule_order_limits_and_failures(tmp_path, systems):
    events, stderr = _run(tmp_path, systems)
    assert not any("timeout" in e for e in events), "the other core waited while dualmd_hold3's teachers trained"
    starts = [e.split()[1:3] for e in events if e.startswith("start ")]
    # every model once, but the student of the failed teachers
    expected = {(s, str(k)) for s in ("vp", "dualmd", "distillmd", "dualmd_hold3", "distillmd_hold3", "vp_dp")
                for k in (1, 2, 3)} - {("distillmd", "2")}
    assert sorted(map(tuple, starts)) == sorted(expected)
    # students are told their own seed's teachers
    for e in events:
        if e.startswith("start distillmd"):
            _, sys, k, *rest = e.split()
            teachers = "dualmd" if sys == "distillmd" else "dualmd_hold3"
            assert rest == ["--set", f"defense.teachers_dir=exp/{teachers}.seed{k}"]
    # never more than $jobs at once
    running = peak = 0
    for e in events:
        running += e.startswith("start ") - e.startswith("end ")
        peak = max(peak, running)
    assert peak == 2
    # a student after its teachers, on the first core that frees after them (at most one start between:
    # the other core may free in the instant the teachers' process ends)
    for k in "123":
        for student, teachers in (("distillmd", "dualmd"), ("distillmd_hold3", "dualmd_hold3")):
            if (student, k) == ("distillmd", "2"):
                continue
            end = events.index(f"end {teachers} {k}")
            start = next(i for i, e in enumerate(events) if e.startswith(f"start {student} {k} "))
            assert start > end
            assert sum(e.startswith("start ") for e in events[end:start]) <= 1, events[end:start + 1]
    # seed 1's slow teachers did not hold seed 2 back
    assert events.index("start vp 2") < events.index("end dualmd_hold3 1")
    # the failed teachers: their student skipped with a message, and the barrier fails
    assert "dualmd of seed 2 failed, so distillmd of seed 2 is not trained" in stderr
    assert events[-1] == "barrier 1"
