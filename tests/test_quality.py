"""Audio-quality metrics: closed forms, hand counts, and that each metric ranks clean above degraded audio.

Speech comes from eSpeak NG through the project's wrapper (holdtts.data.espeak): the C library has one
global synthesis callback per process, so a second ctypes binding in the same test worker would steal
the other's audio.
"""
from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import scipy.signal
import soundfile

from holdtts.errors import HoldttsError, InputError
from holdtts.quality import asr, dnsmos, frechet, mcd
from holdtts.quality.audio import Clip, log_mel
from holdtts.quality.evaluate import evaluate_pairs, write_rows_tsv, write_summary_json

SR = 22050

# --- speech and degradations --------------------------------------------------------------------------

@functools.cache
def speak(text: str, rate: int = 160, pitch: int = 50) -> np.ndarray:
    """eSpeak NG speech at 22050 Hz as float32 (cached and read-only: degrade copies, not this)."""
    from holdtts.data.espeak import SAMPLE_RATE, EspeakSynthesizer

    assert SAMPLE_RATE == SR
    wav = EspeakSynthesizer("en-us").synthesize(text, rate_wpm=rate, pitch=pitch).astype(np.float32) / 32768.0
    wav.setflags(write=False)
    return wav


def add_noise(wav: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(wav))
    noise *= np.sqrt(np.mean(wav.astype(np.float64) ** 2) / 10 ** (snr_db / 10))
    return np.clip(wav + noise, -1, 1).astype(np.float32)


def low_pass(wav: np.ndarray, cutoff_hz: float = 1000.0) -> np.ndarray:
    sos = scipy.signal.butter(8, cutoff_hz, fs=SR, output="sos")
    return scipy.signal.sosfilt(sos, wav).astype(np.float32)


def time_smear(wav: np.ndarray, seconds: float = 0.3, seed: int = 0) -> np.ndarray:
    """Convolve with a decaying noise tail (a crude reverberation), peak-matched to the input."""
    n = int(seconds * SR)
    tail = np.random.default_rng(seed).standard_normal(n) * np.exp(-np.arange(n) / (n / 5))
    tail[0] = 1.0
    out = scipy.signal.fftconvolve(wav, tail)[: len(wav)]
    return (out * np.abs(wav).max() / np.abs(out).max()).astype(np.float32)


DEGRADATIONS = {"noise": lambda w: add_noise(w, 5.0), "low_pass": low_pass, "time_smear": time_smear}

SET_A = ["the cat sat on a warm mat", "seven small boats left the harbour", "please open the window now",
         "rain fell over the quiet valley", "she bought three green apples", "the old clock struck nine"]
SET_B = ["a bright light shone through the door", "they walked along the river bank",
         "my brother plays the violin", "cold wind blew across the field", "we found a map under the stairs",
         "the train arrives at noon"]


def speech_set(sentences: list[str], offset: int = 0) -> list[np.ndarray]:
    """Sentences with prosody varied per utterance, as in the mini corpus."""
    return [speak(s, rate=150 + 10 * ((i + offset) % 3), pitch=45 + 5 * ((i + offset) % 4))
            for i, s in enumerate(sentences)]


# --- Frechet distance: closed forms -------------------------------------------------------------------

def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _closed_form(mu_a, cov_a, mu_b, cov_b) -> float:
    """tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2): symmetric square roots only, no sqrtm."""
    root_a = _psd_sqrt(cov_a)
    cross = _psd_sqrt(root_a @ cov_b @ root_a)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(cross))


def _random_spd(rng, dim: int) -> np.ndarray:
    m = rng.standard_normal((dim, dim))
    return m @ m.T / dim + 0.1 * np.eye(dim)


def test_frechet_from_stats_matches_diagonal_closed_form():
    mu_a, mu_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    value, eps = frechet.frechet_distance_from_stats(mu_a, np.diag(var_a), mu_b, np.diag(var_b))
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert eps == 0.0
    assert value == pytest.approx(expected, rel=1e-10)  # 7.25 + 5


