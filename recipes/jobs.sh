# A pool of background jobs shared by the recipes (recipes/tts_stages.sh) and the CPU study
# (egs/ljspeech/local/study_jobs.sh): whole stages at once, as Kaldi's --nj runs the parts of one. Source it
# after stages.sh; the caller sets $jobs (a number).
#
#   parallel_stage_fn CMD ARGS...   CMD in the background once fewer than $jobs commands run
#   parallel_stage N NAME CMD ...   the same for `run_stage N NAME CMD ...` (recipes/stages.sh)
#   wait_all                        join every command started; its status is the last failure's, if any
#   stop_jobs_on_signal             Ctrl-C or a kill reaches every job (see below)
#
# A job that fails is reported by wait_all (the barrier), which the caller runs after the jobs still running
# have ended: never while one of them may be writing.

pids=()
parallel_stage_fn() {
  wait_for_slot
  # A job stopped by a signal first lets its running command finish (a training saves its checkpoint), then
  # exits 143 instead of going on to its next stage: bash runs the trap once that command has returned.
  ( trap 'echo "$(date "+%Y-%m-%d %H:%M:%S") stopped by a signal: what ran is not marked done" >&2; exit 143' TERM
    "$@" ) &
  pids+=($!)
}
parallel_stage() { parallel_stage_fn run_stage "$@"; }
wait_for_slot() { while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done; }
wait_all() {
  local pid status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
  pids=()
  return $status
}

# Background commands of a script ignore SIGINT, so without this trap a Ctrl-C would stop the script and
# leave its jobs running with nobody waiting for them. On SIGINT or SIGTERM every process of every job gets
# SIGTERM (their process trees only, not the caller's: `make`, a test runner); the script waits until each
# has ended (a training saves a checkpoint and exits 143; nothing is marked done), then exits 130 or 143.
_job_tree() { local child; for child in $(pgrep -P "$1" 2>/dev/null); do _job_tree "$child"; done; echo "$1"; }
_stop_jobs() {
  trap "" INT TERM
  local pid
  for pid in "${pids[@]}"; do
    # shellcheck disable=SC2046  # one pid a word
    kill -TERM $(_job_tree "$pid") 2>/dev/null || true
  done
  wait
  exit "$1"
}
stop_jobs_on_signal() { trap '_stop_jobs 130' INT; trap '_stop_jobs 143' TERM; }
