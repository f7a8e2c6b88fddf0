"""The report: every number as a plain record (report.json, headline.tsv) and the markdown document.

`build_summary` computes everything from the system records (nothing is typed in by hand); `render_markdown`
only formats what the summary holds, so the document and report.json cannot disagree.
"""
from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime, timezone
from pathlib import Path

from holdtts.privacy.metrics import FPR_TARGETS, METRICS, NO_T
from holdtts.quality.bootstrap import paired_difference
from holdtts.report.collect import (
    QUALITY_METRICS,
    TEXT_SIDE_ATTACKS,
    AttackEntry,
    SystemRecord,
    per_sentence_values,
    read_quality_rows,
)
from holdtts.report.comparisons import (
    FAMILIES,
    FAMILY_LABELS,
    MIN_SEEDS,
    comparisons,
    read_preregistered,
    verdict,
)
from holdtts.report.figures import FigureSet, curves_label
from holdtts.report.quality_comparisons import METRICS as PAIRED_QUALITY
from holdtts.report.quality_comparisons import (
    READING_LABELS,
    first_result,
    has_own_reading,
    own_is_common,
    quality_comparisons,
)
from holdtts.report.quality_tables import quality_sections, quality_summary
from holdtts.report.speakers import speaker_section, speaker_summary

REPORT_FORMAT = "holdtts-report-3"  # 3: training AUROCs carry the epoch; training_curves
REFERENCE_SYSTEM = "vp"
DASH = "—"
# fractions, printed as percentages
ERROR_RATES = ("wer", "cer", "wer_domain", "cer_domain", "wer_espeak", "cer_espeak")
PAIRED_SAMPLES = 1000
PAIRED_SEED = 0
# Per-utterance columns of quality.tsv behind the set-level numbers that are a mean or a ratio of sums.
PAIRED_COLUMNS = {"dnsmos_ovrl": ("dnsmos_ovrl",), "mcd": ("mcd",), "wer": ("wer_errors", "wer_ref_words")}
HEADLINE_COLUMNS = (
    "system", "group", "kind", "order", "parameters", "train_hours", "steps", "epochs", "num_train_utts", "epsilon",
    "headline_attack", "headline_source", "headline_t", "headline_direction", "auroc", "auroc_ci_low",
    "auroc_ci_high", "p_value", "leakage_detected", "num_members_test", "num_nonmembers_test", "tpr@1%fpr",
    "tpr@0fpr", "in_sample_max_auroc", "duration_auroc", "prior_auroc",
    "fd_speaker", "fd_speaker_n_generated", "fd_speaker_n_reference",
    "fd_logmel", "fd_logmel_n_generated", "fd_logmel_n_reference",
    "dnsmos_ovrl", "dnsmos_ovrl_reference", "wer", "wer_reference", "mcd", "mcd_n", "decoder_rtf",
)


# --------------------------------------------------------------------------- numbers


def entry_record(entry: AttackEntry | None) -> dict | None:
    """An attack result as report.json holds it: where it comes from, and metrics.json's values unchanged."""
    if entry is None:
        return None
    return {"attack": entry.attack, "source": entry.source, "t": entry.t, **entry.values}


def _per_utterance(record: SystemRecord) -> dict[str, dict[str, tuple[float, ...]]]:
    """metric -> utt -> the values behind it, from quality.tsv."""
    if record.quality_rows_path is None:
        return {}
    rows = read_quality_rows(record.quality_rows_path)
    out = {}
    for metric, columns in PAIRED_COLUMNS.items():
        values = per_sentence_values(rows, columns, record.quality_rows_path)
        if values is not None:
            out[metric] = values
    return out


def quality_comparison(record: SystemRecord, reference: SystemRecord,
                       per_utt: dict[str, dict[str, dict[str, tuple[float, ...]]]]) -> list[dict]:
    """Each quality metric of `record` beside the reference system's, with a paired interval where the
    per-utterance values allow one."""
    out = []
    for metric in QUALITY_METRICS:
        value, base = record.quality_value(metric), reference.quality_value(metric)
        if value is None or base is None:
            continue
        item = {"metric": metric.key, "value": value, "reference_value": base, "difference": value - base,
                "relative": (value - base) / abs(base) if base else None,
                "lower_is_better": metric.lower_is_better, "paired": None}
        a, b = per_utt.get(record.name, {}).get(metric.key), per_utt.get(reference.name, {}).get(metric.key)
        if a is not None and b is not None:
            item["paired"] = paired_difference(a, b, samples=PAIRED_SAMPLES, seed=PAIRED_SEED)
        out.append(item)
    rtf, base_rtf = (record.quality or {}).get("decoder_rtf"), (reference.quality or {}).get("decoder_rtf")
    if rtf is not None and base_rtf is not None:
        out.append({"metric": "decoder_rtf", "value": rtf, "reference_value": base_rtf,
                    "difference": rtf - base_rtf, "relative": (rtf - base_rtf) / base_rtf if base_rtf else None,
                    "lower_is_better": True, "paired": None})
    return out


def reference_system(records: list[SystemRecord]) -> SystemRecord:
    """The baseline every system is compared with: vp when reported, else the first system."""
    return next((r for r in records if r.name == REFERENCE_SYSTEM), records[0])


def ordered_attacks(records: list[SystemRecord]) -> list[str]:
    """Attacks in the order they ran, the text-side ones last."""
    names = list(dict.fromkeys(a for r in records for a in r.attack_names))
    return [a for a in names if a not in TEXT_SIDE_ATTACKS] + [a for a in names if a in TEXT_SIDE_ATTACKS]


def heldout_entry(record: SystemRecord, attack: str) -> dict | None:
    """The attack at its calibration-picked t, measured on the test half, from the directory where its
    calibration AUROC is highest."""
    best = None
    for run in record.attack_runs:
        entry = run.metrics.get("heldout", {}).get(attack)
        if entry is not None and (best is None or entry["calibration_auroc"] > best["calibration_auroc"]):
            best = {**entry, "source": run.source}
    return best


def headline_row(record: SystemRecord) -> dict:
    head = record.headline()
    in_sample = record.in_sample_max()
    row = dict.fromkeys(HEADLINE_COLUMNS)
    row.update({"system": record.name, "group": record.group, "kind": record.kind, "order": record.order,
                "parameters": record.parameters, "steps": record.steps, "epochs": record.epochs,
                "train_hours": None if record.train_seconds is None else record.train_seconds / 3600,
                "num_train_utts": record.num_train_utts, "epsilon": record.epsilon})
    if head is not None:
        v = head.values
        row.update({"headline_attack": head.attack, "headline_source": head.source, "headline_t": head.t,
                    "headline_direction": v["direction"], "auroc": v["auroc"], "p_value": v["p_value_adjusted"],
                    "leakage_detected": v["p_value_adjusted"] < v.get("alpha", 0.05),
                    "num_members_test": v.get("num_members_test"),
                    "num_nonmembers_test": v.get("num_nonmembers_test"),
                    "in_sample_max_auroc": None if in_sample is None else in_sample.auroc})
        if v["auroc_ci"] is not None:
            row["auroc_ci_low"], row["auroc_ci_high"] = v["auroc_ci"]
        low_fpr = v.get("low_fpr") or {}
        row["tpr@1%fpr"], row["tpr@0fpr"] = low_fpr.get("tpr@1%fpr"), low_fpr.get("tpr@0fpr")
    for attack in TEXT_SIDE_ATTACKS:
        entry = heldout_entry(record, attack)
        row[f"{attack}_auroc"] = None if entry is None else entry["auroc"]
    for metric in QUALITY_METRICS:
        row[metric.key] = record.quality_value(metric)
        if metric.reference is not None:
            row[f"{metric.key}_reference"] = record.quality_value(metric, "reference")
        for name, size in zip(("n_generated", "n_reference") if len(metric.sizes) == 2 else ("n",),
                              record.quality_sizes(metric)):
            row[f"{metric.key}_{name}"] = size
    row["decoder_rtf"] = (record.quality or {}).get("decoder_rtf")
    return row


