"""Text to speech with a trained system: batched synthesis, vocoding, files on disk.

A text longer than MAX_SENTENCE_CHARS is split into sentences, packed into chunks of at most that many
characters, and the chunks are synthesized in batches like separate texts and joined with a short pause:
memory and time grow with the length of a chunk, not of the whole text. One sentence longer than the
limit is an error (the models are trained on utterances of a few seconds).
"""
from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from holdtts.data.mel import silence_nonfinite
from holdtts.errors import HoldttsError, InputError
from holdtts.models.loading import encode_texts
from holdtts.utils.fileio import atomic_path, ensure_dir, write_json_atomic

log = logging.getLogger(__name__)

MEAN_VOICE = "@mean"  # --speaker value for a multi-speaker model's average voice (the mean of its trained rows)
# Characters of one synthesized chunk (about 25 s of speech): the limit per sentence of a long text.
MAX_SENTENCE_CHARS = 400
PAUSE_SECONDS = 0.2  # silence between the chunks of a split text
# A sentence ends at . ! ? ; : (possibly followed by a closing quote or bracket) before a space, or at a
# line break.
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?;:])|(?<=[.!?;:][\"')\]]))\s+|\s*\n\s*")


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, in order, without empty ones."""
    return [piece.strip() for piece in _SENTENCE_BREAK.split(text.strip()) if piece.strip()]


def text_chunks(text: str, limit: int = MAX_SENTENCE_CHARS, name: str = "text") -> list[str]:
    """`text` itself when it has at most `limit` characters; else its sentences packed greedily into
    chunks of at most `limit` characters. A sentence longer than `limit` is an InputError naming it."""
    text = text.strip()
    if len(text) <= limit:
        return [text]
    chunks: list[str] = []
    for number, sentence in enumerate(split_sentences(text), 1):
        if len(sentence) > limit:
            raise InputError(f"{name}: sentence {number} has {len(sentence)} characters; the limit is {limit} "
                             f"per sentence (end sentences with . ! ? ; or : or a line break): "
                             f"{sentence[:60]!r}...")
        if chunks and len(chunks[-1]) + 1 + len(sentence) <= limit:
            chunks[-1] += " " + sentence
        else:
            chunks.append(sentence)
    return chunks


@dataclass
class SynthesisResult:
    utt_ids: list[str]
    mels: list[np.ndarray]  # [n_mels, frames] each
    wavs: list[np.ndarray]  # float32 samples each
    decoder_seconds: float
    vocoder_seconds: float
    audio_seconds: float
    nonfinite: list[str] = field(default_factory=list)  # ids whose synthesis held NaN/inf: made silence

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


def speaker_condition(model, speaker: str | None) -> torch.Tensor | None:
    """The speaker row [1] for `model.synthesize(..., speakers=...)`: a speaker id of a multi-speaker model
    (as in its training data's spk2id) or MEAN_VOICE; None for a single-speaker model, which takes none."""
    from holdtts.models.tts import MEAN_SPEAKER

    n_speakers = getattr(model, "n_speakers", 1)
    if n_speakers == 1:
        if speaker is not None:
            raise HoldttsError(f"--speaker {speaker}: this is a single-speaker model; it takes no speaker")
        return None
    if speaker is None:
        ids = getattr(model, "speaker_ids", None) or []
        known = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise HoldttsError(f"this is a multi-speaker model ({len(ids)} speakers: {known}): choose the voice with "
                           f"--speaker ID (or --speaker {MEAN_VOICE} for the mean of its trained voices)")
    row = MEAN_SPEAKER if speaker == MEAN_VOICE else model.speaker_index(speaker)
    return torch.tensor([row], dtype=torch.long, device=next(model.parameters()).device)


@torch.no_grad()
def synthesize_texts(model, texts: Sequence[str], utt_ids: Sequence[str], vocoder, steps: int | None = None,
                     sampler: str | None = None, temperature: float | None = None,
                     length_scale: float | None = None, batch_size: int = 16, seed: int = 1234,
                     speaker: str | Sequence[str] | None = None) -> SynthesisResult:
    """Synthesize `texts` in length-sorted batches; each batch's noise comes from a generator seeded by
    (seed, first index of the batch), so a result depends only on the seed, the texts and batch_size.
    A multi-speaker model needs `speaker`: an id of its spk2id (or MEAN_VOICE) for every text, or one per text."""
    device = next(model.parameters()).device
    if speaker is None or isinstance(speaker, str):
        row = speaker_condition(model, speaker)
        rows = None if row is None else row.expand(len(texts))
    else:
        if len(speaker) != len(texts):
            raise HoldttsError(f"{len(speaker)} speakers for {len(texts)} texts")
        rows = torch.cat([speaker_condition(model, s) for s in speaker]) if len(texts) else None
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    mels: dict[int, np.ndarray] = {}
    wavs: dict[int, np.ndarray] = {}
    decoder_seconds = vocoder_seconds = 0.0
    nonfinite: list[str] = []
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        tokens, lengths = encode_texts(model, [texts[i] for i in index])
        generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + start)
        _sync(device)
        began = time.perf_counter()
        extra = {} if rows is None else {"speakers": rows[torch.as_tensor(index, device=rows.device)]}
        batch_mels, frames = model.synthesize(tokens, lengths, steps=steps, sampler=sampler,
                                              temperature=temperature, length_scale=length_scale,
                                              generator=generator, **extra)
        _sync(device)
        decoder_seconds += time.perf_counter() - began
        batch_mels, failed = silence_nonfinite(batch_mels, frames)
        for row in torch.nonzero(failed).flatten().tolist():
            nonfinite.append(utt_ids[index[row]])
            log.warning("synthesis of %s held NaN or infinite values (the sampler diverged): they are "
                        "silence (the log floor), as for every system", utt_ids[index[row]])
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
                           vocoder_seconds, audio_seconds, sorted(nonfinite))


