#!/usr/bin/env bash
# The LJSpeech recipe of holdtts: corpus -> tables and membership splits -> features -> vocoder ->
# TTS systems (order-1 Grad-TTS, HOLD++ of orders 2-4, dual-model defenses, DP-SGD) -> membership-
# inference attacks -> audio quality -> one privacy-vs-quality report.
#
#   ./run.sh                                   # the embedded mini corpus (eSpeak NG, offline), tiny models, CPU
#   ./run.sh --corpus ljspeech                 # downloads LJSpeech 1.1 (2.6 GB), published model sizes
#   ./run.sh --corpus ljspeech --ljspeech-dir /data/LJSpeech-1.1   # an existing copy
#   ./run.sh --stage 4 --stop-stage 4 --systems "hold3"            # one stage, one system
#   ./run.sh --systems "vp hold3 dualmd distillmd vp_dp"           # any systems with a conf/<name>.yaml
#   ./run.sh --size full --train-params "train.max_steps=20000"    # overrides for every system's config
#
# Stages: 0 corpus, 1 prepare, 2 features, 3 vocoder, 4 train, 5 attack, 6 evaluate, 7 report.
# Outputs (relative to this directory): downloads/ (corpora), data/ (tables, splits), dump/ (features),
# exp/<system>/ (checkpoints, TensorBoard, attack*/, evaluate/), exp/report/, exp/log/ (a log per
# stage), exp/.done/ (done markers, written only when a stage's command exits 0: a finished stage is
# skipped; one whose command or inputs changed, down to the splits' member lists and the features'
# manifest, is an error, never a silent reuse; see recipes/stages.sh and docs/reliability.md).
# An interrupted training (Ctrl-C, SIGTERM) saves a checkpoint, stops the recipe with status 130 or 143
# and is resumed by running the recipe again.
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
corpus=mini            # mini | ljspeech
ljspeech_dir=          # an existing LJSpeech-1.1 directory (skips the download)
mini_utts=256          # size of the mini corpus (up to LJSpeech's 13,100)
seed=1234              # splits, corpus prosody, training, attacks
num_members=           # members (default: half of the corpus, PIA's protocol); non-members: as many
systems="vp hold2 hold3 hold4 dualmd distillmd"   # each needs conf/<system>.yaml
size=auto              # auto (tiny for mini, full for ljspeech) | tiny | full
train_params=          # config overrides for every system, e.g. "train.max_steps=20000 train.batch_size=32"
vocoder=auto           # auto (griffin-lim for mini, hifigan for ljspeech) | griffin-lim | hifigan
attacks=auto           # auto (a CPU-friendly set for mini, all for ljspeech) | all | a comma list
attack_utts=           # at most this many members and as many non-members per attack (default: mini 32, else all)
attack_params=auto     # auto (mini: fewer Monte-Carlo draws; ljspeech: none) | none | e.g. "loss.draws=4 pia_mc.draws=16"
blackbox=true          # also attack every system through its synthesis (one synthesis per utterance)
eval_utts=             # quality: the first N test sentences (default: mini 8, ljspeech all)
nj=$(nproc)            # parallel jobs for corpus synthesis, wav checks and feature decoding
device=auto            # auto | cpu | cuda
recipe_options="stage stop_stage corpus ljspeech_dir mini_utts seed num_members systems size train_params vocoder"
recipe_options+=" attacks attack_utts attack_params blackbox eval_utts nj device"
help_message="Usage: $0 [options]   (see the comment at the top of run.sh and the README)"

. ./path.sh
. ../../recipes/parse_options.sh
. ../../recipes/stages.sh

done_dir=exp/.done
log_dir=exp/log

case "$corpus" in
  mini)
    [ "$size" = auto ] && size=tiny
    [ "$vocoder" = auto ] && vocoder=griffin-lim
    [ "$attacks" = auto ] && attacks=loss,pia,pian,sima,pia_mc,sima_mc,duration,prior
    [ -z "$attack_utts" ] && attack_utts=32
    [ "$attack_params" = auto ] && attack_params="pia_mc.draws=2 sima_mc.draws=2 synth_distance.steps=5"
    [ -z "$eval_utts" ] && eval_utts=8
    ;;
  ljspeech)
    [ "$size" = auto ] && size=full
    [ "$vocoder" = auto ] && vocoder=hifigan
    [ "$attacks" = auto ] && attacks=all
    [ "$attack_params" = auto ] && attack_params=none
    ;;
  *) echo "$0: --corpus must be mini or ljspeech, got '$corpus'" >&2; exit 2 ;;
esac
train_conf=()
[ "$size" = tiny ] && train_conf=(--config conf/tiny.yaml)
for p in $train_params; do train_conf+=(--set "$p"); done

