"""Tiny corpora in LJSpeech's exact layout, built by the tests themselves (no data is shipped)."""
from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050


def utt_id(i: int) -> str:
    return f"LJ001-{i:04d}"


def num_samples(i: int) -> int:
    return 1500 + 37 * i  # distinct lengths, so tables can be checked against the wavs


def write_wav(path: Path, n: int, sr: int = SR, channels: int = 1, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    tone = 0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.01 * rng.standard_normal(n)
    audio = np.stack([tone * (c + 1) / channels for c in range(channels)], axis=1)
    sf.write(path, np.squeeze(audio, axis=1) if channels == 1 else audio, sr, subtype="PCM_16")


def metadata_line(i: int) -> str:
    # Quotes, commas and numbers as in LJSpeech; column 3 is the normalized form.
    return (f'{utt_id(i)}|Dr. Smith said "item {i}" in 1999.'
            f'|Doctor Smith said "item {i}" in nineteen ninety-nine.')


def make_corpus(root: Path, n: int = 12, name: str = "LJSpeech-1.1") -> Path:
    """`root/name/metadata.csv` and `root/name/wavs/<id>.wav` (22050 Hz mono 16-bit) for n utterances."""
    corpus = root / name
    (corpus / "wavs").mkdir(parents=True)
    for i in range(1, n + 1):
        write_wav(corpus / "wavs" / f"{utt_id(i)}.wav", num_samples(i), seed=i)
    write_metadata(corpus, [metadata_line(i) for i in range(1, n + 1)])
    (corpus / "README").write_text("A test corpus in LJSpeech's layout.\n")
    return corpus


SHORT_WORDS = ("one", "two", "red", "cat", "sun", "day", "map", "boat")


def make_short_corpus(root: Path, n: int = 16, name: str = "LJSpeech-1.1") -> Path:
    """`root/name`: n short utterances (half a second to a second, two words each), in LJSpeech's layout:
    training steps on them take milliseconds (DP-SGD, multi-speaker training tests)."""
    corpus = root / name
    (corpus / "wavs").mkdir(parents=True)
    lines = []
    for i in range(1, n + 1):
        write_wav(corpus / "wavs" / f"{utt_id(i)}.wav", 11025 + 441 * i, seed=i)
        text = f"{SHORT_WORDS[i % 8].capitalize()} {SHORT_WORDS[(3 * i) % 8]}."
        lines.append(f"{utt_id(i)}|{text}|{text}")
    write_metadata(corpus, lines)
    return corpus


def write_metadata(corpus: Path, lines: list[str]) -> Path:
    path = corpus / "metadata.csv"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def make_archive(corpus: Path, archive: Path) -> str:
    """tar.bz2 of `corpus` under its own name (like LJSpeech-1.1.tar.bz2); returns its sha256."""
    with tarfile.open(archive, "w:bz2") as tar:
        tar.add(corpus, arcname=corpus.name)
    return hashlib.sha256(archive.read_bytes()).hexdigest()
