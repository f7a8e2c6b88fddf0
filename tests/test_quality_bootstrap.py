"""The utterance bootstrap behind every quality interval: closed forms, ratio of sums, recomputation."""
import numpy as np
import pytest

from holdtts.quality import asr, bootstrap
from holdtts.quality.evaluate import error_rate_intervals


def test_paired_difference_closed_forms():
    a = {f"u{i}": (float(i),) for i in range(10)}
    shifted = {u: (v[0] + 2.0,) for u, v in a.items()}
    result = bootstrap.paired_difference(shifted, a)
    assert result["difference"] == pytest.approx(2.0) and result["ci"] == pytest.approx([2.0, 2.0])
    assert result["n"] == 10
    # a ratio of sums (corpus WER), not a mean of ratios: (1 + 9) / (10 + 10) vs 0
    wer = bootstrap.paired_difference({"a": (1.0, 10.0), "b": (9.0, 10.0)}, {"a": (0.0, 10.0), "b": (0.0, 10.0)})
    assert wer["difference"] == pytest.approx(0.5)
    assert 0.1 - 1e-12 <= wer["ci"][0] <= wer["ci"][1] <= 0.9 + 1e-12
    # noise: the interval covers the true difference 0 and is not degenerate
    rng = np.random.default_rng(0)
    x = {f"u{i}": (float(v),) for i, v in enumerate(rng.normal(size=200))}
    y = {f"u{i}": (float(v),) for i, v in enumerate(rng.normal(size=200))}
    low, high = bootstrap.paired_difference(x, y)["ci"]
    assert low < 0 < high
    assert bootstrap.paired_difference({"a": (1.0,)}, {"b": (1.0,)}) is None  # nothing shared


def test_interval_of_a_mean_and_of_a_ratio_of_sums():
    assert bootstrap.interval([3.0] * 5) == pytest.approx([3.0, 3.0])
    assert bootstrap.interval([1.0]) is None
    # the ratio-of-sums statistic: a long sentence with no errors weighs more than a short wrong one
    values = np.array([(0.0, 99.0), (1.0, 1.0)])
    assert bootstrap.statistic(values) == pytest.approx(0.01)  # the mean of ratios would be 0.5
    assert bootstrap.interval(values) == [0.0, 1.0]  # the draws: 0/198, 1/100 (half of them) and 2/2
    # a normal mean: the 95% interval is about mean +- 1.96 sigma / sqrt(n)
    values = np.random.default_rng(1).normal(10.0, 2.0, size=400)
    low, high = bootstrap.interval(values)
    half = 1.96 * values.std() / np.sqrt(len(values))
    assert low == pytest.approx(values.mean() - half, abs=0.05)
    assert high == pytest.approx(values.mean() + half, abs=0.05)


def test_corpus_wer_interval_recomputes_from_rows():
    pairs = [("the cat sat on the mat", "the cat sat on a mat"), ("open the door", "open the door"),
             ("yes", "no"), ("one two three four", "one two three")]
    items = [asr.word_errors(r, h) for r, h in pairs]
    corpus = asr.corpus_wer(items)
    low, high = corpus["wer_interval"]
    assert 0.0 <= low <= corpus["wer"] <= high <= 1.0 and low < high
    assert corpus["interval"] == {"level": 0.95, "samples": bootstrap.SAMPLES, "seed": bootstrap.SEED,
                                  "unit": "utterances"}
    # the rows evaluate writes (as text, as quality.tsv reads back) give the same intervals
    rows = [{"wer_espeak_errors": str(i.errors), "wer_espeak_char_errors": str(i.char_errors),
             "wer_ref_words": str(i.reference_words), "wer_ref_chars": str(i.reference_chars)} for i in items]
    assert error_rate_intervals(rows, "wer_espeak") == {"wer_interval": corpus["wer_interval"],
                                                        "cer_interval": corpus["cer_interval"]}
    assert asr.corpus_wer(items[:1])["wer_interval"] is None


def test_the_report_states_each_wer_interval_beside_its_sample_size():
    from holdtts.report.quality_tables import quality_sections, quality_summary

    items = [asr.word_errors("the cat sat on the mat", "the cat sat on a mat"), asr.word_errors("yes", "yes")]
    quality = {"n_utterances": 2, "wer_espeak": {"generated": asr.corpus_wer(items)}}

    class Record:
        name, quality = "vp", None

    Record.quality = quality
    text = quality_sections(quality_summary([Record()]))
    low, high = quality["wer_espeak"]["generated"]["wer_interval"]
    assert "WER 2 utterances, 7 words" in text
    assert f"WER esp [{100 * low:.1f}%, {100 * high:.1f}%]" in text
    low, high = quality["wer_espeak"]["generated"]["cer_interval"]
    assert f"CER esp [{100 * low:.1f}%, {100 * high:.1f}%]" in text
    # a quality.json from before the intervals: sizes only, no interval claimed
    del quality["wer_espeak"]["generated"]["wer_interval"]
    assert "WER esp [" not in quality_sections(quality_summary([Record()]))
    assert "diverged" not in text
    quality["nonfinite_syntheses"] = 1  # one sentence's synthesis diverged: said under the table
    assert "**Syntheses that diverged** (NaN or infinite values" in quality_sections(quality_summary([Record()]))
    assert "vp: 1 of 2" in quality_sections(quality_summary([Record()]))
    Record.quality_own = {**quality, "nonfinite_syntheses": 2, "sampler": "splitting", "steps": 10}
    assert "vp: 1 of 2; vp (own sampler): 2 of 2" in quality_sections(quality_summary([Record()]))


