#!/usr/bin/env bash
# The membership study on two CPU cores (docs/study.md): does HOLD++ (or DualMD, DistillMD, DP-SGD) lower
# membership leakage at equal audio quality? One command, resumable stage by stage:
#
#   local/cpu_study.sh                          # everything (calibration, freeze, main study, report)
#   local/cpu_study.sh --stop-stage 4           # calibration and freeze only (vp alone)
#   local/cpu_study.sh --stage 5 --seeds 3      # the main study at the frozen setting
#
# Stages (run from egs/ljspeech; outputs under study/, results committed under docs/study/):
#   0 corpus      the embedded mini corpus (conf/study/calibration.yaml: size, seed)
#   1 data        splits and features for every member count the calibration grid or the freeze uses
#   2 calibrate   vp only: each calibration setting trained once, checkpoints kept
#   3 attack      every calibration checkpoint attacked with the full order-1 suite
#   4 freeze      docs/study/calibration.tsv and the frozen setting (docs/study/frozen.{json,yaml}), picked
#                 by the rule in conf/study/calibration.yaml from vp's numbers alone; never replaced
#   5 train       every system x seed at exactly the frozen setting (vp, hold2-4, dualmd, distillmd,
#                 dualmd_hold3 + distillmd_hold3, vp_dp at epsilon 8 and 1), AUROC logged while training
#   6 attack      the full white-box suite (adaptive attacks included) and the text-side attacks on every
#                 model (DualMD: each teacher), plus the black-box synthesis attack
#   7 evaluate    quality on the non-member test sentences, one sampler and step count for all; and,
#                 for a system whose own sampler differs (HOLD++: splitting), again at its own (evaluate_own/)
#   8 report      holdtts report over study/exp (with the pre-registered cells of docs/study/preregistered.json),
#                 and docs/study/ (report, rows, metrics) for the commit
# Each stage is a holdtts command run through recipes/stages.sh: logged, timed, done-marked, and never
# reused when its command or inputs changed. Models train one thread each, two at a time (two
# single-threaded processes give 1.42x the throughput of one two-threaded one on the tiny model:
# bench/bench_threads.py, docs/study.md).
set -euo pipefail
cd "$(dirname "$0")/.."

stage=0
stop_stage=100
seeds=3                 # training seeds per system (seed 1 -> exp/<sys>, seed k -> exp/<sys>.seed<k>)
systems="vp hold2 hold3 hold4 dualmd distillmd dualmd_hold3 distillmd_hold3 vp_dp vp_dp_eps1"
work=study              # everything the study writes, except the committed results
results=../../docs/study
jobs=2                  # trainings at once (one thread each)
attack_seed=1234
eval_sampler=ode_euler  # one sampler and step count for every system's quality
eval_steps=10
device=cpu
# Attack cost on 2 cores is dominated by score-network calls (a tiny U-Net call on 32 crops takes about
# 0.5 s on one idle core): SecMI's inversion in steps of 0.05 of the horizon instead of 0.02, and 4 (2 for
# SecMI) Monte-Carlo draws for the adaptive attacks. The same settings for every model and checkpoint.
attack_params="secmi.step=0.05 secmi_mc.step=0.05 secmi_mc.draws=2 pia_mc.draws=4 sima_mc.draws=4"
recipe_options="stage stop_stage seeds systems work results jobs attack_seed eval_sampler eval_steps device"
recipe_options+=" attack_params"
help_message="Usage: $0 [--stage N] [--stop-stage M] [--seeds K] [--systems \"...\"] (see the top of $0)"

. ./path.sh
. ../../recipes/parse_options.sh
. ../../recipes/stages.sh

done_dir=$work/.done
log_dir=$work/log
grid=conf/study/calibration.yaml
calib() { python local/study_calibration.py "$@" --work-dir "$work" --results-dir "$results" --grid "$grid"; }
setting() {  # setting NAME FIELD -> the value from the grid
  python - "$grid" "$1" "$2" <<'EOF'
import sys, yaml
grid = yaml.safe_load(open(sys.argv[1]))
if sys.argv[2] == "-":
    print(grid[sys.argv[3]] if not isinstance(grid[sys.argv[3]], dict) else " ".join(map(str, grid[sys.argv[3]].values())))
else:
    s = next(s for s in grid["settings"] if s["name"] == sys.argv[2])
    v = s.get(sys.argv[3], "")
    print(" ".join(v) if isinstance(v, list) else v)
EOF
}
settings=$(python -c "import yaml,sys; print(' '.join(s['name'] for s in yaml.safe_load(open('$grid'))['settings']))")
read -r corpus_utts corpus_seed <<<"$(setting - corpus)"
nonmembers=$(setting - nonmembers)
num_test=$(setting - test)
base_config=(--config conf/vp.yaml --config conf/tiny.yaml)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
. local/study_jobs.sh  # the pool of $jobs background commands and the order of the models
# Ctrl-C or a kill reaches every job (the attacks and evaluations of running pipelines too); trainings stop
# at a checkpoint and exit 143; nothing is marked done
stop_jobs_on_signal

