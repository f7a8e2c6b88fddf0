#!/usr/bin/env python3
"""The CPU study's results in git: save what its tables come from into docs/study/main/, and bring the
committed models back onto a fresh machine, so the study resumes across sittings and machines.

    local/study_results.py --work-dir study --results-dir ../../docs/study            # save
    local/study_results.py --work-dir study --results-dir ../../docs/study --model vp # one model
    local/study_results.py --work-dir study --results-dir ../../docs/study --restore  # restore

save: the report (report.md, report.json, headline.tsv, figures) when there is one, and for every model
the small files of each stage that finished (its done marker exists): the training summary, log and
config (stage 5), attack rows and metrics (stage 6), the quality summary and per-sentence table (stage 7),
each with the stage's done marker. No checkpoint, no audio.

restore: every saved model whose stages all finished (training, attacks, quality; for a DualMD system, its
DistillMD student's too) and that is not here at all is copied back into study/exp/<model>/ with its done
markers, so cpu_study.sh skips it. Only when the splits and features here hold the same content as the
ones it was trained and attacked on (inputs.json: the tables with wav.scp reduced to file names, the
features' settings, sizes and text checksums); the markers' data and features checksums, which depend on
paths and on the manifest's timings, are then recomputed here. A model folder already here is never
touched.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from holdtts.report.collect import system_and_seed  # cpu_study.sh's exp_of, inverted

KEEP = ("rows.tsv", "metrics.json", "attack.json", "quality.json", "quality.tsv", "train_summary.json",
        "train_log.jsonl", "config.yaml", "system.json", "privacy.json")
# the top-level folder of a model's files -> its stage (cpu_study.sh's stage names); everything else: training
STAGE_OF_FOLDER = {"attack": "6:attack-{sys}-seed{k}", "attack_teacher1": "6:attack-{sys}-seed{k}-teacher1",
                   "attack_teacher2": "6:attack-{sys}-seed{k}-teacher2",
                   "attack_blackbox": "6:attack-{sys}-seed{k}-blackbox", "evaluate": "7:evaluate-{sys}-seed{k}",
                   # the own-sampler quality (HOLD++ systems): not in expected_stages, since the models finished
                   # before it existed lack it; it runs before "evaluate", so a model of the present pipeline
                   # whose quality stage is done has it too
                   "evaluate_own": "7:evaluate-own-{sys}-seed{k}"}
TRAIN_STAGE = "5:train-{sys}-seed{k}"
STAGES_SH = Path(__file__).resolve().parents[3] / "recipes" / "stages.sh"
MACHINE_LINES = ("data", "features")  # marker lines whose checksums depend on paths and timings, not content
INPUTS = "inputs.json"


def stable_description(folder: Path) -> str | None:
    """What a data or features folder holds, without what differs between machines: the split tables
    with wav.scp reduced to file names, or the features' settings, sizes and text checksums (not the
    manifest's timings). None when the folder is not there."""
    digest = hashlib.sha256()
    if (folder / "splits.json").is_file():
        for table in sorted(p for p in folder.glob("*/*") if p.name in ("wav.scp", "text", "text.raw",
                                                                        "utt2num_samples")):
            text = table.read_text(encoding="utf-8")
            if table.name == "wav.scp":
                text = "\n".join(f"{line.split(maxsplit=1)[0]} {Path(line.split(maxsplit=1)[-1]).name}"
                                  for line in text.splitlines() if line.strip())
            digest.update(f"{table.relative_to(folder)}\0{text}\0".encode())
        return "data " + digest.hexdigest()
    if (folder / "manifest.json").is_file():
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        inputs = {k: v for k, v in manifest.get("fingerprint", {}).get("inputs", {}).items() if k != "wav.scp"}
        kept = {"features": manifest.get("fingerprint", {}).get("features"), "inputs": inputs,
                "num_utts": manifest.get("num_utts"), "num_frames": manifest.get("num_frames")}
        return "features " + hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()
    return None


def machine_folders(marker: Path) -> list[str]:
    """The data and features folders a done marker records checksums of."""
    return [line.split()[1] for line in marker.read_text(encoding="utf-8").splitlines()
            if line.split(" ", 1)[0] in MACHINE_LINES]


