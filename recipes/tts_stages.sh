# Stages 1-7 of a multi-speaker TTS recipe (egs/vctk, egs/libritts): prepare, features, vocoder, train,
# attack, evaluate, report. Source it from run.sh after stage 0 has set $corpus_dir, with stages.sh
# sourced and these set: seed nj device systems conf_dir protocol num_member_speakers defer_resample
# vocoder attacks attack_utts attack_params blackbox eval_utts, and the arrays train_conf (config layers
# and overrides for every system) and prepare_extra (further `holdtts prepare` options).
#
# Multi-speaker specifics: `holdtts prepare --protocol utterance|speaker` writes utt2spk, spk2utt and
# spk2id; every system is trained with model.n_speakers = the number of speakers in data/spk2id (the
# member speakers: the rows of the model's speaker table). With defer_resample=true the corpus's audio
# stays at its own rate and `holdtts features` resamples it to 22050 Hz once.

# ------------------------------------------------------------------ 1-2: tables, splits, features
prepare_args=(--corpus-dir "$corpus_dir" --data-dir data --seed "$seed" --protocol "$protocol" --nj "$nj")
[ -n "$num_member_speakers" ] && prepare_args+=(--num-member-speakers "$num_member_speakers")
[ "$defer_resample" = true ] && prepare_args+=(--defer-resample)
run_stage 1 prepare holdtts prepare "${prepare_args[@]}" "${prepare_extra[@]}"
run_stage 2 features holdtts features --data-dir data --dump-dir dump --device "$device" --nj "$nj"

# ------------------------------------------------------------------ 3: vocoder (members' audio only)
vocoder_arg=griffin-lim
if [ "$vocoder" = hifigan ]; then
  vocoder_conf=(--config ../ljspeech/conf/vocoder_v1.yaml)
  [ "$size" = tiny ] && vocoder_conf+=(--config ../ljspeech/conf/vocoder_tiny.yaml --set train.max_steps=200)
  run_stage 3 vocoder holdtts train-vocoder "${vocoder_conf[@]}" --exp-dir exp/vocoder --data-dir data \
    --split members --device "$device"
  vocoder_arg=exp/vocoder
elif [ "$vocoder" != griffin-lim ]; then
  echo "$0: --vocoder must be auto, griffin-lim or hifigan, got '$vocoder'" >&2; exit 2
fi

# ------------------------------------------------------------------ 4: TTS systems
speaker_conf=()
if [ "$stop_stage" -ge 4 ] && [ "$stage" -le 4 ]; then
  [ -f data/spk2id ] || { echo "$0: no data/spk2id: run stage 1 (prepare) first" >&2; exit 1; }
  speaker_conf=(--set "model.n_speakers=$(grep -c . data/spk2id)")
fi
for sys in $systems; do
  [ -f "$conf_dir/$sys.yaml" ] || { echo "$0: no $conf_dir/$sys.yaml for system '$sys'" >&2; exit 2; }
  run_stage 4 "train-$sys" holdtts train --config "$conf_dir/$sys.yaml" "${train_conf[@]}" "${speaker_conf[@]}" \
    --exp-dir "exp/$sys" --data-dir data --dump-dir dump --device "$device" --no-progress
done

# ------------------------------------------------------------------ 5: membership-inference attacks
attack_args=(--data-dir data --dump-dir dump --seed "$seed" --device "$device")
[ -n "$attack_utts" ] && attack_args+=(--max-utts "$attack_utts")
[ "$attack_params" = none ] || for p in $attack_params; do attack_args+=(--param "$p"); done
for sys in $systems; do
  if [[ "$sys" == dualmd* ]]; then
    for k in 1 2; do
      run_stage 5 "attack-$sys-teacher$k" holdtts attack --model "exp/$sys/teacher$k" \
        --out-dir "exp/$sys/attack_teacher$k" --attack "$attacks" "${attack_args[@]}"
    done
  else
    run_stage 5 "attack-$sys" holdtts attack --model "exp/$sys" --out-dir "exp/$sys/attack" --attack "$attacks" \
      "${attack_args[@]}"
  fi
  if [ "$blackbox" = true ]; then
    run_stage 5 "attack-$sys-blackbox" holdtts attack --model "exp/$sys" --out-dir "exp/$sys/attack_blackbox" \
      --attack synth_distance "${attack_args[@]}"
  fi
done

# ------------------------------------------------------------------ 6: audio quality (test sentences)
eval_args=(--data-dir data --dump-dir dump --vocoder "$vocoder_arg" --seed "$seed" --device "$device"
  --cache-dir exp/.cache/quality)
[ -n "$eval_utts" ] && eval_args+=(--max-utts "$eval_utts")
run_stage 6 evaluate-reference holdtts evaluate --reference-only --out-dir exp/reference "${eval_args[@]}"
for sys in $systems; do
  run_stage 6 "evaluate-$sys" holdtts evaluate --model "exp/$sys" --out-dir "exp/$sys/evaluate" "${eval_args[@]}"
done

# ------------------------------------------------------------------ 7: the report
stage_always=1 run_stage 7 report holdtts report --exp-dir exp --data-dir data --systems "${systems// /,}" \
  --overwrite

log "recipe finished (stages $stage to $stop_stage); report: exp/report/report.md"
