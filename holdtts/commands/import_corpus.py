"""`holdtts import-corpus`: VCTK 0.92 or LibriTTS, in their own layout -> the project's multi-speaker corpus."""
from __future__ import annotations

import click


@click.command(name="import-corpus")
@click.option("--format", "fmt", type=click.Choice(["vctk", "libritts"]), required=True,
              help="The layout of --source.")
@click.option("--source", required=True, type=click.Path(file_okay=False),
              help="The corpus as downloaded: VCTK-Corpus-0.92/ (txt/, wav48_silence_trimmed/) or LibriTTS/ "
                   "(its subset folders).")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="The corpus directory to create (metadata.csv, wavs/, skipped, corpus.json).")
@click.option("--mic", default="mic1", show_default=True, type=click.Choice(["mic1", "mic2"]),
              help="VCTK only: which microphone's recordings.")
@click.option("--subsets", default="train-clean-100", show_default=True,
              help="LibriTTS only: comma-separated subsets to import.")
@click.option("--overwrite", is_flag=True, help="Replace an existing corpus at --out-dir.")
def command(fmt, source, out_dir, mic, subsets, overwrite):
    """Turn VCTK 0.92 or LibriTTS into the corpus form `holdtts prepare` reads, without copying audio:

    \b
      OUT_DIR/metadata.csv     id|text|normalized text|speaker, sorted by id
      OUT_DIR/wavs/ID.flac     (VCTK) or ID.wav (LibriTTS): links to the source audio
      OUT_DIR/skipped          id reason, for source utterances left out
      OUT_DIR/corpus.json      source, microphone or subsets, counts, speakers

    Ids are the corpus's own (VCTK p225_001, LibriTTS 103_1241_000000_000001); the speaker is their
    first field. VCTK's transcript is column 2, the English cleaners' form of it column 3; LibriTTS's
    .original.txt and .normalized.txt are columns 2 and 3. The audio stays at its own rate (48 or 24
    kHz): prepare it with `holdtts prepare --defer-resample`, and `holdtts features` resamples it to
    22050 Hz once. A transcript with '|' or invalid UTF-8 is an error naming the file.
    """
    from holdtts.data.corpora import import_libritts, import_vctk, parse_subsets

    if fmt == "vctk":
        summary = import_vctk(source, out_dir, mic=mic, overwrite=overwrite)
    else:
        summary = import_libritts(source, out_dir, parse_subsets(subsets), overwrite=overwrite)
    click.echo(f"import-corpus: {summary['num_utts']} utterances of {summary['num_speakers']} speakers from "
               f"{summary['source']} ({summary['num_skipped']} left out, listed in {out_dir}/skipped) -> {out_dir}")
