"""The multi-speaker corpora of the recipes: VCTK 0.92 and LibriTTS. Download (resumable, checksummed),
and import: their layout -> the project's multi-speaker corpus form, which `holdtts prepare` reads.

Source layouts:

    VCTK-Corpus-0.92/txt/<spk>/<spk>_<nnn>.txt                          one transcript per file
    VCTK-Corpus-0.92/wav48_silence_trimmed/<spk>/<spk>_<nnn>_mic1.flac  48 kHz (mic1 or mic2)
    LibriTTS/<subset>/<spk>/<chapter>/<spk>_<chapter>_<...>.wav          24 kHz
                                    .../<same>.original.txt, .normalized.txt

Imported form (a corpus directory, read by `holdtts prepare --defer-resample`):

    <out>/metadata.csv    id|text|normalized text|speaker, sorted by id (VCTK's id p225_001, LibriTTS's
                          103_1241_000000_000001: the speaker is the id's first field)
    <out>/wavs/<id>.flac  (VCTK) or <id>.wav (LibriTTS): symbolic links to the source audio, which stays
                          at its own rate; `holdtts features` resamples it to 22050 Hz once
    <out>/skipped         id reason, for source utterances left out (no transcript, no audio, empty text)
    <out>/corpus.json     provenance: source, format, subsets or microphone, counts

VCTK's transcripts are its only text: column 2 is the transcript, column 3 the project's English cleaners
applied to it (numbers and abbreviations spelled out). LibriTTS has both: column 2 is .original.txt, column
3 .normalized.txt.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path

from holdtts.data.corpus import METADATA, WAVS
from holdtts.data.download import download_file, extract_archive, extract_zip
from holdtts.errors import HoldttsError, InputError
from holdtts.utils.fileio import ensure_dir, refuse_overwrite, write_json_atomic

# VCTK 0.92 (CSTR, University of Edinburgh; CC BY 4.0), https://datashare.ed.ac.uk/handle/10283/3443.
VCTK_URL = "https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip"
# sha256 of VCTK-Corpus-0.92.zip: the one torchaudio's VCTK_092 dataset verifies.
VCTK_SHA256 = "f96258be9fdc2cbff6559541aae7ea4f59df3fcaf5cf963aae5ca647357e359c"
# md5 of the same archive, as torchaudio's older VCTK dataset verified it. The datashare page lists an MD5 per
# file; this one was not compared with it here (no network). `holdtts download --corpus vctk --md5 ...`
# checks an md5 instead of the sha256.
VCTK_MD5 = "8a6ba2946b36fcbef0212cad601f4bfa"
VCTK_DIRNAME = "VCTK-Corpus-0.92"
VCTK_AUDIO = "wav48_silence_trimmed"
VCTK_TEXT = "txt"
VCTK_MICS = ("mic1", "mic2")

# LibriTTS (Zen et al. 2019; CC BY 4.0), https://www.openslr.org/60/: one archive per subset.
LIBRITTS_URL = "https://www.openslr.org/resources/60/{subset}.tar.gz"
LIBRITTS_DIRNAME = "LibriTTS"
# sha256 of each subset's archive: the ones torchaudio's LIBRITTS dataset verifies. openslr.org lists md5
# sums beside the archives; to check against those instead, pass `--md5` to `holdtts download`.
LIBRITTS_SHA256 = {
    "dev-clean": "da0864e1bd26debed35da8a869dd5c04dfc27682921936de7cff9c8a254dbe1a",
    "dev-other": "d413eda26f3a152ac7c9cf3658ef85504dfb1b625296e5fa83727f5186cca79c",
    "test-clean": "234ea5b25859102a87024a4b9b86641f5b5aaaf1197335c95090cde04fe9a4f5",
    "test-other": "33a5342094f3bba7ccc2e0500b9e72d558f72eb99328ac8debe1d9080402f10d",
    "train-clean-100": "c5608bf1ef74bb621935382b8399c5cdd51cd3ee47cec51f00f885a64c6c7f6b",
    "train-clean-360": "ce7cff44dcac46009d18379f37ef36551123a1dc4e5c8e4eb73ae57260de4886",
    "train-other-500": "e35f7e34deeb2e2bdfe4403d88c8fdd5fbf64865cae41f027a185a6965f0a5df",
}
LIBRITTS_SUBSETS = tuple(LIBRITTS_SHA256)

_VCTK_SPEAKER = re.compile(r"[A-Za-z0-9]+")
_VCTK_TEXT_NAME = re.compile(r"(?P<spk>[A-Za-z0-9]+)_(?P<num>[0-9]+)\.txt")
_VCTK_AUDIO_NAME = re.compile(r"(?P<spk>[A-Za-z0-9]+)_(?P<num>[0-9]+)_(?P<mic>mic[12])\.flac")
_LIBRITTS_ID = re.compile(r"(?P<spk>[0-9]+)_(?P<chapter>[0-9]+)_[0-9A-Za-z_]+")


# ------------------------------------------------------------------------------ layout checks
def check_vctk_dir(path: str | os.PathLike) -> Path:
    """A VCTK 0.92 directory: txt/ and wav48_silence_trimmed/ with speaker folders. Returns it, absolute."""
    root = Path(os.path.abspath(path))
    if not root.is_dir():
        raise InputError("VCTK directory not found", root)
    for name in (VCTK_TEXT, VCTK_AUDIO):
        if not (root / name).is_dir():
            raise InputError(f"no {name}/ folder: not VCTK 0.92's layout ({VCTK_TEXT}/<speaker>/*.txt and "
                             f"{VCTK_AUDIO}/<speaker>/*_mic1.flac)", root)
    return root


def check_libritts_dir(path: str | os.PathLike, subsets: Sequence[str] | None = None) -> Path:
    """A LibriTTS directory holding `subsets` (or at least one subset). Returns it, absolute."""
    root = Path(os.path.abspath(path))
    if not root.is_dir():
        raise InputError("LibriTTS directory not found", root)
    present = [s for s in LIBRITTS_SUBSETS if (root / s).is_dir()]
    wanted = list(subsets) if subsets else present
    missing = [s for s in wanted if not (root / s).is_dir()]
    if missing or not wanted:
        raise InputError(f"no subset folder {', '.join(missing or LIBRITTS_SUBSETS)}: not LibriTTS's layout "
                         "(<subset>/<speaker>/<chapter>/<id>.wav)", root)
    return root


def parse_subsets(text: str | Iterable[str]) -> list[str]:
    """'train-clean-100,dev-clean' (or a list) -> the subsets, checked against LibriTTS's, in that order."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in items if s not in LIBRITTS_SUBSETS]
    if unknown or not items:
        raise HoldttsError(f"unknown LibriTTS subset(s) {', '.join(unknown) or '(none given)'}; the subsets are "
                           f"{', '.join(LIBRITTS_SUBSETS)}")
    if len(set(items)) != len(items):
        raise HoldttsError(f"LibriTTS subsets listed twice: {', '.join(items)}")
    return items


