"""Small pieces shared by the text encoder, the alignment search and the score network."""
from __future__ import annotations

import torch
from torch import nn


def sequence_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """[B] lengths -> [B, max_len] bool mask, True on the first `lengths[b]` positions.

    `max_len` defaults to the longest length (which reads it back from the device: pass it when known).
    """
    if max_len is None:
        max_len = int(lengths.max())
    positions = torch.arange(max_len, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, ...] tensors (Grad-TTS's encoder norm, eps 1e-4)."""

    def __init__(self, channels: int, eps: float = 1e-4):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)
