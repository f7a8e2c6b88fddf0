"""Tiny multi-speaker corpora built by the tests: the project's form (metadata.csv with a speaker column),
VCTK 0.92's layout (48 kHz flac, txt/) and LibriTTS's (24 kHz wav, .original.txt/.normalized.txt), and
their archives (zip, tar.gz); and multi-speaker data directories assembled by hand over already extracted
features (`write_speaker_data_dir`), for tests that choose each utterance's speaker and split themselves."""
from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from holdtts.data.speakers import write_speaker_tables
from holdtts.data.tables import read_table, write_table

from corpus_factory import write_wav


def speaker_utts(speakers: dict[str, int]) -> dict[str, str]:
    """utt id -> speaker, ids '<speaker>-<nnnn>'."""
    return {f"{spk}-{i:04d}": spk for spk, n in speakers.items() for i in range(1, n + 1)}


def make_speaker_corpus(root: Path, speakers: dict[str, int], name: str = "corpus") -> Path:
    """`root/name`: metadata.csv (id|text|normalized|speaker) and wavs/<id>.wav at 22050 Hz."""
    corpus = root / name
    (corpus / "wavs").mkdir(parents=True)
    lines = []
    for k, (utt, spk) in enumerate(sorted(speaker_utts(speakers).items())):
        write_wav(corpus / "wavs" / f"{utt}.wav", 1200 + 31 * k, seed=k)
        lines.append(f"{utt}|Speaker {spk} reads item {k + 1}.|Speaker {spk} reads item {k + 1}.|{spk}")
    (corpus / "metadata.csv").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return corpus


def write_audio(path: Path, n: int, sr: int, fmt: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    tone = 0.3 * np.sin(2 * np.pi * (180.0 + 20 * seed) * t) + 0.01 * rng.standard_normal(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone, sr, subtype="PCM_16", format=fmt)


VCTK_SPEAKERS = {"p225": 5, "p226": 5, "p227": 4, "s5": 4}


def make_vctk(root: Path, speakers: dict[str, int] = VCTK_SPEAKERS) -> Path:
    """`root/VCTK-Corpus-0.92`: txt/<spk>/<spk>_<nnn>.txt, wav48_silence_trimmed/<spk>/<spk>_<nnn>_mic{1,2}.flac
    (48 kHz). p225_002 has no mic1 recording and p226_003 no transcript, as VCTK has such gaps."""
    corpus = root / "VCTK-Corpus-0.92"
    k = 0
    for spk, n in speakers.items():
        for i in range(1, n + 1):
            utt = f"{spk}_{i:03d}"
            k += 1
            if utt != "p226_003":
                (corpus / "txt" / spk).mkdir(parents=True, exist_ok=True)
                (corpus / "txt" / spk / f"{utt}.txt").write_text(f"Please call Stella, number {i}.\n")
            for mic in ("mic1", "mic2"):
                if (utt, mic) != ("p225_002", "mic1"):
                    write_audio(corpus / "wav48_silence_trimmed" / spk / f"{utt}_{mic}.flac", 4000 + 97 * k, 48000,
                                "FLAC", seed=k)
    (corpus / "speaker-info.txt").write_text("ID AGE GENDER ACCENTS REGION COMMENTS\n")
    return corpus


def vctk_ids(speakers: dict[str, int] = VCTK_SPEAKERS) -> list[str]:
    """The ids make_vctk's corpus imports (mic1)."""
    ids = [f"{spk}_{i:03d}" for spk, n in speakers.items() for i in range(1, n + 1)]
    return sorted(u for u in ids if u not in ("p225_002", "p226_003"))


def make_zip(source: Path, archive: Path, top: str | None = None) -> dict[str, str]:
    """Zip the contents of `source` (under `top/` when given, at the root otherwise, as VCTK's zip);
    returns the archive's sha256 and md5."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source).as_posix()
            zf.write(path, f"{top}/{rel}" if top else rel)
    data = archive.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}


LIBRITTS_SPEAKERS = {"103": (1241, 5), "1034": (121119, 4), "1040": (133433, 4)}


def make_libritts(root: Path, subset: str = "train-clean-100",
                  speakers: dict[str, tuple[int, int]] = LIBRITTS_SPEAKERS) -> Path:
    """`root/LibriTTS/<subset>/<spk>/<chapter>/<spk>_<chapter>_000001_00000k.wav` (24 kHz) with
    .original.txt and .normalized.txt. The last utterance of the first speaker has no .normalized.txt."""
    base = root / "LibriTTS"
    k = 0
    for spk, (chapter, n) in speakers.items():
        folder = base / subset / spk / str(chapter)
        for i in range(1, n + 1):
            k += 1
            utt = f"{spk}_{chapter}_000001_{i:06d}"
            write_audio(folder / f"{utt}.wav", 3000 + 53 * k, 24000, "WAV", seed=k)
            (folder / f"{utt}.original.txt").write_text(f"Chapter {i}: it was Mr. Brown's.")
            if not (spk == "103" and i == n):
                (folder / f"{utt}.normalized.txt").write_text(f"Chapter one: it was Mister Brown's, take {i}.")
    (base / "SPEAKERS.txt").write_text(";ID |SEX| SUBSET |MINUTES| NAME\n")
    return base


def libritts_ids(speakers: dict[str, tuple[int, int]] = LIBRITTS_SPEAKERS) -> list[str]:
    ids = [f"{spk}_{chapter}_000001_{i:06d}" for spk, (chapter, n) in speakers.items() for i in range(1, n + 1)]
    return sorted(u for u in ids if u != "103_1241_000001_000005")


def make_tar(base: Path, archive: Path, subset: str) -> dict[str, str]:
    """LibriTTS/<subset>/... and LibriTTS's top-level files in a tar.gz, as openslr's archives."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(base / subset, arcname=f"LibriTTS/{subset}")
        for path in sorted(base.iterdir()):
            if path.is_file():
                tar.add(path, arcname=f"LibriTTS/{path.name}")
    data = archive.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}


def write_speaker_data_dir(base: Path, out: Path, utt2spk: Mapping[str, str], splits: Mapping[str, Sequence[str]],
                           protocol: str, spk2id_speakers: Sequence[str] | None = None) -> Path:
    """`out`: base's all/ tables, the given splits (subsets of them), the speaker tables as `holdtts prepare`
    writes them (utt2spk and spk2utt of every utterance, spk2id of the members' speakers, or of
    `spk2id_speakers`), and a splits.json with the protocol (not the full one `prepare` writes: the tests
    using it read splits one at a time)."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base / "all", out / "all")
    tables = {name: read_table(base / "all" / name) for name in ("wav.scp", "text", "text.raw", "utt2num_samples")}
    for name, utts in splits.items():
        (out / name).mkdir(parents=True)
        for table, values in tables.items():
            write_table(out / name / table, {u: values[u] for u in utts})
    table_speakers = set(spk2id_speakers) if spk2id_speakers is not None else {utt2spk[u] for u in splits["members"]}
    write_speaker_tables(out, utt2spk, [u for u in utt2spk if utt2spk[u] in table_speakers])
    (out / "splits.json").write_text(json.dumps({
        "protocol": protocol, "num_speakers": len(set(utt2spk.values())),
        "sizes": {name: len(utts) for name, utts in splits.items()}}))
    return out
