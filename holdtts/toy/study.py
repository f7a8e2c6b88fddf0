"""The toy study: order 1 (vp) and HOLD++ orders 2-4 at several beta and seeds, each trained on the same
Swiss-roll members, attacked with holdtts.privacy.attacks, and sampled for a quality distance.

One directory per model under OUT/models/<name>/ (model.pt, rows.tsv, metrics.json, samples.npy,
model.json). model.json is written last and records the settings that made the model: a model whose
model.json matches the current settings is skipped, so an interrupted study resumes where it stopped.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from holdtts.errors import ConfigError, HoldttsError
from holdtts.privacy.metrics import heldout_interval_metrics, write_rows
from holdtts.toy.attack import TOY_ATTACKS, attack_rows
from holdtts.toy.data import ToyData, make_toy_data
from holdtts.toy.model import ToyDiffusionModel, make_toy_process
from holdtts.toy.quality import copy_ratio, mmd2_with_interval
from holdtts.toy.train import train_toy_model
from holdtts.utils.fileio import atomic_path, ensure_dir, write_json_atomic

log = logging.getLogger(__name__)

SCHEMA = 1  # bump when a change makes old model directories incomparable


@dataclass
class StudyConfig:
    """Everything that determines the study's numbers (threads and output paths do not)."""

    orders: tuple[int, ...] = (1, 2, 3, 4)
    betas: tuple[float, ...] = (0.5, 2.0, 10.0)  # HOLD++'s initial auxiliary variance factor (order >= 2)
    seeds: tuple[int, ...] = (0, 1, 2)  # training seeds: initial weights, batches, times and noise
    # data
    members: int = 16
    nonmembers: int = 256
    heldout: int = 2000
    noise: float = 0.5
    data_seed: int = 0
    # model and training
    width: int = 64
    depth: int = 4
    fourier_features: int = 64  # random Fourier features of the state (0: a plain MLP)
    fourier_scale: float = 8.0  # their frequencies' std (per unit of the scaled state)
    steps: int = 8000
    batch_size: int = 64
    lr: float = 2e-3
    ema: float = 0.99
    horizon: float = 5.0  # HOLD++'s T (vp: Grad-TTS's T = 1)
    # attacks
    attacks: tuple[str, ...] = TOY_ATTACKS
    attack_params: dict = field(default_factory=dict)
    attack_seed: int = 1234
    bootstrap: int = 1000
    permutations: int = 1000
    # quality
    sampler: str = "splitting"
    sample_steps: int = 100
    samples: int = 2000
    mmd_subsets: int = 10
    mmd_bandwidth: float = 0.2  # RBF kernel width in standardised units (the spiral's arms are ~0.9 apart)

    def __post_init__(self):
        self.orders = tuple(int(o) for o in self.orders)
        self.betas = tuple(float(b) for b in self.betas)
        self.seeds = tuple(int(s) for s in self.seeds)
        self.attacks = tuple(self.attacks)
        if not self.orders or any(o < 1 for o in self.orders):
            raise ConfigError(f"orders must be >= 1, got {self.orders}")
        if any(o >= 2 for o in self.orders) and not self.betas:
            raise ConfigError("HOLD++ orders need at least one beta")
        if any(b < 0 for b in self.betas):
            raise ConfigError(f"beta must be >= 0, got {self.betas}")
        if not self.seeds:
            raise ConfigError("the study needs at least one seed")
        if self.steps < 0 or self.batch_size < 1 or self.samples < 2 or self.sample_steps < 1:
            raise ConfigError("steps >= 0, batch size >= 1, samples >= 2 and sample steps >= 1 are required")
        if self.mmd_bandwidth <= 0:
            raise ConfigError(f"the MMD bandwidth must be > 0, got {self.mmd_bandwidth}")

    def specs(self) -> list[ModelSpec]:
        """Every model, vp first, then by order, beta and seed."""
        out = []
        for order in self.orders:
            for beta in ((None,) if order == 1 else self.betas):
                out.extend(ModelSpec(order, beta, seed) for seed in self.seeds)
        return out


@dataclass(frozen=True)
class ModelSpec:
    order: int
    beta: float | None  # None for order 1
    seed: int

    @property
    def system(self) -> str:
        return "vp" if self.order == 1 else f"hold{self.order}_b{self.beta:g}"

    @property
    def name(self) -> str:
        return f"{self.system}_s{self.seed}"


def model_settings(cfg: StudyConfig, spec: ModelSpec) -> dict:
    """What a model's outputs depend on (compared with model.json to decide whether to reuse them)."""
    settings = asdict(cfg)
    for key in ("orders", "betas", "seeds"):
        settings.pop(key)
    if spec.order == 1:
        settings.pop("horizon")
    settings.update({"schema": SCHEMA, "order": spec.order, "beta": spec.beta, "seed": spec.seed,
                     "attacks": list(cfg.attacks)})
    return json.loads(json.dumps(settings))  # tuples -> lists, as they come back from model.json