# ------------------------------------------------------------------ 0-1: corpus, splits, features
run_stage 0 corpus holdtts make-corpus --out-dir "$work/corpus" --num-utts "$corpus_utts" --seed "$corpus_seed" \
  --nj 2
member_counts=$(for s in $settings; do setting "$s" members; done | sort -un)
if [ -f "$results/frozen.json" ]; then
  frozen_members=$(calib frozen members)
  member_counts=$(printf '%s\n%s\n' "$member_counts" "$frozen_members" | sort -un)
fi
for m in $member_counts; do
  run_stage 1 "prepare-m$m" holdtts prepare --corpus-dir "$work/corpus" --data-dir "$work/data_m$m" \
    --seed "$corpus_seed" --num-members "$m" --num-nonmembers "$nonmembers" --num-test "$num_test" --nj 2
  run_stage 1 "features-m$m" holdtts features --data-dir "$work/data_m$m" --dump-dir "$work/dump_m$m" \
    --device "$device" --nj 2
done

# ------------------------------------------------------------------ 2-4: calibration on vp alone, then freeze
for s in $settings; do
  [ -z "$(setting "$s" trained_elsewhere)" ] || continue  # a replicate trained by another stage (the grid says which)
  m=$(setting "$s" members)
  overrides=()
  for kv in $(setting "$s" set); do overrides+=(--set "$kv"); done
  parallel_stage 2 "calibrate-$s" holdtts train "${base_config[@]}" "${overrides[@]}" \
    --set train.max_steps="$(setting "$s" max_steps)" --set train.max_epochs=0 \
    --set train.checkpoint_every="$(setting "$s" checkpoint_every)" --set train.keep_last=100 \
    --set train.sample_every=0 --exp-dir "$work/calib/$s" --data-dir "$work/data_m$m" \
    --dump-dir "$work/dump_m$m" --device "$device" --no-progress
done
if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then wait_all; fi
attack_param_args=()
for p in $attack_params; do attack_param_args+=(--param "$p"); done
for s in $settings; do
  [ -z "$(setting "$s" trained_elsewhere)" ] || continue  # attacked where it was trained, with these arguments
  m=$(setting "$s" members)
  [ -d "$work/calib/$s/checkpoints" ] || continue
  for ckpt in "$work/calib/$s"/checkpoints/step-*.pt; do
    n=$(basename "$ckpt" .pt)
    parallel_stage 3 "calibrate-$s-attack-$n" holdtts attack --model "$ckpt" --out-dir "$work/calib/$s/attack_$n" \
      --attack all --data-dir "$work/data_m$m" --dump-dir "$work/dump_m$m" --seed "$attack_seed" --device "$device" \
      "${attack_param_args[@]}"
  done
done
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then wait_all; fi
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4 freeze: vp's calibration numbers only"
  calib freeze
fi
[ "$stop_stage" -lt 5 ] && exit 0

# ------------------------------------------------------------------ 5-7: every system x seed, frozen setting
# One pipeline per model (train, attack, evaluate, then save its results under $results/main/models/), two
# at a time: a sitting that ends mid-study keeps every finished model, and the next one (on this machine or
# a fresh one, after `git pull`) restores them and goes on. Seed 1 of every system first, then seed 2, ...;
# a DistillMD student after its DualMD teachers of the same seed. Training seeds are 4000 + k: they differ
# from every calibration run's (1234, 2001, 3001, 3002; 2001 was the round-6 main study's, now a replicate).
[ -f "$results/frozen.json" ] || { echo "$0: no $results/frozen.json: run stages 0-4 first" >&2; exit 1; }
m=$(calib frozen members)
epochs=$(calib frozen epochs)
data=$work/data_m$m
dump=$work/dump_m$m
frozen=(--config "$results/frozen.yaml" --set train.attack_every_epochs=$(( epochs / 5 > 0 ? epochs / 5 : 1 ))
        --set train.attack=loss,pia,sima,duration,prior --set train.attack_max_utts=$nonmembers
        --set train.sample_every=0)
attack_args=(--data-dir "$data" --dump-dir "$dump" --seed "$attack_seed" --device "$device" "${attack_param_args[@]}")
exp_of() { if [ "$2" = 1 ]; then echo "$work/exp/$1"; else echo "$work/exp/$1.seed$2"; fi; }
if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 5 ] && [ ! -f "$data/splits.json" ]; then
  echo "$0: no $data/splits.json (a fresh machine?): run 'local/cpu_study.sh --stage 0 --stop-stage 1' first" \
    "(the corpus, splits and features: minutes), then this command again" >&2
  exit 1