def test_frechet_from_stats_matches_full_covariance_closed_form():
    rng = np.random.default_rng(1)
    mu_a, mu_b = rng.standard_normal(6), rng.standard_normal(6)
    cov_a, cov_b = _random_spd(rng, 6), _random_spd(rng, 6)
    value, _ = frechet.frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b)
    assert value == pytest.approx(_closed_form(mu_a, cov_a, mu_b, cov_b), rel=1e-9)
    swapped, _ = frechet.frechet_distance_from_stats(mu_b, cov_b, mu_a, cov_a)
    assert swapped == pytest.approx(value, rel=1e-9)


def test_trace_of_the_root_matches_scipy_sqrtm_on_well_conditioned_matrices():
    import scipy.linalg

    rng = np.random.default_rng(11)
    cov_a, cov_b = _random_spd(rng, 12), _random_spd(rng, 12)
    expected = float(np.trace(scipy.linalg.sqrtm(cov_a @ cov_b)).real)
    assert frechet.trace_sqrt_product(cov_a, cov_b) == pytest.approx(expected, rel=1e-9)


def test_frechet_with_few_samples_in_many_dims_is_rotation_invariant():
    """4 utterances in 256 dims (the sanity table's speaker FD): the distance must not depend on the
    basis the features are written in; sqrtm of the singular product moved it by percents."""
    rng = np.random.default_rng(12)
    a, b = rng.standard_normal((4, 256)), rng.standard_normal((4, 256)) * 0.9 + 0.05
    rotation, _ = np.linalg.qr(rng.standard_normal((256, 256)))
    plain = frechet.frechet_distance(a, b).value
    rotated = frechet.frechet_distance(a @ rotation, b @ rotation).value
    assert rotated == pytest.approx(plain, rel=1e-9)


def test_frechet_of_samples_converges_to_the_gaussians_distance():
    rng = np.random.default_rng(2)
    mu_a, mu_b = np.array([0.0, 0.0, 0.0]), np.array([0.5, -0.5, 1.0])
    cov_a, cov_b = _random_spd(rng, 3), _random_spd(rng, 3)
    a = rng.multivariate_normal(mu_a, cov_a, size=40000)
    b = rng.multivariate_normal(mu_b, cov_b, size=30000)
    result = frechet.frechet_distance(a, b)
    assert (result.n_a, result.n_b, result.dim, result.eps) == (40000, 30000, 3, 0.0)
    assert result.value == pytest.approx(_closed_form(mu_a, cov_a, mu_b, cov_b), abs=0.03)
    assert frechet.frechet_distance(b, a).value == pytest.approx(result.value, rel=1e-9)
    assert abs(frechet.frechet_distance(a, a.copy()).value) < 1e-9


def test_frechet_with_singular_covariances_adds_eps_and_stays_consistent():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((5, 16)), rng.standard_normal((7, 16)) + 0.3  # n <= dim: rank-deficient
    result = frechet.frechet_distance(a, b)
    assert result.eps == frechet.DEFAULT_EPS
    assert np.isfinite(result.value) and result.value > 0
    identical = frechet.frechet_distance(a, a.copy())
    assert identical.eps == frechet.DEFAULT_EPS and abs(identical.value) < 1e-6
    # The value is the exact distance between the regularised Gaussians.
    offset = frechet.DEFAULT_EPS * np.eye(16)
    expected = _closed_form(a.mean(0), np.cov(a, rowvar=False) + offset, b.mean(0),
                            np.cov(b, rowvar=False) + offset)
    assert result.value == pytest.approx(expected, rel=1e-6)


def test_gaussian_stats_streams_batches_exactly():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((500, 5)) * [1, 2, 3, 0.1, 0.5] - 11.0  # log-mel-like offset
    stats = frechet.GaussianStats(5)
    for chunk in np.array_split(x, 7):
        stats.update(chunk)
    assert stats.n == 500
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-10)
    with pytest.raises(ValueError):
        stats.update(np.full((2, 5), np.nan))


