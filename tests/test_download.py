"""`holdtts download`: resumable checksummed download, safe extraction, then prepare, on a tiny archive."""
from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from holdtts.cli import main
from holdtts.data.download import download_file, download_ljspeech, extract_archive, sha256_file
from holdtts.data.splits import load_splits, prepare_data_dir
from holdtts.errors import HoldttsError, InputError

from corpus_factory import make_archive, make_corpus, utt_id


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("source")
    corpus = make_corpus(root, n=6)
    path = root / "LJSpeech-1.1.tar.bz2"
    return path, make_archive(corpus, path)


class Server(http.server.ThreadingHTTPServer):
    payload = b""
    honour_range = True
    cut_after: int | None = None  # close the connection after this many body bytes
    ranges: list


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server: Server = self.server
        data, requested = server.payload, self.headers.get("Range")
        server.ranges.append(requested)
        start = int(requested[len("bytes="):].rstrip("-")) if requested and server.honour_range else None
        if start is not None and start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if start is None:
            self.send_response(200)
            body = data
        else:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if server.cut_after is None else body[:server.cut_after])
        self.close_connection = True


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    srv = Server(("127.0.0.1", 0), Handler)
    srv.ranges = []
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def url_of(srv: Server) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/LJSpeech-1.1.tar.bz2"


def run_cli(capsys, *args) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_file_url_download_extract_prepare(archive, tmp_path, capsys):
    source, sha = archive
    out = tmp_path / "downloads"
    args = ["download", "--url", source.as_uri(), "--sha256", sha]
    code, stdout, _ = run_cli(capsys, *args, "--out-dir", str(out))
    assert code == 0
    corpus = out / "LJSpeech-1.1"
    assert stdout.strip().splitlines()[-1] == str(corpus)
    assert sha256_file(out / "LJSpeech-1.1.tar.bz2") == sha
    assert (corpus / "metadata.csv").is_file() and len(list((corpus / "wavs").iterdir())) == 6
    assert sorted(p.name for p in out.iterdir()) == ["LJSpeech-1.1", "LJSpeech-1.1.tar.bz2"]

    # Already there: nothing is fetched (the URL no longer works).
    missing = (tmp_path / "gone.tar.bz2").as_uri()
    assert download_ljspeech(out, missing, sha, progress=False) == corpus

    result = prepare_data_dir(corpus, tmp_path / "data")
    assert result.meta["sizes"]["all"] == 6
    assert load_splits(tmp_path / "data")["all"] == [utt_id(i) for i in range(1, 7)]

    other = tmp_path / "other"
    code, _, _ = run_cli(capsys, *args, "--out-dir", str(other), "--no-keep-archive")
    assert code == 0 and sorted(p.name for p in other.iterdir()) == ["LJSpeech-1.1"]


def test_checksum_mismatch(archive, tmp_path):
    source, sha = archive
    wrong = "0" * 64
    dest = tmp_path / "a.tar.bz2"
    with pytest.raises(InputError) as info:
        download_file(source.as_uri(), dest, wrong, progress=False)
    message = str(info.value)
    assert info.value.path == str(dest) and wrong in message and sha in message
    assert not dest.exists() and not Path(str(dest) + ".part").exists()


