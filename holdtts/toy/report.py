"""The toy study's outputs: results.tsv (one row per model), summary.md and summary.json (per order and
beta across seeds, each HOLD++ system against vp, reference quality numbers), and the scatter figures."""
from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from holdtts.privacy.metrics import read_rows
from holdtts.toy.data import ToyData, swiss_roll
from holdtts.toy.quality import copy_ratio, mmd2_with_interval
from holdtts.utils.fileio import atomic_open, atomic_path, write_json_atomic, write_text_atomic

RESULT_FIELDS = ("model", "order", "beta", "seed", "headline_attack", "headline_t", "headline_auroc",
                 "headline_ci_low", "headline_ci_high", "headline_p", "pia_t", "pia_auroc", "pia_ci_low",
                 "pia_ci_high", "pia_p", "insample_max_attack", "insample_max_t", "insample_max_auroc", "mmd2",
                 "mmd2_ci_low", "mmd2_ci_high", "mmd2_n", "copy_ratio", "loss_last", "seconds")


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def result_row(record: dict) -> dict:
    head, pia = record["headline"], record["heldout"].get("pia", {})
    ci = head.get("auroc_ci") or [None, None]
    pia_ci = pia.get("auroc_ci") or [None, None]
    q = record["quality"]
    return {
        "model": record["name"], "order": record["order"], "beta": "-" if record["beta"] is None else
        f"{record['beta']:g}", "seed": record["seed"],
        "headline_attack": head["attack"], "headline_t": head["t"], "headline_auroc": _fmt(head["auroc"]),
        "headline_ci_low": _fmt(ci[0]), "headline_ci_high": _fmt(ci[1]), "headline_p": f"{head['p_value']:.4g}",
        "pia_t": pia.get("t", "-"), "pia_auroc": _fmt(pia.get("auroc")), "pia_ci_low": _fmt(pia_ci[0]),
        "pia_ci_high": _fmt(pia_ci[1]), "pia_p": f"{pia['p_value']:.4g}" if "p_value" in pia else "-",
        "insample_max_attack": record["in_sample_max"]["attack"], "insample_max_t": record["in_sample_max"]["t"],
        "insample_max_auroc": _fmt(record["in_sample_max"]["auroc"]),
        "mmd2": _fmt(q["mmd2"], 5), "mmd2_ci_low": _fmt(q["mmd2_ci"][0], 5), "mmd2_ci_high": _fmt(q["mmd2_ci"][1], 5),
        "mmd2_n": q["num_samples"], "copy_ratio": _fmt(q.get("copy_ratio"), 3),
        "loss_last": _fmt(record["training"]["loss_last"]),
        "seconds": _fmt(float(sum(record["timing"].values())), 1),
    }


