#!/usr/bin/env python3
"""The CPU study's results in git: save what its tables come from into docs/study/main/, and bring the
committed models back onto a fresh machine, so the study resumes across sittings and machines.

    local/study_results.py --work-dir study --results-dir ../../docs/study            # save
    local/study_results.py --work-dir study --results-dir ../../docs/study --restore  # restore

save: the report (report.md, report.json, headline.tsv, figures) when there is one, and for every model
the small files of each stage that finished (its done marker exists): the training summary, log and
config (stage 5), attack rows and metrics (stage 6), the quality summary and per-sentence table (stage 7),
each with the stage's done marker. No checkpoint, no audio.

restore: for every saved model whose stages all finished (training, attacks, quality; for a DualMD
system, its DistillMD student's too), each stage whose marker is missing here is copied back into
study/exp/<model>/ with its marker, so cpu_study.sh skips it; the marker still records the inputs' checksums
(splits, features), so a stage restored onto different data is refused by recipes/stages.sh, never
reused. Files already here are never overwritten: such a stage is left alone and reported.
"""
from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

KEEP = ("rows.tsv", "metrics.json", "attack.json", "quality.json", "quality.tsv", "train_summary.json",
        "train_log.jsonl", "config.yaml", "system.json", "privacy.json")
# the top-level folder of a model's files -> its stage (cpu_study.sh's stage names); everything else: training
STAGE_OF_FOLDER = {"attack": "6:attack-{sys}-seed{k}", "attack_teacher1": "6:attack-{sys}-seed{k}-teacher1",
                   "attack_teacher2": "6:attack-{sys}-seed{k}-teacher2",
                   "attack_blackbox": "6:attack-{sys}-seed{k}-blackbox", "evaluate": "7:evaluate-{sys}-seed{k}"}
TRAIN_STAGE = "5:train-{sys}-seed{k}"


def system_and_seed(model: str) -> tuple[str, int]:
    """cpu_study.sh's exp_of, inverted: exp/<sys> is seed 1, exp/<sys>.seed<k> seed k."""
    match = re.fullmatch(r"(.+)\.seed(\d+)", model)
    return (match.group(1), int(match.group(2))) if match else (model, 1)


def marker_name(stage: str, model: str) -> str:
    sys, k = system_and_seed(model)
    number, name = stage.format(sys=sys, k=k).split(":", 1)
    return f"stage{number}.{name}.done"


def stage_files(exp: Path) -> dict[str, list[Path]]:
    """A model's kept files (relative to its folder), grouped by the stage that wrote them."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(exp.rglob("*")):
        relative = path.relative_to(exp)
        if not path.is_file() or path.name not in KEEP or "checkpoints" in relative.parts:
            continue
        stage = STAGE_OF_FOLDER.get(relative.parts[0], TRAIN_STAGE) if len(relative.parts) > 1 else TRAIN_STAGE
        groups.setdefault(stage, []).append(relative)
    return groups


def save(work: Path, results: Path) -> None:
    out = results / "main"
    out.mkdir(parents=True, exist_ok=True)
    report = work / "report"
    if report.is_dir():
        for path in report.iterdir():
            if path.is_file():
                shutil.copyfile(path, out / path.name)
    saved = 0
    for exp in sorted(p for p in (work / "exp").glob("*") if p.is_dir() and not p.name.startswith(".")):
        for stage, files in stage_files(exp).items():
            marker = work / ".done" / marker_name(stage, exp.name)
            if not marker.is_file():
                continue  # unfinished: the next sitting redoes it
            bundle = out / "models" / exp.name
            for relative in files:
                (bundle / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(exp / relative, bundle / relative)
            (bundle / ".done").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(marker, bundle / ".done" / marker.name)
            saved += 1
    print(f"saved {saved} finished model stages and the report (if any) to {out}")


# A DualMD system's teachers are what its DistillMD student is trained from: restored (without their
# checkpoints) only once the student is complete too.
STUDENT_OF = {"dualmd": "distillmd", "dualmd_hold3": "distillmd_hold3"}


def expected_stages(model: str) -> set[str]:
    sys, _ = system_and_seed(model)
    attacks = ({STAGE_OF_FOLDER["attack_teacher1"], STAGE_OF_FOLDER["attack_teacher2"]} if sys.startswith("dualmd")
               else {STAGE_OF_FOLDER["attack"]})
    stages = {TRAIN_STAGE, STAGE_OF_FOLDER["attack_blackbox"], STAGE_OF_FOLDER["evaluate"], *attacks}
    return {marker_name(stage, model) for stage in stages}


def complete(bundle: Path) -> bool:
    """Every stage of the model finished (a partial model needs its checkpoints, which are never saved)."""
    if not expected_stages(bundle.name) <= {p.name for p in (bundle / ".done").glob("*.done")}:
        return False
    sys, k = system_and_seed(bundle.name)
    if sys in STUDENT_OF:
        student = STUDENT_OF[sys] if k == 1 else f"{STUDENT_OF[sys]}.seed{k}"
        return complete(bundle.parent / student)
    return True


def restore(work: Path, results: Path) -> None:
    restored = kept = 0
    for bundle in sorted((results / "main" / "models").glob("*")):
        if not complete(bundle):
            print(f"{bundle.name}: not every stage finished when it was saved; the study redoes it")
            continue
        exp = work / "exp" / bundle.name
        for stage, files in stage_files(bundle).items():
            saved_marker = bundle / ".done" / marker_name(stage, bundle.name)
            marker = work / ".done" / saved_marker.name
            if not saved_marker.is_file() or marker.exists():
                continue
            clashes = [r for r in files if (exp / r).exists()]
            if clashes:
                print(f"{exp}: not restoring {saved_marker.name}: {clashes[0]} is already here")
                kept += 1
                continue
            for relative in files:
                (exp / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(bundle / relative, exp / relative)
            marker.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(saved_marker, marker)
            restored += 1
    print(f"restored {restored} finished model stages from {results / 'main' / 'models'}"
          + (f"; left {kept} alone" if kept else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--results-dir", type=Path, required=True)
    parser.add_argument("--restore", action="store_true", help="bring committed models back into the work dir")
    args = parser.parse_args()
    (restore if args.restore else save)(args.work_dir, args.results_dir)


if __name__ == "__main__":
    main()
