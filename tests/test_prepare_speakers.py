"""`holdtts prepare` on multi-speaker corpora: the speaker tables (utt2spk, spk2utt, spk2id), splits.json's
speaker keys, both protocols, --defer-resample (features resample once), and a single-speaker data
directory left exactly as before."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from holdtts.cli import main
from holdtts.data.corpus import resampled_length
from holdtts.data.features import extract_features
from holdtts.data.speakers import read_spk2id, read_utt2spk
from holdtts.data.splits import load_splits, load_splits_meta, prepare_data_dir
from holdtts.data.tables import read_table
from holdtts.errors import HoldttsError, InputError

from corpus_factory import make_corpus
from speaker_factory import make_speaker_corpus, speaker_utts, write_audio

SPEAKERS = {"SPK01": 8, "SPK02": 7, "SPK03": 6, "SPK04": 9}
UTT2SPK = speaker_utts(SPEAKERS)


@pytest.fixture
def corpus(tmp_path):
    return make_speaker_corpus(tmp_path, SPEAKERS)


def test_utterance_protocol_tables(corpus, tmp_path):
    data = tmp_path / "data"
    result = prepare_data_dir(corpus, data, seed=3, num_valid=2)
    assert result.status == "created"
    splits = load_splits(data)  # checks the speaker tables against the splits
    # utt2spk: every utterance, sorted; spk2utt its inverse
    assert (data / "utt2spk").read_text() == "".join(f"{u} {UTT2SPK[u]}\n" for u in sorted(UTT2SPK))
    assert (data / "spk2utt").read_text() == "".join(
        f"{s} {' '.join(sorted(u for u in UTT2SPK if UTT2SPK[u] == s))}\n" for s in sorted(SPEAKERS))
    # spk2id: the member speakers, sorted, 0..K-1 (here every speaker)
    assert (data / "spk2id").read_text() == "".join(f"{s} {i}\n" for i, s in enumerate(sorted(SPEAKERS)))
    assert read_spk2id(data) == {s: i for i, s in enumerate(sorted(SPEAKERS))} and read_utt2spk(data) == UTT2SPK
    meta = load_splits_meta(data)
    assert (meta["protocol"], meta["num_speakers"], meta["num_member_speakers"]) == ("utterance", 4, 4)
    assert "speakers" not in meta and meta["arguments"]["protocol"] == "utterance"
    for spk in SPEAKERS:
        assert any(UTT2SPK[u] == spk for u in splits["members"])
        assert any(UTT2SPK[u] == spk for u in splits["nonmembers"])
    assert not any((data / split / "utt2spk").exists() for split in ("all", "members"))


def test_speaker_protocol_tables(corpus, tmp_path, capsys):
    data = tmp_path / "data"
    args = ["prepare", "--corpus-dir", str(corpus), "--data-dir", str(data), "--seed", "3", "--protocol", "speaker",
            "--num-member-speakers", "2", "--test-per-speaker", "1", "--nj", "1"]
    main(args)
    out = capsys.readouterr().out
    assert "of 4 speakers, speaker protocol (2 member speakers)" in out
    splits = load_splits(data)
    meta = load_splits_meta(data)
    assert (meta["protocol"], meta["num_speakers"], meta["num_member_speakers"]) == ("speaker", 4, 2)
    speakers = meta["speakers"]
    assert set(speakers) == {"members", "nonmembers", "half1", "half2", "valid", "test"}
    assert len(speakers["members"]) == 2 and not set(speakers["members"]) & set(speakers["nonmembers"])
    assert speakers["valid"] == speakers["test"] == speakers["members"]
    assert len(speakers["half1"]) == len(speakers["half2"]) == 1
    assert read_spk2id(data) == {s: i for i, s in enumerate(speakers["members"])}
    assert sorted(splits["nonmembers"]) == sorted(u for u, s in UTT2SPK.items() if s in speakers["nonmembers"])
    assert meta["sizes"]["test"] == 2 and meta["sizes"]["valid"] == 2 and meta["sizes"]["unused"] == 0
    # re-running with the same settings does nothing; another protocol is refused
    main(args)
    assert "nothing to do" in capsys.readouterr().out
    with pytest.raises(InputError, match="protocol speaker then, utterance now"):
        prepare_data_dir(corpus, data, seed=3)


def test_edited_speaker_tables_are_errors(corpus, tmp_path):
    data = tmp_path / "data"
    prepare_data_dir(corpus, data, seed=3, protocol="speaker", num_member_speakers=2)
    spk2id = (data / "spk2id").read_text()
    (data / "spk2id").write_text(spk2id.replace(" 0\n", " 5\n"))
    with pytest.raises(InputError, match=r"spk2id: speaker '.*' has index 5, expected 0"):
        load_splits(data)
    (data / "spk2id").write_text(spk2id)
    utt, spk = next(iter(read_table(data / "utt2spk").items()))
    table = (data / "utt2spk").read_text()
    (data / "utt2spk").write_text(table.replace(f"{utt} {spk}\n", f"{utt} SPK99\n"))
    with pytest.raises(InputError, match="spk2utt: not the inverse of utt2spk"):
        load_splits(data)
    (data / "utt2spk").write_text(table)
    load_splits(data)


def test_single_speaker_data_dir_is_unchanged(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", n=12)
    data = tmp_path / "data"
    prepare_data_dir(corpus, data, seed=7)
    assert sorted(p.name for p in data.iterdir()) == ["all", "half1", "half2", "members", "nonmembers",
                                                       "splits.json", "test", "valid"]
    meta = json.loads((data / "splits.json").read_text())
    assert list(meta["arguments"]) == ["seed", "num_members", "num_nonmembers", "num_valid", "num_test",
                                       "skip_bad", "resample"]
    assert "num_speakers" not in meta and meta["protocol"].startswith("sorted ids permuted")
    # a splits.json written before speakers existed is still "the same settings"
    assert prepare_data_dir(corpus, data, seed=7).status == "unchanged"
    with pytest.raises(InputError, match="need.*a multi-speaker corpus"):
        prepare_data_dir(corpus, tmp_path / "other", seed=7, protocol="speaker")


def test_protocol_arguments_are_checked(corpus, tmp_path):
    with pytest.raises(HoldttsError, match="--num-members: not used by the speaker protocol"):
        prepare_data_dir(corpus, tmp_path / "a", protocol="speaker", num_members=4)
    with pytest.raises(HoldttsError, match="--num-member-speakers: only for --protocol speaker"):
        prepare_data_dir(corpus, tmp_path / "b", num_member_speakers=2)
    with pytest.raises(HoldttsError, match="at least 1 non-member speaker"):
        prepare_data_dir(corpus, tmp_path / "c", protocol="speaker", num_member_speakers=4)
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]  # nothing left behind


@pytest.mark.parametrize(("line", "message"), [
    ("SPK01-0001|Some text.|Some text.", "expected 4 fields 'id|text|normalized text|speaker' (as on line 1)"),
    ("SPK01-0001|Some text.|Some text.|", "empty speaker"),
    ("SPK01-0001|Some text.|Some text.|bad speaker", "speaker 'bad speaker' is not a safe id"),
])
def test_bad_speaker_column_names_file_and_line(corpus, tmp_path, line, message):
    metadata = corpus / "metadata.csv"
    lines = metadata.read_text().splitlines()
    lines[2] = line
    metadata.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=re.escape(message)) as info:
        prepare_data_dir(corpus, tmp_path / "data")
    assert info.value.path == str(metadata) and info.value.line == 3


def test_defer_resample_keeps_the_audio_and_features_resample_it(tmp_path):
    # 48 kHz flac and 24 kHz wav (stereo for one), as VCTK and LibriTTS ship them
    corpus = tmp_path / "corpus"
    lines, lengths = [], {}
    for k, (utt, spk) in enumerate(sorted(speaker_utts({"A": 4, "B": 4}).items())):
        sr, fmt, ext = ((48000, "FLAC", "flac") if spk == "A" else (24000, "WAV", "wav"))
        n = 9000 + 101 * k
        write_audio(corpus / "wavs" / f"{utt}.{ext}", n, sr, fmt, seed=k)
        lengths[utt] = resampled_length(n, sr)
        lines.append(f"{utt}|Take {k + 1}.|Take {k + 1}.|{spk}")
    stereo = corpus / "wavs" / "B-0004.wav"
    audio, sr = sf.read(stereo)
    sf.write(stereo, np.stack([audio, 0.5 * audio], axis=1), sr, subtype="PCM_16")
    (corpus / "metadata.csv").write_text("".join(line + "\n" for line in lines))

    with pytest.raises(InputError, match="sample rate 48000 Hz"):
        prepare_data_dir(corpus, tmp_path / "refused")
    data = tmp_path / "data"
    result = prepare_data_dir(corpus, data, seed=1, num_valid=1, defer_resample=True)
    assert result.meta["num_deferred"] == 8 and result.meta["arguments"]["defer_resample"] is True
    wav_scp = read_table(data / "all" / "wav.scp")
    assert wav_scp["A-0001"].endswith("A-0001.flac") and not (data / "wavs_22050").exists()
    assert read_table(data / "all" / "utt2num_samples", value_type=int) == lengths

    summary = extract_features(data, tmp_path / "dump", device="cpu", nj=1)
    index = read_table(tmp_path / "dump" / "mels.index")
    from holdtts.config import FeaturesConfig
    from holdtts.data.mel import num_frames

    assert {u: int(v.split()[1]) for u, v in index.items()} == {
        u: num_frames(n, FeaturesConfig()) for u, n in lengths.items()}
    assert np.isfinite(np.load(tmp_path / "dump" / "mels.npy")).all() and summary["num_utts"] == 8
    # a file changed after prepare is caught, naming wav.scp and its line
    write_audio(corpus / "wavs" / "A-0002.flac", 5000, 48000, "FLAC")
    with pytest.raises(InputError, match="A-0002.*utt2num_samples says") as info:
        extract_features(data, tmp_path / "dump2", device="cpu", nj=1)
    assert info.value.path.endswith("wav.scp") and info.value.line == 2


def test_resample_and_defer_resample_exclude_each_other(corpus, tmp_path):
    with pytest.raises(HoldttsError, match="one or the other"):
        prepare_data_dir(corpus, tmp_path / "data", resample=True, defer_resample=True)


def test_vocoder_reads_deferred_audio_at_22050(tmp_path):
    """The vocoder's training reads the same data directory: deferred audio is resampled as it is read."""
    from holdtts.training.vocoder import check_clips, read_clip, read_clips

    corpus = tmp_path / "corpus"
    lines = []
    for k, (utt, spk) in enumerate(sorted(speaker_utts({"A": 3, "B": 3}).items())):
        write_audio(corpus / "wavs" / f"{utt}.flac", 7000 + 11 * k, 48000, "FLAC", seed=k)
        lines.append(f"{utt}|Take {k + 1}.|Take {k + 1}.|{spk}")
    (corpus / "metadata.csv").write_text("".join(line + "\n" for line in lines))
    data = tmp_path / "data"
    prepare_data_dir(corpus, data, seed=1, num_valid=1, defer_resample=True)
    clips = read_clips(data, "members")
    check_clips(clips, 22050)  # 48 kHz is accepted: it is resampled
    lengths = read_table(data / "all" / "utt2num_samples", value_type=int)
    for clip in clips:
        wav = read_clip(clip, 0.0)
        assert wav.dtype == np.float32 and wav.shape == (lengths[clip.utt],)
    # a data directory without --defer-resample keeps refusing other rates
    plain = make_speaker_corpus(tmp_path / "plain", {"A": 3, "B": 3})
    prepare_data_dir(plain, tmp_path / "plain_data", seed=1, num_valid=1)
    clip = read_clips(tmp_path / "plain_data", "members")[0]
    assert clip.resample_to is None
    write_audio(tmp_path / "x.wav", 4800, 48000, "WAV")
    with pytest.raises(InputError, match="the vocoder needs mono 22050 Hz"):
        check_clips([clip._replace(path=str(tmp_path / "x.wav"))], 22050)
