"""`holdtts evaluate`: audio quality of a trained system on the non-member test sentences."""
from __future__ import annotations

import json

import click


@click.command(name="evaluate")
@click.option("--model", "model_path", type=click.Path(exists=True),
              help="Experiment directory (latest checkpoint) or checkpoint file (not with --reference-only).")
@click.option("--reference-only", is_flag=True,
              help="No model: score the real recordings of the test sentences, raw (real/) and through the vocoder "
                   "(vocoded/), against as many other non-members, each written like a system's quality.json; "
                   "plus the sanity table (sanity.json): a ceiling row for the report and a check of the metrics.")
@click.option("--no-sanity", is_flag=True, help="With --reference-only: skip the sanity conditions.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="Writes generated/, reference/, quality.tsv (per utterance) and quality.json (summary); with "
                   "--reference-only real/, vocoded/, sanity/, sanity.json and reference.json.")
@click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=False))
@click.option("--dump-dir", default="dump", show_default=True, type=click.Path(file_okay=False))
@click.option("--split", default="test", show_default=True, help="Sentences to synthesize (non-members).")
@click.option("--max-utts", type=int, help="Only the first N sentences of the split.")
@click.option("--metrics", default="auto", show_default=True,
              help="Comma-separated names among fd_speaker, fd_logmel (each with its kernel distance), dnsmos, wer, "
                   "wer_domain, wer_espeak, mcd; auto: all of them, wer_domain and wer_espeak only on a mini "
                   "corpus (wer_espeak's recogniser trains on first use: about half an hour on 2 cores, once, "
                   "then cached); -name drops one, e.g. auto,-wer_espeak.")
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
def command(model_path, reference_only, no_sanity, out_dir, data_dir, dump_dir, split, max_utts, metrics, vocoder,
            steps, sampler, temperature, seed, batch_size, device, cache_dir, overwrite):
    """Synthesize the test sentences (non-members: the model never saw them), pass the real recordings'
    mels through the same vocoder, and compare: Frechet distances on Resemblyzer speaker embeddings and
    on log-mel frames (sample sizes stated), DNSMOS, pocketsphinx WER (beside the real audio's own WER),
    and mel-cepstral distortion with DTW. Nothing is downloaded: every model ships in its wheel."""
    from holdtts.data.features import resolve_device
    from holdtts.errors import HoldttsError
    from holdtts.quality.system import evaluate_system, resolve_metrics
    from holdtts.vocoder import load_vocoder, resolve_vocoder

    if reference_only == bool(model_path):
        raise HoldttsError("give either --model or --reference-only")
    torch_device = resolve_device(device)
    names = resolve_metrics(metrics, data_dir)
    if reference_only:
        from holdtts.quality.reference import evaluate_reference

        # "auto": the recipe's HiFi-GAN beside the output's parent (exp/reference -> exp/vocoder), else Griffin-Lim
        from holdtts.utils.fileio import ensure_dir

        voc = load_vocoder(resolve_vocoder(vocoder, ensure_dir(out_dir)), device=str(torch_device))
        result = evaluate_reference(voc, data_dir, dump_dir, out_dir, names, split, max_utts, str(torch_device),
                                    overwrite, cache_dir, with_sanity=not no_sanity)
        brief = {"vocoder": voc.name, "n_utterances": result["real"]["n_utterances"]}
        for row in ("real", "vocoded"):
            for metric in ("wer", "wer_domain", "wer_espeak"):
                if metric in result[row]:
                    brief[f"{row}_{metric}"] = round(result[row][metric]["generated"]["wer"], 4)
        if "sanity" in result:
            brief["sanity_flagged"] = result["sanity"]["flagged"]
        click.echo(json.dumps(brief))
        return
    from holdtts import load_model  # imports the defenses, so their loaders are registered

    model = load_model(model_path, device=torch_device)
    voc = load_vocoder(resolve_vocoder(vocoder, model.checkpoint), device=str(torch_device))
    summary = evaluate_system(model, voc, data_dir, dump_dir, out_dir, split, max_utts, names, steps, sampler,
                              temperature, seed, batch_size, str(torch_device), overwrite, cache_dir)
    brief = {k: summary[k] for k in ("n_utterances", "vocoder") if k in summary}
    if "dnsmos" in summary:
        brief["dnsmos_ovrl"] = round(summary["dnsmos"]["generated"]["ovrl"], 3)
    for metric in ("wer", "wer_domain", "wer_espeak"):
        if metric in summary:
            brief[metric] = summary[metric]["generated"]
    click.echo(json.dumps(brief))
