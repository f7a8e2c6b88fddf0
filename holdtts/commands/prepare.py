"""`holdtts prepare`: corpus -> Kaldi-style tables and the membership splits."""
from __future__ import annotations

import os

import click

_COUNT = click.IntRange(min=0)


@click.command(name="prepare")
@click.option("--corpus-dir", required=True, type=click.Path(file_okay=False),
              help="A corpus in LJSpeech's format: metadata.csv (id|text|normalized text) and wavs/<id>.wav; "
                   "or its multi-speaker form, with a fourth column: id|text|normalized text|speaker.")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False),
              help="Where to write the tables and splits (the layout above).")
@click.option("--seed", type=_COUNT, default=1234, show_default=True, help="Seed of the split permutation.")
@click.option("--num-members", type=_COUNT, default=None,
              help="Members (training set). Default: half of what valid leaves.")
@click.option("--num-nonmembers", type=_COUNT, default=None, help="Non-members. Default: as many as members.")
@click.option("--num-valid", type=_COUNT, default=None,
              help="Validation utterances, held out from everything. Default: 1% of the corpus, 2 to 100.")
@click.option("--num-test", type=_COUNT, default=None,
              help="Quality-test sentences, taken from the non-members. Default: min(100, non-members).")
@click.option("--protocol", type=click.Choice(["utterance", "speaker"]), default="utterance", show_default=True,
              help="Multi-speaker corpora: utterance-level membership (every speaker has members and "
                   "non-members) or speaker-level (whole speakers are members or non-members).")
@click.option("--num-member-speakers", type=_COUNT, default=None,
              help="--protocol speaker: member speakers (the others are non-member speakers). Default: half "
                   "the speakers, rounded down.")
@click.option("--valid-per-speaker", type=_COUNT, default=1, show_default=True,
              help="--protocol speaker: validation utterances held out of each member speaker.")
@click.option("--test-per-speaker", type=_COUNT, default=2, show_default=True,
              help="--protocol speaker: quality-test sentences held out of each member speaker.")
@click.option("--skip-bad", is_flag=True,
              help="Skip unusable utterances (listed with a reason in DATA_DIR/all/skipped) instead of "
                   "failing at the first one.")
@click.option("--resample", is_flag=True,
              help="Convert wavs at another rate, or not mono, to 22050 Hz mono in DATA_DIR/wavs_22050/ "
                   "instead of failing.")
@click.option("--defer-resample", is_flag=True,
              help="Accept wavs (or flacs) at another rate, or not mono, as they are: wav.scp lists the "
                   "originals, utt2num_samples their length at 22050 Hz, and `holdtts features` resamples "
                   "them once, when it computes the mels (the VCTK and LibriTTS recipes).")
@click.option("--overwrite", is_flag=True,
              help="Replace splits made with other settings or from another corpus. This invalidates every "
                   "model trained on the old splits.")
@click.option("--nj", type=click.IntRange(min=1), default=min(8, os.cpu_count() or 1), show_default=True,
              help="Worker processes checking (and converting) wavs.")
def command(corpus_dir, data_dir, seed, num_members, num_nonmembers, num_valid, num_test, protocol,
            num_member_speakers, valid_per_speaker, test_per_speaker, skip_bad, resample, defer_resample,
            overwrite, nj):
    """Validate a corpus and write the tables and membership splits every later stage reads.

    Every wav is checked (present, readable, 22050 Hz, mono, not empty) and every metadata line
    (three '|'-separated fields, or four with a speaker, a safe and unique id, non-empty texts); a
    problem is an error naming the file and line. Writes, sorted by utterance id:

    \b
      DATA_DIR/all/wav.scp          id  absolute path of the wav
      DATA_DIR/all/text             id  normalized text (metadata column 3)
      DATA_DIR/all/text.raw         id  original text (metadata column 2)
      DATA_DIR/all/utt2num_samples  id  number of samples at 22050 Hz
      DATA_DIR/SPLIT/...            the same tables for each split below
      DATA_DIR/splits.json          seed, sizes, corpus checksums, arguments, version

    The splits follow PIA's membership-inference protocol. The sorted ids are permuted with the seed;
    in that order come:

    \b
      valid       held out from everything; only for the validation loss
      members     the utterances models are trained on
      nonmembers  never seen by any stage (text encoder, decoder, vocoder): the
                  attacks' negatives
      half1/2     the members in two disjoint halves, one per model of the
                  dual-model defenses (DualMD, DistillMD)
      test        the first non-members: sentences audio quality is measured on

    Members and non-members are equally many by default; utterances beyond --num-members plus
    --num-nonmembers are left unused. The splits are made once: re-running with the same corpus and
    settings does nothing; other settings or a changed corpus are refused unless --overwrite.
    Everything is written to a temporary directory and renamed into place, so an interrupted run
    leaves nothing behind.

    A multi-speaker corpus (a speaker column) also gets:

    \b
      DATA_DIR/utt2spk   id  speaker            (every utterance of all/)
      DATA_DIR/spk2utt   speaker  id id ...
      DATA_DIR/spk2id    speaker  index         (the speakers of members, sorted,
                                                 0..K-1: the model's speaker table)

    and one of two protocols. --protocol utterance: the order above spreads each speaker's
    utterances evenly, so every split holds each speaker's share and every speaker has members and
    non-members. --protocol speaker: --num-member-speakers whole speakers are member speakers, the
    others non-member speakers (all their utterances are non-members); of each member speaker,
    --valid-per-speaker utterances are valid and --test-per-speaker are test sentences (a trained
    voice, unheard sentences), the rest are members; half1/half2 split the member speakers.
    """
    from holdtts.data.splits import CONVERTED_WAVS, prepare_data_dir

    result = prepare_data_dir(corpus_dir, data_dir, seed=seed, num_members=num_members,
                              num_nonmembers=num_nonmembers, num_valid=num_valid, num_test=num_test,
                              skip_bad=skip_bad, resample=resample, overwrite=overwrite, nj=nj, progress=True,
                              protocol=protocol, num_member_speakers=num_member_speakers,
                              valid_per_speaker=valid_per_speaker, test_per_speaker=test_per_speaker,
                              defer_resample=defer_resample)
    meta = result.meta
    if result.status == "unchanged":
        click.echo(f"{result.data_dir}: splits already prepared from this corpus with these settings "
                   f"({meta.get('created')}); nothing to do")
        return
    if skip_bad:
        click.echo(f"skipped {result.num_skipped} bad utterance(s); reasons in {result.data_dir}/all/skipped")
    if result.num_converted:
        click.echo(f"resampled {result.num_converted} wav(s) to 22050 Hz mono into "
                   f"{result.data_dir / CONVERTED_WAVS}")
    if meta.get("num_deferred"):
        click.echo(f"{meta['num_deferred']} wav(s) are at another rate or not mono: `holdtts features` "
                   "resamples them to 22050 Hz mono")
    sizes = meta["sizes"]
    speakers = ""
    if "num_speakers" in meta:
        speakers = (f" of {meta['num_speakers']} speakers, {meta['protocol']} protocol "
                    f"({meta['num_member_speakers']} member speakers)")
    click.echo(f"{result.data_dir}: {'replaced' if result.status == 'replaced' else 'wrote'} splits of "
               f"{sizes['all']} utterances{speakers} (seed {meta['seed']}): members {sizes['members']} "
               f"(halves {sizes['half1']}/{sizes['half2']}), nonmembers {sizes['nonmembers']}, "
               f"valid {sizes['valid']}, test {sizes['test']}, unused {sizes['unused']}")
