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
  "$@" &
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
# leave its jobs running with nobody waiting for them. Every process of the group gets SIGTERM: a training
# saves a checkpoint and exits 143, and nothing is marked done.
stop_jobs_on_signal() { trap 'trap "" INT TERM; kill -TERM 0 2>/dev/null; wait; exit 130' INT TERM; }
