"""Build the eSpeak recogniser at a given size and measure it on a fresh mini corpus's real recordings.

Builds (or reuses, by fingerprint) the recogniser in the cache (holdtts.quality.espeak_train), makes a
mini corpus with another seed (never the recogniser's), and prints one table: the training CPU seconds, and
the WER and CER of the corpus's recordings under each decoding method (greedy; greedy with out-of-vocabulary
words replaced by the nearest vocabulary word; the lexicon beam search with the domain 3-gram), with the
number of scored sentences found verbatim in the training text. Every utterance of the corpus is scored:
none is in the recogniser's training speech.

    python bench/bench_espeak_asr.py                 # a smoke size (200 utterances, 2 epochs: minutes)
    python bench/bench_espeak_asr.py --full          # the default build evaluate uses (25-35 min, 2 cores)
    python bench/bench_espeak_asr.py --full --speakers 8 --corpus-utts 256   # the multi-speaker voices

A --full build lands where `holdtts evaluate` looks for it, so it is built once for both.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import soundfile

from holdtts.data.minicorpus import make_mini_corpus
from holdtts.quality import espeak_asr, espeak_train
from holdtts.quality.asr import corpus_wer, word_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the default build (TrainConfig's sizes)")
    parser.add_argument("--num-utts", type=int, help="training utterances [smoke: 200]")
    parser.add_argument("--epochs", type=int, help="training epochs [smoke: 2]")
    parser.add_argument("--speaker-share", type=float, help="share of multi-speaker voices [default: TrainConfig's]")
    parser.add_argument("--corpus-utts", type=int, default=64, help="utterances of the scored corpus")
    parser.add_argument("--corpus-seed", type=int, default=4321, help="the scored corpus's seed")
    parser.add_argument("--speakers", type=int, default=1, help="speakers of the scored corpus")
    parser.add_argument("--corpus-dir", help="score this existing mini corpus instead of making one")
    parser.add_argument("--nj", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, help="torch threads while training")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    # the build's per-epoch loss and held-out CER (espeak_train logs them): a full build takes half an hour
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    smoke = {} if args.full else {"num_utts": 200, "epochs": 2}
    cfg = espeak_train.scaled(espeak_train.TrainConfig(), **smoke)
    cfg = espeak_train.scaled(cfg, num_utts=args.num_utts, epochs=args.epochs, speaker_share=args.speaker_share)
    if args.corpus_seed in (cfg.seed, cfg.seed + 1):
        parser.error(f"--corpus-seed {args.corpus_seed} is one of the recogniser's own training seeds")
    reused = (espeak_train.default_folder(cfg) / espeak_train.INFO).is_file()
    folder = espeak_train.build_recognizer(cfg=cfg, nj=args.nj, threads=args.threads)
    info = espeak_train.read_info(folder)
    print(f"recogniser {folder} ({'reused' if reused else 'built'}): "
          f"{info['train_utterances']} utterances ({info['train_hours']} h), {cfg.epochs} epochs, "
          f"{info['parameters']:,} parameters; speech {info['speech_wall_s']} s wall, training "
          f"{info['train_cpu_s']} CPU s ({info['train_wall_s']} s wall, {info['torch_threads']} threads)")

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(args.corpus_dir) if args.corpus_dir else Path(tmp) / "corpus"
        if not args.corpus_dir:
            make_mini_corpus(corpus, args.corpus_utts, args.corpus_seed, args.nj, num_speakers=args.speakers)
        lines = [line.split("|") for line in (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()]
        recognizer = espeak_asr.load_recognizer(folder)
        scored = {method: [] for method in recognizer.available}
        seconds = dict.fromkeys(recognizer.available, 0.0)
        for utt, _, spoken, *_ in lines:
            wav, rate = soundfile.read(corpus / "wavs" / f"{utt}.wav", dtype="float32")
            t0 = time.perf_counter()
            log_probs = recognizer.log_probs(wav, rate)
            acoustic = time.perf_counter() - t0
            for method in recognizer.available:
                t0 = time.perf_counter()
                hypothesis = recognizer.decode(log_probs, method)
                seconds[method] += acoustic + time.perf_counter() - t0
                scored[method].append(word_errors(spoken, hypothesis))
    overlap = espeak_train.training_overlap(folder, [s.reference for s in scored["greedy"]])

    rows = []
    for method, items in scored.items():
        rates = corpus_wer(items)
        label = f"beam (LM weight {recognizer.lm_weight:g})" if method == "beam" else method
        label += " *" if method == recognizer.method else ""
        rows.append({"decoder": label, "wer": rates["wer"], "cer": rates["cer"], "utterances": rates["utterances"],
                     "words": rates["words"], "s_per_utt": seconds[method] / len(items)})
    print(f"\nscored: {len(lines)} utterances of {corpus.name} (seed {args.corpus_seed}, {args.speakers} speaker(s)); "
          f"{overlap['verbatim_in_training_text']} of them verbatim in the training text; * the decoder evaluate "
          f"uses (chosen at build time: {info['decoder']})\n")
    print("| training CPU s | train utts | epochs | decoder | WER | CER | utts | words | s/utt |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {info['train_cpu_s']:.0f} | {info['train_utterances']} | {cfg.epochs} | {r['decoder']} | "
              f"{100 * r['wer']:.1f}% | {100 * r['cer']:.1f}% | {r['utterances']} | {r['words']} | "
              f"{r['s_per_utt']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"recognizer": info, "overlap": overlap, "rows": rows,
                                               "corpus_seed": args.corpus_seed, "speakers": args.speakers}, indent=1))


if __name__ == "__main__":
    main()