def _run_summary(record: SystemRecord, run) -> dict:
    attacks = {}
    for attack in run.attacks:
        result = run.metrics["attacks"][attack]
        attacks[attack] = {"best_t": result["best_t"], "best": result["by_t"][result["best_t"]],
                           "by_t": result["by_t"]}
    return {"path": str(run.path), "attacks": attacks, "bootstrap": run.metrics.get("bootstrap"),
            "settings": run.settings, "rows": None if run.rows_path is None else str(run.rows_path),
            "model_step": record.attack_step(run)}


def _quality_summary(record: SystemRecord) -> dict | None:
    if record.quality is None:
        return None
    q = record.quality
    out = {"path": str(record.quality_path)}
    for metric in QUALITY_METRICS:
        if record.quality_value(metric) is not None:
            out[metric.key] = {"generated": record.quality_value(metric),
                               "reference": record.quality_value(metric, "reference"),
                               "sizes": record.quality_sizes(metric)}
    out["decoder_rtf"] = q.get("decoder_rtf")
    out["settings"] = {k: q.get(k) for k in ("split", "n_utterances", "vocoder", "sampler", "steps",
                                             "temperature", "seed", "step", "reference", "device")}
    return out


def build_summary(records: list[SystemRecord], figures: FigureSet, exp_dir: Path,
                  splits_path: Path | None, splits: dict | None, preregistered: Path | None = None) -> dict:
    """Every number of the report, computed from the records (and the pre-registered cells, when given)."""
    cells = read_preregistered(preregistered) if preregistered is not None else None
    reference = reference_system(records)
    per_utt = {r.name: _per_utterance(r) for r in records}
    systems = {}
    for record in records:
        aucs = {f"{c.source}/{c.attack}@{c.t}": c.auc for c in figures.curves.get(record.name, [])}
        systems[record.name] = {
            "path": str(record.path),
            "kind": record.kind, "order": record.order, "parameters": record.parameters,
            "steps": record.steps, "epochs": record.epochs, "num_train_utts": record.num_train_utts,
            "latest_checkpoint_step": record.latest_checkpoint_step, "seed": record.seed,
            "epsilon": record.epsilon, "privacy": record.privacy, "system": record.system_info,
            "train_summary": record.train_summary,
            "group": record.group,
            "headline": entry_record(record.headline()),
            "heldout": {a: heldout_entry(record, a) for a in record.attack_names},
            "in_sample_max": entry_record(record.in_sample_max()),
            "attack_runs": {run.source: _run_summary(record, run) for run in record.attack_runs},
            "roc_auc_from_rows": aucs,
            "quality": _quality_summary(record),
            "quality_vs_reference": (quality_comparison(record, reference, per_utt)
                                     if record is not reference else []),
            "training_aurocs": {a: [p._asdict() for p in points] for a, points in record.training_aurocs.items()},
            "part_training_aurocs": {part: {a: [p._asdict() for p in points] for a, points in aurocs.items()}
                                     for part, aurocs in record.part_training_aurocs.items()},
        }
        speakers = speaker_summary(record)
        if speakers is not None:  # multi-speaker attack results only: single-speaker reports are unchanged
            systems[record.name]["speakers"] = speakers
        similarity = (record.quality or {}).get("speaker_similarity")
        if similarity is not None:  # multi-speaker quality results only
            systems[record.name]["speaker_similarity"] = similarity
    attack_tables = {}
    for attack in ordered_attacks(records):
        attack_tables[attack] = [{"system": r.name, **entry_record(e)} for r in records for e in r.best_entries(attack)]
    summary = {
        "comparisons": comparisons(records, reference.name, preregistered=cells),
        "quality_comparisons": quality_comparisons(records, reference.name),
        "preregistered": None if cells is None else {
            "path": str(preregistered), "cells": {family: cell.label() for family, cell in cells.items()}},
        "format": REPORT_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "exp_dir": str(exp_dir),
        "systems_order": [r.name for r in records],
        "reference_system": reference.name,
        "splits": {"path": str(splits_path) if splits_path else None, **(splits or {})} if splits else None,
        "headline": [headline_row(r) for r in records],
        "attack_tables": attack_tables,
        "systems": systems,
        "figures": figures.files,
        "training_curves": dataclasses.asdict(figures.training) if figures.training is not None else None,
        "notes": {
            "epsilon": "null means no privacy.json: no differential-privacy guarantee (epsilon is infinite)",
            "headline": "strongest attack and t picked on a calibration half of the utterances, AUROC measured "
                        "on the test half; p from a label-permutation test of the maximum over every cell",
            "in_sample_max": "maximum AUROC over every attack directory, attack and t, picked on the rows it "
                             "is reported on: an optimistic upper bound, not a finding",
            "comparisons": "held-out AUROC of the system minus its baseline on shared utterances, paired "
                           "bootstrap over test utterances (and training seeds); training_differences: the "
                           "budget settings of config.yaml's train section whose values differ between the "
                           "two sides (empty: trained at equal budget)",
            "quality_vs_reference": "difference = system - reference system; paired intervals resample the "
                                    "shared test utterances (percentile bootstrap, 95%)",
            "quality_comparisons": "seed-mean of each metric of the system minus the baseline's, on the test "
                                   "sentences every model was scored on; bootstrap over those sentences (jointly) "
                                   "and the training seeds within each system; common: evaluate/, own: each "
                                   "model's own sampler",
        },
    }
    summary["quality_tables"] = quality_summary(records, exp_dir)
    summary["findings"] = findings(records, reference, summary)
    return summary


# --------------------------------------------------------------------------- formatting


