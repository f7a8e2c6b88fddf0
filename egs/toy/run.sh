#!/usr/bin/env bash
# The toy study of holdtts: the HOLD++ defense paper's 2-D Swiss-roll membership experiment on the CPU.
# Order 1 (vp) and HOLD++ orders 2-4, for beta in {0.5, 2, 10}, several training seeds, all trained on the
# same few Swiss-roll points; every model attacked with the speech models' attacks (holdtts.privacy) and
# scored for sample quality (unbiased RBF MMD^2 to held-out points). docs/toy_study.md reports a run.
#
#   ./run.sh                               # the default study (about 15 minutes on 2 free CPU cores)
#   ./run.sh --seeds 0,1,2,3,4             # more seeds (models already done are reused)
#   ./run.sh --stage 2                     # rebuild the report only
#   ./run.sh --extra "--steps 2000 --members 128"   # any other `holdtts toy-study` option
#
# Stages: 1 models (train, attack, sample; resumable model by model), 2 report (results.tsv, summary.md,
# samples_beta*.png; always rebuilt). Outputs: $exp_dir/ (default exp/), logs in $exp_dir/log/.
set -euo pipefail
cd "$(dirname "$0")"

stage=1
stop_stage=100
exp_dir=exp
seeds=0,1,2
orders=1,2,3,4
betas=0.5,2,10
workers=2              # models trained at once (one process each)
threads=1              # torch threads per worker
extra=                 # further `holdtts toy-study` options, passed to both stages
recipe_options="stage stop_stage exp_dir seeds orders betas workers threads extra"
help_message="Usage: $0 [options]   (see the comment at the top of run.sh)"

. ./path.sh
. ../../recipes/parse_options.sh
. ../../recipes/stages.sh

done_dir=$exp_dir/.done
log_dir=$exp_dir/log
export OMP_NUM_THREADS=$threads  # per worker process

# shellcheck disable=SC2206
study=(holdtts toy-study --out-dir "$exp_dir" --seeds "$seeds" --orders "$orders" --betas "$betas"
  --workers "$workers" --threads "$threads" $extra)

# ------------------------------------------------------------------ 1: models
# always run: `holdtts toy-study` itself skips every model already done with the same settings (and stops
# with an error naming the model when its settings changed), so more seeds or orders just add models
stage_always=1 run_stage 1 models "${study[@]}" --only models

# ------------------------------------------------------------------ 2: the report (always rebuilt)
stage_always=1 run_stage 2 report "${study[@]}" --only report

log "toy study finished (stages $stage to $stop_stage); summary: $exp_dir/summary.md"
