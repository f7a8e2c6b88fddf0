# Stage driver shared by every egs/*/run.sh (icefall/Kaldi style: numbered stages, a timed log line per
# stage, done markers). Source it after parse_options.sh; it uses $stage, $stop_stage and $done_dir.
#
#   run_stage N NAME COMMAND [ARGS...]
#
# runs COMMAND when N is within [stage, stop_stage], logging to $log_dir/stageN.NAME.log. When COMMAND
# exits 0 (for `holdtts train`: it reached its step limit), a marker $done_dir/stageN.NAME.done records
# the command and the content of what it names (its fingerprint, taken after the run):
#   - a file: its sha256;
#   - a data directory (splits.json): the sha256 of its tables, i.e. of every split's ids and texts
#     (and of utt2spk, spk2utt and spk2id when the corpus has speakers);
#   - a feature directory (manifest.json): the manifest's sha256 (it holds the inputs' checksums);
#   - an experiment (train_summary.json or system.json) and a corpus (metadata.csv): that file's sha256;
#   - an input named by value: a `KEY=PATH` argument naming a file or directory (the study's
#     `--set defense.teachers_dir=DIR`), and each `KEY=PATH` line of $stage_inputs (inputs a command reads
#     from its config, e.g. a DistillMD student's teachers): the same lines for PATH and for each directory
#     in it, each after "input KEY=PATH:" ("absent" for a missing $stage_inputs path);
# so
#   - re-running the recipe skips the stage (one log line says so);
#   - a stage that failed or was interrupted has no marker and is redone (each holdtts command writes
#     atomically, and training resumes from its last checkpoint); an interrupted one (exit 130 or 143,
#     SIGINT or SIGTERM) stops the recipe with the same status;
#   - a stage whose command or inputs changed since it was done (e.g. splits remade with other members
#     under a trained model) is an error naming the marker: outputs are never silently reused nor
#     silently overwritten;
#   - `stage_always=1 run_stage ...` runs every time (for cheap stages that summarise the others).
#   - `stage_inputs=$'KEY=PATH\n...' run_stage ...` adds inputs the command line does not name (above).
#   - a marker written before inputs were recorded (no "input" line) that matches apart from them is
#     taken as done, as then, and its inputs are recorded from now on (a log line says so).
#   - `stage_console=0 run_stage ...` writes the command's output to its log only, not also to stderr.

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
      printf 'file %s %s\n' "$arg" "$(_sha256 "$arg")"
    elif [ -d "$arg" ]; then
      _dir_fingerprint "$arg"
    fi
  done
  for arg in "$@"; do  # KEY=PATH, also as the value of an option (--set=KEY=PATH), when PATH exists
    if [[ "$arg" =~ ^(--[A-Za-z0-9-]+=)?([A-Za-z_][A-Za-z0-9_.]*=(.+))$ ]] && [ -e "${BASH_REMATCH[3]}" ]; then
      _input_fingerprint "${BASH_REMATCH[2]}"
    fi
  done
  while IFS= read -r arg; do  # one KEY=PATH a line (a path may hold spaces)
    [ -z "$arg" ] || _input_fingerprint "$arg"
  done <<<"${stage_inputs:-}"
}

# An input named by value (KEY=PATH): the lines of its content, each after "input KEY=PATH:"; for a
# directory, also those of each directory in it (DualMD's teacher1/ and teacher2/ under exp/dualmd)
_input_fingerprint() {
  local path=${1#*=} line sub
  if [ -f "$path" ]; then
    printf 'input %s: file %s\n' "$1" "$(_sha256 "$path")"
  elif [ -d "$path" ]; then
    {
      _dir_fingerprint "$path"
      while IFS= read -r -d '' sub; do _dir_fingerprint "$sub"; done \
        < <(find "$path" -mindepth 1 -maxdepth 1 -type d -print0 | LC_ALL=C sort -z)
    } | while IFS= read -r line; do printf 'input %s: %s\n' "$1" "$line"; done
  else
    printf 'input %s: absent\n' "$1"
  fi
}

_sha256() { sha256sum "$1" | cut -d' ' -f1; }

# The content of a directory a stage reads or writes, for the kinds holdtts makes; nothing for others.
_dir_fingerprint() {
  local dir=${1%/} tables
  if [ -f "$dir/splits.json" ]; then
    # every split's tables (ids, texts, lengths): the member lists themselves, not the creation time
    tables=$(cd "$dir" && find . -mindepth 2 -maxdepth 2 -type f \
      \( -name wav.scp -o -name text -o -name text.raw -o -name utt2num_samples \) -print0 \
      | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1)
    printf 'data %s %s\n' "$dir" "$tables"
    # a multi-speaker data directory's speaker tables (a single-speaker one has none: no line)
    if [ -f "$dir/utt2spk" ]; then
      tables=$(cd "$dir" && find . -mindepth 1 -maxdepth 1 -type f \
        \( -name utt2spk -o -name spk2utt -o -name spk2id \) -print0 \
        | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1)
      printf 'speakers %s %s\n' "$dir" "$tables"
    fi
  fi
  [ -f "$dir/manifest.json" ] && printf 'features %s %s\n' "$dir" "$(_sha256 "$dir/manifest.json")"
  [ -f "$dir/train_summary.json" ] && printf 'trained %s %s\n' "$dir" "$(_sha256 "$dir/train_summary.json")"
  [ -f "$dir/system.json" ] && printf 'system %s %s\n' "$dir" "$(_sha256 "$dir/system.json")"
  [ -f "$dir/metadata.csv" ] && printf 'corpus %s %s\n' "$dir" "$(_sha256 "$dir/metadata.csv")"
  return 0
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
    if ! grep -q '^input ' "$marker" && [ "$(cat "$marker")" = "$(grep -v '^input ' <<<"$fingerprint" || true)" ]; then
      log "stage $n ($name): already done, skipping; its marker predates recorded inputs, which are recorded" \
        "now (whether they changed since it was done cannot be told from it)"
      printf '%s\n' "$fingerprint" > "$marker.tmp" && mv "$marker.tmp" "$marker"
      return 0
    fi
    log "stage $n ($name): ERROR: it was done with a different command or inputs."
    diff <(cat "$marker") <(printf '%s\n' "$fingerprint") >&2 || true
    log "  Remove $marker (and the outputs it made) to redo it with the new settings."
    exit 1
  fi
  log "stage $n ($name): start: $*"
  local start=$SECONDS status
  if [ "${stage_console:-1}" = 1 ]; then
    # tee ignores SIGINT (-i) and SIGTERM: a Ctrl-C or kill reaches the command, which saves its work, and
    # tee keeps logging until it exits
    "$@" 2>&1 | (trap '' TERM; exec tee -i "$logfile") && status=0 || status=${PIPESTATUS[0]}
  else  # stage_console=0: to the log only (commands side by side would garble the terminal)
    "$@" > "$logfile" 2>&1 && status=0 || status=$?
  fi
  if [ "$status" = 130 ] || [ "$status" = 143 ]; then
    log "stage $n ($name): INTERRUPTED (exit $status) after $((SECONDS - start)) s; not marked done, re-run" \
      "to resume it (log: $logfile)"
    exit "$status"
  elif [ "$status" != 0 ]; then
    log "stage $n ($name): FAILED (exit $status) after $((SECONDS - start)) s (log: $logfile)"
    exit 1
  fi
  # the fingerprint of what the stage made, so that a re-run compares like with like
  _stage_fingerprint "$@" > "$marker.tmp" && mv "$marker.tmp" "$marker"
  log "stage $n ($name): done in $((SECONDS - start)) s"
}
