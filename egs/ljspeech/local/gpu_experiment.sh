#!/usr/bin/env bash
# One batched GPU experiment: the mini corpus at the published model sizes, every system trained,
# attacked with the full suite and evaluated, the report, then the benchmarks; the report, the metrics,
# the per-utterance rows and the benchmark tables are packed into --out (results.tar.gz, report.md,
# bench.txt), small enough to bring back from a borrowed machine. docs/results.md says how its numbers
# were produced and where they go.
#
#   cd egs/ljspeech
#   local/gpu_experiment.sh --out /tmp/gpu_out                       # everything (phases: recipe bench pack)
#   local/gpu_experiment.sh --out $OUT --phases "recipe pack" --steps 2000 --systems "vp hold3"
#
# The recipe phase is the recipe itself (./run.sh with done markers), so a run cut off by a time limit
# continues where it stopped when the same command is given again. Start it detached on a machine that
# limits one command's time (setsid nohup local/gpu_experiment.sh ... &) and poll exp/log/.
set -euo pipefail
cd "$(dirname "$0")/.."

out=exp/gpu_out
phases="recipe bench pack"
mini_utts=1000            # 495 members, 495 non-members (prepare's default at --size full: half of what valid leaves)
steps=3000                # training steps per system (each DualMD/DistillMD network too)
batch_size=32
systems="vp hold2 hold3 hold4 dualmd distillmd vp_dp vp_dp_eps1"
attack_utts=250           # members and as many non-members per attack
eval_utts=100             # non-member test sentences for the quality metrics
vocoder=griffin-lim       # or hifigan: stage 3 trains one on the members first (conf/vocoder_v1.yaml)
device=cuda
seed=1234
recipe_options="out phases mini_utts steps batch_size systems attack_utts eval_utts vocoder device seed"
help_message="Usage: $0 [options]   (see the comment at the top of this file)"

. ./path.sh
. ../../recipes/parse_options.sh

mkdir -p "$out"
out=$(cd "$out" && pwd)

for phase in $phases; do
  case "$phase" in
    recipe)
      # max_epochs=0: the step budget alone ends training (DP calibrates its noise to the same budget)
      ./run.sh --corpus mini --mini-utts "$mini_utts" --size full --device "$device" --seed "$seed" --vocoder "$vocoder" \
        --systems "$systems" --attacks all --attack-params none --attack-utts "$attack_utts" --eval-utts "$eval_utts" \
        --train-params "train.max_steps=$steps train.max_epochs=0 train.batch_size=$batch_size"
      ;;
    bench)
      {
        echo "# holdtts benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo no GPU)"
        for cmd in "bench_training.py --device $device" "bench_alignment.py --device $device" \
                   "bench_attacks.py --device $device --orders 1,2,3,4" "bench_vocoder.py --device all" \
                   "bench_features.py --clips 512" "bench_quality.py --device all" \
                   "bench_dp.py --config conf/vp_dp.yaml --device $device"; do
          echo; echo "\$ python bench/$cmd"
          python "../../bench/${cmd%% *}" ${cmd#* } || echo "(failed: exit $?)"
        done
      } 2>&1 | tee "$out/bench.txt"
      ;;
    pack)
      # the report and everything it is computed from, never checkpoints or audio
      files=(exp/report data/splits.json)
      for f in exp/*/train_summary.json exp/*/train_log.jsonl exp/*/privacy.json exp/*/system.json \
               exp/*/teacher*/train_summary.json exp/*/teacher*/train_log.jsonl exp/*/config.yaml \
               exp/*/attack*/*.json exp/*/attack*/rows.tsv exp/*/evaluate/quality.* exp/log; do
        [ -e "$f" ] && files+=("$f")
      done
      tar czf "$out/results.tar.gz" "${files[@]}"
      [ -f exp/report/report.md ] && cp exp/report/report.md "$out/report.md"
      ls -l "$out"
      ;;
    *) echo "$0: unknown phase '$phase' (recipe, bench, pack)" >&2; exit 2 ;;
  esac
done
