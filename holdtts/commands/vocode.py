"""`holdtts vocode`: log-mel .npy files (as `holdtts synthesize` writes them) to 16-bit wavs."""
from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

VOCODE_JSON = "vocode.json"


def read_mel(path: Path, n_mels: int) -> np.ndarray:
    """A float32 [n_mels, frames] log-mel from an .npy file; anything else is an InputError naming it."""
    from holdtts.errors import InputError

    try:
        mel = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"cannot read the mel (corrupt or not an .npy array): {err}", path) from err
    if not isinstance(mel, np.ndarray) or mel.ndim != 2 or mel.shape[0] != n_mels or mel.shape[1] < 1:
        raise InputError(f"expected a log-mel of shape [{n_mels}, frames], got {getattr(mel, 'shape', None)}",
                         path)
    if mel.dtype != np.float32:
        raise InputError(f"expected float32 log-mels (as `holdtts synthesize` writes), got {mel.dtype}", path)
    if not np.isfinite(mel).all():
        raise InputError("the mel holds NaN or infinite values", path)
    return mel


def batches(lengths: list[int], batch_size: int, exact_lengths_only: bool) -> list[list[int]]:
    """Indices grouped by length (little padding); only equal lengths together if the vocoder cannot
    take per-item lengths."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    groups: list[list[int]] = []
    for i in order:
        last = groups[-1] if groups else None
        if (last is None or len(last) >= batch_size
                or (exact_lengths_only and lengths[last[0]] != lengths[i])):
            groups.append([i])
        else:
            last.append(i)
    return groups


def vocode_files(vocoder, paths: list[Path], out_dir: Path, device, batch_size: int = 8,
                 overwrite: bool = False) -> dict:
    """Vocode every file into out_dir/<stem>.wav; returns the summary written to vocode.json."""
    import soundfile as sf
    import torch

    from holdtts.errors import HoldttsError
    from holdtts.utils.fileio import atomic_path, ensure_dir, write_json_atomic

    mels = [read_mel(p, getattr(vocoder, "n_mels", 80)) for p in paths]  # check them all before writing
    out_dir = ensure_dir(out_dir)
    outputs = [out_dir / f"{p.stem}.wav" for p in paths]
    if not overwrite:
        clash = [o for o in [*outputs, out_dir / VOCODE_JSON] if o.exists()]
        if clash:
            raise HoldttsError(f"{out_dir}: {len(clash)} output(s) already exist (e.g. {clash[0].name}); "
                               "pass --overwrite to replace them")
    device = torch.device(device)
    exact = getattr(vocoder, "supports_lengths", False)
    lengths = [m.shape[1] for m in mels]
    hop = getattr(vocoder, "hop_length", 256)
    seconds = 0.0
    for group in batches(lengths, batch_size, exact_lengths_only=not exact):
        longest = max(lengths[i] for i in group)
        batch = np.zeros((len(group), mels[group[0]].shape[0], longest), dtype=np.float32)
        for row, i in enumerate(group):
            batch[row, :, : lengths[i]] = mels[i]
        batch_t = torch.from_numpy(batch).to(device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        began = time.perf_counter()
        if exact:
            wavs = vocoder(batch_t, torch.tensor([lengths[i] for i in group], device=device))
        else:
            wavs = vocoder(batch_t)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - began
        wavs = wavs.float().cpu().numpy()
        for row, i in enumerate(group):
            with atomic_path(outputs[i], suffix=".wav") as tmp:
                sf.write(tmp, np.clip(wavs[row, : lengths[i] * hop], -1.0, 1.0), vocoder.sample_rate,
                         subtype="PCM_16", format="WAV")
    audio_seconds = sum(lengths) * hop / vocoder.sample_rate
    summary = {"vocoder": getattr(vocoder, "name", type(vocoder).__name__), "num_files": len(paths),
               "audio_seconds": round(audio_seconds, 3), "vocoder_seconds": round(seconds, 3),
               "vocoder_rtf": round(seconds / max(audio_seconds, 1e-9), 5), "batch_size": batch_size,
               "device": str(device)}
    write_json_atomic(out_dir / VOCODE_JSON, summary)
    return summary


@click.command(name="vocode")
@click.option("--vocoder", "vocoder_spec", required=True, metavar="PATH_OR_NAME",
              help="griffin-lim; a `holdtts train-vocoder` experiment directory or checkpoint; or a "
                   "published HiFi-GAN generator file (github.com/jik876/hifi-gan) with its config.json "
                   "beside it.")
@click.option("--vocoder-config", type=click.Path(exists=True, dir_okay=False),
              help="The config.json of a published generator, when it is not beside the file.")
@click.option("--mels", "mels_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Directory of float32 log-mel .npy files of shape [80, frames] (what `holdtts synthesize` "
                   "writes).")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False), help="Where the wavs go.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
              help="Mels per vocoder call. HiFi-GAN masks padding, so batching does not change the audio.")
@click.option("--overwrite", is_flag=True, help="Replace existing wavs of the same names.")
def command(vocoder_spec, vocoder_config, mels_dir, out_dir, device, batch_size, overwrite):
    """Write <out-dir>/<stem>.wav (16-bit PCM at the vocoder's rate, 22050 Hz) for every <stem>.npy in
    --mels, plus vocode.json (vocoder, audio seconds, real-time factor).

    Caution for privacy experiments: the published LJSpeech HiFi-GAN generators were trained on all of
    LJSpeech but 150 validation clips, i.e. on almost all of Grad-TTS's test clips and on every LJSpeech
    non-member; train one on the members with `holdtts train-vocoder` when that matters.
    """
    from holdtts.data.features import resolve_device
    from holdtts.errors import InputError
    from holdtts.vocoder import load_vocoder

    paths = sorted(Path(mels_dir).glob("*.npy"))
    if not paths:
        raise InputError("no .npy mel files in this directory", mels_dir)
    torch_device = resolve_device(device)
    vocoder = load_vocoder(vocoder_spec, device=str(torch_device), config=vocoder_config)
    summary = vocode_files(vocoder, paths, Path(out_dir), torch_device, batch_size, overwrite)
    click.echo(f"vocoded {summary['num_files']} file(s), {summary['audio_seconds']:.1f} s of audio with "
               f"{summary['vocoder']}, RTF {summary['vocoder_rtf']:.4f} on {summary['device']} -> {out_dir}")