def _fmt(value, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _sig(value, digits: int = 4) -> str:
    return DASH if value is None else f"{value:.{digits}g}"


def _ci(values: dict | None, name: str, digits: int = 3) -> str:
    if values is None:
        return DASH
    low, high = values[f"{name}_ci"]
    return f"{values[name]:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _pct(value) -> str:
    return DASH if value is None else f"{100 * value:.1f}%"


def _count(value) -> str:
    if value is None:
        return DASH
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    return f"{value / 1e3:.1f}k" if value >= 1e4 else str(value)


def _epsilon(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:g}"


def _t(t: str | None) -> str:
    return DASH if t is None or t == NO_T else t


def _where(entry: dict) -> str:
    t = "" if entry["t"] == NO_T else f", t={entry['t']}"
    return f"{entry['attack']}{t}, {entry['source']}"


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _kind(row: dict) -> str:
    if row["kind"] is None:
        return DASH
    return row["kind"] if row["order"] is None else f"{row['kind']} (order {row['order']})"


def _quality_pair(value, reference, fmt) -> str:
    if value is None:
        return DASH
    return fmt(value) if reference is None else f"{fmt(value)} ({fmt(reference)})"


def _fd(row: dict, key: str) -> str:
    if row[key] is None:
        return DASH
    return f"{_sig(row[key])} (n {row[f'{key}_n_generated']}/{row[f'{key}_n_reference']})"


def _metric_label(key: str) -> str:
    labels = {m.key: m.label for m in QUALITY_METRICS}
    return labels.get(key, {"decoder_rtf": "decoder RTF"}.get(key, key))


def _metric_value(key: str, value: float) -> str:
    return _pct(value) if key in ERROR_RATES else _sig(value, 3)


# --------------------------------------------------------------------------- findings


def _describe_comparison(item: dict) -> str:
    key = item["metric"]
    text = f"{_metric_label(key)} {_metric_value(key, item['value'])} vs {_metric_value(key, item['reference_value'])}"
    paired = item["paired"]
    difference = item["difference"] if paired is None else paired["difference"]
    if difference == 0:
        return text + " (equal)"
    better = (difference < 0) == item["lower_is_better"]
    if paired is None:
        relative = "" if item["relative"] is None else f"{100 * item['relative']:+.0f}%, "
        return text + f" ({relative}{'better' if better else 'worse'}; no interval)"
    low, high = paired["ci"]
    scale = 100 if key in ERROR_RATES else 1
    unit = " points" if key in ERROR_RATES else ""
    resolved = low > 0 or high < 0
    return (text + f" (paired difference {scale * paired['difference']:+.3g}{unit} "
            f"[{scale * low:+.3g}, {scale * high:+.3g}] over {paired['n']} sentences: "
            + (f"{'better' if better else 'worse'}, resolved)" if resolved else "not resolved)"))


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def leakage_statement(name: str, head: AttackEntry) -> str:
    v = head.values
    p = v["p_value_adjusted"]
    adjusted = (f", Bonferroni over {v['directories']} attack directories" if v["directories"] > 1 else "")
    where = _where(entry_record(head))
    ci = "" if v["auroc_ci"] is None else f" {_interval(v['auroc_ci'])}"
    measured = (f"held-out AUROC {v['auroc']:.3f}{ci} ({where}, picked on the calibration half, measured on "
                f"{v.get('num_members_test', '?')} members / {v.get('num_nonmembers_test', '?')} non-members)")
    if p < v.get("alpha", 0.05):
        return f"{name}: leakage detected (p = {_p(p)}{adjusted}); {measured}."
    return f"{name}: leakage not detected at this sample size (p = {_p(p)}{adjusted}); {measured}."


def comparison_statement(entry: dict) -> str:
    """One sentence per system and baseline: the difference over every attack, and per family."""
    parts = []
    for family in FAMILIES:
        item = entry["families"][family]
        r = item["result"]
        if r is None:
            parts.append(f"{FAMILY_LABELS[family]}: no comparison ({item['why']})")
            continue
        word = verdict(r)
        parts.append(f"{FAMILY_LABELS[family]}: {word} ({r['difference']:+.3f} {_interval(r['ci'])}, "
                     f"p = {_p(r['p_value'])})")
    first = entry["families"]["all"]["result"]
    seeds = ("" if first is None else
             f" over {first['system']['seeds']} and {first['baseline']['seeds']} training seed(s), "
             f"{first['num_members_test']} / {first['num_nonmembers_test']} test utterances")
    note = training_note(entry)
    return (f"{entry['system']} against {entry['baseline']}{seeds}: held-out AUROC difference for "
            + "; ".join(parts) + "." + (f" Not at equal budget: {note}." if note else ""))


def training_note(entry: dict) -> str | None:
    """How the system's training differs from its baseline's (budget settings), or None when it does not."""
    def shown(values: list) -> str:
        return " / ".join("unset" if v is None else str(v) for v in values)

    def said(d: dict) -> str:
        if d["key"] == "config.yaml":
            names = d["system"] + d["baseline"]
            whose = "its" if len(names) == 1 else "their"
            return f"no config.yaml for {', '.join(names)}, so {whose} budget is unknown"
        return (f"{entry['system']} trained at {d['key']} {shown(d['system'])}, "
                f"{entry['baseline']} at {shown(d['baseline'])}")

    items = entry.get("training_differences") or []
    return "; ".join(said(d) for d in items) or None


def preregistered_statement(entry: dict, summary: dict) -> str | None:
    """One sentence per system and baseline at the pre-registered cells (every member, nothing picked)."""
    cells = summary["preregistered"]["cells"]
    parts = [f"{FAMILY_LABELS[family]} at {cells[family]}: {_difference(item)}"
             for family, item in (entry.get("preregistered") or {}).items() if item is not None]
    if not parts:
        return None
    return (f"{entry['system']} against {entry['baseline']} at the pre-registered cells (AUROC difference on "
            f"every shared utterance, nothing picked): " + "; ".join(parts) + ".")


def quality_comparison_statement(entry: dict, reading: str) -> str | None:
    """One sentence per system and baseline: the quality differences over seeds at one reading."""
    items = entry["readings"][reading]
    first = first_result(items)
    if first is None:
        return None
    parts = [f"{m.label} {_quality_difference(items[m.key], m)}" for m in PAIRED_QUALITY
             if items[m.key]["result"] is not None]
    return (f"{entry['system']}'s quality against {entry['baseline']} at {READING_LABELS[reading]}, over "
            f"{first['result']['system']['seeds']} and {first['result']['baseline']['seeds']} training seed(s), "
            f"{first['result']['n']} sentences (system minus baseline): " + "; ".join(parts) + ".")


def findings(records: list[SystemRecord], reference: SystemRecord, summary: dict) -> list[str]:
    """Statements read off the numbers: which models leak (permutation test), which systems leak less than
    their baselines (paired comparison), what that costs in quality, and the caveats that apply here."""
    out: list[str] = []
    systems = summary["systems"]
    attacked = [r for r in records if r.headline() is not None]
    if not attacked:
        out.append("No system has attack results, so the report says nothing about privacy.")
    else:
        out += [leakage_statement(r.name, r.headline()) for r in attacked]
        out += [comparison_statement(e) for e in summary["comparisons"]]
        if summary.get("preregistered"):
            out += [line for e in summary["comparisons"] if (line := preregistered_statement(e, summary))]
        entries = summary.get("quality_comparisons") or []
        for reading in ("common", "own") if has_own_reading(entries) else ("common",):
            out += [line for e in entries if (line := quality_comparison_statement(e, reading))]
        for record in records:
            if record is reference:
                continue
            q = systems[record.name]["quality_vs_reference"]
            if record.quality is None:
                out.append(f"{record.name} has no evaluate/quality.json, so its quality cost is unknown.")
            elif reference.quality is None:
                out.append(f"{reference.name} has no quality results to compare {record.name}'s quality with.")
            elif q:
                sentence = (f"{record.name}'s quality against {reference.name}: "
                            + "; ".join(_describe_comparison(c) for c in q) + ".")
                differing = _differing_quality_settings(record, reference)
                if differing:
                    sentence += (f" Its quality was measured with other settings than {reference.name}'s ("
                                 + ", ".join(differing) + "), so these differences mix the systems with the "
                                 "settings.")
                out.append(sentence)
        out += _privacy_caveats(records, attacked)
    out += _coverage(records)
    return out


# Quality settings under which two systems' numbers are comparable.
QUALITY_SETTINGS = ("split", "n_utterances", "vocoder", "reference")


def _differing_quality_settings(record: SystemRecord, reference: SystemRecord) -> list[str]:
    return [f"{key} {record.quality.get(key)} vs {reference.quality.get(key)}" for key in QUALITY_SETTINGS
            if record.quality.get(key) != reference.quality.get(key)]


def _interval(ci: list[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _privacy_caveats(records: list[SystemRecord], attacked: list[SystemRecord]) -> list[str]:
    out = []
    text_led = [r for r in attacked if r.headline().attack in TEXT_SIDE_ATTACKS]
    for record in text_led:
        head = record.headline()
        decoder = [(a, e) for a in record.attack_names if a not in TEXT_SIDE_ATTACKS
                   if (e := heldout_entry(record, a)) is not None]
        best = max(decoder, key=lambda x: x[1]["calibration_auroc"], default=None)
        tail = ("it has no decoder attack results" if best is None else
                f"the decoder attack picked on the calibration half, {best[0]}, measures {best[1]['auroc']:.3f} "
                f"held out (p = {_p(best[1]['p_value'])})")
        out.append(f"For {record.name} the headline attack is on the text side ({head.attack}), which no diffusion "
                   f"defense protects; {tail}.")
    for record in records:
        if record.privacy is None:
            continue
        epsilon, delta = record.epsilon, float(record.privacy.get("delta", 0.0))
        bound = math.exp(epsilon) * FPR_TARGETS["tpr@1%fpr"] + delta
        head = record.headline()
        low = (head.values.get("low_fpr") or {}) if head is not None else {}
        if head is None:
            measured = ""
        elif low.get("tpr@1%fpr") is not None:
            measured = f"; the headline attack measures TPR@1%FPR {low['tpr@1%fpr']:.3f}"
        else:
            measured = f"; the held-out sample cannot resolve 1% FPR ({low.get('tpr@1%fpr_note', 'n/a')})"
        covers = f", covering {record.privacy['covers']}" if record.privacy.get("covers") else ""
        limit = (f"TPR@1%FPR <= {bound:.3f}" if bound < 1 else
                 f"the bound on TPR@1%FPR is {bound:.3g}, above 1: vacuous at this epsilon")
        out.append(f"{record.name} is trained with ({epsilon:g}, {delta:g})-differential privacy"
                   f"{covers}: any attack on what it covers has TPR <= e^eps FPR + delta, so {limit}{measured}.")
    for record in records:
        trained = record.steps if record.steps is not None else record.latest_checkpoint_step
        for run in record.attack_runs:
            if run.source != "attack":  # attack_<label>/ may attack a component (a teacher) with its own steps
                continue
            step = record.attack_step(run)
            if step is not None and trained is not None and step != trained:
                out.append(f"{run.path} attacked the model at step {step}, but {record.name}'s "
                           f"{'training ended' if record.steps is not None else 'latest checkpoint is'} at step "
                           f"{trained}: the attack results are for another model; re-run the attack.")
    nonmembers = sorted({e.values["num_nonmembers"] for r in attacked for a in r.attack_names
                         for e in r.best_entries(a)})
    members = sorted({e.values["num_members"] for r in attacked for a in r.attack_names for e in r.best_entries(a)})
    # below 1/N the only FPR an N-non-member attack can show is 0
    coarse = [name.upper() for name, target in FPR_TARGETS.items() if nonmembers and nonmembers[0] * target < 1]
    if coarse:
        out.append(f"With {nonmembers[0]}{'' if len(nonmembers) == 1 else f' to {nonmembers[-1]}'} non-members, "
                   f"{' and '.join(coarse)} {'is' if len(coarse) == 1 else 'are'} the TPR at zero false "
                   "positives.")
    if len(members) > 1 or len(nonmembers) > 1:
        out.append(f"Attack sample sizes differ between results (members {members[0]} to {members[-1]}, "
                   f"non-members {nonmembers[0]} to {nonmembers[-1]}): compare intervals, not point values.")
    inflated = [f"{r.name} {r.in_sample_max().auroc:.3f}" for r in attacked if r.in_sample_max() is not None]
    if inflated:
        out.append("For comparison only, the in-sample maximum over every attack and t (the number published attack "
                   "papers report, picked on the rows it is measured on; about 0.63 on average with no signal at "
                   "32 vs 32 utterances): " + ", ".join(inflated) + ". It is an optimistic upper bound, not a "
                   "finding.")
    return out


def _coverage(records: list[SystemRecord]) -> list[str]:
    out = []
    no_attack = [r.name for r in records if not r.attack_runs]
    no_quality = [r.name for r in records if r.quality is None]
    if no_attack:
        out.append(f"No attack results for: {', '.join(no_attack)}.")
    if no_quality:
        out.append(f"No quality results for: {', '.join(no_quality)}.")
    return out


# --------------------------------------------------------------------------- the document


def _mean_sd(side: dict) -> str:
    sd = "" if side["sd_auroc"] is None else f" ± {side['sd_auroc']:.3f}"
    return f"{side['mean_auroc']:.3f}{sd} (n={side['seeds']})"


def _difference(item: dict) -> str:
    r = item["result"]
    if r is None:
        return f"n/a ({item['why']})"
    return f"{r['difference']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}], p = {_p(r['p_value'])}: {verdict(r)}"


LEAKAGE_WORDS = {"lower": "leaks less", "higher": "leaks more", "no difference resolved": "no difference resolved"}


def _leakage_words(item: dict) -> str:
    r = item["result"]
    if r is None:
        return f"no comparison ({item['why']})"
    word = verdict(r)
    head = next((w for w in LEAKAGE_WORDS if word.startswith(w)), None)
    if head is None:  # "not resolved with fewer than ... seeds"
        return word
    return (f"{LEAKAGE_WORDS[head]}{word[len(head):]} ({r['difference']:+.3f} "
            f"[{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}], p = {_p(r['p_value'])})")


def _quality_words(items: dict | None) -> str:
    """The metrics resolved worse and better at one reading, or that none was."""
    if items is None or first_result(items) is None:
        return DASH
    by_word: dict[str, list[str]] = {"worse": [], "better": []}
    few = False
    for m in PAIRED_QUALITY:
        item = items[m.key]
        if item["result"] is None:
            continue
        word = item["verdict"].split(" (", 1)[0]
        few = few or "fewer than" in item["verdict"]
        if word in by_word:
            by_word[word].append(m.label)
    parts = [f"{word}: {', '.join(labels)}" for word, labels in by_word.items() if labels]
    text = "; ".join(parts) if parts else "no difference resolved"
    return text + (f" (these trained models only: fewer than {MIN_SEEDS} seeds a side)" if few else "")


def _answer_table(summary: dict) -> str:
    """One row per system and baseline: the privacy verdicts and, beside them, the quality verdicts."""
    quality = {(e["system"], e["baseline"]): e for e in summary.get("quality_comparisons") or []}
    header = ["system", "baseline", "training seeds (system / baseline)",
              *(f"leakage, {FAMILY_LABELS[f]} (Δ AUROC [95% CI], p)" for f in FAMILIES),
              "quality at the common sampler", "quality at each system's own sampler", "equal budget"]
    rows = []
    for entry in summary["comparisons"]:
        first = entry["families"]["all"]["result"]
        readings = (quality.get((entry["system"], entry["baseline"])) or {}).get("readings") or {}
        own = readings.get("own")
        own_words = (DASH if own is None else "as common" if own_is_common(readings)
                     else _quality_words(own))
        rows.append([entry["system"], entry["baseline"],
                     DASH if first is None else f"{first['system']['seeds']} / {first['baseline']['seeds']}",
                     *(_leakage_words(entry["families"][f]) for f in FAMILIES),
                     _quality_words(readings.get("common")),
                     own_words,
                     "yes" if not entry.get("training_differences") else "no (below)"])
    return _table(header, rows)


def _comparison_table(summary: dict) -> str:
    header = ["system", "baseline", "system AUROC (seeds)", "baseline AUROC (seeds)", "test members / non-members",
              *(f"Δ AUROC, {FAMILY_LABELS[f]} [95% CI], p" for f in FAMILIES)]
    rows = []
    for entry in summary["comparisons"]:
        first = entry["families"]["all"]["result"]
        rows.append([entry["system"], entry["baseline"],
                     DASH if first is None else _mean_sd(first["system"]),
                     DASH if first is None else _mean_sd(first["baseline"]),
                     DASH if first is None else f"{first['num_members_test']} / {first['num_nonmembers_test']}",
                     *(_difference(entry["families"][f]) for f in FAMILIES)])
    return _table(header, rows)


def _preregistered_table(summary: dict) -> str:
    cells = summary["preregistered"]["cells"]
    header = ["system", "baseline", *(f"{FAMILY_LABELS[f]}: {cells[f]}: system AUROC, baseline AUROC, Δ [95% CI], "
                                      "p (members / non-members)" for f in cells)]

    def reading(item: dict | None) -> str:
        if item is None:
            return DASH
        r = item["result"]
        if r is None:
            return _difference(item)
        return (f"{_mean_sd(r['system'])}, {_mean_sd(r['baseline'])}, {_difference(item)} "
                f"({r['num_members_test']} / {r['num_nonmembers_test']})")

    rows = [[entry["system"], entry["baseline"], *(reading(entry.get("preregistered", {}).get(f)) for f in cells)]
            for entry in summary["comparisons"]]
    return _table(header, rows)


def _quality_difference(item: dict, metric) -> str:
    r = item["result"]
    if r is None:
        return f"n/a ({item['why']})"
    scale, digits = (100, ".1f") if metric.key.startswith(("wer", "cer")) else (1, ".3f")
    low, high = (scale * v for v in r["ci"])
    return (f"{scale * r['difference']:+{digits}} [{low:+{digits}}, {high:+{digits}}], p = {_p(r['p_value'])}: "
            f"{item['verdict']}")


def _measured(entries: list[dict], reading: str, metric) -> bool:
    """False when no model of any pair has the metric's per-sentence values (a metric the evaluation left
    out, e.g. the mini recipe's pocketsphinx WER): its column would say so on every row."""
    return not all(e["readings"][reading][metric.key].get("unmeasured") for e in entries)


def _quality_comparison_table(entries: list[dict], reading: str) -> str:
    shown = [m for m in PAIRED_QUALITY if _measured(entries, reading, m)]
    header = ["system", "baseline", "models (system / baseline)", "sentences",
              *(f"Δ {m.label}{' (points)' if m.key.startswith(('wer', 'cer')) else ''} [95% CI], p"
                for m in shown)]
    rows = []
    for entry in entries:
        items = entry["readings"][reading]
        first = first_result(items)
        rows.append([entry["system"], entry["baseline"],
                     DASH if first is None else f"{', '.join(first['system_models'])} / "
                                                f"{', '.join(first['baseline_models'])}",
                     DASH if first is None else first["result"]["n"],
                     *(_quality_difference(items[m.key], m) for m in shown)])
    return _table(header, rows)


def _quality_comparison_part(summary: dict) -> list[str]:
    entries = summary.get("quality_comparisons") or []
    if not entries:
        return []
    part = ["### Quality beside it: the same pairs, across seeds\n",
            "Each system's seed-mean quality minus its baseline's, on the test sentences every model of both was "
            "scored on, with a bootstrap 95% interval and p-value (sentences resampled jointly, training seeds "
            "within each system). WER and CER in percentage points. Lower is better except DNSMOS; the verdict "
            "says which way. Nothing is picked here, so one seed a side speaks for those trained models only.\n",
            f"At {READING_LABELS['common']}:\n", _quality_comparison_table(entries, "common") + "\n"]
    if has_own_reading(entries):
        part += [f"At {READING_LABELS['own']} (evaluate_own/, or evaluate/ where that was the model's own sampler; "
                 "a model evaluated only at the common sampler, though its own differs, is left out):\n",
                 _quality_comparison_table(entries, "own") + "\n"]
    return part


def _tpr_low(values: dict) -> str:
    low = values.get("low_fpr") or {}
    at_one = low.get("tpr@1%fpr")
    one = f"{at_one:.3f}" if at_one is not None else low.get("tpr@1%fpr_note", DASH)
    zero = DASH if low.get("tpr@0fpr") is None else f"{low['tpr@0fpr']:.3f}"
    return f"{one}; at 0 FPR {zero}"


def _leakage_table(summary: dict) -> str:
    header = ["model", "leakage (permutation p)", "headline attack (picked on calibration half)",
              "held-out AUROC [95% CI]", "test members / non-members", "TPR@1%FPR; TPR at zero FPR",
              "in-sample max AUROC (optimistic)"]
    rows = []
    for name, info in summary["systems"].items():
        head = info["headline"]
        if head is None:
            continue
        p = head["p_value_adjusted"]
        word = "detected" if p < head.get("alpha", 0.05) else "not detected at this sample size"
        pick = f"{_where(head)}{'' if head['direction'] == 'as defined' else ', reversed'}"
        ci = DASH if head["auroc_ci"] is None else _interval(head["auroc_ci"])
        in_sample = info["in_sample_max"]
        rows.append([name, f"{word} (p = {_p(p)})", pick, f"{head['auroc']:.3f} {ci}",
                     f"{head.get('num_members_test', DASH)} / {head.get('num_nonmembers_test', DASH)}",
                     _tpr_low(head), DASH if in_sample is None else f"{in_sample['auroc']:.3f}"])
    return _table(header, rows)


def _heldout_table(summary: dict) -> str:
    header = ["model", "attack", "t picked (calibration half)", "held-out AUROC [95% CI]", "p (its t grid)"]
    rows = []
    for name, info in summary["systems"].items():
        for attack, entry in info["heldout"].items():
            if entry is None:
                continue
            ci = DASH if entry["auroc_ci"] is None else _interval(entry["auroc_ci"])
            side = " (text side)" if attack in TEXT_SIDE_ATTACKS else ""
            reversed_ = "" if entry["direction"] == "as defined" else ", reversed"
            rows.append([name, f"{attack}{side}", f"{_t(entry['t'])}{reversed_} ({entry['source']})",
                         f"{entry['auroc']:.3f} {ci}", _p(entry["p_value"])])
    return _table(header, rows)


def _headline_table(summary: dict) -> str:
    header = ["system", "kind", "parameters", "train h", "steps / epochs", "members", "epsilon",
              "held-out AUROC [95% CI]", "p", "duration AUROC", "prior AUROC", "FD speaker (n)",
              "FD log-mel (n frames)", "DNSMOS OVRL gen (ref)", "WER gen (ref)", "MCD dB", "decoder RTF"]
    rows = []
    for row in summary["headline"]:
        latest = summary["systems"][row["system"]]["latest_checkpoint_step"]
        if row["steps"] is not None:
            steps = f"{row['steps']} / {DASH if row['epochs'] is None else row['epochs']}"
        else:
            steps = DASH if latest is None else f"{latest} (latest checkpoint) / {DASH}"
        auroc = (DASH if row["auroc"] is None else f"{row['auroc']:.3f}" + (
            "" if row["auroc_ci_low"] is None else f" [{row['auroc_ci_low']:.3f}, {row['auroc_ci_high']:.3f}]"))
        rows.append([
            row["system"], _kind(row), _count(row["parameters"]), _sig(row["train_hours"], 3), steps,
            _count(row["num_train_utts"]), _epsilon(row["epsilon"]), auroc,
            DASH if row["p_value"] is None else _p(row["p_value"]), _fmt(row["duration_auroc"]),
            _fmt(row["prior_auroc"]), _fd(row, "fd_speaker"), _fd(row, "fd_logmel"),
            _quality_pair(row["dnsmos_ovrl"], row["dnsmos_ovrl_reference"], lambda v: f"{v:.2f}"),
            _quality_pair(row["wer"], row["wer_reference"], _pct),
            DASH if row["mcd"] is None else f"{row['mcd']:.2f}", _sig(row["decoder_rtf"], 3),
        ])
    if all(row["wer"] is None and row["wer_reference"] is None for row in summary["headline"]):
        column = header.index("WER gen (ref)")  # not measured (the mini recipe's default metrics): no column
        header, rows = header[:column] + header[column + 1:], [r[:column] + r[column + 1:] for r in rows]
    return _table(header, rows)


def _attack_tables(summary: dict) -> str:
    parts = []
    for attack, rows in summary["attack_tables"].items():
        side = " (text side)" if attack in TEXT_SIDE_ATTACKS else ""
        parts.append(f"### {attack}{side}\n")
        header = ["system", "attack dir", "in-sample best t", "AUROC [95% CI]", "ASR [95% CI]", "TPR@1%FPR [95% CI]",
                  "TPR@0.1%FPR [95% CI]", "members / non-members"]
        parts.append(_table(header, [[r["system"], r["source"], _t(r["t"]), *(_ci(r, m) for m in METRICS),
                                      f"{r['num_members']} / {r['num_nonmembers']}"] for r in rows]) + "\n")
    return "\n".join(parts)


FIGURE_CAPTIONS = {
    "roc": ("ROC curves", "ROC curves on log-log axes, recomputed from rows.tsv with scikit-learn: per system, "
            "each attack at its best t (for systems with several attack directories, from the directory where "
            "that attack is strongest; the directory is named in brackets). The legend gives each curve's area, "
            "checked against metrics.json. The dashed line is chance; curves start at the left edge where "
            "the false positive rate is 0."),
    "auroc_vs_t": ("AUROC against t", "AUROC against t (a fraction of the process's horizon) for each attack "
                   "with a t grid, a line per system and attack directory, the bootstrap 95% interval as a band. "
                   "Attacks without t (duration, prior) are in the tables only."),
    "privacy_vs_quality": ("Privacy against quality", "The held-out headline AUROC (bars: its 95% interval) "
                           "against each quality metric. Down is more private; the better side of each x axis "
                           "is named in its label. A dotted line marks the real recordings' own value where all "
                           "systems share one."),
    "auroc_vs_epsilon": ("AUROC against epsilon", "The held-out headline AUROC (bars: its 95% interval) of each "
                         "DP-SGD system at its epsilon (delta = 1 / members), the grey curve the largest AUROC "
                         "any attack can reach under that guarantee, and the systems without a formal "
                         "guarantee (epsilon = inf) at the right end: read an empirical defense against the "
                         "epsilon DP-SGD needs for the same measured leakage."),
    "auroc_during_training": ("AUROC during training", "Held-out AUROCs of the attacks run on the EMA model "
                              "during training, {every}, from train_log.jsonl: each attack's t is picked on a "
                              "calibration half of the attacked utterances (at most train.attack_max_utts "
                              "members and as many non-members) and its AUROC measured on the test half; "
                              "\"headline\" is the strongest attack picked the same way. One panel per attack "
                              "against {axis}; a line per system is the mean over its training seeds (the "
                              "legend gives their number; a DualMD line pools its teachers, each attacked "
                              "against its own members), the band their minimum to maximum; a hollow marker "
                              "means not every seed has logged that point yet. The dashed line is chance."),
}


TRAINING_AXES = {"epoch": "the epochs completed",
                 "step": "the training step (some train_log.jsonl has no epochs: an older holdtts wrote it)"}


def _every(epochs: list[int]) -> str:
    if not epochs:
        return "every train.attack_every_epochs epochs"
    return f"every {' or '.join(str(e) for e in epochs)} epochs (train.attack_every_epochs)"


def _training_table(curves: dict) -> str:
    """Per system, the headline's mean over seeds at each logged x that every seed has reached."""
    rows, xs = {}, set()
    for name, system in curves["systems"].items():
        seeds = len(system["models"])
        rows[name] = {p["x"]: p["mean"] for p in system["attacks"].get("headline", []) if p["seeds"] == seeds}
        xs |= set(rows[name])
    if not xs:
        return ""
    xs = sorted(xs)
    header = ["system (training seeds)", *(f"{curves['axis']} {x}" for x in xs)]
    body = [[curves_label(name, curves["systems"][name]["models"]),
             *(_fmt(rows[name].get(x)) for x in xs)] for name in rows]
    return ("Held-out headline AUROC during training, mean over each system's training seeds, where every seed "
            f"has logged that {curves['axis']}:\n\n" + _table(header, body) + "\n")


def _figures(summary: dict) -> str:
    if not summary["figures"]:
        return "No figure: no attack rows, t grids, quality results or training-time attacks to draw.\n"
    parts = []
    missing = [f"{s}/{run}" for s, info in summary["systems"].items() for run, r in info["attack_runs"].items()
               if r["rows"] is None]
    if missing:  # before the subsections, so that it is not read as the last figure's
        parts.append(f"No rows.tsv (no ROC curve, AUROCs not re-checked) for: {', '.join(missing)}.\n")
    for name, file in summary["figures"].items():
        title, caption = FIGURE_CAPTIONS[name]
        extra = ""
        if name == "auroc_during_training":
            curves = summary["training_curves"]
            caption = caption.format(every=_every(curves["every"]), axis=TRAINING_AXES[curves["axis"]])
            extra = _training_table(curves)
        parts.append(f"### {title}\n\n![{title}]({file})\n\n{caption}\n")
        if extra:
            parts.append(extra)
    return "\n".join(parts)


HOW_TO_READ = """\
- **AUROC**: the probability that a random member scores higher than a random non-member (members are
  the positive class; 0.5 is chance, 1 a perfect attack).
- **Held-out AUROC** (every headline number): the utterances are split, seeded and stratified, into a
  calibration half and a test half, the same split for every system attacked on the same utterances. Each
  attack's t, the direction of its statistic and the strongest attack are picked on the calibration half
  alone; the AUROC is then measured on the test half, with a percentile bootstrap 95% interval over the test
  utterances (members and non-members resampled separately). The pick never sees the rows it is measured
  on, so with no membership signal the held-out AUROC averages 0.5.
- **Leakage p-value**: a label-permutation test of "no attack tells members from non-members": the maximum
  |AUROC - 0.5| over every attack and t on all the utterances, against the same maximum after randomly
  relabelling members and non-members (the number of permutations is in report.json). It accounts for the
  search over attacks and t, so "detected" at p < 0.05 happens in 5% of models that do not leak. "Not
  detected at this sample size" means exactly that: a small test cannot rule leakage out. With several
  attack directories (a DualMD's teachers and its black box) the smallest p is multiplied by their number
  (Bonferroni).
- **Δ AUROC against the baseline**: on the utterances both systems were attacked on, each model picks its
  own strongest attack on the calibration half (a defense faces the attack that suits it best), and the
  difference of the test-half AUROCs (averaged over training seeds when a system has several) gets a
  paired bootstrap interval: test utterances resampled jointly for both systems, seeds resampled within
  each system. p is twice the smaller bootstrap tail around 0. "lower" needs the whole interval below 0 and
  p < 0.05, and at least 2 training seeds a side: with one, each model's pick is a single draw the interval
  does not carry, and two systems without signal come out "different" in 10-13% of simulated runs
  (docs/statistics.md). It is given for every attack, for the decoder attacks alone, and for the text-side
  attacks alone.
- **Δ quality against the baseline** (the table under the privacy comparison, same pairs): each system's
  seed-mean DNSMOS, MCD and WER/CER minus its baseline's on the test sentences every model of both was scored
  on, with a bootstrap 95% interval (sentences resampled jointly, seeds within each system) and p. "better"
  or "worse" needs the interval clear of 0 and p < 0.05; nothing is picked, so one seed a side speaks for
  those trained models only.
- **In-sample maximum**: the highest AUROC over all attacks and t, picked on the rows it is reported on,
  as published attack papers report it. With no signal at all it averages about 0.63 at 32 vs 32
  utterances, so it is shown only as an optimistic upper bound. The per-attack tables at the in-sample best
  t are descriptive in the same way.
- **ASR**: the attack success rate, the best balanced accuracy (TPR + 1 - FPR) / 2 over all thresholds.
- **TPR at low FPR**: the fraction of members caught while at most 1% (0.1%) of non-members are falsely
  flagged (Carlini et al., 2022). A sample resolves 1% FPR only with at least 100 non-members (0.1%: 1000);
  below that the report prints "n/a (needs N non-members)" and gives the TPR at zero false positives,
  labelled as such.
- **Duration and prior AUROC**: attacks on the text encoder and duration predictor, which are trained on the
  members too. No diffusion-decoder defense protects them, so they bound what such a defense can achieve.
- **Frechet distances** (FD speaker: Resemblyzer speaker embeddings, n = utterances; FD log-mel: 80-band
  log-mel frames, n = frames) between the generated and the real sets; lower is better. They are biased
  upwards at small n (noisy covariances; singular when n is not above the dimension), so compare them only
  at equal n, which the table states.
- **DNSMOS OVRL**: a non-intrusive MOS estimate (1 to 5) from Microsoft's DNS challenge models, trained on
  human speech; on synthetic or vocoded audio it is a rough guide. The real recordings' value, passed
  through the same vocoder, is in parentheses.
- **WER**: corpus word error rate of pocketsphinx's English model against the input text (jiwer).
  pocketsphinx recognises eSpeak NG speech poorly, so on the mini corpus read the generated WER against the
  real recordings' own WER in parentheses; on LJSpeech it is a usable intelligibility signal.
- **MCD**: mel-cepstral distortion in dB between each generated utterance and its real recording, aligned
  with DTW; lower is better.
- **Decoder RTF**: seconds of decoding per second of audio (vocoder excluded) on the evaluation device.
- **epsilon**: the (epsilon, delta) differential-privacy guarantee of a DP-trained system, over what its
  privacy.json says it covers; any membership attack then has TPR <= e^epsilon FPR + delta. inf means no
  formal guarantee.
- **Paired quality differences** in the findings: a quality metric's difference from the reference system over the
  test sentences both were scored on, with a percentile bootstrap 95% interval over sentences; a difference
  whose interval includes 0 is not resolved.
"""


def _json_block(value) -> str:
    return "```json\n" + json.dumps(value, indent=2) + "\n```"


def _setup_system(name: str, info: dict, config_text: str | None) -> str:
    lines = [f"### {name}\n", f"- directory: `{info['path']}`"]
    order = "" if info["order"] is None else f", order {info['order']}"
    seed = DASH if info["seed"] is None else info["seed"]
    lines.append(f"- model: {info['kind'] or DASH}{order}, {_count(info['parameters'])} parameters, "
                 f"training seed {seed}")
    ts = info["train_summary"]
    if ts:
        lines.append(f"- training: step {ts.get('step')}, epoch {ts.get('epoch')}, split '{ts.get('train_split')}' "
                     f"({ts.get('num_train_utts')} utterances), {ts.get('train_seconds')} s at "
                     f"{ts.get('utts_per_second')} utterances/s on {ts.get('device')} "
                     f"({ts.get('world_size', 1)} rank(s)); finished: {ts.get('finished')}")
    elif info["latest_checkpoint_step"] is not None:
        lines.append(f"- training: no train_summary.json (not finished); latest checkpoint at step "
                     f"{info['latest_checkpoint_step']}")
    else:
        lines.append("- training: no train_summary.json")
    for source, run in info["attack_runs"].items():
        s = run["settings"] or {}
        boot = run["bootstrap"] or {}
        grids = s.get("t_grids") or {}
        lines.append(
            f"- `{source}/`: model step {s.get('step', DASH)} ({s.get('weights', DASH)} weights), members "
            f"'{s.get('member_split', DASH)}' ({s.get('num_members', DASH)}) vs non-members "
            f"'{s.get('nonmember_split', DASH)}' ({s.get('num_nonmembers', DASH)}), seed {s.get('seed', DASH)}, "
            f"batch {s.get('batch_size', DASH)}, bootstrap {boot.get('samples', DASH)} samples "
            f"(seed {boot.get('seed', DASH)}, stratified {boot.get('stratified', DASH)})")
        for attack in run["attacks"]:
            grid = ", ".join(_t(t) for t in grids.get(attack, [])) or DASH
            params = (s.get("params") or {}).get(attack) or {}
            timing = (s.get("timing") or {}).get(attack) or {}
            extra = "".join([f"; parameters {json.dumps(params)}" if params else "",
                             f"; {timing['utts_per_second']} utterances/s" if timing else ""])
            lines.append(f"  - {attack}: t grid {grid}{extra}")
        for cell, utts in ((s.get("notes") or {}).get("diverged_syntheses") or {}).items():
            lines.append(f"  - {cell}: **{len(utts)} of {s.get('num_members', 0) + s.get('num_nonmembers', 0)} "
                         "syntheses diverged** (NaN or infinite values) and were scored as silence "
                         "(holdtts.data.mel.silence_nonfinite); attack.json lists them")
        if not run["settings"]:
            lines.append("  - no attack.json: settings unknown")
    q = info["quality"]
    if q:
        st = q["settings"]
        lines.append(f"- quality: split '{st['split']}' ({st['n_utterances']} sentences), vocoder {st['vocoder']}, "
                     f"sampler {st['sampler']}, {st['steps']} steps, temperature {st['temperature']}, seed "
                     f"{st['seed']}, model step {st['step']}; reference: {st['reference']}")
    else:
        lines.append("- quality: no evaluate/quality.json")
    if info["privacy"]:
        lines.append("- privacy.json:\n\n" + _indent(_json_block(info["privacy"])))
    if info["system"]:
        lines.append("- system.json:\n\n" + _indent(_json_block(info["system"])))
    if config_text is not None:
        lines.append(f"\n<details><summary>{name}: config.yaml</summary>\n\n```yaml\n{config_text.rstrip()}\n```\n\n"
                     "</details>")
    else:
        lines.append("- no config.yaml")
    return "\n".join(lines) + "\n"


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


def _setup(summary: dict, records: list[SystemRecord]) -> str:
    parts = []
    splits = summary["splits"]
    if splits:
        sizes = splits.get("sizes", {})
        parts.append(f"Data: `{splits['path']}`, corpus `{splits.get('corpus_dir', DASH)}`, "
                     f"{splits.get('num_utterances', DASH)} utterances, split seed {splits.get('seed', DASH)}.\n")
        parts.append(_table(list(sizes), [list(sizes.values())]) + "\n")
        if splits.get("protocol"):
            parts.append(f"Protocol: {splits['protocol']}.\n")
    else:
        parts.append("Data: no splits.json found (pass --data-dir).\n")
    for record in records:
        parts.append(_setup_system(record.name, summary["systems"][record.name], record.config_text))
    return "\n".join(parts)


def render_markdown(summary: dict, records: list[SystemRecord]) -> str:
    reference = summary["reference_system"]
    notes = [f"- {note}." for e in summary["comparisons"] if (note := training_note(e))]
    comparisons_part = (_comparison_table(summary) + "\n" + ("\nNot at equal budget (config.yaml's train "
                        "section):\n\n" + "\n".join(notes) + "\n" if notes else "")
                        if summary["comparisons"] else "Only one system group: nothing to compare.\n")
    sections = [
        "# holdtts report: membership privacy beside audio quality\n",
        f"Systems from `{summary['exp_dir']}`: {', '.join(summary['systems_order'])}. Generated "
        f"{summary['created']}. Every number below is in report.json, the headline table also in headline.tsv; "
        "all privacy numbers recompute from the rows.tsv files.\n",
        *(["## The answer\n",
           "Does each system leak less than its baseline, and at what cost in quality? One row per pair, read "
           "from the tables below: leakage from the held-out comparison (negative Δ AUROC: the system leaks "
           "less), quality from the paired differences over seeds (the metrics resolved worse or better than "
           "the baseline's; the rest are not resolved). \"equal budget: no\" rows are listed under the next "
           "table.\n",
           _answer_table(summary) + "\n"] if summary["comparisons"] else []),
        "## Does each system leak less than its baseline?\n",
        f"Held-out AUROC of each system minus its baseline ({reference}, and for a defense of order n the plain "
        "order-n system), on the utterances both were attacked on, mean over training seeds, with a paired "
        "bootstrap 95% interval and p-value. Negative: the system leaks less.\n",
        comparisons_part,
        *(["### At the pre-registered cells\n",
           f"One attack, t and direction per family, fixed in `{summary['preregistered']['path']}` before these "
           "models were attacked (chosen on the baseline's calibration runs): every model read at that cell on all "
           "the shared utterances, nothing picked, so every member counts. A second reading of the same rows, not "
           "a replacement for the held-out comparison above.\n",
           _preregistered_table(summary) + "\n"]
          if summary.get("preregistered") and summary["comparisons"] else []),
        *_quality_comparison_part(summary),
        "## Does each model leak at all?\n",
        "The strongest attack and t picked on a calibration half, measured on the test half; p from a label "
        "permutation test over every attack and t.\n",
        (_leakage_table(summary) if any(i["headline"] for i in summary["systems"].values())
         else "No attack results.") + "\n",
        *([section] if (section := speaker_section(summary)) else []),
        "## Findings\n",
        f"Computed from the tables; the reference system is {reference}.\n",
        "\n".join(f"- {line}" for line in summary["findings"]) + "\n",
        "## Privacy beside quality\n",
        "One row per model: its held-out AUROC and leakage p beside the quality metrics. DNSMOS and WER give "
        "the real recordings' own value in parentheses.\n",
        _headline_table(summary) + "\n",
        quality_sections(summary["quality_tables"]),
        "## Each attack, held out\n",
        "Each attack's t picked on the calibration half, AUROC on the test half, p over its own t grid.\n",
        _heldout_table(summary) + "\n",
        "## Each attack in sample (descriptive)\n",
        "Each attack at its best t picked on all rows, per system and attack directory: optimistic, shown so "
        "that the numbers can be set beside published attack papers, which report them this way.\n",
        _attack_tables(summary) if summary["attack_tables"] else "No attack results.\n",
        "## Figures\n",
        _figures(summary),
        "## How to read this\n",
        HOW_TO_READ,
        "## Setup\n",
        _setup(summary, records),
    ]
    return "\n".join(sections)


def headline_tsv(summary: dict) -> str:
    def field(value) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return "inf" if math.isinf(value) else repr(value)
        return str(value)

    lines = ["\t".join(HEADLINE_COLUMNS)]
    lines += ["\t".join(field(row[c]) for c in HEADLINE_COLUMNS) for row in summary["headline"]]
    return "\n".join(lines) + "\n"
