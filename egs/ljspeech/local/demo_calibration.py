#!/usr/bin/env python3
"""The demo's membership setting from vp's calibration runs alone (local/demo_calibration.sh,
docs/demo_calibration.md).

    local/demo_calibration.py save   --work-dir demo_calibration --results-dir ../../docs/demo_calibration
    local/demo_calibration.py decide --results-dir ../../docs/demo_calibration

save: each run's training summary and config, and each attacked checkpoint's rows, metrics and settings,
into <results>/vp_seed<S>/ (no checkpoint).
decide: from the saved metrics, calibration.tsv (one row per seed and step count: the held-out headline)
and chosen.json: the fewest candidate steps at which every seed (at least three) qualifies, by the study's
criteria (held-out AUROC >= 0.9, its interval's lower end > 0.8, permutation p < 0.01), and at those steps
one attack cell per family pre-registered for the demo's report (holdtts report --preregistered): the cell,
among the attacks the demo runs, whose AUROC on all utterances averaged over the seeds is farthest from 0.5
(holdtts.privacy.statistics.consensus_cell, the study's rule). Nothing here looks at any other system.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

from holdtts.privacy.metrics import read_rows
from holdtts.privacy.statistics import ScoreTable, consensus_cell
from holdtts.report.collect import TEXT_SIDE_ATTACKS
from holdtts.utils.fileio import write_json_atomic

CRITERIA = {"auroc_min": 0.9, "ci_low_min": 0.8, "p_max": 0.01}  # the study's (conf/study/calibration.yaml)
MIN_SEEDS = 3
# the attacks `./run.sh --corpus mini` runs on vp (recipes/corpus_defaults.sh); the pre-registered cells
# must be among them
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
    low, high = h["auroc_ci"]
    ok = h["auroc"] >= CRITERIA["auroc_min"] and low > CRITERIA["ci_low_min"] and h["p_value"] < CRITERIA["p_max"]
    return {"seed": seed, "step": step, "headline_attack": h["attack"], "headline_t": h["t"],
            "direction": h["direction"], "auroc": h["auroc"], "auroc_ci_low": low, "auroc_ci_high": high,
            "p_value": h["p_value"], "num_members_test": h["num_members_test"],
            "num_nonmembers_test": h["num_nonmembers_test"], "qualifies": ok}


def decide(results: Path) -> dict:
    rows = [headline_row(*run) for run in runs(results)]
    if not rows:
        sys.exit(f"{results}: no attacked checkpoint saved; run local/demo_calibration.sh first")
    with open(results / "calibration.tsv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    seeds = sorted({r["seed"] for r in rows})
    chosen = None
    for step in sorted({r["step"] for r in rows}):
        at = {r["seed"]: r for r in rows if r["step"] == step}
        # a step qualifies only when every seed reached it, at least three, and each qualifies there
        if len(at) >= MIN_SEEDS and set(at) == set(seeds) and all(r["qualifies"] for r in at.values()):
            chosen = step
            break
        # a step that one seed already fails cannot qualify: the fewest qualifying steps are later
    if chosen is None:
        sys.exit("no candidate step count qualifies on every seed: nothing chosen")
    sources = [folder / "rows.tsv" for seed, step, folder in runs(results) if step == chosen]
    tables = [ScoreTable.from_rows(read_rows(path)) for path in sources]
    families = {"decoder": [a for a in DEMO_ATTACKS if a not in TEXT_SIDE_ATTACKS],
                "text": [a for a in DEMO_ATTACKS if a in TEXT_SIDE_ATTACKS]}
    out = {"rule": f"the fewest candidate steps at which every seed (>= {MIN_SEEDS}) qualifies: held-out "
                   f"AUROC >= {CRITERIA['auroc_min']}, interval low > {CRITERIA['ci_low_min']}, p < "
                   f"{CRITERIA['p_max']}; cells: per family, among the demo's attacks, the cell whose AUROC on "
                   "all utterances averaged over the seeds is farthest from 0.5",
           "steps": chosen, "seeds": seeds, "calibration_rows": [str(p.relative_to(results)) for p in sources],
           "cells": {}, "evidence": {}}
    for family, names in families.items():
        cell, evidence = consensus_cell(tables, names)
        out["cells"][family] = {"attack": cell.attack, "t": cell.t,
                                "direction": "as defined" if cell.direction > 0 else "reversed"}
        out["evidence"][family] = evidence
    path = results / "chosen.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if (old.get("steps"), old.get("cells")) != (out["steps"], out["cells"]):
            sys.exit(f"{path}: chosen as {old.get('steps')} steps, {old.get('cells')}; the rule now gives "
                     f"{out['steps']}, {out['cells']}. A choice is never replaced once the demo has run at it.")
    write_json_atomic(path, out)
    print(table(rows))
    print(f"chosen: {chosen} steps; pre-registered cells {json.dumps(out['cells'])} -> {path}")
    return out


def table(rows: list[dict]) -> str:
    lines = ["| seed | steps | held-out AUROC [95% CI] | p | attack (t, direction) | qualifies |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        t = "" if r["headline_t"] == "-" else f" t {r['headline_t']}"
        lines.append(f"| {r['seed']} | {r['step']} | {r['auroc']:.3f} [{r['auroc_ci_low']:.3f}, "
                     f"{r['auroc_ci_high']:.3f}] | {r['p_value']:.3g} | {r['headline_attack']}{t}, "
                     f"{r['direction']} | {'yes' if r['qualifies'] else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("save", "decide", "table"))
    parser.add_argument("--work-dir", type=Path, default=Path("demo_calibration"))
    parser.add_argument("--results-dir", type=Path, default=Path("../../docs/demo_calibration"))
    args = parser.parse_args()
    if args.action == "save":
        save(args.work_dir, args.results_dir)
    elif args.action == "decide":
        decide(args.results_dir)
    else:
        print(table([headline_row(*run) for run in runs(args.results_dir)]))


if __name__ == "__main__":
    main()
