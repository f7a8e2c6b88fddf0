#!/usr/bin/env python3
"""The CPU study's calibration: collect vp's leakage at every calibration checkpoint, and freeze the setting.

    local/study_calibration.py collect --work-dir study --results-dir ../../docs/study
    local/study_calibration.py freeze  --work-dir study --results-dir ../../docs/study
    local/study_calibration.py frozen  --results-dir ../../docs/study members|config   (for the shell)
    local/study_calibration.py table   --results-dir ../../docs/study    (markdown of calibration.tsv)
    local/study_calibration.py replication --results-dir ../../docs/study  (each seed of a replicated setting)
    local/study_calibration.py figure  --results-dir ../../docs/study    (calibration.png)
    local/study_calibration.py preregister --results-dir ../../docs/study (preregistered.json)

`collect` reads study/calib/<setting>/attack_step-N/{rows.tsv,metrics.json} (vp only), copies the rows and
metrics into <results-dir>/calibration/<setting>/step-N/, and writes <results-dir>/calibration.tsv: one line
per (setting, checkpoint) with the held-out headline (attack and t picked on a calibration half of the
utterances, AUROC on the other half, permutation p), the in-sample maximum for comparison, the epochs and
the training seconds it took to get there. Every number recomputes from the copied rows.

`freeze` applies the rule written in conf/study/calibration.yaml and writes <results-dir>/frozen.json and
<results-dir>/frozen.yaml (a config overlay every system of the main study is trained with). A frozen
setting is never replaced: if the files exist and the rule now picks something else, it is an error.

`preregister` fixes one attack cell (attack, t, direction) per family (decoder attacks; text-side attacks)
from the frozen setting's calibration runs alone (vp, every training seed in frozen.json's evidence, at the
frozen checkpoint): the cell whose AUROC on all utterances, averaged over those runs, is farthest from 0.5
(statistics.consensus_cell). `holdtts report --preregistered` then reads every main-study model at those
cells on all its utterances. Written once, like the freeze: never replaced by a different pick.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
from pathlib import Path

import yaml

from holdtts.privacy.metrics import read_rows
from holdtts.privacy.statistics import ScoreTable, consensus_cell, leakage
from holdtts.report.collect import TEXT_SIDE_ATTACKS
from holdtts.utils.fileio import write_json_atomic, write_text_atomic

HERE = Path(__file__).resolve().parent.parent  # egs/ljspeech
COLUMNS = ("setting", "members", "nonmembers", "step", "epoch", "train_seconds", "headline_attack", "headline_t",
           "direction", "auroc", "auroc_ci_low", "auroc_ci_high", "p_value", "num_members_test",
           "num_nonmembers_test", "in_sample_max_auroc", "qualifies")
_STEP = re.compile(r"^attack_step-0*(\d+)$")


def load_grid(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        grid = yaml.safe_load(f)
    names = [s["name"] for s in grid["settings"]]
    if len(set(names)) != len(names):
        sys.exit(f"{path}: setting names must be unique")
    return grid


def epochs_done(log_entries: list[tuple[int, int]], step: int) -> int | None:
    """Epochs completed after `step` optimizer steps, from (step, epoch) pairs of train_log.jsonl.

    The log writes, with each step, the 0-based index of the epoch that step belongs to, so the logged
    value is one less than the epochs done once an epoch's last step has run. The steps per epoch come
    from the log itself (constant within a run)."""
    pairs = sorted(set(log_entries))
    if not pairs:
        return None
    (s0, e0), (s1, e1) = pairs[0], pairs[-1]
    if e1 == e0:  # a single epoch logged: the step count says nothing about its length
        return e0 + 1 if step >= s1 else e0
    steps_per_epoch = round((s1 - s0) / (e1 - e0))
    return step // max(steps_per_epoch, 1)


def _epoch_and_seconds(exp: Path, step: int) -> tuple[int | None, float | None]:
    """The epochs done at `step` (train_log.jsonl) and the training seconds to reach it (the run's seconds
    per step, measured over the whole run, times step)."""
    entries = []
    log = exp / "train_log.jsonl"
    if log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry.get("step"), int) and isinstance(entry.get("epoch"), int):
                entries.append((entry["step"], entry["epoch"]))
    epoch = epochs_done(entries, step)
    summary = exp / "train_summary.json"
    seconds = None
    if summary.is_file():
        s = json.loads(summary.read_text(encoding="utf-8"))
        if s.get("train_seconds") and s.get("step"):
            seconds = s["train_seconds"] * step / s["step"]
    return epoch, seconds


def qualifies(row: dict, criteria: dict) -> bool:
    return (row["auroc"] >= criteria["auroc"] and row["auroc_ci_low"] is not None
            and row["auroc_ci_low"] > criteria["ci_low"] and row["p_value"] < criteria["p_value"])


def collect(work: Path, results: Path, grid: dict) -> list[dict]:
    rows = []
    for setting in grid["settings"]:
        exp = work / "calib" / setting["name"]
        if not exp.is_dir():
            print(f"{exp}: not trained yet", file=sys.stderr)
            continue
        for name in ("train_summary.json", "config.yaml"):  # where train_seconds come from
            if (exp / name).is_file():
                (results / "calibration" / setting["name"]).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(exp / name, results / "calibration" / setting["name"] / name)
        for attack_dir in sorted((d for d in exp.iterdir() if _STEP.match(d.name)),
                                 key=lambda d: int(_STEP.match(d.name).group(1))):
            if not (attack_dir / "rows.tsv").is_file():
                continue
            step = int(_STEP.match(attack_dir.name).group(1))
            out = results / "calibration" / setting["name"] / f"step-{step}"
            out.mkdir(parents=True, exist_ok=True)
            for name in ("rows.tsv", "metrics.json", "attack.json"):
                if (attack_dir / name).is_file():
                    shutil.copyfile(attack_dir / name, out / name)
            saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
            # the committed rows must give the committed headline: recompute it (the per-cell bootstraps are
            # left to holdtts.privacy.metrics.metrics_from_rows, which reproduces the whole file)
            again = leakage(ScoreTable.from_rows(read_rows(out / "rows.tsv")), split_seed=saved["split"]["seed"],
                            permutations=saved["permutation"]["permutations"],
                            bootstrap_samples=saved["bootstrap"]["samples"], seed=saved["bootstrap"]["seed"],
                            alternative=saved["alternative"])
            if again["headline"] != saved["headline"]:
                sys.exit(f"{out}: metrics.json does not recompute from rows.tsv")
            h = saved["headline"]
            epoch, seconds = _epoch_and_seconds(exp, step)
            row = {"setting": setting["name"], "members": saved["num_members"],
                   "nonmembers": saved["num_nonmembers"], "step": step, "epoch": epoch,
                   "train_seconds": None if seconds is None else round(seconds, 1),
                   "headline_attack": h["attack"], "headline_t": h["t"], "direction": h["direction"],
                   "auroc": h["auroc"], "auroc_ci_low": h["auroc_ci"][0] if h["auroc_ci"] else None,
                   "auroc_ci_high": h["auroc_ci"][1] if h["auroc_ci"] else None, "p_value": h["p_value"],
                   "num_members_test": h["num_members_test"], "num_nonmembers_test": h["num_nonmembers_test"],
                   "in_sample_max_auroc": saved["in_sample_max"]["auroc"]}
            row["qualifies"] = qualifies(row, grid["criteria"])
            rows.append(row)
    results.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(COLUMNS)]
    for row in rows:
        lines.append("\t".join("" if row[c] is None else (f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]))
                               for c in COLUMNS))
    write_text_atomic(results / "calibration.tsv", "\n".join(lines) + "\n")
    return rows


def group_of(setting: dict) -> str:
    """The setting a run replicates (its own name when it replicates none): replicates differ only in
    train.seed."""
    return setting.get("replicate_of", setting["name"])


def replication(rows: list[dict], grid: dict) -> list[dict]:
    """One entry per (setting group, epochs): every training seed's row at that epoch count, and whether the
    group qualifies there: at least criteria.seeds runs reached it and every one of them qualifies (rule 1b;
    a single lucky seed is an in-sample maximum over training runs)."""
    groups = {s["name"]: group_of(s) for s in grid["settings"]}
    needed = int(grid["criteria"].get("seeds", 1))
    entries: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        if row["epoch"] is not None:
            entries.setdefault((groups.get(row["setting"], row["setting"]), int(row["epoch"])), []).append(row)
    out = []
    for (group, epoch), runs in entries.items():
        seconds = [r["train_seconds"] for r in runs]
        out.append({"group": group, "epoch": epoch, "members": runs[0]["members"], "runs": runs,
                    "qualifies": len(runs) >= needed and all(r["qualifies"] for r in runs),
                    "train_seconds": None if None in seconds else max(seconds)})
    return sorted(out, key=lambda e: (e["group"], e["epoch"]))


def pick(rows: list[dict], grid: dict) -> dict | None:
    """Among (setting group, epochs) that qualify on every seed (replication) and whose slowest seed fits
    the budget: the most members, then the least training time."""
    budget = grid["max_model_minutes"] * 60
    fitting = [e for e in replication(rows, grid)
               if e["qualifies"] and e["train_seconds"] is not None and e["train_seconds"] <= budget]
    if not fitting:
        return None
    return min(fitting, key=lambda e: (-e["members"], e["train_seconds"]))


def freeze(work: Path, results: Path, grid: dict) -> None:
    rows = collect(work, results, grid)
    chosen = pick(rows, grid)
    if chosen is None:
        sys.exit("no calibration setting meets the criteria on every training seed within the budget: add "
                 "settings or replicates to conf/study/calibration.yaml (more epochs, fewer members, more "
                 "capacity, more seeds) and run again")
    setting = next(s for s in grid["settings"] if s["name"] == chosen["group"])
    overlay = {}
    for item in setting.get("set", []):
        key, value = item.split("=", 1)
        if key == "train.seed":
            continue  # the main study trains its own seeds
        section, name = key.split(".", 1)
        overlay.setdefault(section, {})[name] = yaml.safe_load(value)
    # the budget is epochs over each model's own training set, so a DualMD teacher (half the members)
    # gets as many passes over its half as vp over all of them
    overlay.setdefault("train", {}).update({"max_epochs": int(chosen["epoch"]), "max_steps": 0})
    first = chosen["runs"][0]
    frozen = {"setting": chosen["group"], "members": chosen["members"], "nonmembers": first["nonmembers"],
              "epochs": int(chosen["epoch"]), "calibration_step": first["step"],
              "base_config": grid["base_config"], "overlay": overlay,
              "evidence": [{k: r[k] for k in COLUMNS} for r in chosen["runs"]],
              "criteria": grid["criteria"], "max_model_minutes": grid["max_model_minutes"]}
    path = results / "frozen.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if {k: old.get(k) for k in ("setting", "members", "epochs", "overlay")} != {
                k: frozen[k] for k in ("setting", "members", "epochs", "overlay")}:
            sys.exit(f"{path}: frozen as {old['setting']} ({old['members']} members, {old['epochs']} epochs); the "
                     f"rule now picks {frozen['setting']} ({frozen['members']} members, {frozen['epochs']} epochs). "
                     "A frozen setting is never replaced once defenses may have been trained with it; move "
                     "it by hand to superseded/ only if no main-study model of it has been attacked, or if "
                     "vp did not replicate it, and say why in docs/study.md.")
        print(f"{path}: already frozen as {old['setting']}; unchanged")
        return
    write_json_atomic(path, frozen)
    text = ("# Frozen by local/study_calibration.py from vp's calibration runs alone (docs/study.md).\n"
            f"# Setting {frozen['setting']}: {frozen['members']} members, {frozen['epochs']} epochs; held-out "
            "AUROC per training seed:\n"
            + "".join(f"#   {r['setting']}: {r['auroc']:.3f} [{r['auroc_ci_low']:.3f}, {r['auroc_ci_high']:.3f}], "
                      f"p = {r['p_value']:.3g}\n" for r in chosen["runs"])
            + yaml.safe_dump(overlay, sort_keys=True))
    write_text_atomic(results / "frozen.yaml", text)
    print(f"frozen: {frozen['setting']} ({frozen['members']} members, {frozen['epochs']} epochs, "
          f"{len(chosen['runs'])} seeds) -> {path}")


def family_cells(tables: list[ScoreTable], attacks: list[str]) -> dict:
    """{"cells": ..., "evidence": ...}: per family (decoder attacks; text side) among `attacks`, the
    consensus cell of the calibration tables (statistics.consensus_cell), as a pre-registration file
    holds them."""
    out: dict = {"cells": {}, "evidence": {}}
    families = {"decoder": [a for a in attacks if a not in TEXT_SIDE_ATTACKS],
                "text": [a for a in attacks if a in TEXT_SIDE_ATTACKS]}
    for family, names in families.items():
        if not names:
            continue
        cell, evidence = consensus_cell(tables, names)
        out["cells"][family] = {"attack": cell.attack, "t": cell.t,
                                "direction": "as defined" if cell.direction > 0 else "reversed"}
        out["evidence"][family] = evidence
    return out


def preregister(results: Path) -> dict:
    """Write <results>/preregistered.json from the frozen setting's calibration rows (vp only)."""
    frozen = json.loads((results / "frozen.json").read_text(encoding="utf-8"))
    sources = [results / "calibration" / run["setting"] / f"step-{run['step']}" / "rows.tsv"
               for run in frozen["evidence"]]
    tables = [ScoreTable.from_rows(read_rows(path)) for path in sources]
    out = {"rule": "per family, the cell whose AUROC on all utterances, averaged over the frozen setting's "
                   "calibration runs (vp only), is farthest from 0.5; direction: the side of 0.5 it is on",
           "setting": frozen["setting"], "epochs": frozen["epochs"],
           "calibration_rows": [str(p.relative_to(results)) for p in sources],
           **family_cells(tables, sorted({a for t in tables for a in t.attacks}))}
    path = results / "preregistered.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("cells") != out["cells"]:
            sys.exit(f"{path}: pre-registered as {old.get('cells')}; the rule now gives {out['cells']}. A "
                     "pre-registration is never replaced once models have been read at it.")
        print(f"{path}: already pre-registered; unchanged")
        return old
    write_json_atomic(path, out)
    return out