# --------------------------------------------------------------------------- one model


def _build(cfg: StudyConfig, spec: ModelSpec, data: ToyData) -> ToyDiffusionModel:
    torch.manual_seed(spec.seed)
    process = make_toy_process(spec.order, spec.beta if spec.beta is not None else 0.0, cfg.horizon)
    return ToyDiffusionModel(process, data.data_var, cfg.width, cfg.depth, fourier_features=cfg.fourier_features,
                             fourier_scale=cfg.fourier_scale)


def toy_metrics(rows: list[dict], cfg: StudyConfig) -> dict:
    """Intervals on the held-out figures only: per-(attack, t) intervals at 1000 resamples would cost minutes
    per model (sklearn's ROC for every resample of every cell), and no finding uses them."""
    return heldout_interval_metrics(rows, cfg.bootstrap, seed=cfg.attack_seed, permutations=cfg.permutations)


def run_model(cfg: StudyConfig, spec: ModelSpec, data: ToyData, model_dir: Path) -> dict:
    """Train, attack and sample one model; write its directory; return its model.json record (written
    last: until it is there, the directory does not count as done)."""
    ensure_dir(model_dir)
    (model_dir / "model.json").unlink(missing_ok=True)
    timing = {}
    began = time.perf_counter()
    model = _build(cfg, spec, data)
    training = train_toy_model(model, data.members, cfg.steps, cfg.batch_size, cfg.lr, seed=spec.seed,
                               ema_decay=cfg.ema)
    timing["train_s"] = time.perf_counter() - began
    with atomic_path(model_dir / "model.pt") as tmp:
        torch.save({"state_dict": model.state_dict(), "process": model.process.to_dict(),
                    "data_var": model.data_var}, tmp)

    began = time.perf_counter()
    rows, attacks = attack_rows(model, data.members, data.member_ids, data.nonmembers, data.nonmember_ids,
                                cfg.attacks, params=cfg.attack_params, seed=cfg.attack_seed)
    timing["attack_s"] = time.perf_counter() - began
    began = time.perf_counter()
    metrics = toy_metrics(rows, cfg)
    timing["metrics_s"] = time.perf_counter() - began
    write_rows(model_dir / "rows.tsv", rows)
    write_json_atomic(model_dir / "metrics.json", metrics)

    began = time.perf_counter()
    generator = torch.Generator().manual_seed(10_000 + spec.seed)
    samples = model.sample(cfg.samples, cfg.sampler, cfg.sample_steps, generator=generator)
    quality = mmd2_with_interval(samples, data.heldout[:cfg.samples], cfg.mmd_bandwidth, cfg.mmd_subsets)
    quality["copy_ratio"] = copy_ratio(samples, data.members, data.heldout[:cfg.samples])
    quality.update({"sampler": cfg.sampler, "steps": cfg.sample_steps, "finite": bool(torch.isfinite(samples).all())})
    timing["sample_s"] = time.perf_counter() - began
    with atomic_path(model_dir / "samples.npy", suffix=".npy") as tmp:
        np.save(tmp, samples.numpy().astype(np.float32))

    record = {
        "name": spec.name, "system": spec.system, "order": spec.order, "beta": spec.beta, "seed": spec.seed,
        "settings": model_settings(cfg, spec),
        "training": training,
        "attacks": attacks,
        "headline": metrics["headline"],
        "heldout": metrics["heldout"],
        "in_sample_max": metrics["in_sample_max"],
        "quality": quality,
        "timing": {k: round(v, 2) for k, v in timing.items()},
    }
    write_json_atomic(model_dir / "model.json", record)
    return record


def _reusable(model_dir: Path, settings: dict, overwrite: bool) -> dict | None:
    """The model's record when its outputs are complete and were made with these settings."""
    path = model_dir / "model.json"
    if overwrite or not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise HoldttsError(f"{path}: unreadable ({err}); remove it to redo this model") from err
    if record.get("settings") != settings:
        old = record.get("settings") or {}
        changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        raise HoldttsError(f"{path}: made with different settings ({', '.join(changed)}); use another "
                           "--out-dir, or --overwrite to redo the models")
    missing = [f for f in ("rows.tsv", "metrics.json", "samples.npy") if not (model_dir / f).exists()]
    return None if missing else record


# --------------------------------------------------------------------------- the study


def study_data(cfg: StudyConfig) -> ToyData:
    return make_toy_data(cfg.members, cfg.nonmembers, max(cfg.heldout, cfg.samples), cfg.noise, cfg.data_seed)


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_in_worker(cfg: StudyConfig, spec: ModelSpec, model_dir: Path) -> dict:
    return run_model(cfg, spec, study_data(cfg), model_dir)