# --- Frechet distance: real vs degraded speech ---------------------------------------------------------

@pytest.fixture(scope="module")
def real_sets():
    return speech_set(SET_A), speech_set(SET_B, offset=1)


def test_frechet_logmel_ranks_real_above_degraded(real_sets):
    set_a, set_b = real_sets
    mels_a = [log_mel(w, SR) for w in set_a]
    real = frechet.frechet_logmel(mels_a, [log_mel(w, SR) for w in set_b])
    assert real.unit == "frames" and real.n_a == sum(m.shape[1] for m in mels_a) and real.dim == 80
    for name, degrade in DEGRADATIONS.items():
        degraded = frechet.frechet_logmel(mels_a, [log_mel(degrade(w), SR) for w in set_b])
        assert degraded.value > 2 * real.value, name
    assert abs(frechet.frechet_logmel(mels_a, mels_a).value) < 1e-6


def test_frechet_speaker_ranks_real_above_degraded(real_sets):
    set_a, set_b = real_sets
    emb_a = [frechet.speaker_embedding(w, SR) for w in set_a]
    emb_b = [frechet.speaker_embedding(w, SR) for w in set_b]
    assert emb_a[0].shape == (256,) and np.linalg.norm(emb_a[0]) == pytest.approx(1.0, abs=1e-5)
    real = frechet.frechet_speaker(emb_a, emb_b)
    assert (real.n_a, real.n_b, real.unit) == (6, 6, "utterances") and real.eps > 0  # 6 < 256 dims
    for name, degrade in DEGRADATIONS.items():
        degraded = frechet.frechet_speaker(emb_a, [frechet.speaker_embedding(degrade(w), SR) for w in set_b])
        assert degraded.value > 1.5 * real.value, name
    with pytest.raises(ValueError, match="silent"):
        frechet.speaker_embedding(np.zeros(SR, np.float32), SR)
    assert np.isfinite(frechet.speaker_embedding(np.zeros(SR, np.float32), SR, silent_ok=True)).all()


# --- DNSMOS -------------------------------------------------------------------------------------------

def test_dnsmos_scores_clean_above_noisy_and_handles_short_clips():
    # 2.3 s and 0.3 s clips tile to just over the 9.01 s window: one model window each, to keep it fast.
    clean = speak("rain fell over the quiet valley all night long")[: int(2.3 * SR)]
    clean_scores = dnsmos.dnsmos_scores(clean, SR)
    noisy_scores = dnsmos.dnsmos_scores(add_noise(clean, 0.0), SR)
    assert set(clean_scores) == {"sig", "bak", "ovrl", "p808"}
    assert all(1.0 <= v <= 5.0 for v in clean_scores.values())
    assert clean_scores["ovrl"] > noisy_scores["ovrl"] + 0.5
    assert clean_scores["bak"] > noisy_scores["bak"] + 1.0
    assert clean_scores["p808"] > noisy_scores["p808"]
    short = dnsmos.dnsmos_scores(clean[: int(0.3 * SR)], SR)
    assert all(np.isfinite(v) for v in short.values())
    with pytest.raises(ValueError):
        dnsmos.dnsmos_scores(np.zeros(0, np.float32), SR)


# --- WER ----------------------------------------------------------------------------------------------

def test_normalize_text_lowercases_strips_punctuation_and_spells_numbers():
    text = "Hello, World!  It's 3 o'clock -- \"done\", Mr. Smith (21)."
    assert asr.normalize_text(text) == "hello world it's three o'clock done mister smith twenty one"
    assert asr.normalize_text("HELLO world") == asr.normalize_text("hello, world!")


