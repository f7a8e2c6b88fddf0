"""Mini corpus: LJSpeech format, determinism across --nj, sentences at scale, the overwrite rule."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from holdtts.data import minicorpus
from holdtts.data.minicorpus import (
    PITCH,
    PITCH_RANGE,
    RATE_WPM,
    TRIM_PAD_S,
    draw_prosody,
    make_mini_corpus,
    trim_silence,
    utterance_id,
)
from holdtts.data.sentences import MAX_WORDS, MIN_WORDS, generate_sentences
from holdtts.data.text import TextFrontend, english_cleaners
from holdtts.errors import HoldttsError

NUM_UTTS = 5
SEED = 7


@pytest.fixture(scope="module")
def small_chunks():
    # Several chunks from a handful of utterances, so that the number of jobs matters.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(minicorpus, "CHUNK_SIZE", 2)
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, small_chunks):
    out = tmp_path_factory.mktemp("mini") / "MINI"
    summary = make_mini_corpus(out, NUM_UTTS, SEED, nj=2)
    return out, summary


def read_metadata(corpus_dir):
    text = (corpus_dir / "metadata.csv").read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [line.split("|") for line in text.splitlines()]


def test_ljspeech_format(corpus):
    out, summary = corpus
    rows = read_metadata(out)
    assert len(rows) == NUM_UTTS and all(len(r) == 3 and all(r) for r in rows)
    ids = [r[0] for r in rows]
    assert ids == sorted(ids) and all(re.fullmatch(r"MINI\d{3}-\d{4}", i) for i in ids)
    assert sorted(p.stem for p in (out / "wavs").iterdir()) == ids
    total = 0
    for utt_id in ids:
        info = sf.info(out / "wavs" / f"{utt_id}.wav")
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 22050, 1)
        assert 0.5 < info.duration < 15.0
        audio, _ = sf.read(out / "wavs" / f"{utt_id}.wav", dtype="int16")
        assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 300  # speech, not silence
        edge = int(0.05 * 22050)  # a short silence at each end, as in LJSpeech
        assert np.abs(audio[:edge]).max() < 300 and np.abs(audio[-edge:]).max() < 300
        total += info.frames
    assert summary["num_utts"] == NUM_UTTS and summary["clips_per_s"] > 0
    assert summary["total_duration_s"] == pytest.approx(total / 22050, abs=1e-3)


def test_texts_are_unique_and_normalized_column_is_the_cleaner(corpus):
    rows = read_metadata(corpus[0])
    assert len({r[1] for r in rows}) == NUM_UTTS
    assert all(r[2] == english_cleaners(r[1]) for r in rows)
    assert [r[1] for r in rows] == generate_sentences(NUM_UTTS, SEED)


def test_provenance_files(corpus):
    out, _ = corpus
    meta = json.loads((out / "corpus.json").read_text())
    assert (meta["seed"], meta["num_utts"], meta["voice"]) == (SEED, NUM_UTTS, "en-us")
    assert meta["sample_rate"] == 22050
    assert re.fullmatch(r"\d+\.\d+.*", meta["espeak_ng_version"])
    lines = (out / "prosody.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["id", "rate_wpm", "pitch", "pitch_range", "num_samples"]
    for index, line in enumerate(lines[1:]):
        utt_id, rate, pitch, pitch_range, frames = line.split("\t")
        assert utt_id == utterance_id(index)
        assert draw_prosody(SEED, index) == minicorpus.Prosody(int(rate), int(pitch), int(pitch_range))
        assert int(frames) == sf.info(out / "wavs" / f"{utt_id}.wav").frames


def test_same_seed_same_bytes_whatever_nj(corpus, tmp_path, small_chunks):
    out, _ = corpus
    again = tmp_path / "again"
    make_mini_corpus(again, NUM_UTTS, SEED, nj=1)
    for name in ("metadata.csv", "prosody.tsv", "corpus.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    for wav in (out / "wavs").iterdir():
        assert (again / "wavs" / wav.name).read_bytes() == wav.read_bytes()
    # A different seed changes the texts and the prosody.
    other = tmp_path / "other"
    make_mini_corpus(other, 2, SEED + 1, nj=1)
    assert (other / "metadata.csv").read_text() != (out / "metadata.csv").read_text()


def test_refuses_to_overwrite(corpus, tmp_path, small_chunks):
    out = tmp_path / "MINI"
    make_mini_corpus(out, 2, SEED, nj=1)
    before = (out / "metadata.csv").read_bytes()
    with pytest.raises(HoldttsError, match="already exists"):
        make_mini_corpus(out, 3, SEED, nj=1)
    assert (out / "metadata.csv").read_bytes() == before
    make_mini_corpus(out, 3, SEED, nj=1, overwrite=True)
    assert len(read_metadata(out)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MINI"]  # no temporary or replaced copies


def test_failed_run_leaves_nothing(tmp_path, small_chunks):
    with pytest.raises(HoldttsError, match="no voice"):
        make_mini_corpus(tmp_path / "MINI", 3, SEED, nj=1, voice="no-such-voice")
    assert list(tmp_path.iterdir()) == []


def test_sentences_at_ljspeech_scale():
    sentences = generate_sentences(13100, SEED)
    assert len(sentences) == len(set(sentences)) == 13100
    assert generate_sentences(50, SEED) == sentences[:50]
    assert generate_sentences(50, SEED + 1) != sentences[:50]
    sample = sentences[::20]
    lengths = [len(english_cleaners(s).split()) for s in sample]
    assert MIN_WORDS <= min(lengths) and max(lengths) <= MAX_WORDS
    # The frontend's paths are exercised: numbers, money, abbreviations, punctuation.
    joined = " ".join(sentences)
    for needle in ("$", "£", "Dr.", "St.", ";", "?", '"', ",", "%", "(", ":"):
        assert needle in joined
    assert re.search(r"\b\d{4}\b", joined) and re.search(r"\d(st|nd|rd|th)\b", joined)
    frontend = TextFrontend()
    for text in sample:  # every sentence is encodable
        frontend.encode(text)


def test_prosody_ids_and_trim():
    draws = [draw_prosody(SEED, i) for i in range(200)]
    assert draws == [draw_prosody(SEED, i) for i in range(200)]
    assert len({d.rate_wpm for d in draws}) > 20
    assert all(RATE_WPM[0] <= d.rate_wpm <= RATE_WPM[1] and PITCH[0] <= d.pitch <= PITCH[1]
               and PITCH_RANGE[0] <= d.pitch_range <= PITCH_RANGE[1] for d in draws)
    assert [utterance_id(i) for i in (0, 1, 499, 500)] == ["MINI001-0001", "MINI001-0002", "MINI001-0500",
                                                           "MINI002-0001"]
    tone = (8000 * np.sin(2 * np.pi * 220 * np.arange(22050) / 22050)).astype(np.int16)
    audio = np.concatenate([np.zeros(44100, np.int16), tone, np.zeros(44100, np.int16)])
    trimmed = trim_silence(audio)
    pad = int(TRIM_PAD_S * 22050)
    lead = int(np.flatnonzero(trimmed)[0]) - 1  # the tone starts with one zero sample
    tail = trimmed.size - lead - tone.size
    assert np.array_equal(trimmed[lead: lead + tone.size], tone)  # speech is never cut
    # librosa decides on 2048-sample frames, so up to a frame more than the pad may remain.
    assert pad <= lead <= pad + 2048 and pad <= tail <= pad + 2048
    assert trim_silence(np.zeros(0, np.int16)).size == 0
    # Speech from the first sample: the pad is made of zeros.
    padded = trim_silence(tone[1:])
    assert padded.dtype == np.int16 and padded.size == tone.size - 1 + 2 * pad
    assert not padded[:pad].any() and not padded[-pad:].any()
    assert np.array_equal(padded[pad:-pad], tone[1:])


def test_espeak_synthesizer():
    from holdtts.data.espeak import EspeakSynthesizer, espeak_version

    synthesizer = EspeakSynthesizer("en-us")
    text = "the quick brown fox jumps over the lazy dog."
    slow = synthesizer.synthesize(text, rate_wpm=120, pitch=40)
    fast = synthesizer.synthesize(text, rate_wpm=300, pitch=40)
    assert slow.dtype == np.int16 and fast.dtype == np.int16
    assert 1.8 < slow.size / fast.size < 3.0  # duration follows the speaking rate (300 / 120 = 2.5)
    assert re.fullmatch(r"\d+\.\d+.*", espeak_version())
    with pytest.raises(ValueError, match="rate_wpm"):
        synthesizer.synthesize(text, rate_wpm=10)
    with pytest.raises(HoldttsError, match="no voice"):
        EspeakSynthesizer("no-such-voice")


def test_make_corpus_command(tmp_path, small_chunks):
    from click.testing import CliRunner

    from holdtts.commands.make_corpus import command

    runner = CliRunner()
    help_text = runner.invoke(command, ["--help"]).output
    assert "metadata.csv" in help_text and "LJSpeech" in help_text and "--overwrite" in help_text
    result = runner.invoke(command, ["--out-dir", str(tmp_path / "MINI"), "--num-utts", "2", "--nj", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("make-corpus: 2 clips") and result.output.count("\n") == 1
    assert len(read_metadata(tmp_path / "MINI")) == 2


def test_short_sentences_are_the_same_draws_filtered():
    def words(s):
        return len(english_cleaners(s).split())

    short = minicorpus.short_sentences(20, SEED, max_words=6)
    full = generate_sentences(400, SEED)
    assert short == [s for s in full if words(s) <= 6][:20]
    assert all(MIN_WORDS <= words(s) <= 6 for s in short)
    assert minicorpus.short_sentences(5, SEED, max_words=6) == short[:5]  # a prefix, like the full list
    assert minicorpus.short_sentences(5, SEED) == full[:5]
    with pytest.raises(HoldttsError, match="--max-words"):
        minicorpus.short_sentences(3, SEED, max_words=MIN_WORDS - 1)


def test_a_short_sentence_corpus_records_its_limit(tmp_path, small_chunks):
    out = tmp_path / "SHORT"
    make_mini_corpus(out, 3, SEED, nj=1, max_words=5)
    assert all(len(row[2].split()) <= 5 for row in read_metadata(out))
    assert json.loads((out / "corpus.json").read_text())["max_words"] == 5
    with pytest.raises(HoldttsError, match="--max-words"):
        make_mini_corpus(tmp_path / "BAD", 3, SEED, nj=1, max_words=MAX_WORDS + 1)
    # the default corpus does not mention it, so its files stay what they were
    make_mini_corpus(tmp_path / "DEFAULT", 2, SEED, nj=1)
    assert "max_words" not in json.loads((tmp_path / "DEFAULT" / "corpus.json").read_text())
