#!/usr/bin/env bash
# The LJSpeech recipe of holdtts: corpus -> tables and membership splits -> features -> vocoder ->
# TTS systems (order-1 Grad-TTS, HOLD++ of orders 2-4, dual-model defenses, DP-SGD) -> membership-
# inference attacks -> audio quality -> one privacy-vs-quality report.
#
#   ./run.sh                                   # the embedded mini corpus (eSpeak NG, offline), tiny models, CPU:
#                                              # vp and hold3 on 8 members, the demo's membership experiment
#   ./run.sh --corpus ljspeech                 # downloads LJSpeech 1.1 (2.6 GB), published model sizes
#   ./run.sh --corpus ljspeech --ljspeech-dir /data/LJSpeech-1.1   # an existing copy
#   ./run.sh --stage 4 --stop-stage 4 --systems "hold3"            # one stage, one system
#   ./run.sh --systems "vp hold3 dualmd distillmd vp_dp"           # any systems with a conf/<name>.yaml
#   ./run.sh --size full --train-params "train.max_steps=20000"    # overrides for every system's config
#
# Stages: 0 corpus, 1 prepare, 2 features, 3 vocoder, 4 train, 5 attack, 6 evaluate, 7 report (1-7 in
# ../../recipes/tts_stages.sh, shared with egs/vctk and egs/libritts).
# Outputs (relative to this directory): downloads/ (corpora), data/ (tables, splits), dump/ (features),
# exp/<system>/ (checkpoints, TensorBoard, attack*/, evaluate/), exp/report/, exp/log/ (a log per
# stage), exp/.done/ (done markers, written only when a stage's command exits 0: a finished stage is
# skipped; one whose command or inputs changed, down to the splits' member lists and the features'
# manifest, is an error, never a silent reuse; see recipes/stages.sh and docs/reliability.md).
# An interrupted training (Ctrl-C, SIGTERM) saves a checkpoint, stops the recipe with status 130 or 143
# and is resumed by running the recipe again.
set -euo pipefail
cd "$(dirname "$0")"

. ../../recipes/tts_options.sh   # the options every recipe shares (stage, size, attacks, ...), their defaults
ljspeech_dir=          # an existing LJSpeech-1.1 directory (skips the download)
num_members=           # members (default: mini at --size tiny 8, else half of the corpus, PIA's protocol)
num_nonmembers=        # non-members (default: mini at --size tiny 128, else as many as members)
mini_max_words=6       # the mini corpus's longest sentence (words): short clips, memorised within minutes
systems=auto           # auto (mini: vp hold3; else vp hold2 hold3 hold4 dualmd distillmd); each needs conf/<system>.yaml
recipe_options+=" ljspeech_dir num_members num_nonmembers mini_max_words systems"

. ./path.sh
. ../../recipes/parse_options.sh
. ../../recipes/stages.sh

done_dir=exp/.done
log_dir=exp/log
conf_dir=conf
corpus_name=ljspeech
. ../../recipes/corpus_defaults.sh
# The mini corpus is the demo's membership experiment (docs/demo_calibration.md): 8 members of short
# sentences against 128 non-members, and at the tiny size the study's model at a budget where vp leaks on
# every calibration seed (conf/mini_membership.yaml), so the report has a leak to hold HOLD++ against.
# Given either count, the splits are the user's (and the test sentences prepare's default); at --size full
# (the GPU experiment, local/gpu_experiment.sh) they are prepare's defaults: half the corpus each.
# The report then also reads every system at the attack cells that calibration pre-registered on vp alone
# (docs/demo_calibration/chosen.json): all 8 members count, not a held-out half of 4.
mini_membership=()
mini_test=()
report_extra=()
if [ "$corpus" = mini ]; then
  if [ -z "$num_members$num_nonmembers" ] && [ "$size" = tiny ]; then
    num_members=8 num_nonmembers=128 mini_test=(--num-test 16)  # the calibration's splits exactly
    # the cells were pre-registered for this corpus, these splits and this budget only
    if [ "$seed $mini_utts $mini_max_words $size" = "1234 256 6 tiny" ] && [ -z "$train_params" ]; then
      preregistered=../../docs/demo_calibration/chosen.json
      if [ -f "$preregistered" ]; then
        report_extra=(--preregistered "$preregistered")
      else  # a copy of the recipe outside the repository
        echo "$0: warning: no $preregistered: the report will not read the demo's pre-registered cells" >&2
      fi
    fi
  fi
  [ "$systems" = auto ] && systems="vp hold3"
  mini_membership=(--config conf/mini_membership.yaml)
fi
[ "$systems" = auto ] && systems="vp hold2 hold3 hold4 dualmd distillmd"
train_conf=()
[ "$size" = tiny ] && train_conf=(--config conf/tiny.yaml "${mini_membership[@]}")
for p in $train_params; do train_conf+=(--set "$p"); done
prepare_extra=()
[ -n "$num_members" ] && prepare_extra+=(--num-members "$num_members")
[ -n "$num_nonmembers" ] && prepare_extra+=(--num-nonmembers "$num_nonmembers")
prepare_extra+=("${mini_test[@]}")

# ------------------------------------------------------------------ 0: the corpus
if [ "$corpus" = mini ]; then
  corpus_dir=downloads/mini
  run_stage 0 make-corpus holdtts make-corpus --out-dir "$corpus_dir" --num-utts "$mini_utts" \
    --seed "$seed" --max-words "$mini_max_words" --nj "$nj"
elif [ -n "$ljspeech_dir" ]; then
  corpus_dir=$ljspeech_dir
else
  corpus_dir=downloads/LJSpeech-1.1
  run_stage 0 download holdtts download --out-dir downloads
fi

# stages 1-7, shared with the multi-speaker recipes
. ../../recipes/tts_stages.sh
