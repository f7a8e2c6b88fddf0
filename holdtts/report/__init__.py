"""`holdtts report`: membership privacy beside audio quality for every system of a recipe run.

    write_report("exp", systems=["vp", "hold3"], data_dir="data")

reads exp/<system>/ (attack*/, evaluate/, config.yaml, train_summary.json, train_log.jsonl, system.json,
privacy.json) and writes exp/report/: report.md, PNG figures, report.json (every number, for machines) and
headline.tsv. The directory is built under a temporary name and renamed into place, so an interrupted run
leaves no report that looks complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from holdtts.errors import HoldttsError
from holdtts.report.collect import (
    QUALITY_METRICS,
    TEXT_SIDE_ATTACKS,
    AttackEntry,
    AttackRun,
    SystemRecord,
    collect_systems,
    discover_systems,
    load_system,
    read_splits,
)
from holdtts.report.figures import RocCurve, roc_curves, write_figures
from holdtts.report.markdown import build_summary, headline_tsv, render_markdown
from holdtts.utils.fileio import ensure_dir, refuse_overwrite, strict_json

__all__ = [
    "QUALITY_METRICS", "TEXT_SIDE_ATTACKS", "AttackEntry", "AttackRun", "ReportResult", "RocCurve",
    "SystemRecord", "collect_systems", "discover_systems", "load_system", "roc_curves", "write_report",
]


@dataclass
class ReportResult:
    out_dir: Path
    summary: dict  # what report.json holds
    records: list[SystemRecord]


def _install(tmp: Path, out_dir: Path, replace: bool) -> None:
    """Rename the finished tmp onto out_dir, or swap it for the old report (kept until the swap is done)."""
    if not replace:
        if out_dir.exists():
            raise HoldttsError(f"{out_dir}: appeared while the report was written; refusing to replace it")
        os.replace(tmp, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
    os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        os.replace(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_report(exp_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                 systems: list[str] | None = None, data_dir: str | os.PathLike | None = None,
                 overwrite: bool = False, preregistered: str | os.PathLike | None = None) -> ReportResult:
    """Collect the systems (all with results in exp_dir by default), check every input, and write the
    report to out_dir (default exp_dir/report). An existing report is replaced only with `overwrite`.
    preregistered: a file of fixed attack cells per family (report.comparisons.read_preregistered)."""
    exp_dir = Path(exp_dir)
    out_dir = Path(out_dir) if out_dir is not None else exp_dir / "report"
    refuse_overwrite(out_dir, overwrite, "report")
    if out_dir.exists() and not out_dir.is_dir():
        raise HoldttsError(f"{out_dir}: exists and is not a directory")
    # inputs are checked as they are read (rows.tsv while drawing); a failed check removes the temporary
    # directory, so bad input leaves nothing behind
    records = collect_systems(exp_dir, systems, exclude=(out_dir,))
    splits_path, splits = read_splits(data_dir)
    ensure_dir(out_dir.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        figures = write_figures(records, tmp)
        summary = build_summary(records, figures, exp_dir, splits_path, splits,
                                None if preregistered is None else Path(preregistered))
        (tmp / "report.json").write_text(json.dumps(strict_json(summary), indent=2) + "\n", encoding="utf-8")
        (tmp / "headline.tsv").write_text(headline_tsv(summary), encoding="utf-8")
        (tmp / "report.md").write_text(render_markdown(summary, records), encoding="utf-8")
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes directories private; give the report the usual mode
        _install(tmp, out_dir, replace=out_dir.exists())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ReportResult(out_dir, summary, records)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
