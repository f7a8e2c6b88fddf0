"""`holdtts prepare`: corpus validation, the tables, the write-once splits and every bad-input case."""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from holdtts.cli import main
from holdtts.data import splits as splits_module
from holdtts.data.corpus import check_wav, read_metadata
from holdtts.data.splits import SPLITS, TABLES, load_splits, load_splits_meta, make_splits, prepare_data_dir
from holdtts.data.tables import read_table
from holdtts.errors import HoldttsError, InputError

from corpus_factory import SR, make_corpus, metadata_line, num_samples, utt_id, write_metadata, write_wav


def run_cli(capsys, *args) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.fixture
def corpus(tmp_path) -> Path:
    return make_corpus(tmp_path / "corpus", n=12)


def test_tables_and_splits(corpus, tmp_path):
    data = tmp_path / "data"
    result = prepare_data_dir(corpus, data, seed=7)
    assert result.status == "created"
    ids = [utt_id(i) for i in range(1, 13)]

    wav_scp = read_table(data / "all" / "wav.scp")
    assert list(wav_scp) == ids  # sorted
    for i, utt in enumerate(ids, start=1):
        assert os.path.isabs(wav_scp[utt]) and wav_scp[utt] == str(corpus / "wavs" / f"{utt}.wav")
        assert sf.info(wav_scp[utt]).frames == num_samples(i)
    normalized = {u: line.split("|")[2] for u, line in zip(ids, map(metadata_line, range(1, 13)))}
    original = {u: line.split("|")[1] for u, line in zip(ids, map(metadata_line, range(1, 13)))}
    assert read_table(data / "all" / "text") == normalized
    assert read_table(data / "all" / "text.raw") == original
    assert read_table(data / "all" / "utt2num_samples", value_type=int) == {
        utt_id(i): num_samples(i) for i in range(1, 13)}
    assert not (data / "all" / "skipped").exists()

    expected = make_splits(ids, 7)
    assert load_splits(data) == expected
    for split in SPLITS:
        for name in TABLES:
            table = read_table(data / split / name)
            assert list(table) == expected[split]
            assert table == {u: v for u, v in read_table(data / "all" / name).items() if u in table}

    meta = load_splits_meta(data)
    assert meta["seed"] == 7 and meta["corpus_dir"] == str(corpus)
    assert meta["metadata_sha256"] == hashlib.sha256((corpus / "metadata.csv").read_bytes()).hexdigest()
    assert meta["ids_sha256"] == hashlib.sha256("".join(u + "\n" for u in ids).encode()).hexdigest()
    assert meta["sizes"] == {"all": 12, "members": 5, "nonmembers": 5, "half1": 3, "half2": 2, "valid": 2,
                             "test": 5, "unused": 0}
    assert meta["arguments"] == {"seed": 7, "num_members": None, "num_nonmembers": None, "num_valid": None,
                                 "num_test": None, "skip_bad": False, "resample": False}
    assert meta["holdtts_version"] and meta["created"]
    assert leftovers(tmp_path) == []


def test_write_once(corpus, tmp_path, capsys):
    data = tmp_path / "data"
    args = ["prepare", "--corpus-dir", str(corpus), "--data-dir", str(data), "--nj", "1"]
    code, out, _ = run_cli(capsys, *args, "--num-members", "4")
    assert code == 0 and "members 4" in out
    first = (data / "splits.json").read_text()

    # Same corpus and settings (a default spelt out included): nothing is done.
    code, out, _ = run_cli(capsys, *args, "--num-members", "4", "--num-nonmembers", "4", "--seed", "1234")
    assert code == 0 and "nothing to do" in out
    assert (data / "splits.json").read_text() == first

    code, _, err = run_cli(capsys, *args, "--num-members", "4", "--seed", "5")
    assert code == 1
    assert "splits.json" in err and "seed 1234 then, 5 now" in err and "--overwrite" in err
    code, _, err = run_cli(capsys, *args)
    assert code == 1 and "members 4 then, default requested now" in err
    assert (data / "splits.json").read_text() == first

    code, out, _ = run_cli(capsys, *args, "--num-members", "4", "--seed", "5", "--overwrite")
    assert code == 0 and "replaced" in out
    assert load_splits_meta(data)["seed"] == 5
    assert load_splits(data)["members"] == make_splits([utt_id(i) for i in range(1, 13)], 5, 4)["members"]
    assert leftovers(tmp_path) == []


