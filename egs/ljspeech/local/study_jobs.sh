# The study's job pool and the order of its models; sourced by local/cpu_study.sh, and driven with a
# stand-in pipeline by tests/test_study_jobs.py.
#
#   parallel_stage_fn CMD ARGS...   CMD in the background once fewer than $jobs commands run
#   parallel_stage N NAME CMD ...   the same for `run_stage N NAME CMD ...` (recipes/stages.sh)
#   wait_all                        join every command started; its status is the last failure's, if any
#   run_models SEEDS "SYSTEMS"      `model_pipeline SYS K` for every system and seed k = 1..SEEDS, seed 1 of
#                                   every system first; a DistillMD student gets `--set
#                                   defense.teachers_dir=$(exp_of TEACHERS K)` and starts after its teachers
#
# The caller defines $jobs, model_pipeline and exp_of; the pool itself (parallel_stage_fn, parallel_stage,
# wait_all) is the recipes' (recipes/jobs.sh).

. "$(dirname "${BASH_SOURCE[0]}")/../../../recipes/jobs.sh"

teachers_of() { case "$1" in distillmd) echo dualmd ;; distillmd_hold3) echo dualmd_hold3 ;; esac; }

# A DistillMD student waits aside until its own teachers' pipeline has ended, then takes the next free core
# before any other model. Sitting 8's loop waited for the teachers in line and left a core idle while they
# trained (an hour for dualmd_hold3 in sitting 11); before it, a barrier after each seed did the same.
# A failed teachers' pipeline skips its student; its status stops the caller at wait_all. Teachers that are
# not among the systems run (a student alone, with teachers trained before) do not hold their student back.
declare -A pipeline_pid=()  # "sys seed" -> the pid of its pipeline
students=()                 # "sys seed" of the students not started yet
pipeline() { parallel_stage_fn model_pipeline "$@"; pipeline_pid["$1 $2"]=$!; }
running() { [[ " $(jobs -rp | tr '\n' ' ') " == *" $1 "* ]]; }  # one of this shell's jobs, still running
start_ready_students() {  # start_ready_students "SYSTEMS"
  local item sys k teachers pid waiting=()
  for item in "${students[@]}"; do
    read -r sys k <<<"$item"
    teachers=$(teachers_of "$sys")
    pid=${pipeline_pid["$teachers $k"]:-}
    if [ -z "$pid" ] && [[ " $1 " == *" $teachers "* ]]; then waiting+=("$item"); continue; fi  # not started
    if [ -n "$pid" ] && running "$pid"; then waiting+=("$item"); continue; fi
    if [ -n "$pid" ] && ! wait "$pid"; then  # bash keeps an ended job's status, even after `wait -n`
      echo "$0: $teachers of seed $k failed, so $sys of seed $k is not trained" >&2
      continue
    fi
    pipeline "$sys" "$k" --set defense.teachers_dir="$(exp_of "$teachers" "$k")"
  done
  students=("${waiting[@]}")
}
free_slot() {  # free_slot "SYSTEMS": wait for a free core, giving each one that frees to a ready student first
  start_ready_students "$1"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || true
    start_ready_students "$1"
  done
}
run_models() {  # run_models SEEDS "SYSTEMS"
  local k sys
  for k in $(seq 1 "$1"); do
    for sys in $2; do
      if [ -n "$(teachers_of "$sys")" ]; then students+=("$sys $k"); continue; fi
      free_slot "$2"
      pipeline "$sys" "$k"
    done
  done
  while [ "${#students[@]}" -gt 0 ]; do
    start_ready_students "$2"
    [ "${#students[@]}" -eq 0 ] || wait -n || true
  done
}
