"""`holdtts evaluate`: audio quality of a trained system on the non-member test sentences."""
from __future__ import annotations

import json

import click


@click.command(name="evaluate")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True),
              help="Experiment directory (latest checkpoint) or checkpoint file.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="Writes generated/, reference/, quality.tsv (per utterance) and quality.json (summary).")
@click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=False))
@click.option("--dump-dir", default="dump", show_default=True, type=click.Path(file_okay=False))
@click.option("--split", default="test", show_default=True, help="Sentences to synthesize (non-members).")
@click.option("--max-utts", type=int, help="Only the first N sentences of the split.")
@click.option("--metrics", default="fd_speaker,fd_logmel,dnsmos,wer,mcd", show_default=True,
              help="Comma-separated subset of fd_speaker, fd_logmel, dnsmos, wer, mcd.")
@click.option("--vocoder", default="auto", show_default=True,
              help="auto (the recipe's trained HiFi-GAN, exp/vocoder, when it exists, else Griffin-Lim), "
                   "griffin-lim, a HiFi-GAN experiment directory or checkpoint, or a published generator file. "
                   "Used for both sides of every comparison.")
@click.option("--steps", type=int, help="Reverse-diffusion steps (default: the config's).")
@click.option("--sampler", help="Sampler (default: the config's).")
@click.option("--temperature", type=float, help="Prior temperature (default: the config's).")
@click.option("--seed", default=1234, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Keep per-clip DNSMOS, recognition and speaker embeddings here, keyed by the audio's sha256: "
                   "the real recordings are then scored once for all systems.")
@click.option("--overwrite", is_flag=True, help="Replace existing results.")
def command(model_path, out_dir, data_dir, dump_dir, split, max_utts, metrics, vocoder, steps, sampler,
            temperature, seed, batch_size, device, cache_dir, overwrite):
    """Synthesize the test sentences (non-members: the model never saw them), pass the real recordings'
    mels through the same vocoder, and compare: Frechet distances on Resemblyzer speaker embeddings and
    on log-mel frames (sample sizes stated), DNSMOS, pocketsphinx WER (beside the real audio's own WER),
    and mel-cepstral distortion with DTW. Nothing is downloaded: every model ships in its wheel."""
    from holdtts.data.features import resolve_device
    from holdtts import load_model  # imports the defenses, so their loaders are registered
    from holdtts.quality.system import evaluate_system
    from holdtts.vocoder import load_vocoder, resolve_vocoder

    torch_device = resolve_device(device)
    model = load_model(model_path, device=torch_device)
    voc = load_vocoder(resolve_vocoder(vocoder, model.checkpoint), device=str(torch_device))
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    summary = evaluate_system(model, voc, data_dir, dump_dir, out_dir, split, max_utts, names, steps, sampler,
                              temperature, seed, batch_size, str(torch_device), overwrite, cache_dir)
    brief = {k: summary[k] for k in ("n_utterances", "vocoder") if k in summary}
    if "dnsmos" in summary:
        brief["dnsmos_ovrl"] = round(summary["dnsmos"]["generated"]["ovrl"], 3)
    if "wer" in summary:
        brief["wer"] = summary["wer"]["generated"]
    click.echo(json.dumps(brief))
