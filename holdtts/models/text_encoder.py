"""Grad-TTS's text encoder and duration predictor.

tokens -> embedding (192 channels) -> conv prenet -> 6 post-norm transformer layers with relative-position
self-attention (window 4, Glow-TTS style) -> `proj_m` to the mel's 80 channels (mu_x, the frame-level
prior mean once aligned). The duration predictor reads the encoder output with its gradient stopped, so
the duration loss trains the predictor only, as in Grad-TTS.

A multi-speaker encoder (speaker_dim > 0) concatenates the speaker vector to every token after the
prenet, as Grad-TTS's multi-speaker model does: the transformer, `proj_m` and the duration predictor are
then n_channels + speaker_dim wide. speaker_dim 0 builds exactly the single-speaker encoder.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from holdtts.config import EncoderConfig
from holdtts.models.layers import ChannelLayerNorm, sequence_mask

# Grad-TTS's prenet (fixed in its code, not in its config).
PRENET_KERNEL_SIZE = 5
PRENET_LAYERS = 3
PRENET_DROPOUT = 0.5


class ConvPrenet(nn.Module):
    """Conv -> LayerNorm -> ReLU -> dropout layers, added to the input through a zero-initialised
    projection (the residual branch starts closed, so the prenet starts as the identity)."""

    def __init__(self, channels: int, kernel_size: int, n_layers: int, p_dropout: float):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2) for _ in range(n_layers))
        self.norms = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))
        self.dropout = nn.Dropout(p_dropout)
        self.proj = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = x
        for conv, norm in zip(self.convs, self.norms):
            h = self.dropout(torch.relu(norm(conv(h * mask))))
        return (x + self.proj(h)) * mask


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention with relative-position keys and values (Shaw et al. 2018), as in
    Glow-TTS/Grad-TTS: one table of 2 * window + 1 embeddings shared by the heads; offsets beyond the
    window get no relative term (not clipped to the edge embedding)."""

    def __init__(self, channels: int, n_heads: int, window_size: int, p_dropout: float):
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = channels // n_heads
        self.window_size = window_size
        self.query = nn.Conv1d(channels, channels, 1)
        self.key = nn.Conv1d(channels, channels, 1)
        self.value = nn.Conv1d(channels, channels, 1)
        self.out = nn.Conv1d(channels, channels, 1)
        for conv in (self.query, self.key, self.value):
            nn.init.xavier_uniform_(conv.weight)
        scale = self.head_dim ** -0.5
        self.rel_key = nn.Parameter(torch.randn(2 * window_size + 1, self.head_dim) * scale)
        self.rel_value = nn.Parameter(torch.randn(2 * window_size + 1, self.head_dim) * scale)
        self.dropout = nn.Dropout(p_dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, length = x.shape
        return x.view(batch, self.n_heads, self.head_dim, length).transpose(2, 3)  # [B, H, L, D]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, C, L], mask [B, 1, L] -> [B, C, L]. Padded keys are excluded; padded queries produce
        values the caller masks."""
        batch, channels, length = x.shape
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        w = self.window_size
        device = x.device

        # scores[i, j] = q_i . (k_j + e_{j-i}), with e zero outside the window
        positions = torch.arange(length, device=device)
        offset = positions.unsqueeze(0) - positions.unsqueeze(1)  # j - i
        outside = offset.abs() > w
        rel_index = (offset.clamp(-w, w) + w).expand(batch, self.n_heads, length, length)
        rel_logits = torch.matmul(q, self.rel_key.t()).gather(-1, rel_index).masked_fill(outside, 0.0)
        scores = (torch.matmul(q, k.transpose(-2, -1)) + rel_logits) / math.sqrt(self.head_dim)
        key_padding = mask.unsqueeze(1) == 0  # [B, 1, 1, L]
        scores = scores.masked_fill(key_padding, torch.finfo(scores.dtype).min)
        attn = self.dropout(torch.softmax(scores, dim=-1))

        # out_i = sum_j attn_ij (v_j + e'_{j-i}); the relative part needs attn at offsets -w..w of i
        window = torch.arange(-w, w + 1, device=device)
        target = positions.unsqueeze(1) + window.unsqueeze(0)  # [L, 2w + 1]
        beyond = (target < 0) | (target >= length)
        target = target.clamp(0, length - 1).expand(batch, self.n_heads, length, 2 * w + 1)
        rel_weights = attn.gather(-1, target).masked_fill(beyond, 0.0)
        out = torch.matmul(attn, v) + torch.matmul(rel_weights, self.rel_value)
        return self.out(out.transpose(2, 3).reshape(batch, channels, length))


class FeedForward(nn.Module):
    """Two masked convolutions with a ReLU between them (Grad-TTS's FFN)."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int, p_dropout: float):
        super().__init__()
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size, padding=kernel_size // 2)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size, padding=kernel_size // 2)
        self.dropout = nn.Dropout(p_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.dropout(torch.relu(self.conv_1(x * mask)))
        return self.conv_2(h * mask) * mask


class TransformerEncoder(nn.Module):
    """Post-norm transformer layers: x = norm(x + attn(x)); x = norm(x + ffn(x))."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        c = cfg.n_channels
        self.attention = nn.ModuleList(RelativeSelfAttention(c, cfg.n_heads, cfg.window_size, cfg.p_dropout)
                                       for _ in range(cfg.n_layers))
        self.norm_1 = nn.ModuleList(ChannelLayerNorm(c) for _ in range(cfg.n_layers))
        self.ffn = nn.ModuleList(
            FeedForward(c, cfg.filter_channels, cfg.kernel_size, cfg.p_dropout) for _ in range(cfg.n_layers))
        self.norm_2 = nn.ModuleList(ChannelLayerNorm(c) for _ in range(cfg.n_layers))
        self.dropout = nn.Dropout(cfg.p_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for attention, norm_1, ffn, norm_2 in zip(self.attention, self.norm_1, self.ffn, self.norm_2):
            x = x * mask
            x = norm_1(x + self.dropout(attention(x, mask)))
            x = norm_2(x + self.dropout(ffn(x, mask)))
        return x * mask


class DurationPredictor(nn.Module):
    """Two conv -> ReLU -> LayerNorm -> dropout layers and a projection to one log-duration per token."""

    def __init__(self, in_channels: int, filter_channels: int, kernel_size: int, p_dropout: float):
        super().__init__()
        pad = kernel_size // 2
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size, padding=pad)
        self.norm_1 = ChannelLayerNorm(filter_channels)
        self.conv_2 = nn.Conv1d(filter_channels, filter_channels, kernel_size, padding=pad)
        self.norm_2 = ChannelLayerNorm(filter_channels)
        self.proj = nn.Conv1d(filter_channels, 1, 1)
        self.dropout = nn.Dropout(p_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.norm_1(torch.relu(self.conv_1(x * mask))))
        x = self.dropout(self.norm_2(torch.relu(self.conv_2(x * mask))))
        return self.proj(x * mask) * mask


class TextEncoder(nn.Module):
    """Tokens -> (mu_x, log-durations, mask): Grad-TTS's text encoder and duration predictor."""

    def __init__(self, n_vocab: int, n_feats: int, cfg: EncoderConfig, speaker_dim: int = 0):
        super().__init__()
        c = cfg.n_channels
        self.n_channels = c
        self.speaker_dim = speaker_dim
        width = c + speaker_dim
        self.embedding = nn.Embedding(n_vocab, c)
        nn.init.normal_(self.embedding.weight, 0.0, c ** -0.5)
        self.prenet = (ConvPrenet(c, PRENET_KERNEL_SIZE, PRENET_LAYERS, PRENET_DROPOUT)
                       if cfg.prenet else None)
        self.encoder = TransformerEncoder(dataclasses.replace(cfg, n_channels=width) if speaker_dim else cfg)
        self.proj_m = nn.Conv1d(width, n_feats, 1)
        self.duration_predictor = DurationPredictor(width, cfg.duration_filter_channels,
                                                    cfg.duration_kernel_size, cfg.p_dropout)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, speaker: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens [B, L] (long), lengths [B] -> mu_x [B, n_feats, L], logw [B, 1, L], x_mask [B, 1, L].

        mu_x and logw are zero on padded tokens; x_mask has mu_x's dtype. A multi-speaker encoder needs
        `speaker`, the speaker vectors [B, speaker_dim]; a single-speaker one takes none.
        """
        if (speaker is None) != (self.speaker_dim == 0):
            raise ValueError("a multi-speaker text encoder needs the speaker vectors [B, speaker_dim]"
                             if self.speaker_dim else "a single-speaker text encoder takes no speaker")
        x = self.embedding(tokens) * math.sqrt(self.n_channels)  # [B, L, C]
        x = x.transpose(1, 2)
        x_mask = sequence_mask(lengths, tokens.shape[1]).unsqueeze(1).to(x.dtype)
        if self.prenet is not None:
            x = self.prenet(x, x_mask)
        if self.speaker_dim:
            x = torch.cat([x, speaker.to(x.dtype).unsqueeze(-1).expand(-1, -1, x.shape[-1]) * x_mask], dim=1)
        x = self.encoder(x, x_mask)
        mu_x = self.proj_m(x) * x_mask
        logw = self.duration_predictor(x.detach(), x_mask)
        return mu_x, logw, x_mask
