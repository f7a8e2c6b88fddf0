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
from holdtts.report.collect import QUALITY_METRICS, AttackRun, SystemRecord, TrainingPoint, read_scores
from holdtts.report.comparisons import group_records

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


@dataclass(frozen=True)
class CurvePoint:
    """One system's held-out AUROC at one x, over the training seeds that logged it."""

    x: int
    mean: float
    low: float  # the smallest over those seeds
    high: float  # the largest
    seeds: int


@dataclass
class SystemCurves:
    # the training logs pooled: one per training seed ("vp.seed2"), or per part of a model trained in parts
    # ("dualmd.seed2/teacher1": each DualMD teacher attacked during training against its own members)
    models: list[str]
    attacks: dict[str, list[CurvePoint]]  # attack -> by x


@dataclass
class TrainingCurves:
    """The AUROCs logged during training, seeds of one system pooled (comparisons.group_records)."""

    axis: str  # "epoch" (epochs completed); "step" when some log has no epochs, as older holdtts wrote them
    every: list[int]  # the train.attack_every_epochs of the models drawn
    systems: dict[str, SystemCurves]

    @property
    def attacks(self) -> list[str]:
        """The held-out headline first, then every attack in the order the logs list them."""
        names = dict.fromkeys(a for s in self.systems.values() for a in s.attacks)
        return [a for a in ("headline",) if a in names] + [a for a in names if a != "headline"]


def _training_logs(record: SystemRecord) -> dict[str, dict[str, list[TrainingPoint]]]:
    """label -> attack -> points: the model's own log, else one per part (a DualMD's teachers)."""
    if record.training_aurocs:
        return {record.name: record.training_aurocs}
    return {f"{record.name}/{part}": aurocs for part, aurocs in record.part_training_aurocs.items() if aurocs}


def training_curves(records: list[SystemRecord]) -> TrainingCurves | None:
    """Per system and attack, the mean, minimum and maximum over its training logs (one per seed, or per
    teacher and seed for DualMD) at each logged x."""
    groups = [g for g in group_records(records) if any(_training_logs(r) for r in g.records)]
    if not groups:
        return None
    logged = {g.name: {label: aurocs for r in g.records for label, aurocs in _training_logs(r).items()}
              for g in groups}
    points = [p for logs in logged.values() for aurocs in logs.values() for ps in aurocs.values() for p in ps]
    # epochs, not steps: a DualMD teacher or a larger batch takes fewer steps to an epoch than vp
    axis = "epoch" if all(p.epoch is not None for p in points) else "step"
    systems = {}
    for name, logs in logged.items():
        attacks = {}
        for attack in dict.fromkeys(a for aurocs in logs.values() for a in aurocs):
            by_x: dict[int, list[float]] = {}
            for aurocs in logs.values():
                # one value per log and x: a step axis has one already, an epoch the last logged
                per_log = {getattr(p, axis): p.auroc for p in aurocs.get(attack, [])}
                for x, value in per_log.items():
                    by_x.setdefault(x, []).append(value)
            attacks[attack] = [CurvePoint(x, float(np.mean(v)), min(v), max(v), len(v))
                               for x, v in sorted(by_x.items())]
        systems[name] = SystemCurves(list(logs), attacks)
    every = sorted({r.attack_every_epochs for g in groups for r in g.records
                    if _training_logs(r) and r.attack_every_epochs})
    return TrainingCurves(axis, every, systems)


def seeds_label(name: str, seeds: int) -> str:
    return f"{name} ({seeds} seed{'s' if seeds != 1 else ''})"


def curves_label(name: str, models: list[str]) -> str:
    """The legend's name of a system's pooled curves: its seeds, or its parts over its seeds."""
    parts = [m for m in models if "/" in m]
    if not parts:
        return seeds_label(name, len(models))
    seeds = len({m.split("/", 1)[0] for m in parts})
    return f"{name} ({len(parts)} teacher logs, {seeds} seed{'s' if seeds != 1 else ''})"


def plot_training_aurocs(curves: TrainingCurves, path: Path) -> None:
    """One panel per attack (the held-out headline first): a line per system, the mean over its training
    seeds against the epochs completed, a band from their minimum to their maximum; hollow markers where
    not every seed has logged that epoch yet. One legend for every panel: a system keeps its colour."""
    attacks = curves.attacks
    colors = _colors(list(curves.systems))
    fig, axes = _grid(len(attacks), size=(4.2, 3.3))
    handles = {}
    for ax, attack in zip(axes, attacks):
        ax.axhline(0.5, color="0.6", lw=1, ls="--")
        for name, system in curves.systems.items():
            points = system.attacks.get(attack)
            if not points:
                continue
            color, seeds = colors[name], len(system.models)
            xs, means = [p.x for p in points], [p.mean for p in points]
            if seeds > 1 and len(points) > 1:
                ax.fill_between(xs, [p.low for p in points], [p.high for p in points], color=color, alpha=0.15,
                                lw=0)
            elif seeds > 1:  # a band needs two points
                ax.errorbar(xs, means, yerr=[[means[0] - points[0].low], [points[0].high - means[0]]],
                            color=color, capsize=3, lw=1)
            [line] = ax.plot(xs, means, color=color, lw=1.4)
            handles.setdefault(name, line)
            for full in (True, False):
                chosen = [p for p in points if (p.seeds == seeds) == full]
                ax.plot([p.x for p in chosen], [p.mean for p in chosen], ls="", marker="o", ms=3.5, color=color,
                        mfc=color if full else "white")
        ax.set_ylim(0, 1.02)  # one scale in every panel
        ax.set_xlabel("epochs completed" if curves.axis == "epoch" else "training step")
        ax.set_ylabel("held-out AUROC")
        ax.set_title("headline (strongest attack, held out)" if attack == "headline" else attack, fontsize=10)
        ax.grid(True, alpha=0.3)
    fig.legend(list(handles.values()), [curves_label(n, curves.systems[n].models) for n in handles],
               loc="outside right upper", fontsize=8, title="system (training seeds)", title_fontsize=8)
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
    training: TrainingCurves | None = None  # what the AUROC-during-training figure draws


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
    training = training_curves(records)
    if training is not None:
        plot_training_aurocs(training, out_dir / "auroc_during_training.png")
        files["auroc_during_training"] = "auroc_during_training.png"
    return FigureSet(files, curves, panels, training)