def test_a_malformed_wer_interval_is_an_error_naming_the_file(tmp_path):
    from holdtts.errors import InputError
    from holdtts.report.collect import validate_quality

    path = tmp_path / "quality.json"
    good = {"wer_espeak": {side: {"wer": 0.1, "cer": 0.05, "wer_interval": [0.05, 0.2]}
                           for side in ("generated", "reference")}}
    assert validate_quality(good, path) is good
    good["wer_espeak"]["generated"]["wer_interval"] = [0.05]
    with pytest.raises(InputError, match="wer_espeak.generated.wer_interval") as err:
        validate_quality(good, path)
    assert str(path) in str(err.value)


def test_the_report_recomputes_missing_wer_intervals_from_the_rows():
    """A quality.json from before the intervals gets them back from its quality.tsv, exactly as evaluate
    writes them now: a dualmd of the study (evaluated with intervals; superseded, so its folder stays put)
    with its intervals removed."""
    import copy
    import json
    from pathlib import Path

    from holdtts.report.collect import fill_error_rate_intervals

    superseded = Path(__file__).resolve().parents[1] / "docs" / "study" / "main" / "superseded"
    folder = superseded / "dualmd_no_checkpoints" / "evaluate"
    written = json.loads((folder / "quality.json").read_text())
    old = copy.deepcopy(written)
    for name in ("wer", "wer_domain", "wer_espeak"):
        for side in ("generated", "reference"):
            assert written[name][side]["wer_interval"] is not None
            del old[name][side]["wer_interval"], old[name][side]["cer_interval"]
    fill_error_rate_intervals(old, folder / "quality.tsv")
    assert old == written
    # one that has them is not touched, even when its rows would say otherwise
    other = copy.deepcopy(written)
    other["wer"]["generated"]["wer_interval"] = [0.0, 0.5]
    fill_error_rate_intervals(other, folder / "quality.tsv")
    assert other["wer"]["generated"]["wer_interval"] == [0.0, 0.5]


def test_the_report_warns_when_the_espeak_wer_comes_from_several_recogniser_builds():
    from holdtts.report.quality_tables import quality_sections, quality_summary

    generated = asr.corpus_wer([asr.word_errors("the cat sat", "the cat sat")])

    def record(name, weights):
        facts = {} if weights is None else {"weights_sha256": weights}
        return type("Record", (), {"name": name, "quality": {"n_utterances": 1,
                                                             "wer_espeak": {"generated": generated, **facts}}})()

    same = [record("vp", "a" * 64), record("hold2", "a" * 64)]
    assert "builds of the eSpeak recogniser" not in quality_sections(quality_summary(same))
    text = quality_sections(quality_summary([*same, record("vp.seed2", "b" * 64), record("hold3", None)]))
    assert "**WER esp and CER esp come from 3 builds of the eSpeak recogniser**" in text
    assert f"{'a' * 12}: vp, hold2; {'b' * 12}: vp.seed2; not recorded: hold3" in text


def test_paired_difference_over_seeds_reduces_to_the_paired_one_and_carries_seed_spread():
    rng = np.random.default_rng(3)
    base = {f"u{i}": (float(v),) for i, v in enumerate(rng.normal(size=30))}
    other = {u: (v[0] + rng.normal(0.3, 0.5),) for u, v in base.items()}
    one = bootstrap.paired_difference_over_seeds([other], [base])
    pair = bootstrap.paired_difference(other, base)
    assert one["difference"] == pair["difference"] and one["ci"] == pytest.approx(pair["ci"], rel=1e-12)
    assert one["n"] == 30
    # the same shift on every sentence: the interval is the seeds' spread alone (their means of 3 draws),
    # and every draw is positive, so p is the smallest the draws allow
    shifted = [{u: (v[0] + 2.0 + offset,) for u, v in base.items()} for offset in (0.0, 0.1, -0.1)]
    result = bootstrap.paired_difference_over_seeds(shifted, [base], samples=999)
    assert result["difference"] == pytest.approx(2.0)
    assert 1.9 - 1e-9 <= result["ci"][0] < 2.0 < result["ci"][1] <= 2.1 + 1e-9
    assert result["p_value"] == pytest.approx(2 / 1000)
    assert result["system"]["seeds"] == 3 and result["baseline"]["seeds"] == 1
    mean = result["baseline"]["mean"]
    assert [v - mean for v in result["system"]["per_seed"]] == pytest.approx([2.0, 2.1, 1.9])
    # seeds that disagree: the sentences alone would give a zero-width interval, the seeds widen it over 0
    spread = [{u: (v[0] + offset,) for u, v in base.items()} for offset in (1.0, -1.0, 0.2)]
    result = bootstrap.paired_difference_over_seeds(spread, [base], samples=999)
    assert result["difference"] == pytest.approx(0.2 / 3)
    assert result["ci"][0] < 0 < result["ci"][1] and result["p_value"] > 0.2
    # WER: a ratio of sums per model, then the mean over seeds; only the sentences every model has count
    a = [{"x": (1.0, 10.0), "y": (9.0, 10.0), "z": (5.0, 5.0)}, {"x": (0.0, 10.0), "y": (10.0, 10.0)}]
    b = [{"x": (0.0, 10.0), "y": (0.0, 10.0)}]
    result = bootstrap.paired_difference_over_seeds(a, b)
    assert result["n"] == 2 and result["difference"] == pytest.approx(0.5)
    assert bootstrap.paired_difference_over_seeds([{"a": (1.0,)}], [{"b": (1.0,)}]) is None
    assert bootstrap.paired_difference_over_seeds([], [base]) is None
