# Stage driver shared by every egs/*/run.sh (icefall/Kaldi style: numbered stages, a timed log line per
# stage, done markers). Source it after parse_options.sh; it uses $stage, $stop_stage and $done_dir.
#
#   run_stage N NAME COMMAND [ARGS...]
#
# runs COMMAND when N is within [stage, stop_stage], logging to $log_dir/stageN.NAME.log. On success a
# marker $done_dir/stageN.NAME.done records the command and the checksums of the files it names, so
#   - re-running the recipe skips the stage (one log line says so);
#   - a stage that was interrupted has no marker and is redone (each holdtts command writes atomically,
#     so a half-finished stage leaves nothing that looks complete);
#   - a stage whose command or input files changed since it was done is an error naming the marker:
#     outputs are never silently reused nor silently overwritten;
#   - `stage_always=1 run_stage ...` runs every time (for cheap stages that summarise the others).

log() { printf '%s %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*" >&2; }

# Options that change how a stage runs but not what it produces; left out of the fingerprint.
stage_ignore_options=${stage_ignore_options:-"--nj --device --num-workers"}

_stage_fingerprint() {
  printf 'command:'
  local skip=0 arg
  for arg in "$@"; do
    if [ $skip = 1 ]; then skip=0; continue; fi
    if [[ " $stage_ignore_options " == *" $arg "* ]]; then skip=1; continue; fi
    printf ' %q' "$arg"
  done
  printf '\n'
  for arg in "$@"; do
    if [ -f "$arg" ]; then
      printf 'file %s %s\n' "$arg" "$(sha256sum "$arg" | cut -d' ' -f1)"
    fi
  done
}

run_stage() {
  local n=$1 name=$2
  shift 2
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then
    return 0
  fi
  mkdir -p "$done_dir" "$log_dir"
  local marker="$done_dir/stage$n.$name.done" logfile="$log_dir/stage$n.$name.log"
  local fingerprint
  fingerprint=$(_stage_fingerprint "$@")
  if [ -f "$marker" ] && [ "${stage_always:-0}" != 1 ]; then
    if [ "$(cat "$marker")" = "$fingerprint" ]; then
      log "stage $n ($name): already done, skipping (remove $marker to redo)"
      return 0
    fi
    log "stage $n ($name): ERROR: it was done with a different command or inputs."
    diff <(cat "$marker") <(printf '%s\n' "$fingerprint") >&2 || true
    log "  Remove $marker (and the outputs it made) to redo it with the new settings."
    exit 1
  fi
  log "stage $n ($name): start: $*"
  local start=$SECONDS
  if ! "$@" 2>&1 | tee "$logfile"; then
    log "stage $n ($name): FAILED after $((SECONDS - start)) s (log: $logfile)"
    exit 1
  fi
  printf '%s\n' "$fingerprint" > "$marker.tmp" && mv "$marker.tmp" "$marker"
  log "stage $n ($name): done in $((SECONDS - start)) s"
}