# ------------------------------------------------------------------ 0: the corpus
if [ "$corpus" = mini ]; then
  corpus_dir=downloads/mini
  run_stage 0 make-corpus holdtts make-corpus --out-dir "$corpus_dir" --num-utts "$mini_utts" \
    --seed "$seed" --nj "$nj"
elif [ -n "$ljspeech_dir" ]; then
  corpus_dir=$ljspeech_dir
else
  corpus_dir=downloads/LJSpeech-1.1
  run_stage 0 download holdtts download --out-dir downloads
fi

# ------------------------------------------------------------------ 1-2: tables, splits, features
prepare_args=(--corpus-dir "$corpus_dir" --data-dir data --seed "$seed" --nj "$nj")
[ -n "$num_members" ] && prepare_args+=(--num-members "$num_members")
run_stage 1 prepare holdtts prepare "${prepare_args[@]}"
run_stage 2 features holdtts features --data-dir data --dump-dir dump --device "$device" --nj "$nj"

# ------------------------------------------------------------------ 3: vocoder (members' audio only)
vocoder_arg=griffin-lim
if [ "$vocoder" = hifigan ]; then
  vocoder_conf=(--config conf/vocoder_v1.yaml)
  [ "$size" = tiny ] && vocoder_conf+=(--config conf/vocoder_tiny.yaml --set train.max_steps=200)
  run_stage 3 vocoder holdtts train-vocoder "${vocoder_conf[@]}" --exp-dir exp/vocoder --data-dir data \
    --split members --device "$device"
  vocoder_arg=exp/vocoder
elif [ "$vocoder" != griffin-lim ]; then
  echo "$0: --vocoder must be auto, griffin-lim or hifigan, got '$vocoder'" >&2; exit 2
fi

# ------------------------------------------------------------------ 4: TTS systems
for sys in $systems; do
  [ -f "conf/$sys.yaml" ] || { echo "$0: no conf/$sys.yaml for system '$sys'" >&2; exit 2; }
  run_stage 4 "train-$sys" holdtts train --config "conf/$sys.yaml" "${train_conf[@]}" --exp-dir "exp/$sys" \
    --data-dir data --dump-dir dump --device "$device" --no-progress
done

# ------------------------------------------------------------------ 5: membership-inference attacks
attack_args=(--data-dir data --dump-dir dump --seed "$seed" --device "$device")
[ -n "$attack_utts" ] && attack_args+=(--max-utts "$attack_utts")
[ "$attack_params" = none ] || for p in $attack_params; do attack_args+=(--param "$p"); done
for sys in $systems; do
  if [[ "$sys" == dualmd* ]]; then
    # white-box: each teacher against its own half (the deployed pipeline has no single score network)
    for k in 1 2; do
      run_stage 5 "attack-$sys-teacher$k" holdtts attack --model "exp/$sys/teacher$k" \
        --out-dir "exp/$sys/attack_teacher$k" --attack "$attacks" "${attack_args[@]}"
    done
  else
    run_stage 5 "attack-$sys" holdtts attack --model "exp/$sys" --out-dir "exp/$sys/attack" --attack "$attacks" \
      "${attack_args[@]}"
  fi
  # black-box, for every system alike: the distance from a recording to the synthesis of its text
  if [ "$blackbox" = true ]; then
    run_stage 5 "attack-$sys-blackbox" holdtts attack --model "exp/$sys" --out-dir "exp/$sys/attack_blackbox" \
      --attack synth_distance "${attack_args[@]}"
  fi
done

# ------------------------------------------------------------------ 6: audio quality (non-member test sentences)
eval_args=(--data-dir data --dump-dir dump --vocoder "$vocoder_arg" --seed "$seed" --device "$device"
  --cache-dir exp/.cache/quality)
[ -n "$eval_utts" ] && eval_args+=(--max-utts "$eval_utts")
# the ceiling row and the sanity table: real test recordings, raw and vocoded, against other non-members
run_stage 6 evaluate-reference holdtts evaluate --reference-only --out-dir exp/reference "${eval_args[@]}"
for sys in $systems; do
  run_stage 6 "evaluate-$sys" holdtts evaluate --model "exp/$sys" --out-dir "exp/$sys/evaluate" "${eval_args[@]}"
done

# ------------------------------------------------------------------ 7: the report
# always rebuilt: it reads whatever the stages above left in exp/
stage_always=1 run_stage 7 report holdtts report --exp-dir exp --data-dir data --systems "${systems// /,}" \
  --overwrite

log "recipe finished (stages $stage to $stop_stage); report: exp/report/report.md"
