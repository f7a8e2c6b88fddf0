# The setup every multi-speaker recipe (egs/vctk, egs/libritts) shares, and its stage 0 on the mini corpus.
# Source it from run.sh after parse_options.sh and stages.sh; run.sh then does stage 0 for its real corpus
# (setting $corpus_dir, and adding --defer-resample and the like to prepare_extra) and sources
# tts_stages.sh.
done_dir=exp/.done
log_dir=exp/log
conf_dir=../ljspeech/conf
. ../../recipes/corpus_defaults.sh
case "$protocol" in utterance|speaker) ;; *) echo "$0: --protocol must be utterance or speaker, got '$protocol'" >&2; exit 2 ;; esac
train_conf=()
[ "$size" = tiny ] && train_conf=(--config "$conf_dir/tiny.yaml" --config conf/speakers_tiny.yaml)
for p in $train_params; do train_conf+=(--set "$p"); done
prepare_extra=(--protocol "$protocol")
[ -n "$num_member_speakers" ] && prepare_extra+=(--num-member-speakers "$num_member_speakers")
multi_speaker=true

# ------------------------------------------------------------------ 0: the mini corpus
if [ "$corpus" = mini ]; then
  corpus_dir=downloads/mini
  run_stage 0 make-corpus holdtts make-corpus --out-dir "$corpus_dir" --num-utts "$mini_utts" \
    --speakers "$mini_speakers" --seed "$seed" --nj "$nj"
fi
