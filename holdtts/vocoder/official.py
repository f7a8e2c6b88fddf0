"""Loading HiFi-GAN generators: the published checkpoints (github.com/jik876/hifi-gan) and holdtts's own.

A published generator (`generator_v1`, `generator_universal.pth.tar`, ...) is a torch file holding
`{"generator": state_dict}`, written by the old `torch.nn.utils.weight_norm` (parameters `X.weight_g` /
`X.weight_v`), with a `config.json` beside it that names the architecture. holdtts's modules use
`torch.nn.utils.parametrizations.weight_norm` (`X.parametrizations.weight.original0` / `original1`, the
same g and v), so loading renames those two keys and nothing else; weight norm is then folded away,
exactly as the official inference script's `remove_weight_norm()` does. Files load with
`torch.load(weights_only=True)` (both the zip and the legacy pre-1.6 format).

Caution for privacy experiments: the published LJSpeech generators were trained on all of LJSpeech but
its 150 validation clips, so they heard almost every clip Grad-TTS (and any member/non-member split of
LJSpeech) tests on. Train one on the members (`holdtts train-vocoder`) when that matters.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from holdtts.config import FeaturesConfig, config_from_dict
from holdtts.errors import CheckpointError, ConfigError
from holdtts.utils.checkpoint import CHECKPOINT_DIR, resolve_checkpoint
from holdtts.vocoder.hifigan import GeneratorConfig, HifiGanGenerator, HifiGanVocoder, check_generator_config

HOLDTTS_FORMAT = "holdtts-hifigan-1"
CONFIG_NAME = "config.json"
# Generator keys of an official config.json and the mel settings they must agree with.
_GENERATOR_KEYS = ("resblock", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
                   "resblock_kernel_sizes", "resblock_dilation_sizes")
_FEATURE_KEYS = {"sampling_rate": "sample_rate", "n_fft": "n_fft", "hop_size": "hop_length",
                 "win_size": "win_length", "num_mels": "n_mels", "fmin": "f_min", "fmax": "f_max"}
_OLD_SUFFIXES = {".weight_g": ".parametrizations.weight.original0",
                 ".weight_v": ".parametrizations.weight.original1"}


def read_weights(path: str | Path) -> object:
    """torch.load(weights_only=True) on the CPU; any unreadable file is a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such vocoder checkpoint", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a deserialisation boundary: every failure means the same to the user
        raise CheckpointError(f"cannot read the file (truncated, corrupt, or not a torch weights file): "
                              f"{type(err).__name__}: {err}", path) from err


def read_official_config(path: str | Path, features: FeaturesConfig | None = None) -> GeneratorConfig:
    """The generator architecture from an official config.json, checked against holdtts's mel settings."""
    path = Path(path)
    features = features or FeaturesConfig()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CheckpointError("vocoder config not found (an official generator needs the config.json it was "
                              "published with; give it with --vocoder-config)", path) from err
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"cannot read the vocoder config: {err}", path) from err
    except json.JSONDecodeError as err:
        raise CheckpointError(f"not valid JSON: {err.msg}", path, err.lineno) from err
    if not isinstance(data, dict):
        raise CheckpointError("a HiFi-GAN config.json must be a JSON object", path)
    missing = [k for k in _GENERATOR_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"not a HiFi-GAN generator config: missing {', '.join(missing)}", path)
    for key, ours in _FEATURE_KEYS.items():
        if key in data and not _same(data[key], getattr(features, ours)):
            raise CheckpointError(f"this vocoder was trained on mels with {key} = {data[key]}, holdtts's "
                                  f"mels have {getattr(features, ours)}; it would not vocode them correctly",
                                  path)
    values = {k: data[k] for k in _GENERATOR_KEYS}
    values["resblock"] = str(values["resblock"])
    try:
        cfg = config_from_dict(values, source=str(path), schema=GeneratorConfig)
        check_generator_config(cfg, features)
    except ConfigError as err:
        raise CheckpointError(err.message, path) from err
    return cfg


def _same(value, expected) -> bool:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isclose(float(value), float(expected), rel_tol=1e-9, abs_tol=1e-9)


def from_official_state_dict(state: dict) -> dict:
    """Rename old-style weight-norm parameters (weight_g / weight_v) to the parametrization names."""
    renamed = {}
    for key, value in state.items():
        for old, new in _OLD_SUFFIXES.items():
            if key.endswith(old):
                key = key[: -len(old)] + new
                break
        renamed[key] = value
    return renamed