fi
# A system whose training diverged at the frozen setting trains, every seed, at the learning rate the rule in
# docs/study.md gave it (docs/study/stability.yaml: system -> overrides; decided from training losses alone)
stability=$results/stability.yaml
stability_args() {  # stability_args SYS: its --set overrides, one per line
  [ -f "$stability" ] || return 0
  python -c "import sys, yaml; [print(f'--set\n{k}={v}') for k, v in ((yaml.safe_load(open(sys.argv[1])) or {}).get(sys.argv[2], {}).get('set') or {}).items()]" "$stability" "$1"
}
if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 5 ]; then
  python local/study_results.py --work-dir "$work" --results-dir "$results" --restore
fi
model_pipeline() {  # model_pipeline SYS SEED [extra --set ...]: stages 5, 6 and 7 of one model, then save
  local sys=$1 k=$2; shift 2
  local conf=conf/$sys.yaml exp
  exp=$(exp_of "$sys" "$k")
  [ -f "$conf" ] || { echo "$0: no $conf" >&2; return 2; }
  local stable=() stable_text
  stable_text=$(stability_args "$sys") || { echo "$0: cannot read $stability" >&2; return 2; }
  [ -z "$stable_text" ] || mapfile -t stable <<<"$stable_text"
  run_stage 5 "train-$sys-seed$k" holdtts train --config "$conf" --config conf/tiny.yaml "${frozen[@]}" \
    "${stable[@]}" --set train.seed=$(( 4000 + k )) "$@" --exp-dir "$exp" --data-dir "$data" --dump-dir "$dump" \
    --device "$device" --no-progress
  if [[ "$sys" == dualmd* ]]; then
    for t in 1 2; do  # each teacher against its own half (its members) and the shared non-members
      run_stage 6 "attack-$sys-seed$k-teacher$t" holdtts attack --model "$exp/teacher$t" \
        --out-dir "$exp/attack_teacher$t" --attack all "${attack_args[@]}"
    done
  else
    run_stage 6 "attack-$sys-seed$k" holdtts attack --model "$exp" --out-dir "$exp/attack" --attack all \
      "${attack_args[@]}"
  fi
  run_stage 6 "attack-$sys-seed$k-blackbox" holdtts attack --model "$exp" --out-dir "$exp/attack_blackbox" \
    --members members --attack synth_distance --param synth_distance.steps=10 "${attack_args[@]}"
  # The second quality column: the system's own sampler and steps (its config's synthesis section), where
  # they differ from the common ones. Before the common stage, so every model whose quality stage is done
  # has it; a model finished before this stage existed (seed 1: its checkpoints are gone) goes without.
  local own
  own=$(python -c "from holdtts.config import load_config; import sys; s = load_config(sys.argv[1:]).synthesis; print(s.sampler, s.steps)" \
    "$conf" conf/tiny.yaml "$results/frozen.yaml")
  if [ "$own" != "$eval_sampler $eval_steps" ] && [ ! -f "$done_dir/stage7.evaluate-$sys-seed$k.done" ]; then
    run_stage 7 "evaluate-own-$sys-seed$k" holdtts evaluate --model "$exp" --out-dir "$exp/evaluate_own" \
      --data-dir "$data" --dump-dir "$dump" --vocoder griffin-lim --seed "$attack_seed" --device "$device" \
      --cache-dir "$work/.cache/quality"
  fi
  run_stage 7 "evaluate-$sys-seed$k" holdtts evaluate --model "$exp" --out-dir "$exp/evaluate" \
    --data-dir "$data" --dump-dir "$dump" --vocoder griffin-lim --sampler "$eval_sampler" --steps "$eval_steps" \
    --seed "$attack_seed" --device "$device" --cache-dir "$work/.cache/quality"
  python local/study_results.py --work-dir "$work" --results-dir "$results" --model "$(basename "$exp")"
}
[ "$stage" -gt 7 ] || run_models "$seeds" "$systems"
wait_all

# ------------------------------------------------------------------ 8: the report and the committed results
names=$(for k in $(seq 1 "$seeds"); do for sys in $systems; do basename "$(exp_of "$sys" "$k")"; done; done)
preregistered=()  # the attack cells fixed from vp's calibration runs (local/study_calibration.py preregister)
[ -f "$results/preregistered.json" ] && preregistered=(--preregistered "$results/preregistered.json")
stage_always=1 run_stage 8 report holdtts report --exp-dir "$work/exp" --data-dir "$data" \
  --systems "$(echo $names | tr ' ' ',')" --out-dir "$work/report" --overwrite "${preregistered[@]}"
if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  python local/study_results.py --work-dir "$work" --results-dir "$results"
  # the page's answer block (once its prose has the markers) follows the committed report
  if grep -q "study_answer.py begin" "$results/../study.md" 2>/dev/null; then
    python local/study_answer.py --report "$results/main/report.md" --page "$results/../study.md"
  fi
fi
log "study finished (stages $stage to $stop_stage); report: $work/report/report.md, results: $results"
