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
# 1-7 from ../../recipes/tts_stages.sh. The options shared with egs/vctk, and their defaults, are in
# ../../recipes/speaker_options.sh; the shared setup and the mini corpus in ../../recipes/speaker_recipe.sh.
# System configs are egs/ljspeech/conf/<system>.yaml (with conf/speakers_tiny.yaml for the tiny size);
# every system gets model.n_speakers = the speakers of data/spk2id (the member speakers).
# Outputs (relative to this directory): downloads/ (LibriTTS/<subset>, and downloads/libritts_corpus:
# metadata.csv with a speaker column, wavs/ linking to the 24 kHz wavs), data/ (tables, utt2spk, spk2utt,
# spk2id, splits), dump/, exp/<system>/, exp/report/, exp/log/, exp/.done/.
set -euo pipefail
cd "$(dirname "$0")"

corpus_name=libritts
libritts_dir=          # an existing LibriTTS directory holding the subsets (skips the download)
subsets=train-clean-100  # comma-separated LibriTTS subsets
. ../../recipes/speaker_options.sh
recipe_options+=" libritts_dir subsets"

. ./path.sh
. ../../recipes/parse_options.sh
. ../../recipes/stages.sh
. ../../recipes/speaker_recipe.sh

# ------------------------------------------------------------------ 0: the corpus (mini: speaker_recipe.sh)
if [ "$corpus" = libritts ]; then
  source_dir=${libritts_dir:-downloads/LibriTTS}
  [ -z "$libritts_dir" ] && run_stage 0 download holdtts download --corpus libritts --subsets "$subsets" \
    --out-dir downloads
  corpus_dir=downloads/libritts_corpus
  # 24 kHz wav: features resample it once; found data: an unusable clip or transcript is listed in
  # data/all/skipped, not fatal
  prepare_extra+=(--defer-resample --skip-bad)
  run_stage 0 import-corpus holdtts import-corpus --format libritts --subsets "$subsets" --source "$source_dir" \
    --out-dir "$corpus_dir"
fi

. ../../recipes/tts_stages.sh
