"""`holdtts build-recognizer`: build a mini-corpus recogniser into the cache now, instead of on first use."""
from __future__ import annotations

import json

import click


@click.command(name="build-recognizer", context_settings={"max_content_width": 100})
@click.option("--recognizer", type=click.Choice(["espeak", "domain"]), default="espeak", show_default=True,
              help="espeak: the CTC model of eSpeak NG speech (wer_espeak; minutes); domain: pocketsphinx's "
                   "class 3-gram of the sentence generator (wer_domain; about 30 s).")
@click.option("--num-utts", type=click.IntRange(min=1), help="espeak: training utterances [default: 2400].")
@click.option("--epochs", type=click.IntRange(min=1), help="espeak: training epochs [default: 5].")
@click.option("--speaker-share", type=click.FloatRange(0, 1),
              help="espeak: fraction of the utterances spoken by the multi-speaker corpora's voices [default: 0.25].")
@click.option("--out-dir", type=click.Path(file_okay=False),
              help="Build here instead of the cache ($HOLDTTS_CACHE or ~/.cache/holdtts); point evaluate at it "
                   "with HOLDTTS_ESPEAK_ASR=DIR.")
@click.option("--nj", type=click.IntRange(min=1), help="eSpeak NG worker processes [default: number of CPUs].")
@click.option("--threads", type=click.IntRange(min=1),
              help="torch threads while training (default 2); results are reproducible for a given number.")
def command(recognizer, num_utts, epochs, speaker_share, out_dir, nj, threads):
    """Build a recogniser of the mini corpus once (both are also built on first use by `holdtts evaluate`)
    and print where it is, with its training CPU time. The default espeak build is the one evaluate uses;
    another size is built under its own fingerprint (or --out-dir) and left for HOLDTTS_ESPEAK_ASR."""
    if recognizer == "domain":
        from holdtts.quality.domain_lm import build_domain_model

        click.echo(json.dumps({"recognizer": "domain", "folder": str(build_domain_model().folder)}))
        return
    from holdtts.quality import espeak_train

    cfg = espeak_train.scaled(espeak_train.TrainConfig(), num_utts=num_utts, epochs=epochs,
                              speaker_share=speaker_share)
    folder = espeak_train.build_recognizer(out_dir, cfg, nj=nj, threads=threads)
    info = espeak_train.read_info(folder)
    last = info["history"][-1] if info["history"] else {}
    click.echo(json.dumps({"recognizer": "espeak", "folder": str(folder), "fingerprint": info["fingerprint"],
                           "train_utterances": info["train_utterances"], "train_hours": info["train_hours"],
                           "parameters": info["parameters"], "speech_wall_s": info["speech_wall_s"],
                           "train_cpu_s": info["train_cpu_s"], "train_wall_s": info["train_wall_s"],
                           "torch_threads": info["torch_threads"], "last_epoch": last}))