def test_truncated_source(archive, tmp_path):
    source, sha = archive
    truncated = tmp_path / "truncated.tar.bz2"
    truncated.write_bytes(source.read_bytes()[:-100])
    actual = hashlib.sha256(truncated.read_bytes()).hexdigest()
    with pytest.raises(InputError, match=f"sha256 {actual}, expected {sha}"):
        download_file(truncated.as_uri(), tmp_path / "out" / "a.tar.bz2", sha, progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_interrupted_download_resumes(archive, tmp_path, server):
    source, sha = archive
    server.payload = source.read_bytes()
    half = len(server.payload) // 2
    server.cut_after = half
    dest = tmp_path / "a.tar.bz2"
    with pytest.raises(HoldttsError, match=f"interrupted after {half} of {len(server.payload)} bytes"):
        download_file(url_of(server), dest, sha, progress=False, timeout=10)
    part = Path(str(dest) + ".part")
    assert part.read_bytes() == server.payload[:half] and not dest.exists()

    server.cut_after = None
    assert download_file(url_of(server), dest, sha, progress=False, timeout=10) == dest
    assert server.ranges == [None, f"bytes={half}-"]
    assert dest.read_bytes() == server.payload and not part.exists()


def test_server_ignoring_range_restarts(archive, tmp_path, server):
    source, sha = archive
    server.payload = source.read_bytes()
    server.honour_range = False
    dest = tmp_path / "a.tar.bz2"
    stale = b"stale bytes that are not the archive's start"
    Path(str(dest) + ".part").write_bytes(stale)
    download_file(url_of(server), dest, sha, progress=False, timeout=10)
    assert server.ranges == [f"bytes={len(stale)}-"]
    assert dest.read_bytes() == server.payload


def test_complete_part_and_overlong_part(archive, tmp_path, server):
    source, sha = archive
    server.payload = source.read_bytes()
    dest = tmp_path / "a.tar.bz2"
    part = Path(str(dest) + ".part")
    part.write_bytes(server.payload)  # complete but never renamed: the server answers 416
    download_file(url_of(server), dest, sha, progress=False, timeout=10)
    assert dest.read_bytes() == server.payload

    dest.unlink()
    part.write_bytes(server.payload + b"extra")  # longer than the file: start over
    download_file(url_of(server), dest, sha, progress=False, timeout=10)
    assert dest.read_bytes() == server.payload
    assert server.ranges == [f"bytes={len(server.payload)}-", f"bytes={len(server.payload) + 5}-", None]


def test_existing_file_is_verified(archive, tmp_path):
    source, sha = archive
    dest = tmp_path / "a.tar.bz2"
    dest.write_bytes(source.read_bytes())
    assert download_file((tmp_path / "gone").as_uri(), dest, sha, progress=False) == dest
    dest.write_bytes(b"something else")
    with pytest.raises(InputError, match="delete it to download again"):
        download_file(source.as_uri(), dest, sha, progress=False)


def test_unreachable_url(tmp_path):
    with pytest.raises(HoldttsError, match="cannot download.*--corpus-dir"):
        download_file((tmp_path / "nope.tar.bz2").as_uri(), tmp_path / "x", "0" * 64, progress=False)
    with pytest.raises(HoldttsError, match="not 64 hex digits"):
        download_file("file:///x", tmp_path / "x", "abc", progress=False)


def test_corrupted_archive(archive, tmp_path):
    source, _ = archive
    data = bytearray(source.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    corrupt = tmp_path / "corrupt.tar.bz2"
    corrupt.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match="corrupt, truncated or not a tar archive") as info:
        extract_archive(corrupt, out)
    assert info.value.path == str(corrupt) and "\n" not in str(info.value)
    assert list(out.iterdir()) == []  # nothing that looks extracted, no temporary directory

    # Through the CLI: checksum fine (it is the file's own), extraction refused.
    sha = hashlib.sha256(bytes(data)).hexdigest()
    code = None
    try:
        main(["download", "--out-dir", str(tmp_path / "dl"), "--url", corrupt.as_uri(), "--sha256", sha])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 1 and not (tmp_path / "dl" / "LJSpeech-1.1").exists()

    not_tar = tmp_path / "not.tar.bz2"
    not_tar.write_bytes(b"plain text")
    with pytest.raises(InputError, match="not a tar archive"):
        extract_archive(not_tar, out)


def test_archive_truncated_mid_extraction(tmp_path):
    """A stream that ends mid-way fails after some members were written: none of them may remain."""
    corpus = make_corpus(tmp_path / "src", n=6)
    archive = tmp_path / "LJSpeech-1.1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(corpus, arcname=corpus.name)
    archive.write_bytes(archive.read_bytes()[:-2000])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match="corrupt or truncated archive") as info:
        extract_archive(archive, out)
    assert info.value.path == str(archive)
    assert list(out.iterdir()) == []


def tar_with(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:bz2") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return path


def link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


GOOD = [("LJSpeech-1.1/metadata.csv", b"LJ1|a|a\n"), ("LJSpeech-1.1/wavs/README", b"")]


@pytest.mark.parametrize("members, message", [
    (GOOD + [("LJSpeech-1.1/../evil.txt", b"x")], "absolute path or '..'"),
    (GOOD + [("/LJSpeech-1.1/abs.txt", b"x")], "absolute path or '..'"),
    (GOOD + [link("LJSpeech-1.1/escape", "../../outside")], "unsafe member refused"),
    (GOOD + [link("LJSpeech-1.1/abs", "/etc/passwd")], "unsafe member refused"),
    (GOOD + [link("LJSpeech-1.1/hard", "elsewhere/x", tarfile.LNKTYPE)], "outside the top directory"),
    (GOOD + [("other/file", b"x")], "outside the top directory"),
    ([("../evil", b"x")] + GOOD, "absolute path or '..'"),
    ([("Other-1.0/metadata.csv", b"x")], "expected everything under 'LJSpeech-1.1/'"),
    ([("LJSpeech-1.1/README", b"x")], "extracted, but no metadata.csv"),
])
def test_unsafe_or_wrong_archives(tmp_path, members, message):
    archive = tar_with(tmp_path / "a.tar.bz2", members)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match=message) as info:
        extract_archive(archive, out)
    assert info.value.path == str(archive)
    assert list(out.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.bz2", "out"]


def test_safe_links_are_kept(tmp_path):
    archive = tar_with(tmp_path / "a.tar.bz2", GOOD + [link("LJSpeech-1.1/wavs/alias", "../metadata.csv")])
    corpus = extract_archive(archive, tmp_path)
    assert (corpus / "wavs" / "alias").read_bytes() == b"LJ1|a|a\n"
    with pytest.raises(HoldttsError, match="already exists"):
        extract_archive(archive, tmp_path)
