"""`holdtts features`: log-mels and token ids for every prepared utterance."""
from __future__ import annotations

import os

import click


@click.command(name="features")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False),
              help="Directory written by `holdtts prepare` (reads all/wav.scp, all/text, all/utt2num_samples).")
@click.option("--dump-dir", required=True, type=click.Path(file_okay=False),
              help="Where to write mels.npy, mels.index, tokens, symbols.txt and manifest.json.")
@click.option("--device", default="auto", show_default=True,
              help="Where mels are computed: auto (CUDA when present), cpu, cuda, cuda:1, ...")
@click.option("--batch-size", default=32, show_default=True, help="Clips per batched STFT.")
@click.option("--nj", default=min(8, os.cpu_count() or 1), show_default=True,
              help="Threads decoding audio.")
@click.option("--overwrite", is_flag=True, help="Recompute features computed from different inputs.")
def command(data_dir, dump_dir, device, batch_size, nj, overwrite):
    """Compute the features every later stage reads, once.

    Mels follow HiFi-GAN's convention exactly (22050 Hz, n_fft 1024, hop 256, 80 Slaney bands over
    0-8000 Hz, natural log), so published HiFi-GAN vocoders work on them. They are stored losslessly
    (float32) in one memory-mapped array, so training never decodes audio. Texts become token ids (CMUdict
    phonemes, letters for unknown words, a blank between symbols as in Grad-TTS); the symbol table is
    saved beside them and later inside every checkpoint.

    Re-running with unchanged inputs does nothing; changed inputs are an error unless --overwrite.
    """
    from holdtts.data.features import extract_features

    summary = extract_features(data_dir, dump_dir, device=device, batch_size=batch_size, nj=nj,
                               overwrite=overwrite)
    if summary["skipped"]:
        click.echo(f"features in {dump_dir} are complete and up to date ({summary['num_utts']} utterances); "
                   "nothing to do")
        return
    click.echo(f"features: {summary['num_utts']} utterances, {summary['hours']:.2f} h, "
               f"{summary['num_frames']} frames, {summary['clips_per_second']} clips/s on {summary['device']} "
               f"-> {dump_dir}")