def test_changed_corpus_is_refused(corpus, tmp_path):
    data = tmp_path / "data"
    prepare_data_dir(corpus, data)
    write_metadata(corpus, [metadata_line(i) for i in range(1, 12)])
    with pytest.raises(InputError, match="metadata.csv changed.*--overwrite") as info:
        prepare_data_dir(corpus, data)
    assert info.value.path == str(data / "splits.json")
    assert prepare_data_dir(corpus, data, overwrite=True).meta["sizes"]["all"] == 11


def test_edited_data_dir_is_not_up_to_date(corpus, tmp_path):
    data = tmp_path / "data"
    prepare_data_dir(corpus, data)
    members = read_table(data / "members" / "wav.scp")
    (data / "members" / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p in list(members.items())[1:]))
    with pytest.raises(InputError, match="'members' has 4 utterances on disk but 5 recorded"):
        prepare_data_dir(corpus, data)


def break_corpus(corpus: Path, case: str) -> tuple[int, str]:
    """Damage the corpus one way; return the metadata line the error must name and a message fragment."""
    lines = [metadata_line(i) for i in range(1, 13)]
    wav3 = corpus / "wavs" / f"{utt_id(3)}.wav"
    if case == "missing wav":
        wav3.unlink()
        return 3, "wav file not found"
    if case == "corrupt wav":
        wav3.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(64))
        return 3, "cannot read wav"
    if case == "empty wav":
        write_wav(wav3, 0)
        return 3, "wav has no samples"
    if case == "wrong rate":
        write_wav(wav3, 1000, sr=16000)
        return 3, "sample rate 16000 Hz, expected 22050 Hz (pass --resample"
    if case == "stereo":
        write_wav(wav3, 1000, channels=2)
        return 3, "2 channels, expected mono (pass --resample"
    if case == "empty text":
        lines[3] = f"{utt_id(4)}| |Doctor"
        write_metadata(corpus, lines)
        return 4, f"utterance '{utt_id(4)}': empty text"
    if case == "empty normalized text":
        lines[3] = f"{utt_id(4)}|Dr.|"
        write_metadata(corpus, lines)
        return 4, "empty normalized text"
    if case == "duplicate id":
        lines[6] = lines[1]
        write_metadata(corpus, lines)
        return 7, f"duplicate utterance id '{utt_id(2)}' (first on line 2)"
    if case == "wrong field count":
        lines[4] = f"{utt_id(5)}|only two fields"
        write_metadata(corpus, lines)
        return 5, "expected 3 fields"
    if case == "text with a bar":
        lines[4] = f"{utt_id(5)}|a|b|c"
        write_metadata(corpus, lines)
        return 5, "got 4"
    if case == "unsafe id":
        lines[5] = "../LJ001-0006|text|text"
        write_metadata(corpus, lines)
        return 6, "not safe as a file name"
    if case == "empty id":
        lines[5] = "|text|text"
        write_metadata(corpus, lines)
        return 6, "empty utterance id"
    raise AssertionError(case)


