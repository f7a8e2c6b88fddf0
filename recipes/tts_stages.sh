# Stages 1-7 of every TTS recipe (egs/ljspeech, egs/vctk, egs/libritts): prepare, features, vocoder, train,
# attack, evaluate, report. Source it from run.sh after stage 0 has set $corpus_dir, with stages.sh sourced
# and these set: seed nj jobs device size systems conf_dir vocoder attacks attack_utts attack_params blackbox
# eval_utts, and the arrays train_conf (config layers and overrides for every system) and prepare_extra
# (further `holdtts prepare` options).
#
# Multi-speaker recipes (multi_speaker=true, recipes/speaker_recipe.sh) put `--protocol utterance|speaker`
# in prepare_extra, so that `holdtts prepare` writes utt2spk, spk2utt and spk2id, and every system is
# trained with model.n_speakers = the number of speakers in data/spk2id (the member speakers: the rows of
# the model's speaker table). With --defer-resample in prepare_extra the corpus's audio stays at its own
# rate and `holdtts features` resamples it to 22050 Hz once.
multi_speaker=${multi_speaker:-false}

# ------------------------------------------------------------------ 1-2: tables, splits, features
run_stage 1 prepare holdtts prepare --corpus-dir "$corpus_dir" --data-dir data --seed "$seed" --nj "$nj" \
  "${prepare_extra[@]}"
run_stage 2 features holdtts features --data-dir data --dump-dir dump --device "$device" --nj "$nj"

# ------------------------------------------------------------------ 3: vocoder (members' audio only)
vocoder_arg=griffin-lim
if [ "$vocoder" = hifigan ]; then
  vocoder_conf=(--config "$conf_dir/vocoder_v1.yaml")
  [ "$size" = tiny ] && vocoder_conf+=(--config "$conf_dir/vocoder_tiny.yaml" --set train.max_steps=200)
  run_stage 3 vocoder holdtts train-vocoder "${vocoder_conf[@]}" --exp-dir exp/vocoder --data-dir data \
    --split members --device "$device"
  vocoder_arg=exp/vocoder
elif [ "$vocoder" != griffin-lim ]; then
  echo "$0: --vocoder must be auto, griffin-lim or hifigan, got '$vocoder'" >&2; exit 2
fi

# ------------------------------------------------------------------ stages 4-6: how many jobs at once
# With --jobs N above 1, each of stages 4-6 runs up to N of its commands at once (the pool of recipes/jobs.sh),
# each with (cores)/N threads unless OMP_NUM_THREADS is set, its output in its log only; a stage starts when
# the one before has ended, and a failed command stops the recipe once the rest of its stage has run (none is
# cut off mid-write). auto: 2 for the mini corpus at the tiny size on a CPU with 2 cores or more (two
# one-thread trainings of the tiny model outrun one two-thread training: bench/bench_threads.py), else 1:
# one command at a time, in the foreground, as in every release before.
. ../../recipes/jobs.sh
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc itself obeys OMP_NUM_THREADS
if [ "$jobs" = auto ]; then
  jobs=1
  if [ "$corpus" = mini ] && [ "$size" = tiny ] && [ "$cores" -ge 2 ] && [ "$stage" -le 6 ] && [ "$stop_stage" -ge 4 ]
  then  # the device: a CPU, or auto where torch finds no GPU (exit 0; a GPU or no torch: 1)
    if [ "$device" = cpu ] || { [ "$device" = auto ] && python -c 'import sys, torch; sys.exit(torch.cuda.is_available())' 2>/dev/null; }; then
      jobs=2
    fi
  fi
fi
job_threads=$(( cores / jobs > 0 ? cores / jobs : 1 ))
_job_stage() {  # run_stage in a job: its threads, its output to its log only
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$job_threads} MKL_NUM_THREADS=${MKL_NUM_THREADS:-$job_threads}
  stage_console=0 run_stage "$@"
}
recipe_stage() { if [ "$jobs" -gt 1 ]; then parallel_stage_fn _job_stage "$@"; else run_stage "$@"; fi; }
if [ "$jobs" -gt 1 ]; then
  stop_jobs_on_signal
  [ "$stage" -gt 6 ] || [ "$stop_stage" -lt 4 ] || log "stages 4-6: up to $jobs commands at once," \
    "OMP_NUM_THREADS=${OMP_NUM_THREADS:-$job_threads} each, their output in $log_dir/ (--jobs)"
fi

# ------------------------------------------------------------------ 4: TTS systems
# defense.teachers_dir of the config these `holdtts train` options make (empty: the student trains its own)
teachers_dir_of() {
  holdtts train "$@" --print-value defense.teachers_dir ||
    { echo "$0: cannot read the config of: holdtts train $*" >&2; exit 1; }
}
speaker_conf=()
if [ "$multi_speaker" = true ] && [ "$stop_stage" -ge 4 ] && [ "$stage" -le 4 ]; then
  [ -f data/spk2id ] || { echo "$0: no data/spk2id: run stage 1 (prepare) first" >&2; exit 1; }
  speaker_conf=(--set "model.n_speakers=$(grep -c . data/spk2id)")
