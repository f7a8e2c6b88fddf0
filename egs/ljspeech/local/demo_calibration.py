#!/usr/bin/env python3
"""The demo's membership setting from vp's calibration runs alone (local/demo_calibration.sh,
docs/demo_calibration.md).

    local/demo_calibration.py save   --work-dir demo_calibration --results-dir ../../docs/demo_calibration
    local/demo_calibration.py decide --results-dir ../../docs/demo_calibration

save: each run's training summary and config, and each attacked checkpoint's rows, metrics and settings,
into <results>/vp_seed<S>/ (no checkpoint).
decide: from the saved metrics, calibration.tsv (one row per seed and step count: the held-out headline)
and chosen.json: the fewest candidate steps at which every seed (at least three) qualifies, by the study's
criteria (conf/study/calibration.yaml: held-out AUROC >= 0.9, its interval's lower end > 0.8, permutation
p < 0.01, on at least 3 seeds), and at those steps one attack cell per family pre-registered for the demo's
report (holdtts report --preregistered): the cell, among the attacks both the demo and the calibration run,
whose AUROC on all utterances averaged over the seeds is farthest from 0.5
(holdtts.privacy.statistics.consensus_cell, the study's rule). Nothing here looks at any other system.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import shutil
import sys
from pathlib import Path

from holdtts.privacy.metrics import read_rows
from holdtts.privacy.statistics import ScoreTable
from holdtts.utils.fileio import write_json_atomic

HERE = Path(__file__).resolve().parent.parent  # egs/ljspeech
_spec = importlib.util.spec_from_file_location("study_calibration", HERE / "local" / "study_calibration.py")
study_calibration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study_calibration)
# the study's criteria and seed count, read from its grid (rule 1 and 1b of conf/study/calibration.yaml)
CRITERIA = study_calibration.load_grid(HERE / "conf" / "study" / "calibration.yaml")["criteria"]
# the attacks `./run.sh --corpus mini` runs on vp (recipes/corpus_defaults.sh; pia_mc and sima_mc need
# order >= 2) that the calibration also ran: the pre-registered cells must be read in the demo's rows
DEMO_ATTACKS = ("loss", "pia", "pian", "sima", "duration", "prior")
KEEP_RUN = ("train_summary.json", "config.yaml")
KEEP_ATTACK = ("rows.tsv", "metrics.json", "attack.json")
COLUMNS = ("seed", "step", "headline_attack", "headline_t", "direction", "auroc", "auroc_ci_low",
           "auroc_ci_high", "p_value", "num_members_test", "num_nonmembers_test", "qualifies")


def save(work: Path, results: Path) -> None:
    for run in sorted(work.glob("vp_seed*")):
        out = results / run.name
        out.mkdir(parents=True, exist_ok=True)
        for name in KEEP_RUN:
            if (run / name).is_file():
                shutil.copyfile(run / name, out / name)
        for attack in sorted(run.glob("attack_step-*")):
            if not (attack / "metrics.json").is_file():
                continue  # unfinished
            step = int(attack.name.split("-")[-1])
            dest = out / f"step-{step}"
            dest.mkdir(exist_ok=True)
            for name in KEEP_ATTACK:
                shutil.copyfile(attack / name, dest / name)
        print(f"saved {run} -> {out}")


def runs(results: Path) -> list[tuple[int, int, Path]]:
    """(seed, step, folder) of every saved attacked checkpoint, in order."""
    found = []
    for folder in results.glob("vp_seed*/step-*"):
        if (folder / "metrics.json").is_file():
            found.append((int(folder.parent.name.removeprefix("vp_seed")), int(folder.name.split("-")[1]), folder))
    return sorted(found)


def headline_row(seed: int, step: int, folder: Path) -> dict:
    h = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))["headline"]
    low, high = h.get("auroc_ci") or (None, None)
    row = {"seed": seed, "step": step, "headline_attack": h["attack"], "headline_t": h["t"],
           "direction": h["direction"], "auroc": h["auroc"], "auroc_ci_low": low, "auroc_ci_high": high,
           "p_value": h["p_value"], "num_members_test": h["num_members_test"],
           "num_nonmembers_test": h["num_nonmembers_test"]}
    return {**row, "qualifies": study_calibration.qualifies(row, CRITERIA)}


def choose(rows: list[dict]) -> int | None:
    """The fewest candidate steps at which every seed (at least CRITERIA["seeds"]) was attacked and
    qualifies. A smaller step count that some seed was not attacked at, while none failed there, is an
    error: the fewest qualifying count cannot be known until it is."""
    seeds = sorted({r["seed"] for r in rows})
    for step in sorted({r["step"] for r in rows}):
        at = {r["seed"]: r for r in rows if r["step"] == step}
        if any(not r["qualifies"] for r in at.values()):
            continue  # a seed fails here: this count cannot qualify, whatever the others give
        if set(at) != set(seeds):
            sys.exit(f"{step} steps: attacked on seeds {sorted(at)} of {seeds} and none failed; attack the "
                     "others at it before deciding")
        if len(at) >= CRITERIA["seeds"]:
            return step
    return None


def decide(results: Path) -> dict:
    rows = [headline_row(*run) for run in runs(results)]
    if not rows:
        sys.exit(f"{results}: no attacked checkpoint saved; run local/demo_calibration.sh first")
    chosen = choose(rows)
    if chosen is None:
        sys.exit("no candidate step count qualifies on every seed: nothing chosen")
    sources = [folder / "rows.tsv" for seed, step, folder in runs(results) if step == chosen]
    tables = [ScoreTable.from_rows(read_rows(path)) for path in sources]
    out = {"rule": f"the fewest candidate steps at which every seed (>= {CRITERIA['seeds']}) qualifies: held-out "
                   f"AUROC >= {CRITERIA['auroc']}, interval low > {CRITERIA['ci_low']}, p < "
                   f"{CRITERIA['p_value']}; cells: per family, among the demo's attacks, the cell whose AUROC on "
                   "all utterances averaged over the seeds is farthest from 0.5",
           "steps": chosen, "seeds": sorted({r["seed"] for r in rows}),
           "calibration_rows": [str(p.relative_to(results)) for p in sources],
           **study_calibration.family_cells(tables, list(DEMO_ATTACKS))}
    path = results / "chosen.json"
    if path.exists():  # checked before anything is written
        old = json.loads(path.read_text(encoding="utf-8"))
        if (old.get("steps"), old.get("cells")) != (out["steps"], out["cells"]):
            sys.exit(f"{path}: chosen as {old.get('steps')} steps, {old.get('cells')}; the rule now gives "
                     f"{out['steps']}, {out['cells']}. A choice is never replaced once the demo has run at it.")
    with open(results / "calibration.tsv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_json_atomic(path, out)
    print(table(rows))
    print(f"chosen: {chosen} steps; pre-registered cells {json.dumps(out['cells'])} -> {path}")
    return out


def table(rows: list[dict]) -> str:
    lines = ["| seed | steps | held-out AUROC [95% CI] | p | attack (t, direction) | qualifies |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        t = "" if r["headline_t"] == "-" else f" t {r['headline_t']}"
        ci = "[n/a]" if r["auroc_ci_low"] is None else f"[{r['auroc_ci_low']:.3f}, {r['auroc_ci_high']:.3f}]"
        lines.append(f"| {r['seed']} | {r['step']} | {r['auroc']:.3f} {ci} | {r['p_value']:.3g} | "
                     f"{r['headline_attack']}{t}, {r['direction']} | {'yes' if r['qualifies'] else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("save", "decide", "table"))
    parser.add_argument("--work-dir", type=Path, default=HERE / "demo_calibration")
    parser.add_argument("--results-dir", type=Path, default=HERE.parents[1] / "docs" / "demo_calibration")
    args = parser.parse_args()
    if args.action == "save":
        save(args.work_dir, args.results_dir)
    elif args.action == "decide":
        decide(args.results_dir)
    else:
        print(table([headline_row(*run) for run in runs(args.results_dir)]))


if __name__ == "__main__":
    main()