BAD_CASES = ["missing wav", "corrupt wav", "empty wav", "wrong rate", "stereo", "empty text",
             "empty normalized text", "duplicate id", "wrong field count", "text with a bar", "unsafe id",
             "empty id"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_names_file_and_line(corpus, tmp_path, case):
    line, fragment = break_corpus(corpus, case)
    data = tmp_path / "data"
    with pytest.raises(InputError) as info:
        prepare_data_dir(corpus, data)
    err = info.value
    assert (err.path, err.line) == (str(corpus / "metadata.csv"), line)
    assert str(err).startswith(f"{corpus / 'metadata.csv'}:{line}: ")
    assert fragment in str(err)
    if "wav" in case or case in ("wrong rate", "stereo"):
        assert f"{utt_id(3)}.wav" in str(err)
    assert not data.exists() and leftovers(tmp_path) == []


def test_check_wav_alone_names_the_wav(tmp_path):
    wav = tmp_path / "a.wav"
    write_wav(wav, 100, sr=8000)
    with pytest.raises(InputError, match="sample rate 8000 Hz") as info:
        check_wav(wav)
    assert info.value.path == str(wav) and info.value.line is None
    info = check_wav(wav, allow_convert=True)
    assert (info.sample_rate, info.channels, info.num_samples) == (8000, 1, 100)


def test_metadata_encoding_and_blank_lines(tmp_path):
    path = tmp_path / "metadata.csv"
    path.write_bytes(b'\xef\xbb\xbfLJ1|say "hi"|say "hi"\r\n\r\nLJ2| a  b | a b \r\n')
    utts = read_metadata(path)
    assert [(u.utt_id, u.text, u.normalized, u.line) for u in utts] == [
        ("LJ1", 'say "hi"', 'say "hi"', 1), ("LJ2", "a  b", "a b", 3)]
    path.write_bytes(b"LJ1|a|a\nLJ2|\xff|b\n")
    with pytest.raises(InputError, match="not valid UTF-8") as info:
        read_metadata(path)
    assert info.value.line == 2
    path.write_bytes(b"\n\n")
    with pytest.raises(InputError, match="no utterances"):
        read_metadata(path)


def test_resample_and_downmix(corpus, tmp_path, capsys):
    freq, n16 = 440.0, 4000
    t16 = np.arange(n16) / 16000
    sf.write(corpus / "wavs" / f"{utt_id(2)}.wav", 0.5 * np.sin(2 * np.pi * freq * t16), 16000,
             subtype="PCM_16")
    stereo = np.stack([np.full(3000, 0.25), np.full(3000, -0.75)], axis=1)
    sf.write(corpus / "wavs" / f"{utt_id(5)}.wav", stereo, SR, subtype="PCM_16")
    data = tmp_path / "data"
    args = ["prepare", "--corpus-dir", str(corpus), "--data-dir", str(data), "--nj", "1"]

    code, _, err = run_cli(capsys, *args)
    assert code == 1 and "metadata.csv:2:" in err and "--resample" in err and not data.exists()

    code, out, _ = run_cli(capsys, *args, "--resample")
    assert code == 0 and "resampled 2 wav(s)" in out
    wav_scp = read_table(data / "all" / "wav.scp")
    samples = read_table(data / "all" / "utt2num_samples", value_type=int)
    assert wav_scp[utt_id(1)] == str(corpus / "wavs" / f"{utt_id(1)}.wav")
    for utt in (utt_id(2), utt_id(5)):
        assert wav_scp[utt] == str(data / "wavs_22050" / f"{utt}.wav")
        info = sf.info(wav_scp[utt])
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
        assert samples[utt] == info.frames
    assert samples[utt_id(2)] == math.ceil(n16 * SR / 16000)
    resampled, _ = sf.read(wav_scp[utt_id(2)])
    t22 = np.arange(len(resampled)) / SR
    middle = slice(200, -200)  # away from the edges the resampler pads
    np.testing.assert_allclose(resampled[middle], 0.5 * np.sin(2 * np.pi * freq * t22)[middle], atol=2e-3)
    downmixed, _ = sf.read(wav_scp[utt_id(5)])
    np.testing.assert_allclose(downmixed, -0.25, atol=1 / 32768)
    assert load_splits_meta(data)["num_converted"] == 2
    assert leftovers(tmp_path) == []


def test_skip_bad(corpus, tmp_path, capsys):
    (corpus / "wavs" / f"{utt_id(3)}.wav").unlink()
    (corpus / "wavs" / f"{utt_id(5)}.wav").write_bytes(b"not a wav at all")
    write_wav(corpus / "wavs" / f"{utt_id(7)}.wav", 500, sr=16000)
    lines = [metadata_line(i) for i in range(1, 13)]
    lines[8] = f"{utt_id(9)}||normalized"
    write_metadata(corpus, lines)
    data = tmp_path / "data"
    args = ["prepare", "--corpus-dir", str(corpus), "--data-dir", str(data), "--nj", "1"]

    code, _, err = run_cli(capsys, *args)
    assert code == 1 and "metadata.csv:9: utterance 'LJ001-0009': empty text" in err  # metadata is read first
    write_metadata(corpus, [metadata_line(i) for i in range(1, 13)])
    code, _, err = run_cli(capsys, *args)
    assert code == 1 and "metadata.csv:3:" in err  # then the first bad wav, in metadata order
    write_metadata(corpus, lines)

    code, out, _ = run_cli(capsys, *args, "--skip-bad")
    assert code == 0 and "skipped 4 bad utterance(s)" in out
    skipped = read_table(data / "all" / "skipped")
    assert skipped == {utt_id(3): "missing wav", utt_id(5): skipped[utt_id(5)],
                       utt_id(7): "sample rate 16000 Hz (expected 22050)", utt_id(9): "empty text"}
    assert skipped[utt_id(5)].startswith("unreadable wav")
    good = [utt_id(i) for i in (1, 2, 4, 6, 8, 10, 11, 12)]
    assert list(read_table(data / "all" / "wav.scp")) == good
    assert load_splits(data) == make_splits(good, 1234)
    assert load_splits_meta(data)["num_skipped"] == 4


def test_process_pool_matches_serial(corpus, tmp_path):
    write_wav(corpus / "wavs" / f"{utt_id(9)}.wav", 100, sr=8000)
    (corpus / "wavs" / f"{utt_id(4)}.wav").unlink()
    with pytest.raises(InputError) as info:
        prepare_data_dir(corpus, tmp_path / "pool", nj=2)
    assert info.value.line == 4  # the first bad line, whichever worker finished first
    serial = prepare_data_dir(corpus, tmp_path / "serial", nj=1, skip_bad=True, resample=True)
    pooled = prepare_data_dir(corpus, tmp_path / "pool", nj=2, skip_bad=True, resample=True)
    assert serial.num_converted == pooled.num_converted == 1
    for name in (*TABLES, "skipped"):
        a = (tmp_path / "serial" / "all" / name).read_text().replace(str(tmp_path / "serial"), "D")
        b = (tmp_path / "pool" / "all" / name).read_text().replace(str(tmp_path / "pool"), "D")
        assert a == b
    assert load_splits(tmp_path / "serial") == load_splits(tmp_path / "pool")


def test_unwritable_or_foreign_output_dir(corpus, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(HoldttsError, match="a_file"):
        prepare_data_dir(corpus, blocker / "data")
    with pytest.raises(HoldttsError, match="exists and is not a directory"):
        prepare_data_dir(corpus, blocker)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(HoldttsError, match="no splits.json"):
        prepare_data_dir(corpus, foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare_data_dir(corpus, empty).status == "created"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through directory permissions")
def test_read_only_parent(corpus, tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        with pytest.raises(HoldttsError, match="not writable"):
            prepare_data_dir(corpus, parent / "data")
    finally:
        parent.chmod(0o755)


def test_interrupted_prepare_leaves_nothing(corpus, tmp_path, monkeypatch):
    data = tmp_path / "data"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(splits_module, "write_splits", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_data_dir(corpus, data)
    assert not data.exists() and leftovers(tmp_path) == []
    monkeypatch.undo()

    prepare_data_dir(corpus, data, seed=1)
    before = (data / "splits.json").read_text()
    monkeypatch.setattr(splits_module, "write_splits", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_data_dir(corpus, data, seed=2, overwrite=True)
    assert (data / "splits.json").read_text() == before and leftovers(tmp_path) == []


def test_sizes_that_cannot_fit_fail_before_the_scan(corpus, tmp_path, monkeypatch):
    def no_scan(*args, **kwargs):
        raise AssertionError("scanned")

    monkeypatch.setattr(splits_module, "scan_corpus", no_scan)
    with pytest.raises(HoldttsError, match="exceeds the 12 utterances"):
        prepare_data_dir(corpus, tmp_path / "data", num_members=6)


def test_splits_json_is_valid_json_with_provenance(corpus, tmp_path):
    prepare_data_dir(corpus, tmp_path / "data", skip_bad=True)
    meta = json.loads((tmp_path / "data" / "splits.json").read_text())
    assert meta["num_skipped"] == 0 and (tmp_path / "data" / "all" / "skipped").read_text() == ""
    assert meta["sample_rate"] == SR and "default_rng" in meta["protocol"]


# --------------------------------------------------------------------------- issue 14: cut wavs, emoji, checksums


def truncate_to_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_wav_is_an_error_naming_it(corpus, tmp_path, capsys):
    wav = corpus / "wavs" / f"{utt_id(4)}.wav"
    frames = sf.info(wav).frames
    truncate_to_half(wav)
    assert sf.info(wav).frames < frames  # libsndfile alone reads the half that is left as the whole clip
    data = tmp_path / "data"
    with pytest.raises(InputError, match="truncated wav") as info:
        prepare_data_dir(corpus, data)
    assert info.value.line == 4 and f"{utt_id(4)}.wav" in str(info.value)
    assert f"declares {frames} frames" in str(info.value)
    with pytest.raises(InputError, match="truncated"):
        check_wav(wav)
    code, out, _ = run_cli(capsys, "prepare", "--corpus-dir", str(corpus), "--data-dir", str(data), "--nj", "1",
                           "--skip-bad")
    assert code == 0 and read_table(data / "all" / "skipped") == {utt_id(4): "truncated wav"}


@pytest.mark.parametrize("normalized", ["\U0001f600\U0001f389", "\U0001f600 !!", "..."])
def test_text_with_nothing_to_speak_fails_in_prepare(corpus, tmp_path, normalized):
    lines = [metadata_line(i) for i in range(1, 13)]
    lines[5] = f"{utt_id(6)}|{normalized}|{normalized}"
    write_metadata(corpus, lines)
    with pytest.raises(InputError, match="nothing to speak") as info:
        prepare_data_dir(corpus, tmp_path / "data")
    assert info.value.line == 6 and utt_id(6) in str(info.value)
    result = prepare_data_dir(corpus, tmp_path / "data", skip_bad=True)
    assert read_table(result.data_dir / "all" / "skipped") == {utt_id(6): "normalized text cannot be spoken"}


def test_splits_json_records_each_splits_checksum(corpus, tmp_path):
    from holdtts.data.splits import member_checksum, split_checksum

    data = tmp_path / "data"
    prepare_data_dir(corpus, data, seed=3)
    meta = load_splits_meta(data)
    for name in ("all", *SPLITS):
        assert meta["checksums"][name] == member_checksum(read_table(data / name / "wav.scp")) \
            == split_checksum(data, name)
    assert member_checksum(["b", "a"]) == hashlib.sha256(b"a\nb\n").hexdigest()
    # the same number of members, other ids: a changed data directory, not "up to date"
    members, nonmembers = (read_table(data / name / "wav.scp") for name in ("members", "nonmembers"))
    moved = sorted(members)[0], sorted(nonmembers)[0]
    members[moved[1]] = members.pop(moved[0])
    (data / "members" / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p in sorted(members.items())))
    with pytest.raises(InputError, match="ids of 'members' on disk differ"):
        load_splits(data)
