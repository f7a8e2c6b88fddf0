"""Does a system leak less than its baseline? Paired comparisons of held-out AUROC, across training seeds.

Systems are grouped by name (exp/vp, exp/vp.seed2, exp/vp.seed3 are three seeds of vp). Every group is
compared with the reference group (vp), and a defense of order n (DualMD, DistillMD, DP-SGD) also with the
plain system of its order (hold3 for distillmd_hold3), since that is what it changes. Each comparison is
holdtts.privacy.statistics.compare on the utterances both were attacked on: each model picks its strongest
attack and t on the calibration half, AUROC is measured on the test half, and the difference gets a paired
bootstrap interval and p-value (utterances resampled jointly, seeds within each system). It is made for
every attack together, for the decoder attacks alone and for the text-side attacks alone (which no diffusion
defense covers).

With pre-registered cells (`holdtts report --preregistered FILE`: one attack, t and direction per family,
chosen on the baseline's calibration runs before these models were attacked) every model is also read at
that one cell on all the shared utterances: no calibration half is spent, so all members count.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from holdtts.errors import InputError
from holdtts.privacy.statistics import (
    FixedCell,
    ScoreTable,
    auroc,
    calibration_mask,
    compare,
    fixed_choice,
    oriented,
    select,
)
from holdtts.report.collect import TEXT_SIDE_ATTACKS, SystemRecord

COMPARISON_SAMPLES = 2000
COMPARISON_SEED = 0
MIN_SEEDS = 2  # training seeds per side before a held-out comparison is resolved (verdict)
PLAIN_KINDS = ("vp", "hold")
FAMILIES = ("all", "decoder", "text")
FAMILY_LABELS = {"all": "every attack", "decoder": "decoder attacks", "text": "text-side attacks"}
# The optimisation budget a comparison assumes equal on both sides (config.yaml's train section). A system
# trained otherwise (the CPU study's order-3 dual-model defenses at half the learning rate, after diverging)
# is compared all the same, and the report says how it differs beside its row.
BUDGET_KEYS = ("batch_size", "max_steps", "max_epochs", "lr", "betas", "weight_decay", "lr_schedule",
               "warmup_steps", "grad_clip", "ema_decay")


@dataclass
class Group:
    name: str
    records: list[SystemRecord]

    @property
    def first(self) -> SystemRecord:
        return self.records[0]

    @property
    def plain(self) -> bool:
        """An undefended model: vp or HOLD++ trained the ordinary way."""
        r = self.first
        return r.kind in PLAIN_KINDS and r.privacy is None and r.system_info is None


def group_records(records: list[SystemRecord]) -> list[Group]:
    groups: dict[str, Group] = {}
    for record in records:
        groups.setdefault(record.group, Group(record.group, [])).records.append(record)
    return list(groups.values())


def baselines_for(group: Group, groups: list[Group], reference: Group) -> list[Group]:
    """The reference group, and for a defense of order n > 1 also the plain system of order n."""
    if group is reference:
        return []
    out = [reference]
    if not group.plain and (group.first.order or 1) > 1:
        same = [g for g in groups if g.plain and g.first.order == group.first.order and g is not reference]
        out += same[:1]
    return out


def family_attacks(family: str, tables: list[ScoreTable]) -> list[str] | None:
    names = {a for t in tables for a in t.attacks}
    if family == "all":
        return None
    if family == "text":
        return sorted(names & set(TEXT_SIDE_ATTACKS))
    return sorted(names - set(TEXT_SIDE_ATTACKS))


def record_table(record: SystemRecord, attacks: list[str] | None, split_seed: int = 0) -> ScoreTable | None:
    """The record's attack directory (with rows) whose calibration-half pick, among `attacks`, is strongest."""
    best, best_value = None, -1.0
    for run in record.attack_runs:
        table = run.table()
        if table is None:
            continue
        if attacks is not None:
            table = table.restrict(attacks=attacks)
            if not table.cells:
                continue
        try:
            cal = calibration_mask(table.utt_ids, table.labels, split_seed)
        except ValueError:
            continue
        choice, _ = select(table, cal)
        if choice.calibration_auroc > best_value:
            best, best_value = table, choice.calibration_auroc
    return best


