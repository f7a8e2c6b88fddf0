"""The score network: Grad-TTS's GradLogPEstimator2d, generalised to a process of any order.

The mel is treated as a one-channel image [n_feats, frames]. Grad-TTS stacks [mu, x] as two input
channels and predicts the noise of x; here the input channels are the n blocks of the process state
followed by mu, [u_1, ..., u_n, mu], and the output is one channel: the predicted noise of the last block
(the only block the reverse process needs a score for; see docs THEORY.md, section 2). Order 1 is
Grad-TTS's network with its two input channels swapped.

A multi-speaker network (speaker_dim > 0) takes one more input channel, as Grad-TTS's multi-speaker
decoder does: the speaker vector through an MLP (speaker_dim -> 4 speaker_dim -> Mish -> n_feats),
repeated over the frames: [u_1, ..., u_n, mu, s]. speaker_dim 0 builds exactly the single-speaker network.

Every level halves frequency and time with a stride-2 convolution on the way down and doubles them on
the way up, so frames (and n_feats) must be multiples of 2 ** (len(dim_mults) - 1): callers pad the
frame axis to `fix_len_compatibility(frames, net.num_downsamplings)` and pass the mask of real frames.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from holdtts.config import DecoderConfig


def fix_len_compatibility(length: int, num_downsamplings: int) -> int:
    """Round `length` up to the next multiple of 2 ** num_downsamplings (the U-Net's length unit)."""
    unit = 2 ** num_downsamplings
    return -(-length // unit) * unit


class SinusoidalTimeEmbedding(nn.Module):
    """Transformer-style sinusoids of scale * t (Grad-TTS: t in [0, 1], scale 1000)."""

    def __init__(self, dim: int, scale: float):
        super().__init__()
        if dim % 2 or dim < 4:
            raise ValueError(f"time embedding dim must be even and >= 4, got {dim}")
        self.dim = dim
        self.scale = scale

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32)
                          * (-math.log(10000.0) / (half - 1)))
        angles = self.scale * t.float().unsqueeze(1) * freqs.unsqueeze(0)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Block(nn.Module):
    """Masked 3x3 conv -> GroupNorm -> Mish, masked again."""

    def __init__(self, dim: int, dim_out: int, groups: int):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(dim, dim_out, 3, padding=1), nn.GroupNorm(groups, dim_out),
                                   nn.Mish())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.block(x * mask) * mask


class ResnetBlock(nn.Module):
    """Two Blocks with the time embedding added between them, plus a (1x1 conv) skip connection."""

    def __init__(self, dim: int, dim_out: int, time_emb_dim: int, groups: int):
        super().__init__()
        self.time_mlp = nn.Sequential(nn.Mish(), nn.Linear(time_emb_dim, dim_out))
        self.block1 = Block(dim, dim_out, groups)
        self.block2 = Block(dim_out, dim_out, groups)
        self.skip = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x, mask) + self.time_mlp(time_emb)[:, :, None, None]
        return self.block2(h, mask) + self.skip(x * mask)


class LinearAttention(nn.Module):
    """Linear attention over all positions of the image (keys softmax-normalised over positions)."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, 3 * hidden, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        q, k, v = self.to_qkv(x).reshape(batch, 3, self.heads, -1, height * width).unbind(1)
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        return self.to_out(out.reshape(batch, -1, height, width))


class RezeroAttention(nn.Module):
    """x + g * attention(x) with g initialised to 0 (ReZero: each attention starts switched off)."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.attention = LinearAttention(dim, heads, dim_head)
        self.gain = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gain * self.attention(x)


