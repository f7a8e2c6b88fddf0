#!/usr/bin/env bash
# The VCTK recipe of holdtts: multi-speaker TTS and speaker-aware membership inference. VCTK 0.92 (110
# speakers, 48 kHz flac) -> multi-speaker corpus -> tables, speaker tables and membership splits ->
# features (resampled to 22050 Hz once) -> vocoder -> TTS systems with a speaker table -> attacks ->
# audio quality -> report.
#
#   ./run.sh                                    # the embedded multi-voice corpus (eSpeak NG, offline), tiny, CPU
#   ./run.sh --protocol speaker                 # speaker-level membership: whole speakers in or out
#   ./run.sh --corpus vctk                      # downloads VCTK 0.92 (11 GB), published model sizes
#   ./run.sh --corpus vctk --vctk-dir /data/VCTK-Corpus-0.92   # an existing copy (txt/, wav48_silence_trimmed/)
#   ./run.sh --systems "vp hold3" --train-params "train.max_steps=20000"
#
# Stages: 0 corpus (download and import-corpus, or make-corpus --speakers), 1 prepare, 2 features,
# 3 vocoder, 4 train, 5 attack, 6 evaluate, 7 report; the same as egs/ljspeech (see its run.sh), stages
# 1-7 from ../../recipes/tts_stages.sh. The options shared with egs/libritts, and their defaults, are in
# ../../recipes/speaker_options.sh; the shared setup and the mini corpus in ../../recipes/speaker_recipe.sh.
# System configs are egs/ljspeech/conf/<system>.yaml (with conf/speakers_tiny.yaml for the tiny size);
# every system gets model.n_speakers = the speakers of data/spk2id (the member speakers).
# Outputs (relative to this directory): downloads/ (the corpus, and downloads/vctk_corpus: metadata.csv
# with a speaker column, wavs/ linking to the flacs), data/ (tables, utt2spk, spk2utt, spk2id, splits),
# dump/, exp/<system>/, exp/report/, exp/log/, exp/.done/.
set -euo pipefail
cd "$(dirname "$0")"

corpus_name=vctk
vctk_dir=              # an existing VCTK-Corpus-0.92 directory (skips the download)
mic=mic1               # VCTK's microphone: mic1 | mic2
. ../../recipes/speaker_options.sh
recipe_options+=" vctk_dir mic"

. ./path.sh
. ../../recipes/parse_options.sh
. ../../recipes/stages.sh
. ../../recipes/speaker_recipe.sh

# ------------------------------------------------------------------ 0: the corpus (mini: speaker_recipe.sh)
if [ "$corpus" = vctk ]; then
  source_dir=${vctk_dir:-downloads/VCTK-Corpus-0.92}
  [ -z "$vctk_dir" ] && run_stage 0 download holdtts download --corpus vctk --out-dir downloads
  corpus_dir=downloads/vctk_corpus
  # 48 kHz flac: features resample it once; found data: an unusable clip or transcript is listed in
  # data/all/skipped, not fatal
  prepare_extra+=(--defer-resample --skip-bad)
  run_stage 0 import-corpus holdtts import-corpus --format vctk --source "$source_dir" --out-dir "$corpus_dir" \
    --mic "$mic"
fi

. ../../recipes/tts_stages.sh