def local_fingerprint(folder: str) -> list[str]:
    """recipes/stages.sh's fingerprint lines of a folder, computed here."""
    out = subprocess.run(["bash", "-c", '. "$0"; _dir_fingerprint "$1"', str(STAGES_SH), folder],
                         capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def same_but_machine_lines(saved: Path, local: Path) -> bool:
    """The saved marker says what the local one says, apart from the data and features checksums that a
    restore recomputed for this machine: keep the saved one (a restored model's files are unchanged)."""
    if not saved.is_file():
        return False
    def kept(path: Path) -> list[str]:
        return [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.split(" ", 1)[0] not in MACHINE_LINES]
    return kept(saved) == kept(local)


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


def save(work: Path, results: Path, model: str | None = None) -> None:
    """Save the report and every model's finished stages, or only `model`'s (what a model's pipeline does
    when it ends)."""
    out = results / "main"
    out.mkdir(parents=True, exist_ok=True)
    report = work / "report"
    if report.is_dir() and model is None:
        for path in report.iterdir():
            if path.is_file():
                shutil.copyfile(path, out / path.name)
    saved = 0
    for exp in sorted(p for p in (work / "exp").glob("*") if p.is_dir() and not p.name.startswith(".")):
        if model is not None and exp.name != model:
            continue
        for stage, files in stage_files(exp).items():
            marker = work / ".done" / marker_name(stage, exp.name)
            if not marker.is_file():
                continue  # unfinished: the next sitting redoes it
            bundle = out / "models" / exp.name
            for relative in files:
                (bundle / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(exp / relative, bundle / relative)
            (bundle / ".done").mkdir(parents=True, exist_ok=True)
            if not same_but_machine_lines(bundle / ".done" / marker.name, marker):
                shutil.copyfile(marker, bundle / ".done" / marker.name)
            inputs_path = bundle / ".done" / INPUTS
            inputs = json.loads(inputs_path.read_text(encoding="utf-8")) if inputs_path.is_file() else {}
            inputs.update({folder: stable_description(Path(folder)) for folder in machine_folders(marker)})
            inputs_path.write_text(json.dumps(inputs, indent=1, sort_keys=True), encoding="utf-8")
            saved += 1
    print(f"saved {saved} finished stages of {model or 'every model'} to {out / 'models'}"
          + ("" if model else " (and the report, if any)"))


# A DualMD system's teachers are what its DistillMD student is trained from: restored (without their
# checkpoints) only once the student is complete too.
STUDENT_OF = {"dualmd": "distillmd", "dualmd_hold3": "distillmd_hold3"}


def expected_stages(model: str) -> set[str]:
    sys, _ = system_and_seed(model)
    attacks = ({STAGE_OF_FOLDER["attack_teacher1"], STAGE_OF_FOLDER["attack_teacher2"]} if sys.startswith("dualmd")
               else {STAGE_OF_FOLDER["attack"]})
    stages = {TRAIN_STAGE, STAGE_OF_FOLDER["attack_blackbox"], STAGE_OF_FOLDER["evaluate"], *attacks}
    return {marker_name(stage, model) for stage in stages}


def stages_finished(bundle: Path) -> bool:
    return expected_stages(bundle.name) <= {p.name for p in (bundle / ".done").glob("*.done")}


def complete(bundle: Path) -> bool:
    """Every stage of the model finished (a partial model needs its checkpoints, which are never saved)."""
    if not stages_finished(bundle):
        return False
    sys, k = system_and_seed(bundle.name)
    if sys in STUDENT_OF:
        student = STUDENT_OF[sys] if k == 1 else f"{STUDENT_OF[sys]}.seed{k}"
        return complete(bundle.parent / student)
    return True


def restore(work: Path, results: Path) -> None:
    restored = 0
    for bundle in sorted((results / "main" / "models").glob("*")):
        if not complete(bundle):
            if stages_finished(bundle):  # a DualMD model whose student is not complete
                print(f"{bundle.name}: complete, but restored only with its DistillMD student (the student trains "
                      "from the teachers' checkpoints, which are never saved); the study redoes both")
            else:
                print(f"{bundle.name}: not every stage finished when it was saved; the study redoes it")
            continue
        exp = work / "exp" / bundle.name
        if exp.exists():
            continue  # here already (trained here, or restored before): never mixed with saved files
        saved = json.loads((bundle / ".done" / INPUTS).read_text(encoding="utf-8")) \
            if (bundle / ".done" / INPUTS).is_file() else {}
        differ = [folder for folder, description in saved.items() if stable_description(Path(folder)) != description]
        if differ:
            print(f"{bundle.name}: not restored: {differ[0]} is missing or holds other data than it was trained and "
                  "attacked on; the study redoes it")
            continue
        markers = []
        for stage, files in stage_files(bundle).items():
            saved_marker = bundle / ".done" / marker_name(stage, bundle.name)
            for relative in files:
                (exp / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(bundle / relative, exp / relative)
            markers.append(saved_marker)
        for saved_marker in markers:
            # The data and features checksums are recomputed here: the same content, this machine's paths.
            lines, text = [], saved_marker.read_text(encoding="utf-8")
            for line in text.splitlines():
                kind = line.split(" ", 1)[0]
                if kind in MACHINE_LINES:
                    lines += [x for x in local_fingerprint(line.split()[1]) if x.split(" ", 1)[0] == kind]
                else:
                    lines.append(line)
            marker = work / ".done" / saved_marker.name
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("\n".join(lines) + ("\n" if text.endswith("\n") else ""), encoding="utf-8")
        restored += 1
    print(f"restored {restored} complete models from {results / 'main' / 'models'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--results-dir", type=Path, required=True)
    parser.add_argument("--restore", action="store_true", help="bring committed models back into the work dir")
    parser.add_argument("--model", help="save only this model (a folder name under <work-dir>/exp)")
    args = parser.parse_args()
    if args.restore:
        restore(args.work_dir, args.results_dir)
    else:
        save(args.work_dir, args.results_dir, model=args.model)


if __name__ == "__main__":
    main()
