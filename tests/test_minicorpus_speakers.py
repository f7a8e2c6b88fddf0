"""make-corpus --speakers: a multi-voice corpus in the multi-speaker layout, distinct voices, per-speaker
prosody windows, determinism, and `holdtts prepare` on it."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from holdtts.data import minicorpus
from holdtts.data.minicorpus import (
    ACCENTS,
    MAX_SPEAKERS,
    VARIANTS,
    draw_prosody,
    draw_speaker,
    make_mini_corpus,
    speaker_voice,
)
from holdtts.data.splits import load_splits, load_splits_meta, prepare_data_dir
from holdtts.errors import HoldttsError

SEED = 7
NUM_UTTS, NUM_SPEAKERS = 9, 3


@pytest.fixture(scope="module")
def small_chunks():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(minicorpus, "CHUNK_SIZE", 4)
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, small_chunks):
    out = tmp_path_factory.mktemp("multi") / "MINI"
    return out, make_mini_corpus(out, NUM_UTTS, SEED, nj=2, num_speakers=NUM_SPEAKERS)


def test_layout_ids_and_speakers(corpus):
    out, summary = corpus
    rows = [line.split("|") for line in (out / "metadata.csv").read_text().splitlines()]
    assert all(len(r) == 4 for r in rows) and summary["num_speakers"] == NUM_SPEAKERS
    ids = [r[0] for r in rows]
    assert ids == sorted(ids) and all(re.fullmatch(r"SPK\d{2}-\d{4}", i) for i in ids)
    assert all(r[0].split("-")[0] == r[3] for r in rows)
    assert [r[3] for r in rows] == ["SPK01"] * 3 + ["SPK02"] * 3 + ["SPK03"] * 3
    assert len({r[1] for r in rows}) == NUM_UTTS  # every utterance its own sentence
    for utt in ids:
        info = sf.info(out / "wavs" / f"{utt}.wav")
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")


def test_manifest_records_voices_and_prosody_windows(corpus):
    out, _ = corpus
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["num_speakers"] == NUM_SPEAKERS and meta["voice"] is None
    speakers = meta["speakers"]
    assert [s["id"] for s in speakers] == ["SPK01", "SPK02", "SPK03"]
    assert [s["voice"] for s in speakers] == ["en-us+m1", "en+f1", "en-gb-scotland+m3"]
    assert all(s["num_utts"] == 3 for s in speakers)
    lines = (out / "prosody.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["id", "speaker", "voice", "rate_wpm", "pitch", "pitch_range", "num_samples"]
    windows = {s["id"]: s for s in speakers}
    for line in lines[1:]:
        _, spk, voice, rate, pitch, pitch_range, _ = line.split("\t")
        w = windows[spk]
        assert voice == w["voice"]
        assert w["rate_wpm"][0] <= int(rate) <= w["rate_wpm"][1] and w["pitch"][0] <= int(pitch) <= w["pitch"][1]
        assert w["pitch_range"][0] <= int(pitch_range) <= w["pitch_range"][1]


def test_voices_are_distinct_and_deterministic():
    voices = [speaker_voice(k) for k in range(MAX_SPEAKERS)]
    assert len(set(voices)) == MAX_SPEAKERS == len(ACCENTS) * len(VARIANTS)
    assert voices[:2] == ["en-us+m1", "en+f1"]
    with pytest.raises(HoldttsError, match="speaker index"):
        speaker_voice(MAX_SPEAKERS)
    assert draw_speaker(SEED, 4) == draw_speaker(SEED, 4) != draw_speaker(SEED + 1, 4)
    spk = draw_speaker(SEED, 0)
    draws = [draw_prosody(SEED, i, spk) for i in range(50)]
    assert all(spk.rate_wpm[0] <= d.rate_wpm <= spk.rate_wpm[1] for d in draws)
    assert draw_prosody(SEED, 3) == draw_prosody(SEED, 3, None)  # the single-speaker draw is unchanged


def test_the_voices_sound_different():
    """The same sentence at the same prosody in two speakers' voices: different audio, and the female
    variant's pitch is higher (zero-crossing rate of the voiced part as a rough proxy)."""
    from holdtts.data.espeak import EspeakSynthesizer

    text = "the quick brown fox jumps over the lazy dog."
    male = EspeakSynthesizer(speaker_voice(0)).synthesize(text, 170, 50, 50).astype(np.float64)
    female = EspeakSynthesizer(speaker_voice(1)).synthesize(text, 170, 50, 50).astype(np.float64)
    assert male.size != female.size or not np.array_equal(male, female)

    def pitch_proxy(audio):
        frames = audio[: audio.size // 512 * 512].reshape(-1, 512)
        voiced = frames[np.sqrt((frames ** 2).mean(axis=1)) > 0.3 * np.sqrt((frames ** 2).mean(axis=1)).max()]
        return np.mean(np.abs(np.diff(np.sign(voiced), axis=1)) > 0)

    assert pitch_proxy(female) > pitch_proxy(male)


def test_same_seed_same_bytes_whatever_nj(corpus, tmp_path, small_chunks):
    out, _ = corpus
    again = tmp_path / "again"
    make_mini_corpus(again, NUM_UTTS, SEED, nj=1, num_speakers=NUM_SPEAKERS)
    for name in ("metadata.csv", "prosody.tsv", "corpus.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    for wav in (out / "wavs").iterdir():
        assert (again / "wavs" / wav.name).read_bytes() == wav.read_bytes()


def test_bad_arguments(tmp_path, small_chunks):
    with pytest.raises(HoldttsError, match="at least --speakers"):
        make_mini_corpus(tmp_path / "a", 2, SEED, nj=1, num_speakers=3)
    with pytest.raises(HoldttsError, match="--speakers must be in 1..91"):
        make_mini_corpus(tmp_path / "b", 200, SEED, nj=1, num_speakers=92)
    with pytest.raises(HoldttsError, match="--voice is for a single-speaker corpus"):
        make_mini_corpus(tmp_path / "c", 4, SEED, nj=1, num_speakers=2, voice="en")
    assert list(tmp_path.iterdir()) == []


def test_prepare_both_protocols(corpus, tmp_path):
    out, _ = corpus
    prepare_data_dir(out, tmp_path / "utt", seed=SEED, num_valid=1)
    splits = load_splits(tmp_path / "utt")
    assert {u.split("-")[0] for u in splits["members"]} == {u.split("-")[0] for u in splits["nonmembers"]} == {
        "SPK01", "SPK02", "SPK03"}
    prepare_data_dir(out, tmp_path / "spk", seed=SEED, protocol="speaker", num_member_speakers=2, test_per_speaker=1)
    meta = load_splits_meta(tmp_path / "spk")
    assert len(meta["speakers"]["members"]) == 2 and len(meta["speakers"]["nonmembers"]) == 1
    assert (tmp_path / "spk" / "spk2id").read_text().count("\n") == 2


def test_make_corpus_command(tmp_path, small_chunks):
    from click.testing import CliRunner

    from holdtts.commands.make_corpus import command

    runner = CliRunner()
    assert "--speakers" in runner.invoke(command, ["--help"]).output
    result = runner.invoke(command, ["--out-dir", str(tmp_path / "M"), "--num-utts", "2", "--speakers", "2",
                                     "--nj", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("make-corpus: 2 clips by 2 speakers")
    bad = runner.invoke(command, ["--out-dir", str(tmp_path / "N"), "--num-utts", "2", "--speakers", "2",
                                  "--voice", "en"])
    assert bad.exit_code != 0 and not (tmp_path / "N").exists()
