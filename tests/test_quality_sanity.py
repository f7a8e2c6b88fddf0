"""The sanity table on the CPU: every metric ranks real > vocoded > degraded > garbage on eSpeak NG speech.

Set A (4 sentences) in every condition is scored against set B (4 other sentences), exactly as
`holdtts evaluate --reference-only` does, through the same evaluate_pairs; Griffin-Lim is the vocoder.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from test_quality import SR, speech_set

from holdtts.quality import sanity
from holdtts.quality.audio import log_mel
from holdtts.quality.evaluate import evaluate_pairs
from holdtts.report.quality_tables import quality_sections, quality_summary

SET_A = ["the cat sat on a warm mat", "seven small boats left the harbour", "please open the window now",
         "she bought three green apples"]
SET_B = ["a bright light shone through the door", "they walked along the river bank",
         "my brother plays the violin", "cold wind blew across the field"]
METRICS = ("fd_speaker", "fd_logmel", "dnsmos", "wer", "mcd")


def _griffin_lim(mel: np.ndarray) -> np.ndarray:
    from holdtts.vocoder import GriffinLimVocoder

    with torch.no_grad():
        return GriffinLimVocoder()(torch.from_numpy(mel.astype(np.float32))[None])[0].numpy()


@pytest.fixture(scope="module")
def conditions(tmp_path_factory):
    root = tmp_path_factory.mktemp("sanity")

    def write(name: str, wavs: list[np.ndarray]) -> list:
        paths = []
        for i, wav in enumerate(wavs):
            path = root / f"{name}_{i}.wav"
            soundfile.write(path, np.clip(wav, -1, 1), SR, subtype="PCM_16")
            paths.append(path)
        return paths

    real = speech_set(SET_A)
    mels = [log_mel(w, SR).astype(np.float32) for w in real]
    low, high = min(m.min() for m in mels), max(m.max() for m in mels)
    wavs = {
        "real": real,
        "vocoded": [_griffin_lim(m) for m in mels],
        "noisy": [sanity.add_noise(w, seed=i) for i, w in enumerate(real)],
        "stretched": [sanity.time_stretch(w) for w in real],
        "random_mels": [_griffin_lim(sanity.random_mel(m, low, high, seed=i)) for i, m in enumerate(mels)],
    }
    paths = {name: write(name, w) for name, w in wavs.items()}
    reference_set = write("setb", speech_set(SET_B, offset=1))
    texts = {f"u{i}": text for i, text in enumerate(SET_A)}
    summaries = {}
    for name, generated in paths.items():
        pairs = {f"u{i}": (generated[i], paths["real"][i]) for i in range(len(SET_A))}
        summaries[name] = evaluate_pairs(pairs, texts, metrics=METRICS, reference_set=reference_set)[1]
    rotated = {f"u{i}": (paths["real"][(i + 1) % len(SET_A)], paths["real"][i]) for i in range(len(SET_A))}
    summaries["wrong_text"] = evaluate_pairs(rotated, texts, metrics=("wer", "mcd"), reference_set=reference_set)[1]
    return summaries


# Measured on eSpeak NG speech: pocketsphinx's generic model and DNSMOS do not rank real above
# Griffin-Lim audio (DNSMOS scores Griffin-Lim's smoother spectra slightly higher); the table must flag
# them rather than print them as rankings.
KNOWN_TO_FAIL_ON_ESPEAK = {"wer", "cer", "dnsmos_ovrl"}
# Speaker FD over 4 utterances does not resolve Griffin-Lim on eSpeak audio: real 0.471 against vocoded
# 0.493 on one machine, 0.486 against 0.482 on the CI machine (the VAD trimming inside the speaker encoder
# flips on tiny numeric differences). Only that pair may fail; the table then flags the metric.
UNRESOLVED_AT_4_UTTERANCES = {"fd_speaker": ("real", "vocoded")}


def _unexpected(key: str, failures: list[str]) -> list[str]:
    pair = UNRESOLVED_AT_4_UTTERANCES.get(key)
    return [f for f in failures if not (pair and f.startswith(f"{pair[0]} ") and f" vs {pair[1]} " in f)]


@pytest.mark.slow
def test_every_metric_ranks_the_conditions_correctly(conditions):
    table = sanity.sanity_table(conditions)
    expected = {"fd_speaker", "kid_speaker", "spk_cosine", "fd_logmel", "kid_logmel", "dnsmos_ovrl", "wer", "cer",
                "mcd"}
    assert expected <= set(table["metrics"])
    failures = {k: _unexpected(k, e["failures"]) for k, e in table["metrics"].items()
                if not e["ranks_correctly"] and k not in KNOWN_TO_FAIL_ON_ESPEAK}
    assert not any(failures.values()), failures
    assert set(sanity.flagged(table)) <= KNOWN_TO_FAIL_ON_ESPEAK | set(UNRESOLVED_AT_4_UTTERANCES)
    assert "wrong_text" in table["metrics"]["wer"]["values"]
    assert "wrong_text" not in table["metrics"]["fd_speaker"]["values"]  # same audio as real: not applicable
    real = conditions["real"]
    assert real["mcd"]["mean"] == 0.0  # the real row's MCD is against itself
    assert (real["fd_speaker"]["n_generated"], real["fd_speaker"]["n_reference"]) == (4, 4)
    assert real["kid_logmel"]["unit"] == "frames" and real["kid_logmel"]["interval"] is not None
    assert real["fd_logmel"]["vs_n"]["fd_inf"] is None  # 4 utterances are too few to fit FD against n


@pytest.mark.slow
def test_a_metric_that_ranks_wrongly_is_flagged_and_rendered(conditions):
    broken = {name: {**summary, "mcd": {**summary["mcd"], "mean": -summary["mcd"]["mean"]}}
              for name, summary in conditions.items()}
    table = sanity.sanity_table(broken)
    assert "mcd" in sanity.flagged(table)
    assert table["metrics"]["mcd"]["failures"]

    class Record:
        name = "vp"
        quality = conditions["vocoded"]

    summary = quality_summary([Record()])
    summary["sanity"] = {**table, "n_test": 4, "n_reference": 4, "vocoder": "griffin-lim", "noise_snr_db": 5.0,
                         "stretch_rate": 1.3}
    summary["flagged"] = sanity.flagged(table)
    text = quality_sections(summary)
    assert "**FLAGGED**" in text and "Flagged (do not read" in text
    assert "| vp |" in text and "(!)" in text
    assert "speaker 4 vs 4 utterances" in text


def _rows(errors: list[int], words: int = 10, **extra) -> list[dict]:
    return [{"utt_id": f"u{i}", "wer_espeak_errors": e, "wer_ref_words": words,
             "wer_espeak_char_errors": e, "wer_ref_chars": 5 * words, **extra} for i, e in enumerate(errors)]


def _summary(rows: list[dict]) -> dict:
    words = sum(r["wer_ref_words"] for r in rows)
    chars = sum(r["wer_ref_chars"] for r in rows)
    return {"wer_espeak": {"generated": {"wer": sum(r["wer_espeak_errors"] for r in rows) / words,
                                         "cer": sum(r["wer_espeak_char_errors"] for r in rows) / chars}}}


def test_a_pair_the_metric_cannot_separate_is_a_tie_not_a_failure():
    """Real and vocoded at a recogniser's ceiling (1 word apart over 32 sentences) come out in either order:
    the paired bootstrap calls that a tie; a reversal far outside sampling error is still flagged."""
    degraded = _rows([4] * 32)
    rows = {"real": _rows([1] + [0] * 31), "vocoded": _rows([0] * 32), "noisy": degraded, "stretched": degraded,
            "wrong_text": _rows([10] * 32), "random_mels": _rows([9] * 32)}
    table = sanity.sanity_table({c: _summary(r) for c, r in rows.items()}, rows)
    entry = table["metrics"]["wer_espeak"]
    assert entry["ranks_correctly"] and not entry["failures"]
    assert len(entry["ties"]) == 1 and entry["ties"][0].startswith("real 0.003125 vs vocoded 0 (difference -0.00313")
    assert "wer_espeak" not in sanity.flagged(table)
    # the same numbers without rows: no paired test, so the strict order flags it as before
    assert "wer_espeak" in sanity.flagged(sanity.sanity_table({c: _summary(r) for c, r in rows.items()}))

    rows["real"] = _rows([3] * 32)  # real clearly worse than vocoded: a real failure
    table = sanity.sanity_table({c: _summary(r) for c, r in rows.items()}, rows)
    assert "wer_espeak" in sanity.flagged(table)
    assert table["metrics"]["wer_espeak"]["failures"][0].startswith("real 0.3 vs vocoded 0 (difference -0.3,")


def test_paired_difference_resamples_sentences_jointly():
    """Pairing: a constant per-sentence gap has a zero-width interval however much sentences differ."""
    better = {f"u{i}": (float(i), 1.0) for i in range(20)}
    worse = {u: (v + 0.5, d) for u, (v, d) in better.items()}
    point, (low, high), n = sanity.paired_difference(better, worse, lower_is_better=True)
    assert n == 20 and point == pytest.approx(0.5) and low == pytest.approx(0.5) and high == pytest.approx(0.5)
    point, _, _ = sanity.paired_difference(better, worse, lower_is_better=False)
    assert point == pytest.approx(-0.5)
    assert sanity.paired_difference({"u0": (1.0, 1.0)}, {"u0": (2.0, 1.0)}, True) is None


def test_the_table_recomputes_from_the_files_a_reference_run_leaves(tmp_path):
    """sanity.json recomputes from each condition's quality.json and quality.tsv (the committed rows)."""
    from holdtts.quality.evaluate import write_rows_tsv, write_summary_json
    from holdtts.quality.reference import condition_dirs, sanity_from_dir

    rows = {"real": _rows([1] + [0] * 7), "vocoded": _rows([0] * 8), "noisy": _rows([3] * 8),
            "stretched": _rows([2] * 8), "wrong_text": _rows([9] * 8), "random_mels": _rows([8] * 8)}
    for condition, folder in condition_dirs(tmp_path).items():
        folder.mkdir(parents=True)
        write_rows_tsv(folder / "quality.tsv", rows[condition])
        write_summary_json(folder / "quality.json", _summary(rows[condition]))
    assert sanity_from_dir(tmp_path) == sanity.sanity_table({c: _summary(r) for c, r in rows.items()}, rows)
    assert sanity_from_dir(tmp_path)["metrics"]["wer_espeak"]["ties"]


def test_reference_only_writes_each_condition_and_a_table_that_recomputes(mini_recipe, tmp_path):
    """`holdtts evaluate --reference-only` end to end on a mini corpus (cheap metrics, Griffin-Lim): every
    condition's quality.json and quality.tsv land where condition_dirs says, and sanity.json recomputes from
    them."""
    from holdtts.quality.reference import condition_dirs, evaluate_reference, sanity_from_dir
    from holdtts.utils.fileio import read_json
    from holdtts.vocoder import GriffinLimVocoder

    out = tmp_path / "reference"
    result = evaluate_reference(GriffinLimVocoder(), mini_recipe / "data", mini_recipe / "dump", out,
                                metrics=("fd_logmel", "mcd"), max_utts=3)
    for condition, folder in condition_dirs(out).items():
        assert (folder / "quality.json").is_file() and (folder / "quality.tsv").is_file(), condition
    assert result["real"]["n_utterances"] == 3 and result["real"]["mcd"]["mean"] == 0.0
    written = read_json(out / "sanity.json")
    assert written["n_test"] == 3 and set(written["metrics"]) >= {"fd_logmel", "kid_logmel", "mcd"}
    assert sanity_from_dir(out)["metrics"] == written["metrics"]
