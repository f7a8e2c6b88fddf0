# The options of the multi-speaker recipes (egs/vctk, egs/libritts): those of every recipe
# (tts_options.sh) and the speakers'. Source it from run.sh before parse_options.sh; run.sh then adds its
# corpus's own options (where the corpus is, which part of it) to recipe_options.
. ../../recipes/tts_options.sh
mini_speakers=8        # speakers of the mini corpus (eSpeak NG voices)
protocol=utterance     # utterance (members and non-members of every speaker) | speaker (whole speakers)
num_member_speakers=   # --protocol speaker: member speakers (default: half)
systems="vp hold3"     # each needs ../ljspeech/conf/<system>.yaml
recipe_options+=" mini_speakers protocol num_member_speakers systems"