def read_preregistered(path: str | Path) -> dict[str, FixedCell]:
    """family -> its cell, from a JSON file {"cells": {"decoder": {"attack", "t", "direction"}, ...}}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        cells = {family: FixedCell.from_dict(entry) for family, entry in data["cells"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(f"not a pre-registration file ({{'cells': {{family: {{attack, t, direction}}}}}}): "
                         f"{err}", path) from err
    unknown = sorted(set(cells) - set(FAMILIES))
    if unknown:
        raise InputError(f"unknown attack family {unknown[0]!r} (known: {', '.join(FAMILIES)})", path)
    for family, cell in cells.items():
        if family != "all" and (cell.attack in TEXT_SIDE_ATTACKS) != (family == "text"):
            raise InputError(f"the {family} cell's attack {cell.attack!r} is not one of the "
                             f"{FAMILY_LABELS[family]}", path)
    return cells


def cell_table(record: SystemRecord, cell: FixedCell) -> ScoreTable | None:
    """Of the record's attack directories (with rows) that scored the cell, the one where it reads the
    highest AUROC (in the cell's direction, on all its utterances). A model with several directories
    (DualMD's teachers, each attacked on its own members) is read where it leaks most: a maximum that can
    only make a defense look leakier, never safer."""
    best, best_value = None, -1.0
    for run in record.attack_runs:
        table = run.table()
        choice = None if table is None else fixed_choice(table, cell)
        if choice is None:
            continue
        value = float(oriented(auroc(table.scores[choice.index], table.labels), choice.direction))
        if value > best_value:
            best, best_value = table, value
    return best


def comparisons(records: list[SystemRecord], reference_name: str, samples: int = COMPARISON_SAMPLES,
                seed: int = COMPARISON_SEED, preregistered: dict[str, FixedCell] | None = None) -> list[dict]:
    """One entry per (system group, baseline group): the paired difference per attack family, or why not;
    with `preregistered`, also per family at its pre-registered cell (entry["preregistered"])."""
    groups = group_records(records)
    reference = next((g for g in groups if g.name == reference_name), groups[0])
    out = []
    for group in groups:
        for baseline in baselines_for(group, groups, reference):
            entry = {"system": group.name, "baseline": baseline.name,
                     "system_models": [r.name for r in group.records],
                     "baseline_models": [r.name for r in baseline.records], "families": {}}
            entry["training_differences"] = training_differences(group, baseline)
            for family in FAMILIES:
                entry["families"][family] = _compare_family(group, baseline, family, samples, seed)
            if preregistered:
                entry["preregistered"] = {family: _compare_cell(group, baseline, cell, samples, seed)
                                          for family, cell in preregistered.items()}
            out.append(entry)
    return out


def _value_order(value) -> tuple:
    """Numbers first, by value; then anything else by its JSON text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, json.dumps(value))


def training_differences(group: Group, baseline: Group) -> list[dict]:
    """The budget settings (BUDGET_KEYS of config.yaml's train section) whose values differ between the two
    sides: one item per key, with the distinct values each side's models trained at, sorted. Models without
    a config.yaml are left out of the values and named once (key "config.yaml")."""
    def values(records: list[SystemRecord], key: str) -> list:
        seen = {json.dumps(record.train_setting(key)) for record in records if record.config is not None}
        return sorted((json.loads(v) for v in seen), key=_value_order)

    out = []
    for key in BUDGET_KEYS:
        mine, theirs = values(group.records, key), values(baseline.records, key)
        if mine != theirs:
            out.append({"key": f"train.{key}", "system": mine, "baseline": theirs})
    missing = [[r.name for r in side.records if r.config is None] for side in (group, baseline)]
    if any(missing):
        out.append({"key": "config.yaml", "system": missing[0], "baseline": missing[1]})
    return out


def _compare_family(group: Group, baseline: Group, family: str, samples: int, seed: int) -> dict:
    all_tables = [t for r in group.records + baseline.records for run in r.attack_runs
                  if (t := run.table()) is not None]
    attacks = family_attacks(family, all_tables)
    if attacks is not None and not attacks:
        return {"result": None, "why": f"no {FAMILY_LABELS[family]} were run"}
    return _outcome([record_table(r, attacks) for r in group.records],
                    [record_table(r, attacks) for r in baseline.records], group, baseline,
                    f"no rows.tsv with {FAMILY_LABELS[family]}", samples=samples, seed=seed, attacks=attacks)


def _compare_cell(group: Group, baseline: Group, cell: FixedCell, samples: int, seed: int) -> dict:
    return _outcome([cell_table(r, cell) for r in group.records], [cell_table(r, cell) for r in baseline.records],
                    group, baseline, f"no model attacked with {cell.label()}", samples=samples, seed=seed,
                    cell=cell)


def _outcome(system: list, base: list, group: Group, baseline: Group, lacking: str, **options) -> dict:
    """compare() on the models that have a table (seeds still without one are left out), or why not."""
    system, base = [t for t in system if t is not None], [t for t in base if t is not None]
    if not system or not base:
        return {"result": None, "why": f"{group.name if not system else baseline.name} has {lacking}"}
    try:
        result = compare(system, base, **options)
    except ValueError as err:
        return {"result": None, "why": str(err)}
    if result is None:
        return {"result": None, "why": "fewer than 4 shared members or non-members"}
    return {"result": result, "why": None}


def verdict(result: dict, alpha: float = 0.05) -> str:
    """Plain words for one comparison. A held-out comparison needs MIN_SEEDS training seeds on each side
    to be resolved: with one, each model's pick on its calibration half is a single draw whose own
    variability the interval (over test utterances) does not carry, and two systems without any signal are
    called different at p < 0.05 in about 10-13% of simulated runs (bench/bench_statistics.py
    --comparisons, docs/statistics.md). A pre-registered cell has no pick and no such limit, but with fewer
    seeds its words are about the trained models, not the systems: the interval resamples utterances only."""
    low, high = result["ci"]
    few_seeds = min(result["system"]["seeds"], result["baseline"]["seeds"]) < MIN_SEEDS
    if result.get("preregistered_cell") is None and few_seeds:
        return f"not resolved with fewer than {MIN_SEEDS} training seeds a side"
    if high < 0 and result["p_value"] < alpha:
        words = "lower"
    elif low > 0 and result["p_value"] < alpha:
        words = "higher"
    else:
        words = "no difference resolved"
    if few_seeds:
        words += f" (for these trained models; fewer than {MIN_SEEDS} training seeds a side, so not for the systems)"
    return words
