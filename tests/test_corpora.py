"""VCTK 0.92 and LibriTTS on small archives the tests build in each corpus's layout: download (file:// and a
local HTTP server; sha256 and md5; checksum refusal; resume), extraction, import into the multi-speaker
corpus form, then prepare and features."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import test_download

from holdtts.cli import main
from holdtts.data.corpora import (
    download_libritts,
    download_vctk,
    import_libritts,
    import_vctk,
    parse_subsets,
)
from holdtts.data.download import download_file, extract_zip
from holdtts.data.features import extract_features
from holdtts.data.splits import load_splits, load_splits_meta, prepare_data_dir
from holdtts.data.tables import read_table
from holdtts.errors import HoldttsError, InputError

from speaker_factory import libritts_ids, make_libritts, make_tar, make_vctk, make_zip, vctk_ids

server = test_download.server  # the local HTTP server fixture (ranges, cuts) of the LJSpeech download tests


@pytest.fixture(scope="module")
def vctk_zip(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("vctk_source")
    corpus = make_vctk(root)
    archive = root / "VCTK-Corpus-0.92.zip"
    return archive, make_zip(corpus, archive)  # no top directory, as VCTK's zip


@pytest.fixture(scope="module")
def libritts_tar(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("libritts_source")
    base = make_libritts(root)
    archive = root / "train-clean-100.tar.gz"
    return archive, make_tar(base, archive, "train-clean-100")


# ------------------------------------------------------------------------------ VCTK
def test_vctk_download_import_prepare_features(vctk_zip, tmp_path):
    archive, sums = vctk_zip
    corpus = download_vctk(tmp_path / "downloads", archive.as_uri(), sha256=sums["sha256"], progress=False)
    assert corpus == tmp_path / "downloads" / "VCTK-Corpus-0.92"
    assert (corpus / "txt" / "p225" / "p225_001.txt").is_file()
    assert download_vctk(tmp_path / "downloads", "file:///nowhere", progress=False) == corpus  # reused

    summary = import_vctk(corpus, tmp_path / "vctk_corpus")
    assert (summary["num_utts"], summary["num_speakers"], summary["num_skipped"]) == (len(vctk_ids()), 4, 2)
    out = tmp_path / "vctk_corpus"
    rows = [line.split("|") for line in (out / "metadata.csv").read_text().splitlines()]
    assert [r[0] for r in rows] == vctk_ids() and all(r[3] == r[0].split("_")[0] for r in rows)
    assert rows[0][1] == "Please call Stella, number 1." and rows[0][2] == "please call stella, number one."
    link = out / "wavs" / "p225_001.flac"
    assert link.is_symlink() and link.resolve() == (corpus / "wav48_silence_trimmed" / "p225" / "p225_001_mic1.flac")
    assert read_table(out / "skipped") == {"p225_002": "no_mic1_audio", "p226_003": "no_transcript"}

    data = tmp_path / "data"
    prepare_data_dir(out, data, seed=1, protocol="speaker", num_member_speakers=2, valid_per_speaker=1,
                     test_per_speaker=1, defer_resample=True)
    splits = load_splits(data)
    meta = load_splits_meta(data)
    assert meta["num_speakers"] == 4 and meta["protocol"] == "speaker" and splits["all"] == vctk_ids()
    assert read_table(data / "utt2spk") == {u: u.split("_")[0] for u in vctk_ids()}
    manifest = extract_features(data, tmp_path / "dump", device="cpu", nj=1)
    assert manifest["num_utts"] == len(vctk_ids())


def test_vctk_md5_and_checksum_refusal(vctk_zip, tmp_path):
    archive, sums = vctk_zip
    corpus = download_vctk(tmp_path / "a", archive.as_uri(), md5=sums["md5"], progress=False)
    assert (corpus / "wav48_silence_trimmed").is_dir()
    wrong = "0" * 32
    with pytest.raises(InputError, match=f"download is corrupt: md5 {sums['md5']}, expected {wrong}"):
        download_vctk(tmp_path / "b", archive.as_uri(), md5=wrong, progress=False)
    assert not (tmp_path / "b" / "VCTK-Corpus-0.92").exists()
    assert not list((tmp_path / "b").glob("*.part"))
    with pytest.raises(HoldttsError, match="not 32 hex digits"):
        download_file(archive.as_uri(), tmp_path / "c" / "x.zip", md5="abc", progress=False)
    with pytest.raises(HoldttsError, match="exactly one expected checksum"):
        download_file(archive.as_uri(), tmp_path / "c" / "x.zip", sums["sha256"], md5=sums["md5"], progress=False)


def test_vctk_resumed_download(vctk_zip, tmp_path, server):
    archive, sums = vctk_zip
    server.payload = archive.read_bytes()
    half = len(server.payload) // 2
    server.cut_after = half
    url = f"http://127.0.0.1:{server.server_address[1]}/VCTK-Corpus-0.92.zip"
    with pytest.raises(HoldttsError, match="run again to resume"):
        download_vctk(tmp_path, url, sha256=sums["sha256"], progress=False)
    assert (tmp_path / "VCTK-Corpus-0.92.zip.part").stat().st_size == half
    server.cut_after = None
    corpus = download_vctk(tmp_path, url, md5=sums["md5"], progress=False)  # md5 over resumed bytes too
    assert server.ranges[-1] == f"bytes={half}-" and (corpus / "txt").is_dir()


def test_vctk_zip_with_a_top_directory_and_bad_zips(tmp_path):
    source = make_vctk(tmp_path / "src", {"p225": 1, "p226": 1})
    topped = tmp_path / "topped.zip"
    make_zip(source, topped, top="VCTK-Corpus-0.92")
    out = extract_zip(topped, tmp_path / "out", inner="txt")
    assert (out / "txt" / "p225" / "p225_001.txt").is_file()
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(topped.read_bytes()[: len(topped.read_bytes()) // 2])
    with pytest.raises(InputError, match="corrupt, truncated or not a zip archive"):
        extract_zip(corrupt, tmp_path / "out2", inner="txt")
    unsafe = tmp_path / "unsafe.zip"
    with zipfile.ZipFile(unsafe, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(InputError, match="unsafe member"):
        extract_zip(unsafe, tmp_path / "out3", inner="txt")
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()
    with pytest.raises(InputError, match="no txt/ folder"):  # a zip of something else
        other = tmp_path / "other.zip"
        with zipfile.ZipFile(other, "w") as zf:
            zf.writestr("README", "x")
        download_vctk(tmp_path / "d", other.as_uri(), sha256=hashlib.sha256(other.read_bytes()).hexdigest(),
                      progress=False)


def test_vctk_bad_transcripts_name_the_file(tmp_path):
    source = make_vctk(tmp_path / "src", {"p225": 2})
    bad = source / "txt" / "p225" / "p225_001.txt"
    bad.write_text("first line\nA | B\n")
    with pytest.raises(InputError, match="holds '\\|'") as info:
        import_vctk(source, tmp_path / "out")
    assert info.value.path == str(bad) and info.value.line == 2
    bad.write_bytes(b"caf\xe9\n")
    with pytest.raises(InputError, match="not valid UTF-8") as info:
        import_vctk(source, tmp_path / "out")
    assert info.value.path == str(bad)
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="no txt/ folder"):
        import_vctk(source / "txt", tmp_path / "out")


def test_import_refuses_to_overwrite(tmp_path):
    source = make_vctk(tmp_path / "src", {"p225": 2, "p226": 1})
    import_vctk(source, tmp_path / "out")
    with pytest.raises(HoldttsError, match="already exists"):
        import_vctk(source, tmp_path / "out", mic="mic2")
    summary = import_vctk(source, tmp_path / "out", mic="mic2", overwrite=True)
    assert summary["mic"] == "mic2" and (tmp_path / "out" / "wavs" / "p225_002.flac").resolve().name == \
        "p225_002_mic2.flac"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]


# ------------------------------------------------------------------------------ LibriTTS
def test_libritts_download_import_prepare(libritts_tar, tmp_path, capsys):
    archive, sums = libritts_tar
    url = archive.as_uri().replace("train-clean-100", "{subset}")
    root = download_libritts(tmp_path / "downloads", ["train-clean-100"], url,
                             sha256={"train-clean-100": sums["sha256"]}, progress=False)
    assert root == tmp_path / "downloads" / "LibriTTS"
    assert sorted(p.name for p in root.iterdir()) == ["train-clean-100"]  # only the subset is extracted
    summary = import_libritts(root, tmp_path / "corpus", ["train-clean-100"])
    assert (summary["num_utts"], summary["num_speakers"], summary["num_skipped"]) == (len(libritts_ids()), 3, 1)
    rows = [line.split("|") for line in (tmp_path / "corpus" / "metadata.csv").read_text().splitlines()]
    assert [r[0] for r in rows] == libritts_ids() and all(r[3] == r[0].split("_")[0] for r in rows)
    first = {r[0]: r for r in rows}["103_1241_000001_000001"]
    assert first[1] == "Chapter 1: it was Mr. Brown's." and first[2] == "Chapter one: it was Mister Brown's, take 1."

    main(["prepare", "--corpus-dir", str(tmp_path / "corpus"), "--data-dir", str(tmp_path / "data"),
          "--defer-resample", "--num-valid", "1", "--nj", "1"])
    out = capsys.readouterr().out
    assert "of 3 speakers, utterance protocol" in out and "features` resamples them" in out
    assert load_splits_meta(tmp_path / "data")["protocol"] == "utterance"
    nums = read_table(tmp_path / "data" / "all" / "utt2num_samples", value_type=int)
    assert nums["103_1241_000001_000001"] == round((3000 + 53) * 22050 / 24000)  # its 3053 samples at 24 kHz


def test_libritts_md5_refusal_and_cli(libritts_tar, tmp_path, capsys):
    archive, sums = libritts_tar
    url = archive.as_uri().replace("train-clean-100", "{subset}")
    with pytest.raises(SystemExit) as exit_:
        main(["download", "--corpus", "libritts", "--out-dir", str(tmp_path), "--url", url, "--md5", "f" * 32])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert f"md5 {sums['md5']}, expected {'f' * 32}" in err
    main(["download", "--corpus", "libritts", "--out-dir", str(tmp_path), "--url", url, "--md5", sums["md5"]])
    assert capsys.readouterr().out.strip() == str(tmp_path / "LibriTTS")
    main(["import-corpus", "--format", "libritts", "--source", str(tmp_path / "LibriTTS"), "--out-dir",
          str(tmp_path / "corpus")])
    assert "import-corpus: 12 utterances of 3 speakers from LibriTTS (1 left out" in capsys.readouterr().out
    with pytest.raises(HoldttsError, match="unknown LibriTTS subset"):
        parse_subsets("train-clean-101")
    with pytest.raises(InputError, match="no subset folder dev-clean"):
        import_libritts(tmp_path / "LibriTTS", tmp_path / "other", ["dev-clean"])


def test_libritts_misplaced_utterance_names_the_file(tmp_path):
    base = make_libritts(tmp_path, speakers={"103": (1241, 1)})
    folder = base / "train-clean-100" / "103" / "1241"
    wrong = folder / "104_1241_000001_000009.wav"
    (folder / "103_1241_000001_000001.wav").rename(wrong)
    with pytest.raises(InputError, match="not a LibriTTS utterance of speaker 103") as info:
        import_libritts(base, tmp_path / "out", ["train-clean-100"])
    assert info.value.path == str(wrong)