class ScoreUNet(nn.Module):
    """eps_hat(u_t, mu, mask, t): the last block's noise predicted from the n blocks of the state and mu."""

    def __init__(self, order: int, cfg: DecoderConfig, n_feats: int = 80, speaker_dim: int = 0):
        super().__init__()
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order = order
        self.num_downsamplings = len(cfg.dim_mults) - 1
        if n_feats % 2 ** self.num_downsamplings:
            raise ValueError(f"n_feats ({n_feats}) must be a multiple of 2 ** {self.num_downsamplings} "
                             f"for dim_mults {tuple(cfg.dim_mults)}")
        dim = cfg.dim
        self.time_embedding = SinusoidalTimeEmbedding(dim, cfg.pe_scale)
        self.time_mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.Mish(), nn.Linear(4 * dim, dim))

        attention = (cfg.attention_heads, cfg.attention_head_dim)
        self.speaker_dim = speaker_dim
        dims = [order + 1 + (1 if speaker_dim else 0), *(dim * mult for mult in cfg.dim_mults)]
        levels = list(zip(dims[:-1], dims[1:]))
        self.downs = nn.ModuleList()
        for index, (dim_in, dim_out) in enumerate(levels):
            is_last = index == len(levels) - 1
            self.downs.append(nn.ModuleList([
                ResnetBlock(dim_in, dim_out, dim, cfg.groups),
                ResnetBlock(dim_out, dim_out, dim, cfg.groups),
                RezeroAttention(dim_out, *attention),
                nn.Identity() if is_last else nn.Conv2d(dim_out, dim_out, 3, stride=2, padding=1),
            ]))
        mid = dims[-1]
        self.mid_block1 = ResnetBlock(mid, mid, dim, cfg.groups)
        self.mid_attention = RezeroAttention(mid, *attention)
        self.mid_block2 = ResnetBlock(mid, mid, dim, cfg.groups)
        self.ups = nn.ModuleList()
        for dim_in, dim_out in reversed(levels[1:]):
            self.ups.append(nn.ModuleList([
                ResnetBlock(2 * dim_out, dim_in, dim, cfg.groups),
                ResnetBlock(dim_in, dim_in, dim, cfg.groups),
                RezeroAttention(dim_in, *attention),
                nn.ConvTranspose2d(dim_in, dim_in, 4, stride=2, padding=1),
            ]))
        self.final_block = Block(dim, dim, cfg.groups)
        self.final_conv = nn.Conv2d(dim, 1, 1)
        if speaker_dim:  # built last: a single-speaker network draws its initial weights exactly as before
            self.speaker_mlp = nn.Sequential(nn.Linear(speaker_dim, 4 * speaker_dim), nn.Mish(),
                                             nn.Linear(4 * speaker_dim, n_feats))

    def forward(self, u: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor, t: torch.Tensor,
                speaker: torch.Tensor | None = None) -> torch.Tensor:
        """u [B, n, n_feats, T], mu [B, n_feats, T], mask [B, 1, T], t [B] in [0, 1] -> [B, n_feats, T];
        a multi-speaker network also needs `speaker`, the speaker vectors [B, speaker_dim].

        T must be a multiple of 2 ** num_downsamplings (pad with `fix_len_compatibility`). The output is
        zero on padded frames, and the content of padded frames (in u and mu) does not reach it; the
        amount of padding does (GroupNorm statistics and the linear attention span the whole image).
        """
        if u.dim() != 4 or u.shape[1] != self.order:
            raise ValueError(f"u must be [B, {self.order}, n_feats, T], got {tuple(u.shape)}")
        frames = u.shape[-1]
        unit = 2 ** self.num_downsamplings
        if frames % unit:
            raise ValueError(f"frames ({frames}) must be a multiple of {unit}: pad to "
                             f"fix_len_compatibility({frames}, {self.num_downsamplings})")
        if t.dim() == 0:
            t = t.expand(u.shape[0])
        time_emb = self.time_mlp(self.time_embedding(t).to(u.dtype))

        if (speaker is None) != (self.speaker_dim == 0):
            raise ValueError("a multi-speaker score network needs the speaker vectors [B, speaker_dim]"
                             if self.speaker_dim else "a single-speaker score network takes no speaker")
        if self.speaker_dim:
            s = self.speaker_mlp(speaker.to(u.dtype))  # [B, n_feats]
            x = torch.cat([u, mu.unsqueeze(1), s[:, None, :, None].expand(-1, 1, -1, frames)], dim=1)
        else:
            x = torch.cat([u, mu.unsqueeze(1)], dim=1)
        mask = mask.unsqueeze(1).to(x.dtype)  # [B, 1, 1, T]
        masks = [mask]
        skips = []
        for resnet1, resnet2, attention, downsample in self.downs:
            level_mask = masks[-1]
            x = resnet1(x, level_mask, time_emb)
            x = resnet2(x, level_mask, time_emb)
            x = attention(x)
            skips.append(x)
            x = downsample(x * level_mask)
            masks.append(level_mask[..., ::2])
        masks.pop()  # the deepest level does not downsample
        x = self.mid_block1(x, masks[-1], time_emb)
        x = self.mid_attention(x)
        x = self.mid_block2(x, masks[-1], time_emb)
        for resnet1, resnet2, attention, upsample in self.ups:
            level_mask = masks.pop()
            x = torch.cat([x, skips.pop()], dim=1)
            x = resnet1(x, level_mask, time_emb)
            x = resnet2(x, level_mask, time_emb)
            x = attention(x)
            x = upsample(x * level_mask)
        x = self.final_block(x, mask)
        return (self.final_conv(x * mask) * mask).squeeze(1)
