"""Exponential moving average of a model's weights (the weights synthesis and attacks use by default)."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps `self.model`, an eval-mode copy whose parameters track the trained ones.

    The effective decay warms up as min(decay, (1 + step) / (10 + step)), so short runs are not dominated
    by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def effective_decay(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = self.effective_decay(step)
        ema_params = [p for p in self.model.parameters()]
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for ema_buf, buf in zip(self.model.buffers(), model.buffers()):
            ema_buf.copy_(buf)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