def test_word_errors_match_a_hand_count():
    ref = "The cat sat on the mat."
    assert asr.word_errors(ref, "the cat sat on mat").deletions == 1
    assert asr.word_errors(ref, "the cat sat on the red mat").insertions == 1
    assert asr.word_errors(ref, "the dog sat on the mat").substitutions == 1
    # sub cat->dog, del the, ins today: three edits at least, however the alignment splits them.
    scored = asr.word_errors(ref, "the dog sat on mat today")
    assert (scored.errors, scored.reference_words) == (3, 6)
    assert scored.wer == pytest.approx(0.5)
    assert scored.as_dict()["errors"] == 3
    empty = asr.word_errors("one two three", "")
    assert (empty.errors, empty.deletions, empty.wer) == (3, 3, 1.0)
    with pytest.raises(ValueError):
        asr.word_errors("?!", "anything")


def test_corpus_wer_is_total_errors_over_total_words():
    items = [asr.word_errors("a b c d e f g h i j", "a b c d e f g h i j"),  # 0 / 10
             asr.word_errors("hello", "goodbye")]  # 1 / 1
    corpus = asr.corpus_wer(items)
    assert (corpus["errors"], corpus["words"], corpus["utterances"]) == (1, 11, 2)
    assert corpus["wer"] == pytest.approx(1 / 11)  # the mean of ratios would be 0.5


def test_recognizer_does_no_worse_on_clean_than_on_heavily_degraded_speech():
    text = "one two three four five"
    clean = speak(text, rate=160)
    clean_errors = asr.word_errors(text, asr.recognize(clean, SR))
    degraded_errors = asr.word_errors(text, asr.recognize(add_noise(low_pass(clean, 500.0), -5.0), SR))
    assert clean_errors.errors <= 2  # pocketsphinx gets most digits of eSpeak NG right
    assert clean_errors.errors < degraded_errors.errors


# --- MCD ----------------------------------------------------------------------------------------------

def test_mel_cepstrum_is_the_scaled_cosine_series_of_the_log_mel():
    rng = np.random.default_rng(5)
    log_mel_frames = rng.standard_normal((80, 4))
    full = mcd.mel_cepstrum(log_mel_frames, 79)
    c0 = log_mel_frames.mean(axis=0)
    k = np.arange(80)[:, None] + 0.5
    n = np.arange(1, 80)[None, :]
    rebuilt = c0 + 2 * np.cos(np.pi * n * k / 80) @ full
    np.testing.assert_allclose(rebuilt, log_mel_frames, atol=1e-10)
    assert mcd.mel_cepstrum(log_mel_frames).shape == (24, 4)


def test_mcd_matches_the_closed_form_and_ignores_gain():
    base = np.tile(np.linspace(-8.0, 1.0, 80)[:, None], (1, 50))
    k = np.arange(80)[:, None] + 0.5
    amplitude = 0.3
    ripple = amplitude * np.cos(np.pi * 3 * k / 80)  # changes c3 by amplitude / 2
    assert mcd.mcd_dtw(base + ripple, base).mcd == pytest.approx(10 / math.log(10) * amplitude / math.sqrt(2))
    assert mcd.mcd_dtw(base + 2.5, base).mcd == pytest.approx(0.0, abs=1e-9)  # c0 only
    beyond = amplitude * np.cos(np.pi * 30 * k / 80)  # c30 is not among c1..c24
    assert mcd.mcd_dtw(base + beyond, base).mcd == pytest.approx(0.0, abs=1e-9)


def test_mcd_is_zero_for_identical_or_time_warped_audio_and_grows_with_degradation():
    wav = speak("she bought three green apples")
    mel = log_mel(wav, SR)
    same = mcd.mcd_dtw(mel, mel)
    assert same.mcd == 0.0 and same.path_length == mel.shape[1]
    slowed = np.repeat(mel, 2, axis=1)  # every frame twice: DTW aligns it at no cost
    warped = mcd.mcd_dtw(slowed, mel)
    assert warped.mcd == pytest.approx(0.0, abs=1e-9)
    assert (warped.generated_frames, warped.reference_frames) == (2 * mel.shape[1], mel.shape[1])
    mild = mcd.mcd_from_waveforms(add_noise(wav, 20.0), wav, SR).mcd
    heavy = mcd.mcd_from_waveforms(add_noise(wav, 0.0), wav, SR).mcd
    assert 0 < mild < heavy
    for name, degrade in DEGRADATIONS.items():
        assert mcd.mcd_from_waveforms(degrade(wav), wav, SR).mcd > 1.0, name


