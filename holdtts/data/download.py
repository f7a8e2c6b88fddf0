"""Resumable, checksummed download of the corpora (LJSpeech 1.1, VCTK 0.92, LibriTTS) and safe extraction
of their archives (tar, and zip for VCTK). A checksum is a sha256, or an md5 where that is what a corpus
publishes."""
from __future__ import annotations

import hashlib
import http.client
import lzma
import os
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from holdtts.data.corpus import check_corpus_dir
from holdtts.errors import HoldttsError, InputError
from holdtts.utils.fileio import atomic_dir, ensure_dir

LJSPEECH_URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
# The published checksum (the one torchaudio's LJSPEECH dataset verifies).
LJSPEECH_SHA256 = "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"
LJSPEECH_DIRNAME = "LJSpeech-1.1"

_CHUNK = 1 << 20
_HEX_DIGITS = {"sha256": 64, "md5": 32}
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


def _digest_of(path: str | os.PathLike, algorithm: str = "sha256"):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest


def sha256_file(path: str | os.PathLike) -> str:
    return _digest_of(path).hexdigest()


def _open(url: str, offset: int, timeout: float):
    """GET `url`, asking for bytes from `offset` on. Returns (response, start, total or None).

    `start` is where the body begins: `offset` when the server honoured the Range, 0 when it sent the
    whole file (a server without Range support, or a file:// URL). A Range past the end (HTTP 416)
    returns (None, offset, total) so the caller can check what it already has.
    """
    from holdtts import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"holdtts/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            match = _UNSATISFIED_RANGE.fullmatch(err.headers.get("Content-Range", "").strip())
            err.close()
            return None, offset, int(match.group(1)) if match else None
        raise HoldttsError(f"{url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise HoldttsError(f"{url}: cannot download ({reason}); if this machine is offline, copy the "
                           "corpus here and pass its directory to `holdtts prepare --corpus-dir`") from err
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if getattr(response, "status", None) == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if not match or int(match.group(1)) != offset:
            response.close()
            raise HoldttsError(f"{url}: the server answered the range request from byte {offset} with "
                               f"Content-Range {response.headers.get('Content-Range')!r}")
        total = None if match.group(3) == "*" else int(match.group(3))
        return response, offset, total
    return response, 0, length


def expected_checksum(sha256: str | None = None, md5: str | None = None) -> tuple[str, str]:
    """(algorithm, lower-case hex digest) of the one checksum given; refuses none, both, or a malformed one."""
    given = [(name, value) for name, value in (("sha256", sha256), ("md5", md5)) if value is not None]
    if len(given) != 1:
        raise HoldttsError("give exactly one expected checksum, a sha256 or an md5 (got "
                           f"{' and '.join(name for name, _ in given) or 'none'})")
    algorithm, value = given[0]
    expected = value.lower()
    if not re.fullmatch(f"[0-9a-f]{{{_HEX_DIGITS[algorithm]}}}", expected):
        raise HoldttsError(f"expected {algorithm} {value!r} is not {_HEX_DIGITS[algorithm]} hex digits")
    return algorithm, expected


