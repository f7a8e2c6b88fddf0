"""`holdtts.load_model`: a trained system from an experiment directory or a checkpoint file.

The model layer knows one kind of system, a GradTTS checkpoint. Other kinds (DualMD's two-teacher
pipeline) belong to the layers that define them, which add a loader here on import:

    register_loader(is_dual_system, load_dual_model)     # in holdtts.defenses

`holdtts.load_model` imports those layers first, so it loads every built-in kind.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from holdtts.config import config_from_dict
from holdtts.errors import CheckpointError
from holdtts.utils.checkpoint import load_checkpoint, resolve_checkpoint

Predicate = Callable[[Path], bool]
Loader = Callable[..., object]  # loader(path, device=..., ema=...) -> a model with GradTTS's synthesis interface

_LOADERS: list[tuple[Predicate, Loader]] = []


def register_loader(predicate: Predicate, loader: Loader) -> None:
    """Have `load_model(path)` return `loader(path, device=..., ema=...)` for paths where `predicate(path)`
    is true. Loaders are tried in registration order, before the GradTTS checkpoint; registering the same
    pair twice (a module imported again) changes nothing."""
    if (predicate, loader) not in _LOADERS:
        _LOADERS.append((predicate, loader))


def load_model(path: str | Path, device: str | torch.device = "cpu", ema: bool = True):
    """Load a trained GradTTS system (EMA weights by default), in eval mode.

    The result is a `holdtts.models.tts.GradTTS` with, besides its methods (`eps_hat`, `align`,
    `text_to_mu`, `synthesize`, the per-utterance losses), these attributes:
        process      the diffusion process (holdtts.diffusion.Process)
        symbols      the checkpoint's symbol table; `encode_text(texts)` tokenises with it
        config       the SystemConfig it was trained with
        step         the training step of the checkpoint
        checkpoint   the checkpoint file
        speaker_ids  a multi-speaker model's speakers in table order (its training data's spk2id), else None;
                     `model.speaker_index(id)` gives a speaker's row for `synthesize(..., speakers=...)`

    A path a registered loader claims gives what that loader returns instead: with holdtts.defenses
    imported (`holdtts.load_model` imports it), a DualMD system directory gives its two-teacher pipeline,
    `holdtts.defenses.DualGradTTS`: the same synthesis interface, and no white-box one.
    """
    from holdtts.data.text import SymbolTable
    from holdtts.models.tts import GradTTS

    for predicate, loader in _LOADERS:
        if predicate(Path(path)):
            return loader(path, device=device, ema=ema)
    try:
        checkpoint = resolve_checkpoint(path)
    except CheckpointError as err:
        if (Path(path) / "system.json").is_file():
            raise CheckpointError(f"{err.message}; it has a system.json, so it may be a system with a loader of "
                                  "its own: load it with holdtts.load_model, which registers the defenses' "
                                  "loaders", path) from err
        raise
    state = load_checkpoint(checkpoint)
    if "model" not in state or "config" not in state:
        raise CheckpointError("not a TTS checkpoint (no model or config)", checkpoint)
    cfg = config_from_dict(state["config"], source=str(checkpoint))
    symbols = SymbolTable.from_list(state["symbols"])
    model = GradTTS(cfg, symbols.n_vocab)
    weights = state["ema"] if ema and "ema" in state else state["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"weights do not match the model its config describes: {err}", checkpoint) from err
    model.eval().requires_grad_(False).to(device)
    speakers = state.get("speakers")
    if model.n_speakers > 1:
        if speakers is None:
            raise CheckpointError("a multi-speaker model without its speaker list (no 'speakers' entry)", checkpoint)
        if len(speakers["speakers"]) > model.n_speakers:
            raise CheckpointError(f"lists {len(speakers['speakers'])} speakers for a table of {model.n_speakers}",
                                  checkpoint)
        model.speaker_ids = list(speakers["speakers"])
        model.trained_speaker_rows = list(speakers.get("trained_rows", range(len(model.speaker_ids))))
    elif speakers is not None:
        raise CheckpointError("a single-speaker model (model.n_speakers = 1) with a speaker list", checkpoint)
    model.symbols = symbols
    model.config = cfg
    model.step = int(state["progress"]["step"])
    model.checkpoint = checkpoint
    model.checkpoint_state = {k: state[k] for k in ("progress", "train_split", "num_train_utts", "speakers")
                              if k in state}
    return model


def encode_texts(model, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise texts with the model's symbol table -> (tokens [B, L] long, lengths [B])."""
    from holdtts.data.text import TextFrontend

    frontend = TextFrontend()
    if frontend.symbols != model.symbols:
        raise CheckpointError("the checkpoint's symbol table differs from this holdtts's text frontend",
                              model.checkpoint)
    ids = [frontend.encode(text) for text in texts]
    lengths = torch.tensor([len(x) for x in ids])
    tokens = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for i, x in enumerate(ids):
        tokens[i, : len(x)] = torch.tensor(x)
    device = next(model.parameters()).device
    return tokens.to(device), lengths.to(device)