def run_models(cfg: StudyConfig, out_dir: str | Path, overwrite: bool = False, workers: int = 1,
               threads: int = 1) -> list[dict]:
    """Train, attack and sample every model of the study that is not already done; returns all records
    in study order. With workers > 1 the models run in that many processes of `threads` torch threads
    each (a model's numbers do not depend on which process ran it: every draw is seeded by the model)."""
    out_dir = ensure_dir(out_dir)
    data = study_data(cfg)
    specs = cfg.specs()
    records: dict[str, dict] = {}
    todo = []
    for spec in specs:
        record = _reusable(out_dir / "models" / spec.name, model_settings(cfg, spec), overwrite)
        if record is not None:
            records[spec.name] = record
        else:
            todo.append(spec)
    if records:
        log.info("%d of %d models done before, reused", len(records), len(specs))
    began = time.perf_counter()

    def report(spec: ModelSpec, record: dict) -> None:
        records[spec.name] = record
        head, training = record["headline"], record["training"]
        log.info("[%d/%d] %s: loss %.3f -> %.3f; held-out %s t=%s AUROC %.3f p=%.3g; MMD^2 %.4f (%.0f s)",
                 len(records), len(specs), spec.name, training["loss_first"] or float("nan"),
                 training["loss_last"] or float("nan"), head["attack"], head["t"], head["auroc"], head["p_value"],
                 record["quality"]["mmd2"], sum(record["timing"].values()))

    if workers <= 1 or len(todo) <= 1:
        torch.set_num_threads(threads)
        for spec in todo:
            report(spec, run_model(cfg, spec, data, out_dir / "models" / spec.name))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")  # no forked torch thread pools
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                                 initargs=(threads,)) as pool:
            futures = {pool.submit(_run_in_worker, cfg, spec, out_dir / "models" / spec.name): spec
                       for spec in todo}
            for future in as_completed(futures):
                report(futures[future], future.result())
    log.info("%d model(s) run in %.0f s", len(todo), time.perf_counter() - began)
    return [records[spec.name] for spec in specs]


def collect_records(cfg: StudyConfig, out_dir: Path) -> list[dict]:
    """Every model's record, for a report without training; an error names the models still missing."""
    records, missing = [], []
    for spec in cfg.specs():
        record = _reusable(out_dir / "models" / spec.name, model_settings(cfg, spec), overwrite=False)
        if record is None:
            missing.append(spec.name)
        else:
            records.append(record)
    if missing:
        raise HoldttsError(f"{out_dir / 'models'}: {len(missing)} model(s) not done yet ({', '.join(missing[:5])}"
                           f"{', ...' if len(missing) > 5 else ''}); run the study without --only report first")
    return records


def _log_run(out_dir: Path, cfg: StudyConfig, entry: dict) -> list[dict]:
    """Append this invocation to OUT/study.json's list of runs (settings, machine, date, timing); returns
    the runs so far. The report quotes the last run that trained models, whichever invocation builds it."""
    import datetime
    import platform

    path = out_dir / "study.json"
    runs = []
    if path.exists():
        try:
            runs = json.loads(path.read_text(encoding="utf-8")).get("runs", [])
        except (OSError, json.JSONDecodeError):
            runs = []
    runs.append({**entry, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                 "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                             "load_average": [round(v, 2) for v in os.getloadavg()]}})
    write_json_atomic(path, {"config": json.loads(json.dumps(asdict(cfg))), "runs": runs})
    return runs


def run_study(cfg: StudyConfig, out_dir: str | Path, overwrite: bool = False, only: str | None = None,
              workers: int = 1, threads: int = 1) -> dict:
    """The whole study (only=None), its models (only="models") or its report from finished models
    (only="report"); models run in `workers` processes of `threads` torch threads. Every invocation is
    logged in OUT/study.json (settings, machine, date, load, wall time)."""
    from holdtts.toy.report import write_report

    if only not in (None, "models", "report"):
        raise ConfigError(f"only must be 'models' or 'report', got {only!r}")
    out_dir = ensure_dir(out_dir)
    began = time.perf_counter()
    if only == "report":
        records = collect_records(cfg, out_dir)
        models_run = 0
    else:
        done_before = sum(_reusable(out_dir / "models" / s.name, model_settings(cfg, s), overwrite) is not None
                          for s in cfg.specs())
        records = run_models(cfg, out_dir, overwrite, workers, threads)
        models_run = len(records) - done_before
    timing = {"only": only or "all", "models": len(records), "models_run": models_run, "workers": workers,
              "threads": threads, "wall_s": round(time.perf_counter() - began, 1)}
    runs = _log_run(out_dir, cfg, timing) if only != "report" else None
    if only == "models":
        return {"records": records, "timing": timing}
    if runs is None:
        runs = _log_run(out_dir, cfg, timing)
    trained = [r for r in runs if r.get("models_run")]
    result = write_report(out_dir, cfg, records, study_data(cfg), cfg.mmd_bandwidth,
                          trained[-1] if trained else timing)
    return {"records": records, **result, "timing": timing}  # this run's timing, not the report's
