"""`holdtts verify`: committed results recompute exactly from their rows, and a changed value is named."""
import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from holdtts.commands.verify import command
from holdtts.report.verify import result_folders, verify_attack, verify_quality

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "docs" / "demo_run" / "exp" / "vp"  # the demo's committed evidence: vp detected


def test_the_demos_committed_results_recompute_from_their_rows():
    result = CliRunner().invoke(command, [str(DEMO)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "3 of 3 result folders recompute exactly" in result.output
    assert "not checkable from rows: fd_logmel, fd_speaker (all but mean_spk_cosine)" in result.output


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "vp"
    shutil.copytree(DEMO, folder)
    return folder


def test_a_changed_privacy_number_is_named(tmp_path):
    folder = _copy(tmp_path)
    path = folder / "attack_blackbox" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["headline"]["p_value"] = 0.001
    metrics["attacks"].pop(next(iter(metrics["attacks"])))
    path.write_text(json.dumps(metrics))
    check = verify_attack(folder / "attack_blackbox")
    assert not check.ok and check.checked > 10
    assert any(m.startswith("headline.p_value: committed 0.001") for m in check.mismatches)
    assert any("recomputed but not in the committed file" in m for m in check.mismatches)
    result = CliRunner().invoke(command, [str(folder)])
    assert result.exit_code == 1 and "DIFFERS  attack  " in result.output and "2 of 3 result folders" in result.output


def test_a_changed_row_or_quality_number_is_named(tmp_path):
    folder = _copy(tmp_path)
    rows = folder / "attack" / "rows.tsv"
    lines = rows.read_text().splitlines()
    cells = lines[1].split("\t")
    cells[-1] = repr(float(cells[-1]) + 100.0)  # one score moved: some AUROC must change
    rows.write_text("\n".join([lines[0], "\t".join(cells), *lines[2:]]) + "\n")
    assert not verify_attack(folder / "attack").ok

    summary = folder / "evaluate" / "quality.json"
    quality = json.loads(summary.read_text())
    assert verify_quality(folder / "evaluate").ok
    quality["wer_espeak"]["generated"]["errors"] += 1
    quality["mcd"]["mean"] *= 0.9
    quality["dnsmos"]["generated"]["ovrl"] += 0.1
    summary.write_text(json.dumps(quality))
    check = verify_quality(folder / "evaluate")
    assert sorted(m.split(":")[0] for m in check.mismatches) == [
        "dnsmos.generated.ovrl", "mcd.mean", "wer_espeak.generated.errors"]


def test_paths_name_their_folders_and_a_missing_one_is_an_error(tmp_path):
    assert result_folders([DEMO / "attack" / "metrics.json"]) == [("attack", DEMO / "attack")]
    result = CliRunner().invoke(command, [str(tmp_path / "absent")])
    assert result.exit_code != 0 and "absent" in str(result.exception)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(command, [str(empty)])
    assert result.exit_code != 0 and "no metrics.json" in result.output


def test_nan_scores_and_the_toy_studys_intervals_recompute(tmp_path):
    """A clip that could not be scored is NaN in quality.tsv and null in quality.json (strict JSON), and the
    toy study's metrics carry intervals on the held-out figures only (bootstrap.scope): both verify."""
    import numpy as np

    from holdtts.privacy.metrics import heldout_interval_metrics, write_rows
    from holdtts.quality.evaluate import read_rows_tsv, write_rows_tsv
    from holdtts.utils.fileio import strict_json

    folder = _copy(tmp_path)
    table = folder / "evaluate" / "quality.tsv"
    rows = read_rows_tsv(table)
    rows[0]["mcd"] = "nan"
    write_rows_tsv(table, rows, overwrite=True)
    summary = folder / "evaluate" / "quality.json"
    quality = json.loads(summary.read_text())
    quality["mcd"].update(strict_json({"mean": float("nan"), "std": float("nan")}))
    summary.write_text(json.dumps(quality))
    assert verify_quality(folder / "evaluate").ok

    rng = np.random.default_rng(0)
    toy_rows = [{"utt_id": f"p{i}", "member": str(int(i < 16)), "attack": attack, "t": t,
                 "score": repr(float(rng.normal() + (i < 16)))}
                for i in range(48) for attack, t in (("loss", "0.1"), ("loss", "0.3"), ("pia", "0.1"))]
    toy = tmp_path / "toy"
    toy.mkdir()
    write_rows(toy / "rows.tsv", toy_rows)
    metrics = heldout_interval_metrics(toy_rows, bootstrap_samples=50, seed=3, permutations=50)
    (toy / "metrics.json").write_text(json.dumps(metrics))
    check = verify_attack(toy)
    assert check.ok and check.checked > 20, check.mismatches
    assert metrics["attacks"]["loss"]["by_t"]["0.1"]["auroc_ci"] is None  # no per-cell interval to recompute


def test_a_summary_without_rows_or_settings_is_listed_not_passed(tmp_path):
    folder = _copy(tmp_path)
    (folder / "attack_blackbox" / "rows.tsv").unlink()
    metrics = json.loads((folder / "attack" / "metrics.json").read_text())
    del metrics["split"]
    (folder / "attack" / "metrics.json").write_text(json.dumps(metrics))
    assert verify_attack(folder / "attack_blackbox").not_checkable == "no rows.tsv beside metrics.json"
    assert "'split'" in verify_attack(folder / "attack").not_checkable
    result = CliRunner().invoke(command, [str(folder)])
    assert result.exit_code == 0, result.output  # nothing differs; two results are not checked
    assert result.output.count("NOT CHECKED") == 2 and "1 of 3 result folders" in result.output
    assert "2 could not be checked" in result.output
