"""Reading and validating a corpus in LJSpeech's format, or its multi-speaker form.

    <corpus>/metadata.csv   id|text|normalized text   (UTF-8, '|' separated, no quoting)
    <corpus>/wavs/<id>.wav  22050 Hz, mono, 16-bit PCM

A multi-speaker corpus has a fourth column, the speaker (`id|text|normalized text|speaker`, on every
line), and may hold its audio as `wavs/<id>.flac` and at another rate (VCTK: 48 kHz flac, LibriTTS:
24 kHz wav): `holdtts prepare --defer-resample` accepts those, and `holdtts features` resamples them to
22050 Hz once, when it computes the mels (see `resample_audio`).

Every problem is an InputError naming the file and line: for a wav, the metadata line that lists it.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from holdtts.data.tables import iter_lines
from holdtts.errors import InputError
from holdtts.utils.fileio import atomic_path

SAMPLE_RATE = 22050
METADATA = "metadata.csv"
WAVS = "wavs"
AUDIO_EXTENSIONS = (".wav", ".flac")  # wavs/<id>.wav, else wavs/<id>.flac
DEFER = "<defer>"  # scan mode: keep wavs at other rates, features resample them
# Ids become file names (wavs/<id>.wav) and table keys: no separators, whitespace or leading dot.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


@dataclass(frozen=True)
class Utterance:
    utt_id: str
    text: str  # metadata column 2, as read
    normalized: str  # metadata column 3 (numbers, abbreviations expanded)
    line: int  # 1-based line of metadata.csv
    speaker: str | None = None  # metadata column 4 of a multi-speaker corpus


@dataclass(frozen=True)
class BadUtterance:
    """An utterance left out by --skip-bad; `reason` is one line for the `skipped` table."""

    utt_id: str
    reason: str
    error: InputError


@dataclass(frozen=True)
class WavInfo:
    path: str
    sample_rate: int
    channels: int
    num_samples: int


class WavError(InputError):
    """A wav that cannot be used; `reason` is its short form (e.g. 'missing wav')."""

    def __init__(self, message: str, path=None, line: int | None = None, *, reason: str):
        super().__init__(message, path, line)
        self.reason = reason

    def __reduce__(self):  # keep the fields when it crosses a process boundary
        return _rebuild_wav_error, (self.message, self.path, self.line, self.reason)


def _rebuild_wav_error(message, path, line, reason) -> WavError:
    return WavError(message, path, line, reason=reason)


def read_metadata(path: str | os.PathLike, *, skipped: list[BadUtterance] | None = None) -> list[Utterance]:
    """Parse LJSpeech's metadata.csv, or its multi-speaker form with a fourth column, the speaker.

    The first line decides the form (3 or 4 fields); every other line must have as many. Wrong field
    counts, empty or unsafe ids or speakers, duplicate ids (both lines named) and invalid UTF-8 are
    always errors. An empty text or normalized text is an error too, and so is a normalized text the
    text frontend cannot encode (e.g. only emoji: the check `holdtts features` makes), unless `skipped`
    is given: then the utterance is appended there and left out.
    """
    from holdtts.data.text import TextError, TextFrontend

    frontend = TextFrontend()
    path = Path(path)
    utts: list[Utterance] = []
    seen: dict[str, int] = {}
    form: tuple[int, int] | None = None  # (number of fields, line that set it)
    for number, line in iter_lines(path):
        fields = line.split("|")
        if form is None and len(fields) in (3, 4):
            form = (len(fields), number)
        if form is None or len(fields) != form[0]:
            if form is not None and form[0] == 4:
                expected = f"4 fields 'id|text|normalized text|speaker' (as on line {form[1]})"
            elif form is not None:
                expected = f"3 fields 'id|text|normalized text' (as on line {form[1]})"
            else:
                expected = ("3 fields 'id|text|normalized text' (or 4, with a speaker column: "
                            "'id|text|normalized text|speaker')")
            raise InputError(f"expected {expected} separated by '|', got {len(fields)}", path, number)
        utt_id, text, normalized = fields[0], fields[1].strip(), fields[2].strip()
        speaker = fields[3].strip() if len(fields) == 4 else None
        if not utt_id.strip():
            raise InputError("empty utterance id", path, number)
        if not _SAFE_ID.fullmatch(utt_id):
            raise InputError(f"utterance id {utt_id!r} is not safe as a file name (use letters, digits, "
                             "'.', '_' and '-', starting with a letter or digit, at most 200)", path, number)
        if speaker is not None and not _SAFE_ID.fullmatch(speaker):
            what = "empty speaker" if not speaker else f"speaker {speaker!r} is not a safe id"
            raise InputError(f"utterance '{utt_id}': {what} (use letters, digits, '.', '_' and '-', "
                             "starting with a letter or digit, at most 200)", path, number)
        if utt_id in seen:
            raise InputError(f"duplicate utterance id '{utt_id}' (first on line {seen[utt_id]})",
                             path, number)
        seen[utt_id] = number
        problem = "empty text" if not text else "empty normalized text" if not normalized else None
        error = None
        if problem is None:
            try:
                frontend.check(normalized, path=path, line=number)
            except TextError as err:
                problem = "normalized text cannot be spoken"
                error = InputError(f"utterance '{utt_id}': {err.message}", path, number)
        if problem:
            error = error or InputError(f"utterance '{utt_id}': {problem}", path, number)
            if skipped is None:
                raise error
            skipped.append(BadUtterance(utt_id, problem, error))
            continue
        utts.append(Utterance(utt_id, text, normalized, number, speaker))
    if not utts and not skipped:
        raise InputError("no utterances", path)
    return utts


def audio_path(corpus_dir: str | os.PathLike, utt_id: str) -> Path:
    """`wavs/<id>.wav`, or `wavs/<id>.flac` when only that one is there (the .wav path when neither is,
    so that a missing file is reported under the name LJSpeech's layout gives it)."""
    wavs = Path(corpus_dir) / WAVS
    for extension in AUDIO_EXTENSIONS:
        candidate = wavs / f"{utt_id}{extension}"
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return wavs / f"{utt_id}{AUDIO_EXTENSIONS[0]}"


def resampled_length(num_samples: int, sample_rate: int, target_sr: int = SAMPLE_RATE) -> int:
    """The length of `num_samples` at `sample_rate` once resampled to `target_sr` by `resample_audio`:
    round(num_samples * target_sr / sample_rate), halves rounded up, in exact integer arithmetic."""
    return (num_samples * target_sr + sample_rate // 2) // sample_rate


def resample_audio(audio: np.ndarray, sample_rate: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float64 audio ([samples] or [samples, channels], channels averaged) at `target_sr`: soxr's HQ
    mode (librosa's default), with exactly `resampled_length` samples (soxr's own length can differ by a
    sample; the difference is cut or padded with zeros at the end)."""
    import soxr

    audio = np.asarray(audio, dtype=np.float64)
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    if sample_rate == target_sr:
        return mono
    out = soxr.resample(mono, sample_rate, target_sr, quality="HQ")
    length = resampled_length(mono.shape[0], sample_rate, target_sr)
    if out.shape[0] >= length:
        return out[:length]
    return np.pad(out, (0, length - out.shape[0]))


def _wav_error(problem: str, reason: str, wav: Path, metadata, line) -> WavError:
    if metadata is None:
        return WavError(problem, wav, reason=reason)
    return WavError(f"{wav}: {problem}", metadata, line, reason=reason)


def wav_data_sizes(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """(bytes of audio the header declares, bytes the file holds after the header, bytes per frame) of a
    RIFF/RIFX WAVE file, or None for another format or a header that declares no length (streamed).

    libsndfile trusts the file size over the header, so a file cut short reads as a shorter recording;
    only the header still tells what the whole recording was.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX"):
            return None
        endian = "<" if head[:4] == b"RIFF" else ">"
        size = os.fstat(f.fileno()).st_size
        frame_bytes = 0
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None  # no data chunk at all: libsndfile reports that itself
            name, length = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
            if name == b"data":
                if length in (0, 0xFFFFFFFF):
                    return None
                return length, size - f.tell(), frame_bytes
            if name == b"fmt ":
                fmt = f.read(length)
                if len(fmt) >= 14:
                    frame_bytes = struct.unpack(endian + "H", fmt[12:14])[0]  # block align
                f.seek(length % 2, os.SEEK_CUR)
            else:
                f.seek(length + length % 2, os.SEEK_CUR)


def check_wav_complete(path: str | os.PathLike, metadata: str | os.PathLike | None = None,
                       line: int | None = None) -> None:
    """Raise a WavError when a wav holds fewer bytes of audio than its header declares (cut short by a
    copy, a download or a full disk). Used by prepare, features and train-vocoder alike."""
    try:
        sizes = wav_data_sizes(path)
    except OSError:  # unreadable: the decoder that reads it next says why
        return
    if sizes is None:
        return
    declared, present, frame_bytes = sizes
    if present < declared:
        unit = frame_bytes or 1
        raise _wav_error(f"truncated wav: its header declares {declared // unit} frames ({declared} bytes) but "
                         f"the file holds {max(present, 0) // unit} ({max(present, 0)} bytes)",
                         "truncated wav", Path(path), metadata, line)


def check_wav(path: str | os.PathLike, expected_sr: int = SAMPLE_RATE, *, allow_convert: bool = False,
              metadata: str | os.PathLike | None = None, line: int | None = None) -> WavInfo:
    """Check a wav's header (soundfile.info): present, readable, non-empty, complete (`check_wav_complete`),
    mono at `expected_sr`.

    With `allow_convert`, another rate or channel count is accepted (the caller converts it).
    Raises WavError naming the wav, and `metadata`:`line` when given (the line that lists it).
    """
    wav = Path(path)
    if not wav.is_file():
        raise _wav_error("wav file not found", "missing wav", wav, metadata, line)
    try:
        info = sf.info(os.fspath(wav))
    except (sf.SoundFileError, RuntimeError) as err:
        detail = str(err).split(": ", 1)[-1]  # libsndfile's reason without the repeated file name
        raise _wav_error(f"cannot read wav ({detail})", f"unreadable wav ({detail})",
                         wav, metadata, line) from err
    if info.frames <= 0:
        raise _wav_error("wav has no samples", "empty wav", wav, metadata, line)
    check_wav_complete(wav, metadata, line)
    if not allow_convert:
        if info.samplerate != expected_sr:
            raise _wav_error(f"sample rate {info.samplerate} Hz, expected {expected_sr} Hz "
                             "(pass --resample to convert it)",
                             f"sample rate {info.samplerate} Hz (expected {expected_sr})",
                             wav, metadata, line)
        if info.channels != 1:
            raise _wav_error(f"{info.channels} channels, expected mono (pass --resample to downmix it)",
                             f"{info.channels} channels (expected mono)", wav, metadata, line)
    return WavInfo(os.fspath(wav), int(info.samplerate), int(info.channels), int(info.frames))


def convert_wav(src: str | os.PathLike, dest: str | os.PathLike, target_sr: int = SAMPLE_RATE) -> int:
    """Downmix to mono and resample to `target_sr`; write 16-bit PCM atomically (`prepare --resample`).

    Resampling is soxr's HQ mode, librosa's default, called directly: librosa's import takes seconds
    in every worker process. Returns the number of samples written.
    """
    import soxr

    audio, sr = sf.read(os.fspath(src), dtype="float64", always_2d=True)
    mono = audio.mean(axis=1)
    if sr != target_sr:
        mono = soxr.resample(mono, sr, target_sr, quality="HQ")
    pcm = to_pcm16(mono)
    with atomic_path(dest, suffix=".wav") as tmp:
        sf.write(os.fspath(tmp), pcm, target_sr, subtype="PCM_16", format="WAV")
    return int(pcm.shape[0])


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as int16. Resampling can overshoot full scale: clip instead of letting the
    cast wrap around."""
    return np.clip(np.rint(np.asarray(audio) * 32768.0), -32768, 32767).astype(np.int16)


def check_corpus_dir(corpus_dir: str | os.PathLike) -> Path:
    """Check a corpus directory has LJSpeech's layout; return the absolute path of its metadata.csv."""
    corpus = Path(os.path.abspath(corpus_dir))
    if not corpus.is_dir():
        raise InputError("corpus directory not found", corpus)
    layout = f"not a corpus in LJSpeech's format ({METADATA} and {WAVS}/)"
    if not (corpus / METADATA).is_file():
        raise InputError(f"no {METADATA}: {layout}", corpus)
    if not (corpus / WAVS).is_dir():
        raise InputError(f"no {WAVS}/ directory: {layout}", corpus)
    return corpus / METADATA


@dataclass(frozen=True)
class CorpusEntry:
    """A usable utterance: its texts, the wav to read (absolute) and its length at the target rate."""

    utt_id: str
    text: str
    normalized: str
    wav_path: str
    num_samples: int
    converted: bool  # True when wav_path is a converted copy written under convert_dir
    speaker: str | None = None  # metadata column 4 of a multi-speaker corpus
    deferred: bool = False  # True when wav_path is at another rate (or not mono): features resample it


@dataclass
class CorpusScan:
    entries: list[CorpusEntry]
    skipped: list[BadUtterance]
    metadata_path: Path

    @property
    def num_converted(self) -> int:
        return sum(entry.converted for entry in self.entries)

    @property
    def num_deferred(self) -> int:
        return sum(entry.deferred for entry in self.entries)

    @property
    def multi_speaker(self) -> bool:
        return any(entry.speaker is not None for entry in self.entries)


def _scan_one(job: tuple) -> CorpusEntry | WavError:
    """Check (and with a convert_dir, convert) one utterance's wav; runs in a worker process.

    `convert_dir` None: the wav must be mono at `expected_sr`; a path: other wavs are converted there;
    DEFER: other wavs are accepted as they are, with their length at `expected_sr` (features resample).
    """
    utt, wav, expected_sr, convert_dir, metadata = job
    try:
        info = check_wav(wav, expected_sr, allow_convert=convert_dir is not None, metadata=metadata,
                         line=utt.line)
        if info.sample_rate == expected_sr and info.channels == 1:
            return CorpusEntry(utt.utt_id, utt.text, utt.normalized, info.path, info.num_samples, False,
                               utt.speaker)
        if convert_dir == DEFER:
            return CorpusEntry(utt.utt_id, utt.text, utt.normalized, info.path,
                               resampled_length(info.num_samples, info.sample_rate, expected_sr), False,
                               utt.speaker, deferred=True)
        dest = os.path.join(convert_dir, f"{utt.utt_id}.wav")
        try:
            num_samples = convert_wav(wav, dest, expected_sr)
        except (sf.SoundFileError, RuntimeError) as err:
            raise _wav_error(f"cannot convert wav ({err})", "unreadable wav (conversion failed)",
                             Path(wav), metadata, utt.line) from err
        return CorpusEntry(utt.utt_id, utt.text, utt.normalized, dest, num_samples, True, utt.speaker)
    except WavError as err:
        return err


def _results(jobs: list[tuple], nj: int) -> Iterable[CorpusEntry | WavError]:
    """Yield `_scan_one` results in job order, from a process pool when nj > 1."""
    if nj <= 1 or len(jobs) < 2:
        yield from map(_scan_one, jobs)
        return
    # spawn: the parent may hold threads (torch, tqdm), which fork does not copy safely.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=nj, mp_context=context) as pool:
        try:
            chunksize = max(1, min(64, len(jobs) // (4 * nj)))
            yield from pool.map(_scan_one, jobs, chunksize=chunksize)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def scan_corpus(corpus_dir: str | os.PathLike, *, expected_sr: int = SAMPLE_RATE, skip_bad: bool = False,
                convert_dir: str | os.PathLike | None = None, defer_resample: bool = False, nj: int = 1,
                progress: bool = False) -> CorpusScan:
    """Read metadata.csv and check every wav, in metadata order.

    Without `skip_bad` the first bad utterance raises; with it, bad ones are collected in `skipped`.
    With `convert_dir`, wavs at another rate or with several channels are converted into
    `convert_dir/<id>.wav` (the entry then points there); with `defer_resample` they are kept as they
    are (the entry gives their length at `expected_sr`; `holdtts features` resamples them); with
    neither they are errors.
    """
    if convert_dir is not None and defer_resample:
        raise ValueError("convert_dir and defer_resample exclude each other")
    from tqdm import tqdm

    metadata = check_corpus_dir(corpus_dir)
    corpus = metadata.parent
    skipped: list[BadUtterance] = []
    utts = read_metadata(metadata, skipped=skipped if skip_bad else None)
    target = DEFER if defer_resample else None if convert_dir is None else os.path.abspath(convert_dir)
    jobs = [(utt, os.fspath(audio_path(corpus, utt.utt_id)), expected_sr, target, os.fspath(metadata))
            for utt in utts]
    entries: list[CorpusEntry] = []
    bar = tqdm(total=len(jobs), desc="checking wavs", unit="wav", disable=None if progress else True,
               leave=False)
    # closing(): an early raise must shut the worker pool down now, not when the generator is collected.
    with bar, contextlib.closing(_results(jobs, nj)) as results:
        for (utt, *_), result in zip(jobs, results):
            bar.update()
            if isinstance(result, WavError):
                if not skip_bad:
                    raise result
                skipped.append(BadUtterance(utt.utt_id, result.reason, result))
            else:
                entries.append(result)
    if not entries:
        raise InputError(f"no usable utterances ({len(skipped)} skipped)", metadata)
    return CorpusScan(entries, skipped, metadata)