def download_file(url: str, dest: str | os.PathLike, sha256: str | None = None, *, md5: str | None = None,
                  progress: bool = True, timeout: float = 60.0, chunk_size: int = _CHUNK) -> Path:
    """Download `url` to `dest`, resuming `dest.part` with an HTTP Range request, and verify its checksum
    (`sha256`, or `md5` where a corpus publishes only that; exactly one of them).

    The file gets its final name only once its checksum matches. A `dest` that is already there and
    verifies is not downloaded again. A download cut short keeps its `.part` (run again to resume); a
    complete one with the wrong checksum is removed and reported with both checksums.
    """
    from tqdm import tqdm

    dest = Path(dest)
    algorithm, expected = expected_checksum(sha256, md5)
    if dest.exists():
        actual = _digest_of(dest, algorithm).hexdigest()
        if actual != expected:
            raise InputError(f"already exists but its {algorithm} is {actual}, expected {expected}; delete it to "
                             "download again", dest)
        return dest
    ensure_dir(dest.parent)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    response, start, total = _open(url, offset, timeout)
    if response is None and total != offset:  # the .part is longer than the file: start over
        part.unlink()
        response, start, total = _open(url, 0, timeout)
    if response is None:  # the .part already holds the whole file
        digest, received = _digest_of(part, algorithm), offset
    else:
        # Resuming: the checksum covers the bytes already on disk too.
        digest = _digest_of(part, algorithm) if start else hashlib.new(algorithm)
        received = start
        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=dest.name, disable=None if progress else True, leave=False)
        with response, bar, open(part, "r+b" if part.exists() else "wb") as f:
            f.truncate(start)  # start is 0 when the server sent the whole file again
            f.seek(start)
            try:
                while block := response.read(chunk_size):
                    f.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as err:
                raise HoldttsError(f"{url}: download interrupted after {received} bytes "
                                   f"({type(err).__name__}: {err}); "
                                   f"run again to resume from {part}") from err
            finally:
                f.flush()
                os.fsync(f.fileno())
    if total is not None and received != total:
        raise HoldttsError(f"{url}: download interrupted after {received} of {total} bytes; run again to "
                           f"resume from {part}")
    actual = digest.hexdigest()
    if actual != expected:
        part.unlink()
        raise InputError(f"download is corrupt: {algorithm} {actual}, expected {expected} ({received} bytes "
                         f"from {url}); {part.name} was removed, run again to download it anew", dest)
    os.replace(part, dest)
    return dest


def _strip_top(top: str, archive: Path, only: str | None = None):
    """A tarfile extraction filter: refuse absolute paths and `..`, remove `top/` from member names,
    then apply tarfile's 'data' filter (links out of the tree, device files, unsafe modes). With `only`
    (a path under top), members outside `top/only/` are left out and `top/only/` is removed instead."""
    prefix = [p for p in f"{top}/{only or ''}".split("/") if p]

    def strip(name: str, member: tarfile.TarInfo) -> str | None:
        if name.startswith("/") or ".." in name.split("/"):
            raise InputError(f"unsafe member '{member.name}' refused (absolute path or '..')", archive)
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if not parts or parts[0] != top:
            raise InputError(f"member '{member.name}' is outside the top directory '{top}/'", archive)
        if parts[:len(prefix)] != prefix:
            return None  # outside `only`
        return "/".join(parts[len(prefix):])

    def extraction_filter(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
        name = strip(member.name, member)
        if not name:
            return None  # the top directory itself (it is the destination), or outside `only`
        changes = {"name": name}
        if member.islnk():  # a hard link's target is an archive path too
            target = strip(member.linkname, member)
            if not target:
                raise InputError(f"hard link '{member.name}' points out of the extracted tree", archive)
            changes["linkname"] = target
        return tarfile.data_filter(member.replace(**changes, deep=False), dest_path)

    return extraction_filter


def extract_archive(archive: str | os.PathLike, dest_dir: str | os.PathLike, *,
                    expected_top: str | None = LJSPEECH_DIRNAME,
                    check: Callable[[Path], object] = check_corpus_dir, only: str | None = None) -> Path:
    """Extract a tar archive holding one top directory into `dest_dir/<top>`; return that path.

    It is extracted into a temporary sibling and renamed into place (atomic_dir), so an interrupted
    extraction never looks complete. Members with absolute paths or `..`, links out of the tree and
    device files are refused; a corrupt archive is an error naming it. The result must pass `check`
    (an InputError otherwise; by default LJSpeech's layout: metadata.csv, wavs/). With `only` (a folder
    under the top directory, e.g. LibriTTS's 'train-clean-100'), only that folder is extracted, into
    `dest_dir/<top>/<only>`, which is returned.
    """
    archive = Path(archive)
    dest_dir = Path(dest_dir)
    corrupt = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError)
    try:
        tar = tarfile.open(archive, "r:*")
    except FileNotFoundError as err:
        raise InputError("archive not found", archive) from err
    except corrupt as err:
        detail = " ".join(str(err).split())  # tarfile lists each method it tried on its own line
        raise InputError(f"corrupt, truncated or not a tar archive ({detail})", archive) from err
    with tar:
        try:
            first = tar.next()  # streamed: the name of the top directory without reading the archive twice
            if first is None:
                raise InputError("empty archive", archive)
            top = next((p for p in first.name.split("/") if p not in ("", ".")), "")
            if not top or top == ".." or first.name.startswith("/"):
                raise InputError(f"unsafe member '{first.name}' refused (absolute path or '..')", archive)
            if expected_top is not None and top != expected_top:
                raise InputError(f"expected everything under '{expected_top}/', found '{first.name}'",
                                 archive)
            target = dest_dir / top / only if only else dest_dir / top
            with atomic_dir(target) as tmp:
                tar.extractall(tmp, filter=_strip_top(top, archive, only))
                try:
                    check(tmp)
                except InputError as err:
                    raise InputError(f"extracted, but {err.message}", archive) from err
        except tarfile.FilterError as err:
            raise InputError(f"unsafe member refused ({err})", archive) from err
        except corrupt as err:
            raise InputError(f"corrupt or truncated archive ({err})", archive) from err
        except OSError as err:
            if err.errno is None:  # decompressors report bad data as an OSError without errno
                raise InputError(f"corrupt or truncated archive ({err})", archive) from err
            raise HoldttsError(f"{dest_dir}: cannot extract {archive.name} ({err})") from err
    return target


