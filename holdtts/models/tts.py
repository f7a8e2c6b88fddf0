"""The Grad-TTS-like system: text encoder + duration predictor, alignment search, diffusion decoder.

The decoder is a score network for any process of holdtts.diffusion (order 1 Grad-TTS, or HOLD++ of
order n); everything order-specific lives in the process object. Training crops each utterance to a
random 2-second segment after alignment, as Grad-TTS does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from holdtts.config import SystemConfig
from holdtts.data.dataset import Batch
from holdtts.diffusion import diffusion_loss, get_sampler, process_from_config
from holdtts.diffusion.losses import sample_times
from holdtts.models.alignment import durations_to_path, monotonic_alignment_search
from holdtts.models.layers import sequence_mask
from holdtts.models.text_encoder import TextEncoder
from holdtts.models.unet import ScoreUNet, fix_len_compatibility

LOG_2PI = math.log(2 * math.pi)


@dataclass
class Alignment:
    """The encoder's view of a batch with real mels: what losses and attacks need."""

    mu_x: torch.Tensor  # [B, n_feats, L]
    logw: torch.Tensor  # [B, 1, L] predicted log-durations
    x_mask: torch.Tensor  # [B, 1, L]
    attn: torch.Tensor  # [B, L, T] the monotonic alignment (0/1)
    mu_y: torch.Tensor  # [B, n_feats, T] mu_x expanded to frames along attn
    y_mask: torch.Tensor  # [B, 1, T]


@dataclass
class Segment:
    """Cropped decoder inputs: the target mel, the aligned mu and the mask, all [B, n_feats | 1, frames]."""

    x0: torch.Tensor
    mu: torch.Tensor
    mask: torch.Tensor