def _read_tsv(results: Path) -> list[dict]:
    import csv

    with open(results / "calibration.tsv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def table(results: Path) -> str:
    """docs/study.md's calibration table, from calibration.tsv."""
    lines = ["| setting | members | epochs | training s | held-out AUROC [95% CI] | attack (t, direction) | p | "
             "in-sample max (optimistic) | qualifies |", "|---|---|---|---|---|---|---|---|---|"]
    for r in _read_tsv(results):
        t = "" if r["headline_t"] in ("", "-") else f"t {r['headline_t']}, "
        lines.append(f"| {r['setting']} | {r['members']} | {r['epoch']} | {float(r['train_seconds']):.0f} | "
                     f"{float(r['auroc']):.3f} [{float(r['auroc_ci_low']):.3f}, {float(r['auroc_ci_high']):.3f}] | "
                     f"{r['headline_attack']} ({t}{r['direction']}) | {float(r['p_value']):.2g} | "
                     f"{float(r['in_sample_max_auroc']):.3f} | {r['qualifies']} |")
    return "\n".join(lines)


def replication_table(results: Path, grid: dict) -> str:
    """docs/study.md's replication table: per setting group and epoch count, each training seed's held-out
    AUROC and p, and whether the group qualifies on every seed (rule 1b), from calibration.tsv."""
    rows = []
    for r in _read_tsv(results):
        rows.append({**r, "members": int(r["members"]), "epoch": int(r["epoch"]) if r["epoch"] else None,
                     "train_seconds": float(r["train_seconds"]) if r["train_seconds"] else None,
                     "qualifies": r["qualifies"] == "True"})
    needed = int(grid["criteria"].get("seeds", 1))
    lines = [f"| setting | epochs | seeds | held-out AUROC per seed (p) | qualifies on all (>= {needed} seeds) |",
             "|---|---|---|---|---|"]
    for e in replication(rows, grid):
        if len(e["runs"]) < 2:
            continue
        per_seed = "; ".join(f"{r['setting'].removeprefix(e['group']).lstrip('_') or 'first run'}: "
                             f"{float(r['auroc']):.3f} ({float(r['p_value']):.2g})" for r in e["runs"])
        lines.append(f"| {e['group']} | {e['epoch']} | {len(e['runs'])} | {per_seed} | {e['qualifies']} |")
    return "\n".join(lines)


def figure(results: Path) -> Path:
    """Held-out AUROC (with its interval) and permutation p against training seconds, one line per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _read_tsv(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == name]
        x = [float(r["train_seconds"]) / 60 for r in mine]
        y = [float(r["auroc"]) for r in mine]
        err = [[v - float(r["auroc_ci_low"]) for v, r in zip(y, mine)],
               [float(r["auroc_ci_high"]) - v for v, r in zip(y, mine)]]
        line = left.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
        right.plot(x, [float(r["p_value"]) for r in mine], marker="o", color=line[0].get_color(), label=name)
    left.axhline(0.5, color="grey", lw=0.8)
    left.axhline(0.9, color="grey", lw=0.8, ls="--")
    left.set(xlabel="vp training minutes (train_summary.json; round 1 on a loaded machine)",
             ylabel="held-out AUROC (95% CI)", title="leakage of vp by training time")
    right.axhline(0.01, color="grey", lw=0.8, ls="--")
    right.set(xlabel="vp training minutes", ylabel="permutation p", yscale="log", title="is leakage detected?")
    left.legend(fontsize=7)
    fig.tight_layout()
    path = results / "calibration.png"
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("collect", "freeze", "frozen", "table", "replication", "figure",
                                           "preregister"))
    parser.add_argument("field", nargs="?", help="for 'frozen': members | epochs | setting")
    parser.add_argument("--work-dir", type=Path, default=HERE / "study")
    parser.add_argument("--results-dir", type=Path, default=HERE.parent.parent / "docs" / "study")
    parser.add_argument("--grid", type=Path, default=HERE / "conf" / "study" / "calibration.yaml")
    args = parser.parse_args()
    grid = load_grid(args.grid)
    if args.action == "collect":
        for row in collect(args.work_dir, args.results_dir, grid):
            print(f"{row['setting']} step {row['step']} (epoch {row['epoch']}): held-out AUROC {row['auroc']:.3f} "
                  f"[{row['auroc_ci_low']}, {row['auroc_ci_high']}] p {row['p_value']:.3g}; in-sample max "
                  f"{row['in_sample_max_auroc']:.3f}; qualifies {row['qualifies']}")
    elif args.action == "freeze":
        freeze(args.work_dir, args.results_dir, grid)
    elif args.action == "table":
        print(table(args.results_dir))
    elif args.action == "replication":
        print(replication_table(args.results_dir, grid))
    elif args.action == "figure":
        print(figure(args.results_dir))
    elif args.action == "preregister":
        print(json.dumps(preregister(args.results_dir)["cells"]))
    else:
        frozen = json.loads((args.results_dir / "frozen.json").read_text(encoding="utf-8"))
        value = frozen[args.field]
        print(value if not isinstance(value, float) or not math.isinf(value) else "inf")


if __name__ == "__main__":
    main()
