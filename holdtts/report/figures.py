"""The report's figures (matplotlib's Agg canvas, no pyplot state), and the ROC curves they draw.

ROC curves are recomputed from rows.tsv with scikit-learn, members the positive class, and every AUROC
in metrics.json is checked against them, so a rows file and a metrics file from different runs are an
error rather than a figure that contradicts its table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import auc, roc_curve

from holdtts.errors import InputError
from holdtts.privacy.bounds import membership_auroc_bound
from holdtts.privacy.metrics import NO_T
from holdtts.report.collect import QUALITY_METRICS, AttackRun, SystemRecord, read_scores

AUROC_TOLERANCE = 1e-6
_LINESTYLES = ("-", "--", ":", "-.")


@dataclass
class RocCurve:
    system: str
    source: str  # attack directory
    attack: str
    t: str
    fpr: np.ndarray
    tpr: np.ndarray
    num_members: int
    num_nonmembers: int
    reported_auroc: float  # metrics.json

    @property
    def auc(self) -> float:
        """Trapezoidal area under the recomputed curve (equals roc_auc_score, ties included)."""
        return float(auc(self.fpr, self.tpr))


def recompute_run(run: AttackRun) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """The ROC curve (fpr, tpr) of every (attack, t) in an attack directory, from its rows.tsv; raises if
    an AUROC in metrics.json disagrees with its rows."""
    wanted = {(attack, t) for attack, result in run.metrics["attacks"].items() for t in result["by_t"]}
    curves = {}
    for (attack, t), (labels, scores) in read_scores(run.rows_path, wanted).items():
        if labels.min() == labels.max():
            raise InputError(f"attack '{attack}' at t={t}: the rows hold only one class", run.rows_path)
        fpr, tpr, _ = roc_curve(labels, scores)
        reported = run.metrics["attacks"][attack]["by_t"][t]["auroc"]
        if abs(auc(fpr, tpr) - reported) > AUROC_TOLERANCE:
            raise InputError(f"attack '{attack}' at t={t}: AUROC {auc(fpr, tpr):.6f} from these rows but "
                             f"{reported:.6f} in {run.path / 'metrics.json'}; the two files come from different "
                             "runs: re-run the attack with --overwrite", run.rows_path)
        curves[attack, t] = (fpr, tpr)
    return curves


def roc_curves(record: SystemRecord) -> list[RocCurve]:
    """Per attack, the curve at its best t in the attack directory where it is strongest. Directories
    without rows.tsv are skipped (their metrics cannot be checked either)."""
    recomputed = {run.source: recompute_run(run) for run in record.attack_runs if run.rows_path is not None}
    out = []
    for attack in record.attack_names:
        entries = [e for e in record.best_entries(attack) if e.source in recomputed]
        if not entries:
            continue
        best = max(entries, key=lambda e: e.auroc)
        fpr, tpr = recomputed[best.source][attack, best.t]
        out.append(RocCurve(record.name, best.source, attack, best.t, fpr, tpr, best.values["num_members"],
                            best.values["num_nonmembers"], best.auroc))
    return out


def _t_label(t: str) -> str:
    return "" if t == NO_T else f" t={t}"


def _source_label(system: str, source: str) -> str:
    return system if source == "attack" else f"{system}/{source.removeprefix('attack_')}"


def _grid(count: int, max_cols: int = 3, size: tuple[float, float] = (4.6, 3.8)) -> tuple[Figure, list]:
    cols = min(max_cols, count)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(size[0] * cols, size[1] * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def _colors(names: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _save(fig: Figure, path: Path) -> None:
    # no timestamp or version in the PNG's metadata: the same numbers give the same file
    fig.savefig(path, dpi=110, metadata={"Software": None})


def plot_roc(curves: dict[str, list[RocCurve]], path: Path) -> None:
    """One log-log panel per system; a curve per attack at its best t; the chance diagonal."""
    attacks = list(dict.fromkeys(c.attack for cs in curves.values() for c in cs))
    colors = _colors(attacks)
    fig, axes = _grid(len(curves))
    for ax, (system, system_curves) in zip(axes, curves.items()):
        # the smallest non-zero rate the data can show: 1 / (number of non-members or members)
        low = min(min(1 / c.num_nonmembers, 1 / c.num_members) for c in system_curves) / 2
        ax.plot([low, 1], [low, 1], color="0.6", lw=1, ls="--", label="chance")
        for c in system_curves:
            source = "" if c.source == "attack" else f" [{c.source.removeprefix('attack_')}]"
            ax.plot(c.fpr, c.tpr, color=colors[c.attack], lw=1.4,
                    label=f"{c.attack}{_t_label(c.t)}{source}: {c.auc:.3f}")
        ax.set_xscale("log", nonpositive="clip")
        ax.set_yscale("log", nonpositive="clip")
        ax.minorticks_off()  # decades are enough to read off a rate, and minor log ticks double the drawing time
        ax.set_xlim(low, 1)
        ax.set_ylim(low, 1.05)
        ax.set_xlabel("false positive rate (non-members)")
        ax.set_ylabel("true positive rate (members)")
        ax.set_title(f"{system}: ROC at each attack's best t")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right", title="attack: AUROC", title_fontsize=7)
    _save(fig, path)


def plot_auroc_vs_t(records: list[SystemRecord], attacks: list[str], path: Path) -> None:
    """One panel per attack with a t grid: AUROC against t, a line per system (and attack directory),
    the bootstrap 95% interval as a band."""
    colors = _colors([r.name for r in records])
    fig, axes = _grid(len(attacks))
    for ax, attack in zip(axes, attacks):
        ax.axhline(0.5, color="0.6", lw=1, ls="--")
        for record in records:
            for i, run in enumerate(r for r in record.attack_runs if attack in r.metrics["attacks"]):
                entries = [e for e in run.by_t(attack) if e.t != NO_T]
                if not entries:
                    continue
                ts = [float(e.t) for e in entries]
                values = [e.auroc for e in entries]
                low = [e.values["auroc_ci"][0] for e in entries]
                high = [e.values["auroc_ci"][1] for e in entries]
                color, label = colors[record.name], _source_label(record.name, run.source)
                if len(ts) == 1:  # a band needs two points
                    ax.errorbar(ts, values, yerr=[[values[0] - low[0]], [high[0] - values[0]]], fmt="o",
                                color=color, capsize=3, label=label)
                    continue
                ax.fill_between(ts, low, high, color=color, alpha=0.15, lw=0)
                ax.plot(ts, values, color=color, ls=_LINESTYLES[i % len(_LINESTYLES)], marker="o", ms=3,
                        label=label)
        ax.set_xlabel("t (fraction of the horizon)")
        ax.set_ylabel("AUROC")
        ax.set_title(attack)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)


def plot_privacy_quality(records: list[SystemRecord], path: Path) -> list[str]:
    """One panel per quality metric: the held-out headline AUROC (with its interval) against the metric,
    systems labelled. Returns the metrics drawn."""
    drawn = []
    for metric in QUALITY_METRICS:
        points = [(r, r.quality_value(metric), r.headline()) for r in records]
        if any(value is not None and head is not None for _, value, head in points):
            drawn.append(metric)
    if not drawn:
        return []
    colors = _colors([r.name for r in records])
    fig, axes = _grid(len(drawn))
    for ax, metric in zip(axes, drawn):
        ax.axhline(0.5, color="0.6", lw=1, ls="--")
        for record, value, head in ((r, r.quality_value(metric), r.headline()) for r in records):
            if value is None or head is None:
                continue
            low, high = head.values["auroc_ci"] or (head.auroc, head.auroc)
            ax.errorbar([value], [head.auroc], yerr=[[head.auroc - low], [high - head.auroc]],
                        fmt="o", color=colors[record.name], capsize=3)
            ax.annotate(record.name, (value, head.auroc), textcoords="offset points", xytext=(5, 4),
                        fontsize=8)
        references = {r.quality_value(metric, "reference") for r in records if r.quality is not None}
        if len(references) == 1 and None not in references:
            ax.axvline(references.pop(), color="0.4", lw=1, ls=":", label="real recordings")
            ax.legend(fontsize=7)
        ax.set_xlabel(f"{metric.label} ({'lower' if metric.lower_is_better else 'higher'} is better)")
        ax.set_ylabel("held-out headline AUROC")
        ax.grid(True, alpha=0.3)
    _save(fig, path)
    return [m.key for m in drawn]


def plot_training_aurocs(records: list[SystemRecord], path: Path) -> None:
    """AUROC logged during training against the step, a line per system and attack."""
    fig, axes = _grid(1, size=(7.0, 4.2))
    ax = axes[0]
    systems = [r for r in records if r.training_aurocs]
    colors = _colors([r.name for r in systems])
    ax.axhline(0.5, color="0.6", lw=1, ls="--")
    for record in systems:
        for i, (attack, points) in enumerate(sorted(record.training_aurocs.items())):
            steps, values = zip(*points)
            ax.plot(steps, values, color=colors[record.name], ls=_LINESTYLES[i % len(_LINESTYLES)], marker="o",
                    ms=3, label=f"{record.name}: {attack}")
    ax.set_xlabel("training step")
    ax.set_ylabel("AUROC")
    ax.set_title("membership leakage during training")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_auroc_vs_epsilon(records: list[SystemRecord], path: Path) -> None:
    """The held-out headline AUROC against the DP guarantee's epsilon (log axis): DP-SGD systems at their
    epsilon, with the largest AUROC their (epsilon, delta) allows; systems without a guarantee (vp, HOLD++,
    the dual-model defenses) at the axis's right end, "inf", so each empirical defense can be read against
    the epsilon DP-SGD needs for the same measured leakage."""
    private = [r for r in records if math.isfinite(r.epsilon) and r.headline() is not None]
    others = [r for r in records if not math.isfinite(r.epsilon) and r.headline() is not None]
    epsilons = [r.epsilon for r in private]
    low, high = min(0.1, min(epsilons) / 2), max(epsilons) * 2  # from 0.1: where the bound starts to bite
    infinity = high * 4  # where systems without a guarantee are drawn
    colors = _colors([r.name for r in records])
    fig, axes = _grid(1, size=(7.5, 4.5))
    ax = axes[0]
    ax.axhline(0.5, color="0.6", lw=1, ls="--")
    deltas = {float(r.privacy.get("delta", 0.0)) for r in private}
    grid = np.geomspace(low, high, 200)
    for delta in sorted(deltas):
        ax.plot(grid, [membership_auroc_bound(e, delta) for e in grid], color="0.5", lw=1,
                label=f"largest AUROC (eps, delta={delta:.2g})-DP allows")
    for record in private + others:
        head = record.headline()
        x = record.epsilon if record in private else infinity
        lo, hi = head.values["auroc_ci"] or (head.auroc, head.auroc)
        ax.errorbar([x], [head.auroc], yerr=[[head.auroc - lo], [hi - head.auroc]], fmt="o",
                    color=colors[record.name], capsize=3)
        ax.annotate(record.name, (x, head.auroc), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.axvline(high * 1.5, color="0.8", lw=6, alpha=0.5)  # the break before "inf"
    ax.set_xscale("log")
    ticks = [t for t in (0.1, 0.3, 1, 3, 8, 10, 30, 100) if low <= t <= high]
    ax.set_xticks(ticks + [infinity], [f"{t:g}" for t in ticks] + ["inf\n(no DP)"])
    ax.minorticks_off()
    ax.set_xlabel("epsilon of the DP guarantee")
    ax.set_ylabel("held-out headline AUROC")
    ax.set_title("empirical leakage against the formal guarantee")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)


@dataclass
class FigureSet:
    files: dict[str, str]  # figure name -> file name in the report directory
    curves: dict[str, list[RocCurve]]  # system -> its ROC curves
    quality_panels: list[str]  # quality metrics in the privacy-vs-quality figure


def t_attacks(records: list[SystemRecord]) -> list[str]:
    """Attacks swept over t somewhere in these systems, in report order."""
    names = []
    for record in records:
        for run in record.attack_runs:
            for attack in run.attacks:
                if any(t != NO_T for t in run.metrics["attacks"][attack]["by_t"]):
                    names.append(attack)
    return list(dict.fromkeys(names))


def write_figures(records: list[SystemRecord], out_dir: Path) -> FigureSet:
    """Every figure the data allows, as PNG files in out_dir."""
    files: dict[str, str] = {}
    curves = {r.name: c for r in records if (c := roc_curves(r))}
    if curves:
        plot_roc(curves, out_dir / "roc.png")
        files["roc"] = "roc.png"
    swept = t_attacks(records)
    if swept:
        plot_auroc_vs_t(records, swept, out_dir / "auroc_vs_t.png")
        files["auroc_vs_t"] = "auroc_vs_t.png"
    panels = plot_privacy_quality(records, out_dir / "privacy_vs_quality.png")
    if panels:
        files["privacy_vs_quality"] = "privacy_vs_quality.png"
    if any(math.isfinite(r.epsilon) and r.headline() is not None for r in records):
        plot_auroc_vs_epsilon(records, out_dir / "auroc_vs_epsilon.png")
        files["auroc_vs_epsilon"] = "auroc_vs_epsilon.png"
    if any(r.training_aurocs for r in records):
        plot_training_aurocs(records, out_dir / "auroc_during_training.png")
        files["auroc_during_training"] = "auroc_during_training.png"
    return FigureSet(files, curves, panels)