def write_results(path: Path, records: Sequence[dict]) -> None:
    with atomic_open(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_FIELDS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow(result_row(record))


# --------------------------------------------------------------------------- aggregation


def _stats(values: Sequence[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "sd": float(arr.std(ddof=1)) if len(arr) > 1 else None,
            "min": float(arr.min()), "max": float(arr.max()), "n": len(arr)}


def group_records(records: Sequence[dict]) -> dict[str, list[dict]]:
    """System name (vp, hold2_b10, ...) -> its records over seeds, in study order."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record["system"], []).append(record)
    return groups


def summarize(records: Sequence[dict]) -> list[dict]:
    out = []
    for system, group in group_records(records).items():
        first = group[0]
        out.append({
            "system": system, "order": first["order"], "beta": first["beta"], "seeds": [r["seed"] for r in group],
            "headline_auroc": _stats([r["headline"]["auroc"] for r in group]),
            "headline_p": [r["headline"]["p_value"] for r in group],
            "headline_ci": [r["headline"]["auroc_ci"] for r in group],
            "headline_cells": [f"{r['headline']['attack']}@{r['headline']['t']}" for r in group],
            "pia_auroc": _stats([r["heldout"]["pia"]["auroc"] for r in group]) if all(
                "pia" in r["heldout"] for r in group) else None,
            "pia_p": [r["heldout"].get("pia", {}).get("p_value") for r in group],
            "in_sample_max": _stats([r["in_sample_max"]["auroc"] for r in group]),
            "mmd2": _stats([r["quality"]["mmd2"] for r in group]),
            "mmd2_ci": [r["quality"]["mmd2_ci"] for r in group],
            "copy_ratio": _stats([r["quality"]["copy_ratio"] for r in group]),
        })
    return out


def compare_with_vp(out_dir: Path, records: Sequence[dict], attacks: Sequence[str] | None = None) -> dict:
    """Each HOLD++ system against vp: held-out AUROC difference (system - vp) across seeds with a paired
    bootstrap interval and p (holdtts.privacy.statistics.compare), on the strongest attack or `attacks`."""
    from holdtts.privacy.statistics import ScoreTable, compare

    groups = group_records(records)
    if "vp" not in groups:
        return {}

    def tables(group):
        return [ScoreTable.from_rows(read_rows(out_dir / "models" / r["name"] / "rows.tsv")) for r in group]

    baseline = tables(groups["vp"])
    return {system: compare(tables(group), baseline, attacks=attacks)
            for system, group in groups.items() if system != "vp"}


# --------------------------------------------------------------------------- reference quality numbers


def reference_quality(data: ToyData, count: int, noise: float, seed: int, bandwidth: float, subsets: int) -> dict:
    """MMD^2 to the held-out points of: fresh data (the floor), the members resampled (a model that only
    reproduces its training points), and a Gaussian with the data's mean and covariance (no structure)."""
    reference = data.heldout[:count]
    fresh = torch.from_numpy((swiss_roll(count, noise, seed + 7919) - np.array(data.shift)) / data.scale).float()
    gen = torch.Generator().manual_seed(seed)
    resampled = data.members[torch.randint(len(data.members), (count,), generator=gen)]
    cov = torch.cov(reference.T.double())
    gaussian = (reference.double().mean(0) + torch.randn(count, 2, generator=gen, dtype=torch.float64)
                @ torch.linalg.cholesky(cov).T).float()
    out = {}
    for name, points in (("fresh data", fresh), ("members resampled", resampled), ("gaussian fit", gaussian)):
        out[name] = mmd2_with_interval(points, reference, bandwidth, subsets)
        out[name]["copy_ratio"] = copy_ratio(points, data.members, reference)
    return out


# --------------------------------------------------------------------------- figures


def scatter_figure(path: Path, panels: Sequence[tuple[str, np.ndarray]], title: str) -> None:
    """One square scatter panel per (label, points [N, 2]), same axes everywhere, PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.6 * len(panels), 2.9), dpi=110)
    FigureCanvasAgg(fig)
    reference = panels[0][1]
    low, high = reference.min(0) - 0.5, reference.max(0) + 0.5
    for i, (label, points) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        finite = points[np.isfinite(points).all(axis=1)]
        ax.scatter(finite[:, 0], finite[:, 1], s=1.5, alpha=0.5, color="C0" if i == 0 else "C1", linewidths=0)
        ax.set_xlim(low[0], high[0])
        ax.set_ylim(low[1], high[1])
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")


def sample_figures(out_dir: Path, records: Sequence[dict], data: ToyData, betas: Sequence[float]) -> list[str]:
    """samples_beta<b>.png for every beta: the held-out data, then each order's samples (first seed)."""
    names = []
    first_seed = min(r["seed"] for r in records)
    chosen = [r for r in records if r["seed"] == first_seed]
    for beta in betas:
        panels = [(f"data (held out, n={len(data.heldout)})", data.heldout.numpy())]
        for record in chosen:
            if record["order"] == 1 or record["beta"] == beta:
                points = np.load(out_dir / "models" / record["name"] / "samples.npy")
                label = "vp (order 1)" if record["order"] == 1 else f"HOLD++ n={record['order']}"
                panels.append((f"{label}\nMMD$^2$ {record['quality']['mmd2']:.4f}", points))
        if len(panels) > 1:
            name = f"samples_beta{beta:g}.png"
            scatter_figure(out_dir / name, panels, f"samples (seed {first_seed}) at beta = {beta:g}; "
                                                    f"{chosen[0]['quality']['sampler']}, "
                                                    f"{chosen[0]['quality']['steps']} steps")
            names.append(name)
    return names


# --------------------------------------------------------------------------- markdown


def _mean_sd(stats: dict | None, digits: int = 3) -> str:
    if stats is None:
        return "-"
    sd = "" if stats["sd"] is None else f" ± {stats['sd']:.{digits}f}"
    return f"{stats['mean']:.{digits}f}{sd}"


def _milli(stats: dict) -> str:
    return f"{1e3 * stats['mean']:.2f}" + ("" if stats["sd"] is None else f" ± {1e3 * stats['sd']:.2f}")


def _p(values) -> str:
    return ", ".join("-" if v is None else f"{v:.3g}" for v in values)


def ordering_verdict(summary: Sequence[dict], beta: float, key: str) -> dict | None:
    """Whether mean held-out AUROC (key: headline_auroc or pia_auroc) falls with order at `beta`, and
    whether the seed ranges separate."""
    rows = {s["order"]: s for s in summary if s["beta"] == beta and s["order"] in (2, 3, 4) and s[key]}
    if set(rows) != {2, 3, 4}:
        return None
    means = {n: rows[n][key]["mean"] for n in (2, 3, 4)}
    ordered = means[2] > means[3] > means[4]
    separated = rows[2][key]["min"] > rows[3][key]["max"] and rows[3][key]["min"] > rows[4][key]["max"]
    return {"means": means, "ordered": ordered, "separated": separated}


def summary_markdown(cfg, summary: Sequence[dict], comparisons: dict, references: dict, figures: Sequence[str],
                     timing: dict) -> str:
    lines = ["# Toy study: membership leakage of order 1 (vp) and HOLD++ orders 2-4 on a 2-D Swiss roll", ""]
    lines.append(f"{cfg.members} members, {cfg.nonmembers} non-members and {max(cfg.heldout, cfg.samples)} held-out "
                 f"points from one Swiss roll (noise {cfg.noise}, data seed {cfg.data_seed}); an MLP of width "
                 f"{cfg.width} and depth {cfg.depth}, {cfg.steps} Adam steps at batch {cfg.batch_size}, lr {cfg.lr}, "
                 f"EMA {cfg.ema}; HOLD++ horizon T = {cfg.horizon}; seeds {', '.join(map(str, cfg.seeds))}. "
                 f"Attacks: {', '.join(cfg.attacks)} (each on its default t grid; *_mc for order >= 2 only).")
    lines.append("")
    lines.append("Held-out AUROC: the strongest (attack, t) picked on a calibration half of the points, measured "
                 "on the other half; p: label-permutation test over every (attack, t) cell. PIA: the pia attack "
                 "alone, its t picked on the calibration half (the paper's attack). In-sample max: the best cell "
                 "on all points, an optimistic upper bound, not a finding. Mean ± sd over seeds. MMD^2: "
                 f"unbiased, RBF kernel of width {cfg.mmd_bandwidth:g}, {cfg.samples} samples ({cfg.sampler}, "
                 f"{cfg.sample_steps} steps) against as many held-out points (lower: closer to the data). Copy ratio: "
                 "median distance from a sample to its nearest member over the same for held-out points (about 1: "
                 "samples sit among the members like fresh data; near 0: the model reproduces its members).")
    lines += ["", "| order | beta | held-out AUROC (strongest) | p per seed | picked (per seed) | PIA held-out AUROC "
              "| PIA p per seed | in-sample max (optimistic) | MMD^2 x 1e3 | copy ratio |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        mmd_txt, copy_txt = _milli(s["mmd2"]), _mean_sd(s["copy_ratio"], 2)
        beta = "-" if s["beta"] is None else f"{s['beta']:g}"
        lines.append(f"| {s['order']} | {beta} "
                     f"| {_mean_sd(s['headline_auroc'])} | {_p(s['headline_p'])} | {', '.join(s['headline_cells'])} "
                     f"| {_mean_sd(s['pia_auroc'])} | {_p(s['pia_p'])} | {_mean_sd(s['in_sample_max'])} "
                     f"| {mmd_txt} | {copy_txt} |")
    lines += ["", "References, as samples (same kernel and held-out points): " + "; ".join(
        f"{name}: MMD^2 x 1e3 {1e3 * q['mmd2']:.2f} [{1e3 * q['mmd2_ci'][0]:.2f}, {1e3 * q['mmd2_ci'][1]:.2f}], "
        f"copy ratio {q['copy_ratio']:.2f}" for name, q in references.items()) + "."]
    if comparisons:
        lines += ["", "## Each HOLD++ system against vp", "",
                  "Held-out AUROC of the system minus vp's (each model picks its strongest attack on the shared "
                  "calibration half), mean over seeds, paired bootstrap 95% interval and p "
                  "(holdtts.privacy.statistics.compare).", "",
                  "| system | difference | 95% interval | p |", "|---|---|---|---|"]
        for system, c in comparisons.items():
            if c is None:
                lines.append(f"| {system} | - | - | - |")
            else:
                lines.append(f"| {system} | {c['difference']:+.3f} | [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}] "
                             f"| {c['p_value']:.3g} |")
    lines += ["", "## The paper's ordering (AUROC of order 2 > 3 > 4; published at beta = 10 only)", ""]
    for beta in sorted({s["beta"] for s in summary if s["beta"] is not None}, reverse=True):
        for key, label in (("pia_auroc", "PIA"), ("headline_auroc", "strongest attack")):
            verdict = ordering_verdict(summary, beta, key)
            if verdict is None:
                continue
            m = verdict["means"]
            paper = " (paper, PIA: 0.96-0.97, 0.91-0.92, 0.77-0.81)" if beta == 10 and key == "pia_auroc" else ""
            lines.append(f"- beta = {beta:g}, {label}: mean held-out AUROC n=2 {m[2]:.3f}, n=3 {m[3]:.3f}, "
                         f"n=4 {m[4]:.3f}{paper}. Ordering 2 > 3 > 4 "
                         f"{'reproduced' if verdict['ordered'] else 'NOT reproduced'}; the seed ranges "
                         f"{'do not overlap' if verdict['separated'] else 'overlap'}.")
    if figures:
        lines += ["", "## Samples", ""] + [f"![{name}]({name})" for name in figures]
    machine = timing.get("machine", {})
    lines += ["", f"Models trained by the run of {timing.get('date', '?')}: {timing.get('models_run')} of "
              f"{timing.get('models')} in {timing.get('wall_s', 0):.0f} s wall, {timing.get('workers')} worker "
              f"process(es) of {timing.get('threads')} torch thread(s); machine {machine.get('platform', '?')}, "
              f"{machine.get('cpus', '?')} CPUs, load average at the end {machine.get('load_average', '?')} "
              "(other jobs shared the cores when it is above the CPU count).", ""]
    return "\n".join(lines)


def write_report(out_dir: Path, cfg, records: Sequence[dict], data: ToyData, bandwidth: float, timing: dict) -> dict:
    """results.tsv, summary.json, summary.md and the figures in out_dir."""
    write_results(out_dir / "results.tsv", records)
    summary = summarize(records)
    comparisons = compare_with_vp(out_dir, records)
    references = reference_quality(data, cfg.samples, cfg.noise, cfg.data_seed, bandwidth, cfg.mmd_subsets)
    figures = sample_figures(out_dir, records, data, cfg.betas if any(o >= 2 for o in cfg.orders) else [0.0])
    result = {"summary": summary, "comparisons_with_vp": comparisons, "reference_quality": references,
              "figures": figures, "timing": timing,
              "ordering": {f"{beta:g}": {k: ordering_verdict(summary, beta, k) for k in ("pia_auroc", "headline_auroc")}
                           for beta in cfg.betas}}
    write_json_atomic(out_dir / "summary.json", result)
    write_text_atomic(out_dir / "summary.md", summary_markdown(cfg, summary, comparisons, references, figures, timing))
    return result
