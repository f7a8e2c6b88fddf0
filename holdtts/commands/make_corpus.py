"""`holdtts make-corpus`: synthesize the offline mini corpus with eSpeak NG."""
from __future__ import annotations

import os

import click

from holdtts.data.sentences import MAX_WORDS, MIN_WORDS


@click.command(context_settings={"max_content_width": 100})
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="Corpus directory to create (e.g. downloads/MINI-1.0).")
@click.option("--num-utts", default=512, show_default=True, type=click.IntRange(min=1),
              help="Number of utterances (LJSpeech has 13,100).")
@click.option("--seed", default=1234, show_default=True, type=int,
              help="Seed of the sentences and of each utterance's prosody.")
@click.option("--nj", default=os.cpu_count() or 1, show_default="number of CPUs", type=click.IntRange(min=1),
              help="Parallel worker processes (the output does not depend on it).")
@click.option("--voice", default=None, help="eSpeak NG voice of a single-speaker corpus [default: en-us].")
@click.option("--speakers", "num_speakers", default=1, show_default=True, type=click.IntRange(1, 91),
              help="Number of speakers. Above 1, a multi-speaker corpus: each speaker a distinct eSpeak NG "
                   "voice and variant with its own prosody window, and a speaker column in metadata.csv.")
@click.option("--max-words", default=MAX_WORDS, show_default=True, type=click.IntRange(MIN_WORDS, MAX_WORDS),
              help="Longest sentence, in words after normalisation. Below the default, only the grammar's "
                   "short sentences are kept (the same draws, filtered): at 6 words clips of 1.3 to 3.6 s "
                   "(median 2.3 s), which a small model memorises in minutes (the demo's membership corpus).")
@click.option("--overwrite", is_flag=True, help="Replace an existing corpus at --out-dir.")
def command(out_dir: str, num_utts: int, seed: int, nj: int, voice: str | None, num_speakers: int,
            max_words: int, overwrite: bool) -> None:
    """Synthesize a small speech corpus offline, in LJSpeech 1.1's exact format.

    The corpus lets the recipe, the demo and the tests run end to end with no download: sentences
    generated from a seeded grammar over the CMU dictionary's words (with numbers, years, money,
    abbreviations and punctuation), spoken by eSpeak NG (from the espeakng-loader wheel) with a
    speaking rate, pitch and pitch range drawn per utterance. It writes:

    \b
      OUT_DIR/metadata.csv   id|text|normalized text, one line per utterance
      OUT_DIR/wavs/ID.wav    22050 Hz mono 16-bit PCM
      OUT_DIR/prosody.tsv    each utterance's rate, pitch, pitch range and length
      OUT_DIR/corpus.json    provenance (seed, voice, eSpeak NG and CMUdict versions)

    With --speakers N (N > 1) the utterances are spread over N speakers (sentence i is spoken by
    speaker i mod N). Speaker k is an eSpeak NG accent (en-us, en, en-gb-scotland, en-029,
    en-gb-x-rp, en-gb-x-gbclan, en-gb-x-gbcwmd, in turn) with a voice variant (m1, f1, m3, f2, ...
    in turn), and has its own window of speaking rate, pitch and pitch range:

    \b
      OUT_DIR/metadata.csv   id|text|normalized text|speaker  (ids SPK01-0001, ...)
      OUT_DIR/prosody.tsv    the same columns, with each utterance's speaker and voice
      OUT_DIR/corpus.json    also each speaker's voice, prosody window and count

    `holdtts prepare` reads the speaker column and writes utt2spk, spk2utt and spk2id.

    The same seed gives byte-identical files whatever --nj. The corpus appears only once complete,
    and an existing one is replaced only with --overwrite.
    """
    from holdtts.data.minicorpus import make_mini_corpus
    from holdtts.errors import HoldttsError

    if voice is not None and num_speakers > 1:
        raise HoldttsError("--voice is for a single-speaker corpus: with --speakers the voices are fixed")
    summary = make_mini_corpus(out_dir, num_utts, seed, nj, voice=voice or "en-us", overwrite=overwrite,
                               num_speakers=num_speakers, max_words=max_words)
    s = summary
    speakers = f" by {s['num_speakers']} speakers" if s["num_speakers"] > 1 else ""
    click.echo(
        f"make-corpus: {s['num_utts']} clips{speakers}, {s['total_duration_s'] / 3600:.2f} h of audio "
        f"({s['min_duration_s']:.1f}-{s['max_duration_s']:.1f} s each) in {s['elapsed_s']:.1f} s "
        f"({s['clips_per_s']:.1f} clips/s, eSpeak NG {s['espeak_ng_version']}) -> {s['out_dir']}"
    )