class GradTTS(nn.Module):
    def __init__(self, cfg: SystemConfig, n_vocab: int):
        super().__init__()
        self.cfg = cfg
        self.n_feats = cfg.features.n_mels
        self.n_vocab = n_vocab
        self.process = process_from_config(cfg.process)
        self.encoder = TextEncoder(n_vocab, self.n_feats, cfg.encoder)
        self.decoder = ScoreUNet(self.process.order, cfg.decoder, self.n_feats)
        self.segment_frames = fix_len_compatibility(cfg.data.segment_frames, self.decoder.num_downsamplings)

    # ------------------------------------------------------------------ the score network

    def eps_hat(self, u_t: torch.Tensor, t: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The predicted noise of the last block, [B, n_feats, frames].

        u_t [B, n, n_feats, frames] is the centred state (x - mu in block 0); t [B] is on the process's
        own clock; frames must be a multiple of 2 ** num_downsamplings (see `pad_frames`).
        """
        t = t.expand(u_t.shape[0]) if t.dim() == 0 else t
        if self.cfg.decoder.input_scaling == "marginal":
            std = self.process.marginal_std(t).to(u_t.dtype)  # [B, n]
            u_t = u_t / std[:, :, None, None]
        u_t = u_t * mask.unsqueeze(1)
        return self.decoder(u_t, mu, mask, t / self.process.horizon)

    def eps_fn(self, mu: torch.Tensor, mask: torch.Tensor):
        """eps_hat as a function of (u, t) for the samplers and losses of holdtts.diffusion."""
        return lambda u, t: self.eps_hat(u, t, mu, mask)

    def pad_frames(self, frames: int) -> int:
        return fix_len_compatibility(frames, self.decoder.num_downsamplings)

    # ------------------------------------------------------------------ encoder and alignment

    def encode(self, tokens: torch.Tensor, token_lengths: torch.Tensor):
        """tokens [B, L] -> (mu_x [B, n_feats, L], logw [B, 1, L], x_mask [B, 1, L])."""
        return self.encoder(tokens, token_lengths)

    def align(self, tokens, token_lengths, mels, mel_lengths) -> Alignment:
        """Encode and align to real mels by monotonic alignment search on the Gaussian log-likelihood."""
        mu_x, logw, x_mask = self.encode(tokens, token_lengths)
        y_mask = sequence_mask(mel_lengths, mels.shape[-1]).unsqueeze(1).to(mu_x.dtype)
        attn_mask = x_mask.transpose(1, 2) * y_mask  # [B, L, T]
        with torch.no_grad():
            mu = mu_x.float()
            y = mels.float()
            # log N(y_t; mu_i, I) for every token i and frame t, without materialising [B, L, T, F]
            log_p = (-0.5 * (mu.square().sum(1).unsqueeze(-1) - 2 * mu.transpose(1, 2) @ y
                             + y.square().sum(1).unsqueeze(1)) - 0.5 * LOG_2PI * self.n_feats)
            attn = monotonic_alignment_search(log_p, attn_mask.float()).to(mu_x.dtype)
        mu_y = (attn.transpose(1, 2) @ mu_x.transpose(1, 2)).transpose(1, 2)
        return Alignment(mu_x, logw, x_mask, attn, mu_y, y_mask)

    def crop(self, mels: torch.Tensor, alignment: Alignment, starts: torch.Tensor) -> Segment:
        """Cut each utterance to `segment_frames` frames from its start (shorter ones are padded)."""
        frames = self.segment_frames
        index = starts.unsqueeze(1) + torch.arange(frames, device=mels.device)  # [B, frames]
        valid = index < mels.shape[-1]
        index = index.clamp_max(mels.shape[-1] - 1)

        def take(x):
            gathered = torch.gather(x, 2, index.unsqueeze(1).expand(-1, x.shape[1], -1))
            return gathered * valid.unsqueeze(1).to(x.dtype)

        mask = take(alignment.y_mask)
        return Segment(take(mels) * mask, take(alignment.mu_y) * mask, mask)

    # ------------------------------------------------------------------ losses

    def duration_loss(self, alignment: Alignment) -> torch.Tensor:
        """Per-utterance MSE of log-durations against the alignment's, [B] (Grad-TTS's dur_loss)."""
        target = torch.log(1e-8 + alignment.attn.sum(-1)).unsqueeze(1) * alignment.x_mask
        err = (alignment.logw - target).square() * alignment.x_mask
        return err.sum((1, 2)) / alignment.x_mask.sum((1, 2))

    def prior_loss(self, segment: Segment) -> torch.Tensor:
        """Per-utterance Gaussian NLL of the mel under N(mu, I) per element, [B] (Grad-TTS's prior_loss)."""
        nll = 0.5 * ((segment.x0 - segment.mu).square() + LOG_2PI) * segment.mask
        return nll.sum((1, 2)) / (segment.mask.sum((1, 2)) * self.n_feats)

    def diffusion_loss(self, segment: Segment, t=None, eps=None, generator=None) -> torch.Tensor:
        """Per-utterance noise-matching loss of the decoder on the segment, [B]."""
        q0 = (segment.x0 - segment.mu) * segment.mask
        return diffusion_loss(self.process, self.eps_fn(segment.mu, segment.mask), q0, segment.mask, t=t,
                              eps=eps, weighting=self.cfg.loss.weighting, generator=generator)

    def forward(self, tokens, token_lengths, mels, mel_lengths, crop_starts,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Per-utterance loss terms [B] for a training batch (the trainer weights and averages them).

        The training step as `forward`, so DistributedDataParallel sees it.
        """
        alignment = self.align(tokens, token_lengths, mels, mel_lengths)
        segment = self.crop(mels, alignment, crop_starts)
        t = sample_times(self.process, tokens.shape[0], generator=generator, device=mels.device,
                         method=self.cfg.loss.t_sampling)
        return {
            "duration": self.duration_loss(alignment),
            "prior": self.prior_loss(segment),
            "diffusion": self.diffusion_loss(segment, t=t, generator=generator),
        }

    def losses(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return self(batch.tokens, batch.token_lengths, batch.mels, batch.mel_lengths, batch.crop_starts,
                    generator=generator)

    # ------------------------------------------------------------------ synthesis

    @torch.no_grad()
    def text_to_mu(self, tokens, token_lengths, length_scale: float = 1.0):
        """Encoder + predicted durations -> (mu_y [B, n_feats, T'], y_mask [B, 1, T'], y_lengths [B]).

        T' is padded up to the U-Net's length unit; y_lengths are the real frame counts.
        """
        mu_x, logw, x_mask = self.encode(tokens, token_lengths)
        durations = torch.ceil(torch.exp(logw) * x_mask) * length_scale
        y_lengths = torch.clamp_min(durations.sum((1, 2)), 1).long()
        frames = self.pad_frames(int(y_lengths.max()))
        y_mask = sequence_mask(y_lengths, frames).unsqueeze(1).to(mu_x.dtype)
        attn = durations_to_path(durations.squeeze(1), x_mask, y_mask)
        mu_y = (attn.transpose(1, 2) @ mu_x.transpose(1, 2)).transpose(1, 2)
        return mu_y, y_mask, y_lengths

    @torch.no_grad()
    def decode(self, mu: torch.Tensor, mask: torch.Tensor, steps: int, sampler: str = "ode_euler",
               temperature: float = 1.5, generator: torch.Generator | None = None) -> torch.Tensor:
        """Run a reverse-time sampler from the prior and return x0 = mu + q0, [B, n_feats, T]."""
        u_T = self.process.prior_sample(mu.shape, temperature=temperature, generator=generator,
                                        device=mu.device, dtype=mu.dtype) * mask.unsqueeze(1)
        u0 = get_sampler(sampler)(self.process, self.eps_fn(mu, mask), u_T, steps, generator=generator,
                                  mask=mask)
        return (mu + u0[:, 0]) * mask

    @torch.no_grad()
    def synthesize(self, tokens, token_lengths, steps: int | None = None, sampler: str | None = None,
                   temperature: float | None = None, length_scale: float | None = None,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens -> (mels [B, n_feats, T'], lengths [B]); defaults from the config's synthesis section."""
        syn = self.cfg.synthesis
        mu, mask, lengths = self.text_to_mu(tokens, token_lengths, syn.length_scale if length_scale is None
                                            else length_scale)
        mels = self.decode(mu, mask, syn.steps if steps is None else steps,
                           syn.sampler if sampler is None else sampler,
                           syn.temperature if temperature is None else temperature, generator)
        return mels, lengths
