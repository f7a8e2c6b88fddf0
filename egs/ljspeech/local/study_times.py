#!/usr/bin/env python3
"""The wall time of each part of every saved model of the CPU study, from the files saved with it.

    local/study_times.py [--models ../../docs/study/main/models] > table.md

It prints the table of seconds per model and part, then the smallest and largest minutes per kind of
system and part (the ranges docs/study.md quotes).

Per model (DualMD: both teachers added):
- training: the seconds spent in optimizer steps (train_summary.json), and the seconds the in-training
  attacks added (`time/attack_seconds` in train_log.jsonl; recorded since sitting 8);
- attacks: the white-box suite (attack/, or each teacher's attack_teacher*/) and the black-box synthesis
  attack, each the sum of its attacks' seconds (attack.json), without loading and the statistics;
- quality: synthesis and scoring (quality.json `timing`; recorded since sitting 8) at the common sampler
  (evaluate/), and at the system's own sampler (evaluate_own/, since sitting 9; HOLD++ systems only).
"not recorded": the model's files have no record of that part (an older model, or a stage not finished);
"-": the model has no own-sampler stage (its own sampler is the common one, or it predates the stage).
What ran beside each part (two study jobs of one thread each, other jobs) is in docs/study/sittings.md:
these are the study's own records, not timings on an idle machine.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from holdtts.report.collect import system_and_seed
from holdtts.utils.fileio import read_json

DEFAULT_MODELS = Path(__file__).resolve().parents[3] / "docs" / "study" / "main" / "models"
COLUMNS = ("training steps", "in-training attacks", "white-box attacks", "black-box attack", "quality",
           "own-sampler quality")
ABSENT = "-"  # a part the model has no stage for (not counted in the sums)
# the kinds of system whose parts cost alike, for the ranges table
KINDS = {"vp": "order 1 (vp)", "hold2": "HOLD++", "hold3": "HOLD++", "hold4": "HOLD++",
         "dualmd": "DualMD (two teachers)", "dualmd_hold3": "DualMD (two teachers)", "distillmd": "DistillMD student",
         "distillmd_hold3": "DistillMD student", "vp_dp": "DP-SGD", "vp_dp_eps1": "DP-SGD"}


def _json(path: Path) -> dict | None:
    return read_json(path) if path.is_file() else None  # an unreadable file: an error naming it


def _training_dirs(model: Path) -> list[Path]:
    teachers = sorted(model.glob("teacher*/train_summary.json"))
    return [p.parent for p in teachers] or [model]


def _attack_seconds(folder: Path) -> float | None:
    settings = _json(folder / "attack.json")
    if settings is None or "timing" not in settings:
        return None
    return sum(entry["seconds"] for entry in settings["timing"].values())


def _quality_seconds(folder: Path) -> float | None:
    quality = _json(folder / "quality.json")
    return sum(quality["timing"].values()) if quality and "timing" in quality else None


def model_times(model: Path) -> dict[str, float | str | None]:
    """Seconds per part (None: not recorded, or that stage has not finished; ABSENT: no such stage)."""
    steps = in_training = 0.0
    recorded = True
    for folder in _training_dirs(model):
        summary = _json(folder / "train_summary.json")
        if summary is None:
            return {**dict.fromkeys(COLUMNS), "own-sampler quality": ABSENT}
        steps += summary["train_seconds"]
        lines = [json.loads(line) for line in (folder / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
                 if line.strip()] if (folder / "train_log.jsonl").is_file() else []
        # a run resumed at an epoch's last step attacks that epoch again: the last line of a step counts
        attacks = list({line["step"]: line for line in lines if "attack/headline/auroc" in line}.values())
        recorded &= bool(attacks) and all("time/attack_seconds" in line for line in attacks)
        in_training += sum(line.get("time/attack_seconds", 0.0) for line in attacks)
    # the white-box suite: attack/, or one attack_teacher<i>/ per teacher<i>/ (a missing one: not finished)
    folders = ([model / f"attack_{d.name}" for d in _training_dirs(model)] if (model / "teacher1").is_dir()
               else [model / "attack"])
    white = [_attack_seconds(d) for d in folders]
    return {"training steps": steps, "in-training attacks": in_training if recorded else None,
            "white-box attacks": None if None in white else sum(white),
            "black-box attack": _attack_seconds(model / "attack_blackbox"),
            "quality": _quality_seconds(model / "evaluate"),
            "own-sampler quality": _quality_seconds(model / "evaluate_own") if (model / "evaluate_own").is_dir()
            else ABSENT}


def table(models: Path) -> str:
    lines = ["| model | " + " | ".join(f"{c} (s)" for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    totals = dict.fromkeys(COLUMNS, 0.0)
    counts = dict.fromkeys(COLUMNS, 0)
    for model in sorted(p for p in models.iterdir() if p.is_dir()):
        times = model_times(model)
        cells = []
        for column in COLUMNS:
            value = times[column]
            cells.append("not recorded" if value is None else value if value == ABSENT else f"{value:.0f}")
            if isinstance(value, float):
                totals[column] += value
                counts[column] += 1
        lines.append(f"| {model.name} | " + " | ".join(cells) + " |")
    lines.append("| **sum (models recorded)** | " + " | ".join(f"{totals[c]:.0f} ({counts[c]})" for c in COLUMNS)
                 + " |")
    return "\n".join(lines) + "\n"


def ranges(models: Path) -> str:
    """Per kind of system and part: the smallest and largest recorded time in minutes, and how many models."""
    spans: dict[str, dict[str, list[float]]] = {}
    for model in sorted(p for p in models.iterdir() if p.is_dir()):
        kind = KINDS.get(system_and_seed(model.name)[0], "other")
        for column, value in model_times(model).items():
            if isinstance(value, float):
                spans.setdefault(kind, {}).setdefault(column, []).append(value / 60)
    lines = ["| kind of system | " + " | ".join(f"{c} (min)" for c in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for kind in dict.fromkeys([*KINDS.values(), "other"]):
        if kind not in spans:
            continue
        cells = []
        for column in COLUMNS:
            found = spans[kind].get(column)
            cells.append(ABSENT if not found else f"{min(found):.0f}-{max(found):.0f} ({len(found)})")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="the saved models' folder")
    args = parser.parse_args()
    print(table(args.models))
    print("Smallest-largest minutes per kind of system (models recorded):\n")
    print(ranges(args.models), end="")


if __name__ == "__main__":
    main()
