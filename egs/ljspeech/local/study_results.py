#!/usr/bin/env python3
"""Copy what the CPU study's tables and figures come from into docs/study/ for the commit: the report
(report.md, report.json, headline.tsv, figures), and for every model its attack rows and metrics and its
quality summary and per-sentence table. No checkpoint, no audio.

    local/study_results.py --work-dir study --results-dir ../../docs/study
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

KEEP = ("rows.tsv", "metrics.json", "attack.json", "quality.json", "quality.tsv", "train_summary.json",
        "train_log.jsonl", "config.yaml", "system.json", "privacy.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--results-dir", type=Path, required=True)
    args = parser.parse_args()
    report = args.work_dir / "report"
    out = args.results_dir / "main"
    out.mkdir(parents=True, exist_ok=True)
    for path in report.iterdir():
        if path.is_file():
            shutil.copyfile(path, out / path.name)
    models = out / "models"
    for exp in sorted(p for p in (args.work_dir / "exp").iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in exp.rglob("*"):
            if path.is_file() and path.name in KEEP and "checkpoints" not in path.parts:
                target = models / exp.name / path.relative_to(exp)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
    print(f"results copied to {out}")


if __name__ == "__main__":
    main()