# ------------------------------------------------------------------------------ downloads
def _archive_name(url: str, default: str) -> str:
    return Path(urllib.parse.urlparse(url).path).name or default


def download_vctk(out_dir: str | os.PathLike, url: str = VCTK_URL, sha256: str | None = None,
                  md5: str | None = None, *, keep_archive: bool = True, progress: bool = True) -> Path:
    """Download, verify and extract VCTK 0.92 into `out_dir/VCTK-Corpus-0.92`; return that directory.
    The checksum is VCTK_SHA256 unless `sha256` or `md5` is given. An existing, complete directory is
    returned as it is (extraction is atomic, and only a verified archive is extracted)."""
    out_dir = Path(out_dir)
    corpus = out_dir / VCTK_DIRNAME
    if corpus.exists():
        return check_vctk_dir(corpus)
    if sha256 is None and md5 is None:
        sha256 = VCTK_SHA256
    archive = download_file(url, out_dir / _archive_name(url, f"{VCTK_DIRNAME}.zip"), sha256, md5=md5,
                            progress=progress)
    corpus = extract_zip(archive, corpus, inner=VCTK_TEXT, check=check_vctk_dir)
    if not keep_archive:
        archive.unlink()
    return corpus


def download_libritts(out_dir: str | os.PathLike, subsets: Sequence[str], url: str = LIBRITTS_URL,
                      sha256: dict[str, str] | None = None, md5: dict[str, str] | None = None, *,
                      keep_archive: bool = True, progress: bool = True) -> Path:
    """Download, verify and extract LibriTTS `subsets` into `out_dir/LibriTTS/<subset>`; return
    `out_dir/LibriTTS`. `url` has a '{subset}' field; checksums are LIBRITTS_SHA256 unless `sha256` or `md5`
    maps a subset to its own. Subsets already extracted are kept as they are."""
    out_dir = Path(out_dir)
    subsets = parse_subsets(subsets)
    if "{subset}" not in url:
        raise HoldttsError(f"the LibriTTS URL needs a '{{subset}}' field, got {url!r}")
    root = out_dir / LIBRITTS_DIRNAME
    for subset in subsets:
        if (root / subset).exists():
            continue
        given_md5 = (md5 or {}).get(subset)
        given_sha = (sha256 or {}).get(subset)
        if given_md5 is None and given_sha is None:
            given_sha = LIBRITTS_SHA256[subset]
        subset_url = url.format(subset=subset)
        archive = download_file(subset_url, out_dir / _archive_name(subset_url, f"{subset}.tar.gz"), given_sha,
                                md5=given_md5, progress=progress)
        extract_archive(archive, out_dir, expected_top=LIBRITTS_DIRNAME, only=subset,
                        check=lambda tmp, s=subset: _check_subset(tmp, s))
        if not keep_archive:
            archive.unlink()
    return check_libritts_dir(root, subsets)


