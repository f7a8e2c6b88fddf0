"""`holdtts synthesize`: text to wavs (and mels) with a trained system."""
from __future__ import annotations

import click


@click.command(name="synthesize")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True),
              help="Experiment directory (its latest checkpoint) or a checkpoint file.")
@click.option("--text", "texts", multiple=True,
              help="A text to speak (repeatable). A text of more than 400 characters is split into sentences "
                   "(at most 400 characters each), synthesized in batches and joined.")
@click.option("--text-file", type=click.Path(dir_okay=False), help="Sentences, one per line.")
@click.option("--with-ids", is_flag=True,
              help="--text-file lines are Kaldi-style 'utt_id text' (e.g. data/test/text); ids name the files.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False), help="Where wavs and mels go.")
@click.option("--steps", type=int, help="Reverse-diffusion steps (default: the config's synthesis.steps).")
@click.option("--sampler", help="euler_maruyama, ode_euler, ode_heun or splitting (default: the config's).")
@click.option("--temperature", type=float, help="Prior noise std divisor (Grad-TTS uses 1.5).")
@click.option("--length-scale", type=float, help="Duration multiplier (> 1 speaks slower).")
@click.option("--speaker", default=None,
              help="The voice of a multi-speaker model: a speaker id of its training data's spk2id, or @mean for "
                   "the mean of its trained voices. Required for a multi-speaker model, refused for a "
                   "single-speaker one.")
@click.option("--batch-size", default=16, show_default=True)
@click.option("--seed", default=1234, show_default=True)
@click.option("--vocoder", default="auto", show_default=True,
              help="auto (the recipe's trained HiFi-GAN, exp/vocoder, when it exists, else Griffin-Lim), "
                   "griffin-lim, a HiFi-GAN experiment directory or checkpoint, or a published generator file.")
@click.option("--device", default="auto", show_default=True)
@click.option("--raw-weights", is_flag=True, help="Use the raw trained weights instead of the EMA ones.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs of the same names.")
def command(model_path, texts, text_file, with_ids, out_dir, steps, sampler, temperature, length_scale,
            speaker, batch_size, seed, vocoder, device, raw_weights, overwrite):
    """Write <out-dir>/<id>.wav (16-bit, 22050 Hz) and <id>.npy (float32 log-mel [80, frames], the
    input `holdtts vocode` takes) for each sentence, plus synthesis.json with the settings and the
    decoder's real-time factor.

    A text longer than 400 characters is split into sentences, which are packed into chunks of up to 400
    characters, synthesized in batches of --batch-size and joined with 0.2 s pauses into one file; a
    single sentence over 400 characters is an error (split it with punctuation)."""
    from holdtts import load_model  # imports the defenses, so their loaders are registered
    from holdtts.data.features import resolve_device
    from holdtts.errors import InputError
    from holdtts.synthesis import (
        read_text_file,
        speaker_condition,
        synthesize_long_texts,
        text_chunks,
        write_outputs,
    )
    from holdtts.vocoder import load_vocoder, resolve_vocoder

    if bool(texts) == bool(text_file):
        raise click.UsageError("give either --text (repeatable) or --text-file")
    if text_file:
        items = read_text_file(text_file, with_ids)
    else:
        items = [(f"utt{i + 1:05d}", t) for i, t in enumerate(texts)]
        if any(not t.strip() for _, t in items):
            raise InputError("--text is empty")
    for utt, text in items:  # a sentence over the limit fails before the model is loaded
        text_chunks(text, name=f"{text_file}: {utt}" if text_file else "--text")
    torch_device = resolve_device(device)
    model = load_model(model_path, device=torch_device, ema=not raw_weights)
    speaker_condition(model, speaker)  # a missing or unknown speaker fails before the vocoder is loaded
    voc = load_vocoder(resolve_vocoder(vocoder, model.checkpoint), device=str(torch_device))
    ids, sentences = [u for u, _ in items], [t for _, t in items]
    result = synthesize_long_texts(model, sentences, ids, voc, steps=steps, sampler=sampler, temperature=temperature,
                              length_scale=length_scale, batch_size=batch_size, seed=seed, speaker=speaker)
    cfg = model.config.synthesis
    meta = {"model": str(model.checkpoint), "step": model.step, "weights": "raw" if raw_weights else "ema",
            "sampler": sampler or cfg.sampler, "steps": steps or cfg.steps,
            "temperature": temperature if temperature is not None else cfg.temperature,
            "length_scale": length_scale if length_scale is not None else cfg.length_scale,
            "seed": seed, "batch_size": batch_size, "vocoder": getattr(voc, "name", vocoder),
            "device": str(torch_device)}
    if speaker is not None:
        meta["speaker"] = speaker
    write_outputs(result, sentences, out_dir, model.config.features.sample_rate, overwrite, meta)
    click.echo(f"synthesized {len(ids)} utterance(s), {result.audio_seconds:.1f} s of audio, decoder RTF "
               f"{result.rtf:.4f} ({meta['sampler']}, {meta['steps']} steps) -> {out_dir}")
    if result.nonfinite:
        click.echo(f"warning: {len(result.nonfinite)} synthesis(es) diverged (NaN or infinite values) and were "
                   f"written as silence: {', '.join(result.nonfinite)} (listed in synthesis.json)", err=True)