fi
for sys in $systems; do
  [ -f "$conf_dir/$sys.yaml" ] || { echo "$0: no $conf_dir/$sys.yaml for system '$sys'" >&2; exit 2; }
done
train_status=0
for sys in $systems; do
  # a DistillMD student trains from DualMD's teachers (its config's defense.teachers_dir): after every
  # training before it, and not at all when one of them failed (the others still run). Its done marker
  # records the teachers' content too (stage_inputs): retrained teachers make a done student an error
  # naming its marker, never a silent reuse.
  teachers=
  if [[ "$sys" == distillmd* ]] && [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    wait_all || train_status=$?
    if [ "$train_status" != 0 ]; then log "stage 4 (train-$sys): not started: a training before it failed"; continue; fi
    teachers=$(teachers_dir_of --config "$conf_dir/$sys.yaml" "${train_conf[@]}" "${speaker_conf[@]}")
  fi
  stage_inputs=${teachers:+defense.teachers_dir=$teachers} \
    recipe_stage 4 "train-$sys" holdtts train --config "$conf_dir/$sys.yaml" "${train_conf[@]}" "${speaker_conf[@]}" \
    --exp-dir "exp/$sys" --data-dir data --dump-dir dump --device "$device" --no-progress
done
wait_all || train_status=$?
[ "$train_status" = 0 ] || exit "$train_status"

# ------------------------------------------------------------------ 5: membership-inference attacks
attack_args=(--data-dir data --dump-dir dump --seed "$seed" --device "$device")
[ -n "$attack_utts" ] && attack_args+=(--max-utts "$attack_utts")
[ "$attack_params" = none ] || for p in $attack_params; do attack_args+=(--param "$p"); done
for sys in $systems; do
  if [[ "$sys" == dualmd* ]]; then
    # white-box: each teacher against its own half (the deployed pipeline has no single score network)
    for k in 1 2; do
      recipe_stage 5 "attack-$sys-teacher$k" holdtts attack --model "exp/$sys/teacher$k" \
        --out-dir "exp/$sys/attack_teacher$k" --attack "$attacks" "${attack_args[@]}"
    done
  else
    recipe_stage 5 "attack-$sys" holdtts attack --model "exp/$sys" --out-dir "exp/$sys/attack" --attack "$attacks" \
      "${attack_args[@]}"
  fi
  # black-box, for every system alike: the distance from a recording to the synthesis of its text
  if [ "$blackbox" = true ]; then
    recipe_stage 5 "attack-$sys-blackbox" holdtts attack --model "exp/$sys" --out-dir "exp/$sys/attack_blackbox" \
      --attack synth_distance "${attack_args[@]}"
  fi
done
wait_all

# ------------------------------------------------------------------ 6: audio quality (test sentences)
eval_args=(--data-dir data --dump-dir dump --vocoder "$vocoder_arg" --seed "$seed" --device "$device"
  --cache-dir exp/.cache/quality --metrics "$eval_metrics")
[ -n "$eval_utts" ] && eval_args+=(--max-utts "$eval_utts")
# the mini corpus's eSpeak recogniser (wer_espeak): trained once per machine into ~/.cache/holdtts (about half
# an hour on 2 cores), here as its own logged and timed stage rather than inside the first evaluate
if [ "$corpus" = mini ]; then
  case ",$eval_metrics," in
    *,-wer_espeak,*) ;;
    *,auto,*|*,wer_espeak,*) run_stage 6 build-recognizer holdtts build-recognizer --recognizer espeak ;;
  esac
fi
# the ceiling row and the sanity table: real test recordings, raw and vocoded, against other non-members
recipe_stage 6 evaluate-reference holdtts evaluate --reference-only --out-dir exp/reference "${eval_args[@]}"
for sys in $systems; do
  recipe_stage 6 "evaluate-$sys" holdtts evaluate --model "exp/$sys" --out-dir "exp/$sys/evaluate" "${eval_args[@]}"
done
wait_all

# ------------------------------------------------------------------ 7: the report
# always rebuilt: it reads whatever the stages above left in exp/
# report_extra (optional, set by run.sh): further `holdtts report` options, e.g. the mini corpus's
# pre-registered attack cells
declare -p report_extra >/dev/null 2>&1 || report_extra=()
stage_always=1 run_stage 7 report holdtts report --exp-dir exp --data-dir data --systems "${systems// /,}" \
  --overwrite "${report_extra[@]}"

log "recipe finished (stages $stage to $stop_stage); report: exp/report/report.md"
