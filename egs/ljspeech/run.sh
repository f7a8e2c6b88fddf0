#!/usr/bin/env bash
# LJSpeech recipe for holdtts: corpus -> tables and splits -> features (-> train -> attack -> evaluate
# -> report, added stage by stage). Runs on the real LJSpeech 1.1 (--corpus ljspeech) or on the embedded
# mini corpus that holdtts synthesizes offline with eSpeak NG (--corpus mini, the default).
#
#   ./run.sh                                  # the mini corpus, every stage, on the CPU
#   ./run.sh --corpus ljspeech                # downloads LJSpeech 1.1 (2.6 GB) and runs at full scale
#   ./run.sh --corpus ljspeech --ljspeech-dir /data/LJSpeech-1.1   # use an existing copy
#   ./run.sh --stage 2 --stop-stage 2         # one stage
#
# Outputs (relative to this directory): downloads/ (corpora), data/ (tables, splits), dump/ (features),
# exp/ (models, attacks, report), exp/log/ (one log per stage), exp/.done/ (done markers).
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
corpus=mini          # mini | ljspeech
ljspeech_dir=        # an existing LJSpeech-1.1 directory (skips the download)
mini_utts=256        # size of the mini corpus (up to LJSpeech's 13,100)
seed=1234            # splits, corpus prosody, training
num_members=         # members (default: half of the corpus, PIA's protocol); non-members: as many
nj=$(nproc)          # parallel jobs for corpus synthesis and wav checks
device=auto          # feature extraction device: auto | cpu | cuda
recipe_options="stage stop_stage corpus ljspeech_dir mini_utts seed num_members nj device"
help_message="Usage: $0 [options]   (see the comment at the top of run.sh and the README)"

. ./path.sh
. ../../recipes/parse_options.sh
. ../../recipes/stages.sh

done_dir=exp/.done
log_dir=exp/log

case "$corpus" in
  mini)
    corpus_dir=downloads/mini
    run_stage 0 make-corpus holdtts make-corpus --out-dir "$corpus_dir" --num-utts "$mini_utts" \
      --seed "$seed" --nj "$nj"
    ;;
  ljspeech)
    if [ -n "$ljspeech_dir" ]; then
      corpus_dir=$ljspeech_dir
    else
      corpus_dir=downloads/LJSpeech-1.1
      run_stage 0 download holdtts download --out-dir downloads
    fi
    ;;
  *) echo "$0: --corpus must be mini or ljspeech, got '$corpus'" >&2; exit 2 ;;
esac

prepare_args=(--corpus-dir "$corpus_dir" --data-dir data --seed "$seed" --nj "$nj")
[ -n "$num_members" ] && prepare_args+=(--num-members "$num_members")
run_stage 1 prepare holdtts prepare "${prepare_args[@]}"

run_stage 2 features holdtts features --data-dir data --dump-dir dump --device "$device" --nj "$nj"

log "recipe finished (stages $stage to $stop_stage)"
