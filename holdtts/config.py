"""System configuration: one YAML file per system (conf/vp.yaml, conf/hold3.yaml, ...).

The schema is a tree of dataclasses. Loading checks every key against it, so a misspelt key is an
error naming the file and line instead of a silently ignored setting. Any key can be overridden from
the command line as `section.key=value` (the value is parsed as YAML). Numeric keys carry their range
(`ranged`), checked at load time, so `train.batch_size=0` is an error naming the key before any
stage writes a file.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from holdtts.errors import ConfigError


def ranged(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None) -> Any:
    """A dataclass field whose value (each element, for a tuple) must satisfy the given bounds.
    None (for an optional key) is not checked."""
    return field(default=default, metadata={"range": (ge, gt, le, lt)})


def _range_text(ge, gt, le, lt) -> str:
    low = f">= {ge:g}" if ge is not None else f"> {gt:g}" if gt is not None else ""
    high = f"<= {le:g}" if le is not None else f"< {lt:g}" if lt is not None else ""
    if low and high:
        return f"in {'[' if ge is not None else '('}{ge if ge is not None else gt:g}, " \
               f"{le if le is not None else lt:g}{']' if le is not None else ')'}"
    return low or high


def _check_range(value: Any, bounds: tuple, where: str, path: str | None, line: int | None) -> None:
    ge, gt, le, lt = bounds
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
        if item is None or isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        if ((ge is not None and not item >= ge) or (gt is not None and not item > gt)
                or (le is not None and not item <= le) or (lt is not None and not item < lt)):
            raise ConfigError(f"'{where}' must be {_range_text(ge, gt, le, lt)}, got {value!r}", path, line)


@dataclass
class FeaturesConfig:
    """Mel settings (HiFi-GAN's convention, so published vocoders work). Recorded, and checked
    against the features on disk; changing them means re-extracting features."""

    sample_rate: int = ranged(22050, ge=1)
    n_fft: int = ranged(1024, ge=1)
    hop_length: int = ranged(256, ge=1)
    win_length: int = ranged(1024, ge=1)
    n_mels: int = ranged(80, ge=1)
    f_min: float = ranged(0.0, ge=0)
    f_max: float = ranged(8000.0, gt=0)


@dataclass
class DataConfig:
    data_dir: str = "data"  # Kaldi-style tables and splits (relative to the recipe directory)
    dump_dir: str = "dump"  # features written by `holdtts features`
    train_split: str = "members"  # the split list the model is fitted to
    valid_split: str = "valid"
    segment_frames: int = ranged(172, ge=1)  # random decoder crop, 2 s at 22050 Hz / hop 256 (Grad-TTS's out_size)
    bucket_size: int = ranged(32, ge=1)  # batches are drawn from pools of bucket_size * batch_size length-sorted utts


@dataclass
class EncoderConfig:
    """Grad-TTS text encoder and duration predictor (published sizes by default)."""

    n_channels: int = ranged(192, ge=1)
    filter_channels: int = ranged(768, ge=1)
    n_heads: int = ranged(2, ge=1)
    n_layers: int = ranged(6, ge=1)
    kernel_size: int = ranged(3, ge=1)
    p_dropout: float = ranged(0.1, ge=0, lt=1)
    window_size: int = ranged(4, ge=0)
    prenet: bool = True
    duration_filter_channels: int = ranged(256, ge=1)
    duration_kernel_size: int = ranged(3, ge=1)


@dataclass
class ModelConfig:
    """Speaker conditioning, as in Grad-TTS's multi-speaker model (docs/speakers.md). n_speakers 1 is a
    single-speaker model: no speaker parameters at all, the model of a config without this section. With
    n_speakers > 1, a table of n_speakers vectors of speaker_dim is concatenated to the text encoder's
    prenet output (so the transformer, the mu projection and the duration predictor see it), and fed to
    the decoder as an extra input channel through an MLP. The data directory's spk2id must list at most
    n_speakers speakers."""

    n_speakers: int = ranged(1, ge=1)
    speaker_dim: int = ranged(64, ge=1)  # Grad-TTS: 64


@dataclass
class DecoderConfig:
    """U-Net score network. Input channels: the n blocks of the process state plus mu."""

    dim: int = ranged(64, ge=1)
    dim_mults: tuple[int, ...] = ranged((1, 2, 4), ge=1)
    groups: int = ranged(8, ge=1)
    attention_heads: int = ranged(4, ge=1)  # linear attention at every level (Grad-TTS: 4 heads of 32)
    attention_head_dim: int = ranged(32, ge=1)
    pe_scale: float = ranged(1000.0, gt=0)  # sinusoidal time embedding of pe_scale * t / horizon
    # How the network sees the state: "none" feeds u_t as is; "marginal" divides each block by its
    # marginal standard deviation at t (keeps every input block at unit scale for any order).
    input_scaling: str = "none"


@dataclass
class ProcessConfig:
    kind: str = "vp"  # "vp" (Grad-TTS, order 1) or "hold" (critically damped HOLD++, order >= 2)
    order: int = ranged(1, ge=1)
    beta_min: float = ranged(0.05, ge=0)  # vp: beta(t) = beta_min + (beta_max - beta_min) t
    beta_max: float = ranged(20.0, gt=0)
    l_inv: float = ranged(1.0, gt=0)  # hold: stationary variance L^-1 of every block
    beta: float = ranged(0.08, gt=0)  # hold: initial auxiliary variance factor (HSM)
    horizon: float = ranged(1.0, gt=0)  # T on the process's own clock; t ~ U[t_min, T]
    t_min: float = ranged(1e-5, ge=0)
    jitter: float = ranged(1e-6, ge=0)  # added to the covariance diagonal before its Cholesky factor


@dataclass
class LossConfig:
    diffusion_weight: float = ranged(1.0, ge=0)
    prior_weight: float = ranged(1.0, ge=0)
    duration_weight: float = ranged(1.0, ge=0)
    # Weighting of the diffusion loss over t: "none" (plain eps-matching, Grad-TTS) or "score"
    # (lambda(t) = 1 / C_t[n,n]^2 relative to its mean, i.e. score matching). See docs/hold_training.md.
    weighting: str = "none"
    t_sampling: str = "uniform"  # "uniform" or "antithetic" (stratified over the batch)


@dataclass
class TrainConfig:
    seed: int = 1234
    batch_size: int = ranged(16, ge=1)
    max_steps: int = ranged(0, ge=0)  # 0: no step limit (use max_epochs)
    max_epochs: int = ranged(0, ge=0)  # 0: no epoch limit (use max_steps)
    lr: float = ranged(1e-4, gt=0)
    betas: tuple[float, ...] = ranged((0.9, 0.999), ge=0, lt=1)
    weight_decay: float = ranged(0.0, ge=0)
    lr_schedule: str = "constant"  # "constant" | "cosine" | "linear" (decay to 0 at the last step)
    warmup_steps: int = ranged(0, ge=0)
    grad_clip: float = ranged(1.0, gt=0)
    ema_decay: float = ranged(0.9999, ge=0, le=1)
    precision: str = "fp32"  # "fp32" | "bf16" | "fp16" (autocast; reduced precision on the GPU only)
    checkpoint_every: int = ranged(1000, ge=0)  # steps (0: only when the run ends or stops)
    keep_last: int = ranged(3, ge=1)  # checkpoints kept (besides the final one)
    valid_every: int = ranged(1000, ge=0)  # steps (0: never)
    log_every: int = ranged(50, ge=1)  # steps
    sample_every: int = ranged(5000, ge=0)  # steps between mel images and audio written to TensorBoard
    num_workers: int = ranged(0, ge=0)
    attack_every_epochs: int = ranged(0, ge=0)  # run `attack` every N epochs and log its AUROC (0: never)
    attack: str = "pia"  # comma-separated attack names for attack_every_epochs
    attack_max_utts: int = ranged(64, ge=1)  # members (and as many non-members) attacked during training


@dataclass
class SynthesisConfig:
    sampler: str = "ode_euler"
    steps: int = ranged(10, ge=1)
    temperature: float = ranged(1.5, gt=0)  # noise std divided by temperature, as in Grad-TTS
    length_scale: float = ranged(1.0, gt=0)  # > 1 speaks slower


@dataclass
class DPConfig:
    """Differentially private training (DP-SGD through Opacus): per-sample clipping, Gaussian noise,
    Poisson sampling, an accountant. Off unless `enabled`."""

    enabled: bool = False
    target_epsilon: float | None = ranged(None, gt=0)  # noise calibrated to reach it at the end of training
    noise_multiplier: float | None = ranged(None, ge=0)  # alternatively, a fixed noise multiplier
    delta: float | None = ranged(None, gt=0, lt=1)  # default: 1 / number of training utterances
    max_grad_norm: float = ranged(1.0, gt=0)  # per-sample clipping bound
    accountant: str = "prv"  # Opacus accountant: "prv" or "rdp"
    # Memory only: forward/backward each Poisson batch in chunks of at most this many utterances, one noisy
    # step per batch (Opacus's BatchMemoryManager). 0: the whole batch at once.
    max_physical_batch_size: int = ranged(0, ge=0)


@dataclass
class DefenseConfig:
    """Dual-model defenses (docs/defenses.md): two teachers trained on disjoint halves of the members."""

    kind: str = "none"  # "none" | "dualmd" (alternating synthesis) | "distillmd" (a student distilled from them)
    halves: tuple[str, ...] = ("half1", "half2")  # teacher k trains on halves[k - 1]; together: data.train_split
    # distillmd: an experiment holding finished teacher1/ and teacher2/ (e.g. exp/dualmd, relative to the
    # recipe directory); empty: train them first into <exp-dir>/teacher1 and teacher2.
    teachers_dir: str = ""


@dataclass
class SystemConfig:
    name: str = "system"
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    process: ProcessConfig = field(default_factory=ProcessConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    defense: DefenseConfig = field(default_factory=DefenseConfig)
    dp: DPConfig = field(default_factory=DPConfig)


# --------------------------------------------------------------------------- loading machinery


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, where: str, path: str | None, line: int | None) -> Any:
    """Convert a YAML value to the schema type, or raise a ConfigError naming the key."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where, path, line)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"'{where}' must be a mapping", path, line)
        return _build(hint, value, where, path, {})
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{where}' must be a list, got {value!r}", path, line)
        elem = args[0] if args else Any
        items = [_coerce(v, elem, f"{where}[{i}]", path, line) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or hint is tuple else items
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{where}' must be true or false, got {value!r}", path, line)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"'{where}' must be an integer, got {value!r}", path, line)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{where}' must be a number, got {value!r}", path, line)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"'{where}' must be a string, got {value!r}", path, line)
        return value
    return value


def _build(cls, values: dict, prefix: str, path: str | None, lines: dict[str, int]):
    """Instantiate dataclass `cls` from a nested dict; unknown keys and values out of range are errors."""
    hints = _hints(cls)
    bounds = {f.name: f.metadata["range"] for f in dataclasses.fields(cls) if "range" in f.metadata}
    kwargs = {}
    for key, value in values.items():
        where = f"{prefix}.{key}" if prefix else str(key)
        line = lines.get(where)
        if key not in hints:
            known = ", ".join(sorted(hints))
            section = f"section '{prefix}'" if prefix else "the top level"
            raise ConfigError(f"unknown config key '{where}' (keys of {section}: {known})", path, line)
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"'{where}' must be a mapping", path, line)
            kwargs[key] = _build(hint, value, where, path, lines)
        else:
            kwargs[key] = _coerce(value, hint, where, path, line)
            if key in bounds:
                _check_range(kwargs[key], bounds[key], where, path, line)
    return cls(**kwargs)


def _key_lines(node: yaml.Node, prefix: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    """Map dotted keys to 1-based line numbers from a composed YAML node tree."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            where = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            if where in out:
                raise ConfigError(f"duplicate config key '{where}'", None, key_node.start_mark.line + 1)
            out[where] = key_node.start_mark.line + 1
            _key_lines(value_node, where, out)
    return out


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> dict:
    """`train.batch_size=32` -> {"train": {"batch_size": 32}} (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override '{text}': cannot parse value ({err})") from err
    tree: dict = {}
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return tree


def read_yaml(path: str | os.PathLike) -> tuple[dict, dict[str, int]]:
    """Read a YAML mapping and the line number of each dotted key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError("config file not found", path) from err
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(f"invalid YAML: {getattr(err, 'problem', err)}", path,
                          None if mark is None else mark.line + 1) from err
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError("a config file must be a mapping of sections", path, 1)
    try:
        lines = _key_lines(node)
    except ConfigError as err:
        raise ConfigError(err.message, path, err.line) from err
    return data, lines


def load_config(paths: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                overrides: Sequence[str] = (), schema=SystemConfig):
    """Load a system config from one or more YAML files (later files override earlier ones, e.g.
    `conf/hold3.yaml` then `conf/tiny.yaml`), or the defaults when `paths` is None, then apply
    `section.key=value` overrides. Every key is checked against the schema."""
    if paths is None:
        paths = []
    elif isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    merged: dict = {}
    for path in paths:
        data, lines = read_yaml(path)
        _build(schema, data, "", os.fspath(path), lines)  # validate each file against the schema
        merged = _merge(merged, data)
    cfg = _build(schema, merged, "", None, {})
    for text in overrides:
        try:
            cfg = _build(schema, _merge(config_to_dict(cfg), parse_override(text)), "", None, {})
        except ConfigError as err:
            raise ConfigError(f"in command-line override '{text}': {err.message}") from err
    return cfg


def config_to_dict(cfg) -> dict:
    """A plain dict (tuples as lists) that round-trips through YAML, JSON and checkpoints."""

    def convert(value):
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        return value

    return convert(cfg)


def config_from_dict(data: dict, source: str = "<checkpoint>", schema=SystemConfig):
    return _build(schema, data, "", source, {})


def dump_config(cfg) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
