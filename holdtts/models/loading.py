"""`holdtts.load_model`: a trained system from an experiment directory or a checkpoint file."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from holdtts.config import config_from_dict
from holdtts.errors import CheckpointError
from holdtts.training.checkpoint import load_checkpoint, resolve_checkpoint


def load_model(path: str | Path, device: str | torch.device = "cpu", ema: bool = True):
    """Load a trained GradTTS system (EMA weights by default), in eval mode.

    The result is a `holdtts.models.tts.GradTTS` with, besides its methods (`eps_hat`, `align`,
    `text_to_mu`, `synthesize`, the per-utterance losses), these attributes:
        process      the diffusion process (holdtts.diffusion.Process)
        symbols      the checkpoint's symbol table; `encode_text(texts)` tokenises with it
        config       the SystemConfig it was trained with
        step         the training step of the checkpoint
        checkpoint   the checkpoint file

    A DualMD system directory (system.json of kind "dualmd") gives its two-teacher pipeline instead,
    `holdtts.defenses.DualGradTTS`: the same synthesis interface, and no white-box one.
    """
    from holdtts.data.text import SymbolTable
    from holdtts.defenses.dualmd import is_dual_system, load_dual_model
    from holdtts.models.tts import GradTTS

    if is_dual_system(path):
        return load_dual_model(path, device=device, ema=ema)
    checkpoint = resolve_checkpoint(path)
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
    model.symbols = symbols
    model.config = cfg
    model.step = int(state["progress"]["step"])
    model.checkpoint = checkpoint
    model.checkpoint_state = {k: state[k] for k in ("progress", "train_split", "num_train_utts") if k in state}
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