def extract_zip(archive: str | os.PathLike, dest: str | os.PathLike, *, inner: str,
                check: Callable[[Path], object] | None = None) -> Path:
    """Extract a zip archive into `dest` (built under a temporary name, renamed into place); return `dest`.

    `inner` is a folder the corpus has at its root (VCTK: 'txt'): when the archive holds its files under
    one top directory instead, that directory is removed from the names. Absolute names, `..`, links and
    special files are refused; a corrupt zip (bad central directory or CRC) is an error naming it.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except FileNotFoundError as err:
        raise InputError("archive not found", archive) from err
    except (zipfile.BadZipFile, OSError) as err:
        raise InputError(f"corrupt, truncated or not a zip archive ({err})", archive) from err
    with zf:
        members = zf.infolist()
        if not members:
            raise InputError("empty archive", archive)
        names = []
        for info in members:
            name = info.filename
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if name.startswith("/") or "\\" in name or ".." in parts or (parts and ":" in parts[0]):
                raise InputError(f"unsafe member '{name}' refused (absolute path or '..')", archive)
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix file type recorded (a plain file)
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise InputError(f"member '{name}' refused (a link or special file)", archive)
            names.append(parts)
        tops = {parts[0] for parts in names if parts}
        strip = 1 if len(tops) == 1 and inner not in tops and all(
            len(parts) > 1 or info.is_dir() for parts, info in zip(names, members)) else 0
        try:
            with atomic_dir(dest) as tmp:
                for parts, info in zip(names, members):
                    rel = parts[strip:]
                    if not rel:
                        continue
                    path = tmp.joinpath(*rel)
                    if info.is_dir():
                        path.mkdir(parents=True, exist_ok=True)
                        continue
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as source, open(path, "wb") as out:
                        shutil.copyfileobj(source, out, _CHUNK)
                if check is not None:
                    try:
                        check(tmp)
                    except InputError as err:
                        raise InputError(f"extracted, but {err.message}", archive) from err
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise InputError(f"corrupt or truncated archive ({err})", archive) from err
        except OSError as err:
            raise HoldttsError(f"{dest.parent}: cannot extract {archive.name} ({err})") from err
    return dest


def download_ljspeech(out_dir: str | os.PathLike, url: str = LJSPEECH_URL, sha256: str | None = LJSPEECH_SHA256, *,
                      md5: str | None = None, keep_archive: bool = True, progress: bool = True) -> Path:
    """Download, verify and extract LJSpeech 1.1 into `out_dir/LJSpeech-1.1`; return that directory.

    An existing, complete `out_dir/LJSpeech-1.1` is returned as it is (extraction is atomic, and only
    a verified archive is extracted).
    """
    out_dir = Path(out_dir)
    corpus = out_dir / LJSPEECH_DIRNAME
    if corpus.exists():
        check_corpus_dir(corpus)
        return corpus
    name = Path(urllib.parse.urlparse(url).path).name or f"{LJSPEECH_DIRNAME}.tar.bz2"
    archive = download_file(url, out_dir / name, None if md5 else sha256, md5=md5, progress=progress)
    corpus = extract_archive(archive, out_dir, expected_top=LJSPEECH_DIRNAME)
    if not keep_archive:
        archive.unlink()
    return corpus

