# The options every TTS recipe (egs/ljspeech, egs/vctk, egs/libritts) shares, with their defaults. "The
# real corpus" is the recipe's own (--corpus ljspeech, vctk or libritts; see corpus_defaults.sh). Source it
# from run.sh before parse_options.sh; run.sh then sets its own options and adds them to recipe_options.
stage=0
stop_stage=100
corpus=mini            # mini | the real corpus
mini_utts=256          # size of the mini corpus
seed=1234              # splits, corpus prosody, training, attacks
size=auto              # auto (tiny for mini, full for the real corpus) | tiny | full
train_params=          # config overrides for every system, e.g. "train.max_steps=20000 train.batch_size=32"
vocoder=auto           # auto (griffin-lim for mini, hifigan for the real corpus) | griffin-lim | hifigan
attacks=auto           # auto (a CPU-friendly set for mini, all for the real corpus) | all | a comma list
attack_utts=           # at most this many members and as many non-members per attack (default: mini 32, else all)
attack_params=auto     # auto (mini: fewer Monte-Carlo draws; the real corpus: none) | none | e.g. "loss.draws=4 pia_mc.draws=16"
blackbox=true          # also attack every system through its synthesis (one synthesis per utterance)
eval_utts=             # quality: the first N test sentences (default: mini 8, the real corpus all)
eval_metrics=auto      # holdtts evaluate --metrics: auto (mini: the eSpeak recogniser only; auto,wer: all three), or e.g. auto,-wer_espeak
nj=$(nproc)            # parallel jobs for corpus synthesis, wav checks and feature decoding
jobs=auto              # stages 4-6 (train, attack, evaluate): how many run at once, with $(nproc)/jobs threads
                       # each; auto: 2 for the mini corpus on the CPU (two one-thread jobs outrun one
                       # two-thread job, bench/bench_threads.py), else 1
device=auto            # auto | cpu | cuda
recipe_options="stage stop_stage corpus mini_utts seed size train_params vocoder attacks attack_utts attack_params"
recipe_options+=" blackbox eval_utts eval_metrics nj jobs device"
help_message="Usage: $0 [options]   (see the comment at the top of run.sh and the README)"