def _check_subset(path: Path, subset: str) -> None:
    if not any(path.iterdir()):
        raise InputError(f"no {LIBRITTS_DIRNAME}/{subset}/ in the archive (is it another subset's?)", path)


# ------------------------------------------------------------------------------ import
def _read_text(path: Path) -> str:
    """One transcript file as one line: UTF-8, whitespace collapsed, no '|' (metadata's separator)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read ({err.strerror})", path) from err
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise InputError(f"not valid UTF-8 ({err.reason} at byte {err.start})", path, line) from err
    if "|" in text:
        line = text[:text.index("|")].count("\n") + 1
        raise InputError("the transcript holds '|', the metadata separator", path, line)
    return " ".join(text.split())


def _write_corpus(out_dir: Path, rows: dict[str, tuple[str, str, str, Path]], extension: str,
                  skipped: dict[str, str], provenance: dict, overwrite: bool) -> dict:
    """Write the imported form (module docstring) in a temporary sibling of `out_dir` and rename it into
    place (swapping out an existing one only with `overwrite`); rows: id -> (text, normalized, speaker,
    audio)."""
    if not rows:
        raise HoldttsError(f"nothing to import: no utterance has both a transcript and audio ({len(skipped)} "
                           "left out)")
    refuse_overwrite(out_dir, overwrite, "imported corpus")
    speakers = sorted({row[2] for row in rows.values()})
    summary = {**provenance, "num_utts": len(rows), "num_speakers": len(speakers), "num_skipped": len(skipped)}
    ensure_dir(out_dir.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        (tmp / WAVS).mkdir()
        with open(tmp / METADATA, "w", encoding="utf-8", newline="\n") as f:
            for utt in sorted(rows):
                text, normalized, speaker, audio = rows[utt]
                f.write(f"{utt}|{text}|{normalized}|{speaker}\n")
                os.symlink(os.path.abspath(audio), tmp / WAVS / f"{utt}{extension}")
        with open(tmp / "skipped", "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{utt} {skipped[utt]}\n" for utt in sorted(skipped))
        write_json_atomic(tmp / "corpus.json", {
            **summary,
            "format": "holdtts multi-speaker corpus: metadata.csv (id|text|normalized text|speaker), "
                      f"wavs/<id>{extension} linking to the source audio at its own rate (prepare with "
                      "--defer-resample)",
            "speakers": speakers,
        })
        if out_dir.exists():  # overwrite: swap the old one out at the last moment
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**summary, "out_dir": str(out_dir)}


def import_vctk(vctk_dir: str | os.PathLike, out_dir: str | os.PathLike, *, mic: str = "mic1",
                overwrite: bool = False) -> dict:
    """VCTK 0.92 -> the imported form (module docstring), with the `mic` recordings. Utterances with a
    transcript and no recording of that microphone (or the reverse; VCTK has a few, and p315 has no
    transcripts) are listed in `skipped`. Returns a summary."""
    from holdtts.data.text.cleaners import english_cleaners

    if mic not in VCTK_MICS:
        raise HoldttsError(f"--mic must be one of {', '.join(VCTK_MICS)}, got {mic!r}")
    root = check_vctk_dir(vctk_dir)
    texts: dict[str, tuple[str, Path]] = {}
    audio: dict[str, tuple[str, Path]] = {}
    for folder, pattern, table in ((VCTK_TEXT, _VCTK_TEXT_NAME, texts), (VCTK_AUDIO, _VCTK_AUDIO_NAME, audio)):
        for speaker_dir in sorted((root / folder).iterdir()):
            if not speaker_dir.is_dir() or not _VCTK_SPEAKER.fullmatch(speaker_dir.name):
                continue
            for path in sorted(speaker_dir.iterdir()):
                match = pattern.fullmatch(path.name)
                if match is None or (table is audio and match["mic"] != mic):
                    continue
                if match["spk"] != speaker_dir.name:
                    raise InputError(f"file of speaker '{match['spk']}' in the folder of speaker "
                                     f"'{speaker_dir.name}'", path)
                table[f"{match['spk']}_{match['num']}"] = (match["spk"], path)
    rows, skipped = {}, {}
    for utt in sorted(set(texts) | set(audio)):
        if utt not in audio:
            skipped[utt] = f"no_{mic}_audio"
            continue
        if utt not in texts:
            skipped[utt] = "no_transcript"
            continue
        text = _read_text(texts[utt][1])
        if not text:
            skipped[utt] = "empty_transcript"
            continue
        rows[utt] = (text, english_cleaners(text), texts[utt][0], audio[utt][1])
    provenance = {"source": "VCTK 0.92", "source_dir": str(root), "mic": mic}
    return _write_corpus(Path(out_dir), rows, ".flac", skipped, provenance, overwrite)


def import_libritts(libritts_dir: str | os.PathLike, out_dir: str | os.PathLike, subsets: Sequence[str], *,
                    overwrite: bool = False) -> dict:
    """LibriTTS `subsets` -> the imported form (module docstring). A .wav without its .original.txt or
    .normalized.txt, or with an empty one, is listed in `skipped`. Returns a summary."""
    subsets = parse_subsets(subsets)
    root = check_libritts_dir(libritts_dir, subsets)
    rows, skipped = {}, {}
    for subset in subsets:
        for speaker_dir in sorted((root / subset).iterdir()):
            if not speaker_dir.is_dir():
                continue
            for chapter_dir in sorted(speaker_dir.iterdir()):
                if not chapter_dir.is_dir():
                    continue
                for wav in sorted(chapter_dir.glob("*.wav")):
                    utt = wav.name[:-len(".wav")]
                    match = _LIBRITTS_ID.fullmatch(utt)
                    if match is None or (match["spk"], match["chapter"]) != (speaker_dir.name, chapter_dir.name):
                        raise InputError(f"not a LibriTTS utterance of speaker {speaker_dir.name}, chapter "
                                         f"{chapter_dir.name} (<speaker>_<chapter>_..._.wav)", wav)
                    if utt in rows or utt in skipped:
                        raise InputError(f"utterance '{utt}' is in two subsets", wav)
                    original, normalized = (chapter_dir / f"{utt}.original.txt",
                                            chapter_dir / f"{utt}.normalized.txt")
                    if not original.is_file() or not normalized.is_file():
                        skipped[utt] = "no_transcript"
                        continue
                    text, norm = _read_text(original), _read_text(normalized)
                    if not text or not norm:
                        skipped[utt] = "empty_transcript"
                        continue
                    rows[utt] = (text, norm, match["spk"], wav)
    provenance = {"source": "LibriTTS", "source_dir": str(root), "subsets": list(subsets)}
    return _write_corpus(Path(out_dir), rows, ".wav", skipped, provenance, overwrite)
