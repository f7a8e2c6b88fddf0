"""Text to speech with a trained system: batched synthesis, vocoding, files on disk."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from holdtts.errors import HoldttsError, InputError
from holdtts.models.loading import encode_texts
from holdtts.utils.fileio import atomic_path, ensure_dir, write_json_atomic


@dataclass
class SynthesisResult:
    utt_ids: list[str]
    mels: list[np.ndarray]  # [n_mels, frames] each
    wavs: list[np.ndarray]  # float32 samples each
    decoder_seconds: float
    vocoder_seconds: float
    audio_seconds: float

    @property
    def rtf(self) -> float:
        """Decoder real-time factor: seconds of diffusion sampling per second of audio."""
        return self.decoder_seconds / max(self.audio_seconds, 1e-9)


def read_text_file(path: str | Path, with_ids: bool) -> list[tuple[str, str]]:
    """Sentences from a file: one per line, or Kaldi-style `utt_id text` lines when with_ids."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as err:
        raise InputError("text file not found", path) from err
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text ({err})", path) from err
    items, seen = [], {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if with_ids:
            parts = line.split(maxsplit=1)
            if len(parts) < 2:
                raise InputError("expected 'utt_id text'", path, number)
            utt, text = parts
            if utt in seen:
                raise InputError(f"duplicate id '{utt}' (first on line {seen[utt]})", path, number)
            seen[utt] = number
        else:
            utt, text = f"utt{number:05d}", line.strip()
        items.append((utt, text))
    if not items:
        raise InputError("no sentences in the file", path)
    return items


@torch.no_grad()
def synthesize_texts(model, texts: Sequence[str], utt_ids: Sequence[str], vocoder, steps: int | None = None,
                     sampler: str | None = None, temperature: float | None = None,
                     length_scale: float | None = None, batch_size: int = 16, seed: int = 1234) -> SynthesisResult:
    """Synthesize `texts` in length-sorted batches; each batch's noise comes from a generator seeded by
    (seed, first index of the batch), so a result depends only on the seed, the texts and batch_size."""
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    mels: dict[int, np.ndarray] = {}
    wavs: dict[int, np.ndarray] = {}
    decoder_seconds = vocoder_seconds = 0.0
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        tokens, lengths = encode_texts(model, [texts[i] for i in index])
        generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + start)
        _sync(device)
        began = time.perf_counter()
        batch_mels, frames = model.synthesize(tokens, lengths, steps=steps, sampler=sampler,
                                              temperature=temperature, length_scale=length_scale,
                                              generator=generator)
        _sync(device)
        decoder_seconds += time.perf_counter() - began
        began = time.perf_counter()
        # vocoders that take lengths vocode a padded batch exactly as each item alone
        audio = vocoder(batch_mels, frames) if getattr(vocoder, "supports_lengths", False) else vocoder(batch_mels)
        _sync(device)
        vocoder_seconds += time.perf_counter() - began
        hop = model.config.features.hop_length
        for row, i in enumerate(index):
            n = int(frames[row])
            mels[i] = batch_mels[row, :, :n].float().cpu().numpy()
            wavs[i] = audio[row, : n * hop].float().cpu().numpy()
    sample_rate = model.config.features.sample_rate
    audio_seconds = sum(w.shape[0] for w in wavs.values()) / sample_rate
    keys = range(len(texts))
    return SynthesisResult(list(utt_ids), [mels[i] for i in keys], [wavs[i] for i in keys], decoder_seconds,
                           vocoder_seconds, audio_seconds)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_outputs(result: SynthesisResult, texts: Sequence[str], out_dir: str | Path, sample_rate: int,
                  overwrite: bool = False, meta: dict | None = None) -> None:
    """<out_dir>/<id>.wav (16-bit PCM) and <id>.npy (float32 [n_mels, frames]), plus text and synthesis.json."""
    out_dir = ensure_dir(out_dir)
    if not overwrite:
        clash = [u for u in result.utt_ids if (out_dir / f"{u}.wav").exists() or (out_dir / f"{u}.npy").exists()]
        if clash:
            raise HoldttsError(f"{out_dir}: {len(clash)} output(s) already exist (e.g. {clash[0]}.wav); "
                               "pass --overwrite to replace them")
    for utt, mel, wav in zip(result.utt_ids, result.mels, result.wavs):
        with atomic_path(out_dir / f"{utt}.npy", suffix=".npy") as tmp:
            np.save(tmp, mel.astype(np.float32))
        with atomic_path(out_dir / f"{utt}.wav", suffix=".wav") as tmp:
            sf.write(tmp, np.clip(wav, -1.0, 1.0), sample_rate, subtype="PCM_16")
    with atomic_path(out_dir / "text") as tmp:
        tmp.write_text("".join(f"{u} {t}\n" for u, t in sorted(zip(result.utt_ids, texts))), encoding="utf-8")
    write_json_atomic(out_dir / "synthesis.json", {
        **(meta or {}),
        "num_utts": len(result.utt_ids),
        "audio_seconds": round(result.audio_seconds, 3),
        "decoder_seconds": round(result.decoder_seconds, 3),
        "vocoder_seconds": round(result.vocoder_seconds, 3),
        "decoder_rtf": round(result.rtf, 5),
    })