def load_official_generator(path: str | Path, config_path: str | Path | None = None,
                            features: FeaturesConfig | None = None) -> HifiGanGenerator:
    """A published generator file (+ its config.json, by default the one beside it), on the CPU, in eval
    mode, weight norm still in place (HifiGanVocoder folds it)."""
    path = Path(path)
    state = read_weights(path)
    return official_generator_from_state(state, path, config_path, features)


def official_generator_from_state(state, path: Path, config_path: str | Path | None = None,
                                  features: FeaturesConfig | None = None) -> HifiGanGenerator:
    if not isinstance(state, dict) or "generator" not in state or not isinstance(state["generator"], dict):
        raise CheckpointError("not a HiFi-GAN generator checkpoint (no 'generator' state dict; a 'do_' file "
                              "holds the discriminators)", path)
    config_path = Path(config_path) if config_path is not None else path.parent / CONFIG_NAME
    cfg = read_official_config(config_path, features)
    weights = state["generator"]
    generator = HifiGanGenerator(cfg, n_mels=(features or FeaturesConfig()).n_mels)
    if not any(k.endswith(".weight_g") for k in weights):
        generator.remove_weight_norm()  # a file whose weight norm was already folded
    else:
        weights = from_official_state_dict(weights)
    _load_state(generator, weights, f"{path} (architecture from {config_path})", path)
    return generator.eval()


def _load_state(generator: HifiGanGenerator, weights: dict, what: str, path: Path) -> None:
    try:
        generator.load_state_dict(weights)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(f"the weights do not match the generator its config describes ({what}): "
                              f"{detail[:600]}", path) from err


def generator_from_holdtts_state(state: dict, path: Path) -> tuple[HifiGanGenerator, FeaturesConfig]:
    """The generator of a `holdtts train-vocoder` checkpoint (weights only; optimizers etc. ignored)."""
    if "generator" not in state or "config" not in state:
        raise CheckpointError("a holdtts vocoder checkpoint without 'generator' or 'config'", path)
    config = state["config"]
    try:
        cfg = config_from_dict(config.get("generator", {}), source=str(path), schema=GeneratorConfig)
        features = config_from_dict(config.get("features", {}), source=str(path), schema=FeaturesConfig)
    except ConfigError as err:
        raise CheckpointError(f"its config does not match this holdtts: {err.message}", path) from err
    generator = HifiGanGenerator(cfg, n_mels=features.n_mels)
    _load_state(generator, state["generator"], str(path), path)
    return generator.eval(), features


def _checkpoint_in_folder(folder: Path) -> Path:
    """An experiment's latest checkpoint, or the generator file of a published release folder."""
    if (folder / CHECKPOINT_DIR).is_dir() or not (folder / CONFIG_NAME).is_file():
        return resolve_checkpoint(folder)
    generators = sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith("generator"))
    if len(generators) != 1:
        raise CheckpointError(f"a published HiFi-GAN folder holds config.json and one generator* file; found "
                              f"{len(generators)} generator files (give the file itself)", folder)
    return generators[0]


def load_hifigan(spec: str | Path, config_path: str | Path | None = None,
                 features: FeaturesConfig | None = None) -> HifiGanVocoder:
    """A HiFi-GAN vocoder (CPU, inference mode) from any of:
      - a `holdtts train-vocoder` experiment directory (its latest checkpoint's generator),
      - a holdtts vocoder checkpoint file (checkpoints/step-N.pt),
      - a published generator file, with the config.json beside it or at `config_path`,
      - a published release folder (config.json and one generator* file, e.g. LJ_V1/).
    """
    path = Path(spec)
    if path.is_dir():
        path = _checkpoint_in_folder(path)
    state = read_weights(path)
    if isinstance(state, dict) and "format" in state:
        if state["format"] != HOLDTTS_FORMAT:
            raise CheckpointError(f"a '{state['format']}' checkpoint is not a vocoder (expected "
                                  f"'{HOLDTTS_FORMAT}', written by `holdtts train-vocoder`)", path)
        generator, trained_features = generator_from_holdtts_state(state, path)
        if features is not None and trained_features != features:
            raise CheckpointError(f"trained on mels {trained_features}, asked to vocode {features}", path)
        step = state.get("progress", {}).get("step", "?")
        return HifiGanVocoder(generator, f"hifigan:{path} (step {step})", trained_features.sample_rate)
    generator = official_generator_from_state(state, path, config_path, features)
    return HifiGanVocoder(generator, f"hifigan:{path}", (features or FeaturesConfig()).sample_rate)
