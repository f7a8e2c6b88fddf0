#!/usr/bin/env bash
# The LibriTTS recipe of holdtts: multi-speaker TTS and speaker-aware membership inference. LibriTTS
# subsets (24 kHz; train-clean-100: 247 speakers) -> multi-speaker corpus -> tables, speaker tables and
# membership splits -> features (resampled to 22050 Hz once) -> vocoder -> TTS systems with a speaker
# table (Grad-TTS's multi-speaker model was trained on LibriTTS) -> attacks -> audio quality -> report.
#
#   ./run.sh                                    # the embedded multi-voice corpus (eSpeak NG, offline), tiny, CPU
#   ./run.sh --protocol speaker                 # speaker-level membership: whole speakers in or out
#   ./run.sh --corpus libritts                  # downloads train-clean-100 (7.7 GB), published model sizes
#   ./run.sh --corpus libritts --subsets train-clean-100,train-clean-360
#   ./run.sh --corpus libritts --libritts-dir /data/LibriTTS  # an existing copy (its subset folders)
#
# Stages: 0 corpus (download and import-corpus, or make-corpus --speakers), 1 prepare, 2 features,
# 3 vocoder, 4 train, 5 attack, 6 evaluate, 7 report; the same as egs/ljspeech (see its run.sh), stages
# 1-7 from ../../recipes/tts_stages.sh. System configs are egs/ljspeech/conf/<system>.yaml; every system
# gets model.n_speakers = the speakers of data/spk2id (the member speakers).
# Outputs (relative to this directory): downloads/ (LibriTTS/<subset>, and downloads/libritts_corpus:
# metadata.csv with a speaker column, wavs/ linking to the 24 kHz wavs), data/ (tables, utt2spk, spk2utt,
# spk2id, splits), dump/, exp/<system>/, exp/report/, exp/log/, exp/.done/.
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
corpus=mini            # mini | libritts
libritts_dir=          # an existing LibriTTS directory holding the subsets (skips the download)
subsets=train-clean-100  # comma-separated LibriTTS subsets
mini_utts=256          # size of the mini corpus
mini_speakers=8        # its speakers (eSpeak NG voices)
protocol=utterance     # utterance (members and non-members of every speaker) | speaker (whole speakers)
num_member_speakers=   # --protocol speaker: member speakers (default: half)
seed=1234              # splits, corpus prosody, training, attacks
systems="vp hold3"     # each needs ../ljspeech/conf/<system>.yaml
size=auto              # auto (tiny for mini, full for libritts) | tiny | full
train_params=          # config overrides for every system, e.g. "train.max_steps=20000"
vocoder=auto           # auto (griffin-lim for mini, hifigan for libritts) | griffin-lim | hifigan
attacks=auto           # auto (a CPU-friendly set for mini, all for libritts) | all | a comma list
attack_utts=           # at most this many members and as many non-members per attack (default: mini 32)
attack_params=auto     # auto | none | e.g. "loss.draws=4 pia_mc.draws=16"
blackbox=true          # also attack every system through its synthesis
eval_utts=             # quality: the first N test sentences (default: mini 8, libritts all)
nj=$(nproc)            # parallel jobs for corpus synthesis, wav checks and feature decoding
device=auto            # auto | cpu | cuda
recipe_options="stage stop_stage corpus libritts_dir subsets mini_utts mini_speakers protocol num_member_speakers"
recipe_options+=" seed systems size train_params vocoder attacks attack_utts attack_params blackbox eval_utts nj"
recipe_options+=" device"
help_message="Usage: $0 [options]   (see the comment at the top of run.sh and the README)"

. ./path.sh
. ../../recipes/parse_options.sh
. ../../recipes/stages.sh

done_dir=exp/.done
log_dir=exp/log
conf_dir=../ljspeech/conf

case "$corpus" in
  mini)
    [ "$size" = auto ] && size=tiny
    [ "$vocoder" = auto ] && vocoder=griffin-lim
    [ "$attacks" = auto ] && attacks=loss,pia,pian,sima,pia_mc,sima_mc,duration,prior
    [ -z "$attack_utts" ] && attack_utts=32
    [ "$attack_params" = auto ] && attack_params="pia_mc.draws=2 sima_mc.draws=2 synth_distance.steps=5"
    [ -z "$eval_utts" ] && eval_utts=8
    ;;
  libritts)
    [ "$size" = auto ] && size=full
    [ "$vocoder" = auto ] && vocoder=hifigan
    [ "$attacks" = auto ] && attacks=all
    [ "$attack_params" = auto ] && attack_params=none
    ;;
  *) echo "$0: --corpus must be mini or libritts, got '$corpus'" >&2; exit 2 ;;
esac
case "$protocol" in utterance|speaker) ;; *) echo "$0: --protocol must be utterance or speaker, got '$protocol'" >&2; exit 2 ;; esac
train_conf=()
[ "$size" = tiny ] && train_conf=(--config "$conf_dir/tiny.yaml" --config conf/speakers_tiny.yaml)
for p in $train_params; do train_conf+=(--set "$p"); done
prepare_extra=()

# ------------------------------------------------------------------ 0: the corpus
if [ "$corpus" = mini ]; then
  corpus_dir=downloads/mini
  defer_resample=false
  run_stage 0 make-corpus holdtts make-corpus --out-dir "$corpus_dir" --num-utts "$mini_utts" \
    --speakers "$mini_speakers" --seed "$seed" --nj "$nj"
else
  source_dir=${libritts_dir:-downloads/LibriTTS}
  [ -z "$libritts_dir" ] && run_stage 0 download holdtts download --corpus libritts --subsets "$subsets" \
    --out-dir downloads
  corpus_dir=downloads/libritts_corpus
  defer_resample=true    # 24 kHz wav: features resample it once
  prepare_extra=(--skip-bad)  # found data: an unusable clip or transcript is listed in data/all/skipped, not fatal
  run_stage 0 import-corpus holdtts import-corpus --format libritts --subsets "$subsets" --source "$source_dir" \
    --out-dir "$corpus_dir"
fi

. ../../recipes/tts_stages.sh