def synthesize_long_texts(model, texts: Sequence[str], utt_ids: Sequence[str], vocoder,
                          max_sentence_chars: int = MAX_SENTENCE_CHARS, **kwargs) -> SynthesisResult:
    """`synthesize_texts` for texts of any length: each text longer than `max_sentence_chars` is split
    (`text_chunks`), every chunk of every text is synthesized in the same length-sorted batches, and the
    chunks of a text are joined with PAUSE_SECONDS of silence (in the mel at the log floor, in the audio at
    zero). Texts within the limit give exactly what `synthesize_texts` gives."""
    from holdtts.data.mel import LOG_FLOOR

    plans = [text_chunks(text, max_sentence_chars, name=utt) for utt, text in zip(utt_ids, texts)]
    if all(len(chunks) == 1 for chunks in plans):
        return synthesize_texts(model, [chunks[0] for chunks in plans], utt_ids, vocoder, **kwargs)
    flat_texts = [chunk for chunks in plans for chunk in chunks]
    flat_ids = [f"{utt}.{k}" for utt, chunks in zip(utt_ids, plans) for k in range(len(chunks))]
    voices = kwargs.get("speaker")
    if voices is not None and not isinstance(voices, str):  # one voice per text: the same for its chunks
        kwargs["speaker"] = [voice for voice, chunks in zip(voices, plans) for _ in chunks]
    parts = synthesize_texts(model, flat_texts, flat_ids, vocoder, **kwargs)
    features = model.config.features
    pause_frames = int(round(PAUSE_SECONDS * features.sample_rate / features.hop_length))
    mels, wavs, position = [], [], 0
    for chunks in plans:
        span = slice(position, position + len(chunks))
        chunk_mels, chunk_wavs = parts.mels[span], parts.wavs[span]
        position += len(chunks)
        silence_mel = np.full((chunk_mels[0].shape[0], pause_frames), math.log(LOG_FLOOR), dtype=np.float32)
        silence_wav = np.zeros(pause_frames * features.hop_length, dtype=np.float32)
        mels.append(np.concatenate([x for m in chunk_mels for x in (silence_mel, m)][1:], axis=1))
        wavs.append(np.concatenate([x for w in chunk_wavs for x in (silence_wav, w)][1:]))
    audio_seconds = sum(w.shape[0] for w in wavs) / features.sample_rate
    failed = {flat_id.rsplit(".", 1)[0] for flat_id in parts.nonfinite}
    return SynthesisResult(list(utt_ids), mels, wavs, parts.decoder_seconds, parts.vocoder_seconds, audio_seconds,
                           [u for u in sorted(utt_ids) if u in failed])


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
        "nonfinite_utts": result.nonfinite,
    })