# --- evaluate_pairs -----------------------------------------------------------------------------------

def test_evaluate_pairs_rows_summary_and_files(tmp_path):
    texts = {"utt2": "Yes!", "utt1": "Open the door, please."}
    # Trailing silence brings "yes" to 0.6 s, which DNSMOS tiles to one 9.01 s window (fast); utt1 is
    # 1.23 s, tiled to 9.8 s.
    yes = speak(texts["utt2"])
    refs = {"utt1": speak(texts["utt1"]), "utt2": np.pad(yes, (0, int(0.6 * SR) - len(yes)))}
    pairs = {}
    for utt, wav in refs.items():
        soundfile.write(tmp_path / f"{utt}_ref.wav", wav, SR, subtype="PCM_16")
        pairs[utt] = (tmp_path / f"{utt}_gen.wav", tmp_path / f"{utt}_ref.wav")
    soundfile.write(pairs["utt1"][0], refs["utt1"], SR, subtype="PCM_16")  # a perfect "model"
    soundfile.write(pairs["utt2"][0], add_noise(refs["utt2"], 0.0), SR, subtype="PCM_16")

    rows, summary = evaluate_pairs(pairs, texts)
    assert [row["utt_id"] for row in rows] == ["utt1", "utt2"]
    perfect, noisy = rows
    assert (perfect["text"], noisy["text"]) == ("open the door please", "yes")
    assert perfect["mcd"] == 0.0 and noisy["mcd"] > 1.0
    assert perfect["spk_cosine"] == pytest.approx(1.0, abs=1e-6) and noisy["spk_cosine"] < 0.99
    for key in ("sig", "bak", "ovrl", "p808"):
        assert perfect[f"dnsmos_{key}"] == pytest.approx(perfect[f"ref_dnsmos_{key}"], abs=1e-6)
    assert noisy["dnsmos_bak"] < noisy["ref_dnsmos_bak"]
    assert (perfect["wer_hyp"], perfect["wer_errors"]) == (perfect["ref_wer_hyp"], perfect["ref_wer_errors"])

    assert summary["n_utterances"] == 2
    assert (summary["fd_speaker"]["n_generated"], summary["fd_speaker"]["n_reference"]) == (2, 2)
    frames = [Clip(pairs[u][1]).wav.shape[0] // 256 for u in ("utt1", "utt2")]
    assert summary["fd_logmel"]["n_reference"] == sum(frames) and summary["fd_logmel"]["value"] > 0
    assert summary["fd_logmel"]["unit"] == "frames"
    generated = summary["wer"]["generated"]
    assert generated["errors"] == sum(row["wer_errors"] for row in rows)
    assert generated["words"] == sum(row["wer_ref_words"] for row in rows) == 5
    assert generated["wer"] == pytest.approx(generated["errors"] / 5)
    assert summary["wer"]["reference"]["errors"] == sum(row["ref_wer_errors"] for row in rows)
    assert summary["mcd"]["mean"] == pytest.approx(noisy["mcd"] / 2)
    assert summary["dnsmos"]["reference"]["ovrl"] == pytest.approx(
        (perfect["ref_dnsmos_ovrl"] + noisy["ref_dnsmos_ovrl"]) / 2)

    write_rows_tsv(tmp_path / "quality.tsv", rows)
    write_summary_json(tmp_path / "quality.json", summary)
    lines = (tmp_path / "quality.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    assert len(lines) == 3 and header[0] == "utt_id"
    assert all(len(line.split("\t")) == len(header) for line in lines)
    assert float(lines[2].split("\t")[header.index("mcd")]) == noisy["mcd"]
    assert json.loads((tmp_path / "quality.json").read_text()) == json.loads(json.dumps(summary))
    with pytest.raises(HoldttsError, match="already exists"):
        write_rows_tsv(tmp_path / "quality.tsv", rows)


def test_evaluate_pairs_reports_bad_input(tmp_path):
    wav_path = tmp_path / "a.wav"
    soundfile.write(wav_path, speak("the train arrives at noon"), SR)
    with pytest.raises(HoldttsError, match="unknown quality metric"):
        evaluate_pairs({"u": (wav_path, wav_path)}, {}, metrics=("mcd", "pesq"))
    with pytest.raises(HoldttsError, match="at least 2 utterances"):
        evaluate_pairs({"u": (wav_path, wav_path)}, {})
    with pytest.raises(InputError, match="no text"):
        evaluate_pairs({"u": (wav_path, wav_path)}, {}, metrics=("wer",))
    with pytest.raises(InputError) as err:
        evaluate_pairs({"u": (tmp_path / "missing.wav", wav_path)}, {}, metrics=("mcd",))
    assert err.value.path == str(tmp_path / "missing.wav")
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(SR, np.float32), SR)
    with pytest.raises(InputError, match="silent") as err:  # a silent recording is bad input
        evaluate_pairs({"u": (wav_path, silent), "v": (wav_path, wav_path)}, {}, metrics=("fd_speaker",))
    assert err.value.path == str(silent)
    # a system's silence (a diverged synthesis may vocode to it) is scored: the recognisers' noise floor
    rows, _ = evaluate_pairs({"u": (silent, wav_path), "v": (wav_path, wav_path)}, {}, metrics=("fd_speaker",))
    floor = np.random.default_rng(16000).integers(-1, 2, size=16000).astype(np.float32) / 32768.0
    expected = frechet.speaker_embedding(floor, 16000) @ frechet.speaker_embedding(speak("the train arrives at noon"),
                                                                                   SR)
    assert rows[0]["spk_cosine"] == pytest.approx(expected, abs=1e-6) and rows[1]["spk_cosine"] > 0.99


def test_evaluate_pairs_resamples_other_rates(tmp_path):
    wav = speak("cold wind blew across the field")
    soundfile.write(tmp_path / "ref.wav", wav, SR)
    soundfile.write(tmp_path / "gen16k.wav", scipy.signal.resample_poly(wav, 320, 441), 16000)
    rows, summary = evaluate_pairs({"u": (tmp_path / "gen16k.wav", tmp_path / "ref.wav")}, {},
                                   metrics=("mcd",))
    assert rows[0]["generated_seconds"] == pytest.approx(rows[0]["reference_seconds"], abs=1e-3)
    assert 0 < rows[0]["mcd"] < 1.5  # only the 8 kHz band edge and resampling differ


def test_clip_cache_reuses_results_for_identical_audio(tmp_path):
    from holdtts.quality.evaluate import ClipCache

    wav = speak("Open the door.")
    soundfile.write(tmp_path / "a.wav", wav, SR, subtype="PCM_16")
    soundfile.write(tmp_path / "b.wav", wav, SR, subtype="PCM_16")  # same samples, another file
    cache = ClipCache(tmp_path / "cache")
    calls = []

    def compute(clip):
        calls.append(clip.path.name)
        return {"ovrl": 3.0}

    assert cache.get(Clip(tmp_path / "a.wav"), "dnsmos", compute) == {"ovrl": 3.0}
    assert cache.get(Clip(tmp_path / "b.wav"), "dnsmos", compute) == {"ovrl": 3.0}
    assert len(calls) == 1
    soundfile.write(tmp_path / "c.wav", add_noise(wav, 10.0), SR, subtype="PCM_16")
    cache.get(Clip(tmp_path / "c.wav"), "dnsmos", compute)
    assert len(calls) == 2
    embedding = np.arange(4, dtype=np.float32)
    assert np.array_equal(cache.get(Clip(tmp_path / "a.wav"), "speaker", lambda c: embedding), embedding)
    assert np.array_equal(cache.get(Clip(tmp_path / "b.wav"), "speaker", lambda c: None), embedding)
    assert ClipCache(None).get(Clip(tmp_path / "a.wav"), "dnsmos", lambda c: 7) == 7
