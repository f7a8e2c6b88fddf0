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
from holdtts.errors import ConfigError, HoldttsError
from holdtts.models.alignment import durations_to_path, monotonic_alignment_search
from holdtts.models.layers import sequence_mask
from holdtts.models.text_encoder import TextEncoder
from holdtts.models.unet import ScoreUNet, fix_len_compatibility

LOG_2PI = math.log(2 * math.pi)
MEAN_SPEAKER = -1  # a speaker index meaning "the mean of the trained speaker rows"


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
        self.n_speakers = cfg.model.n_speakers
        speaker_dim = cfg.model.speaker_dim if self.n_speakers > 1 else 0
        self.speaker_dim = speaker_dim
        if speaker_dim and (cfg.encoder.n_channels + speaker_dim) % cfg.encoder.n_heads:
            raise ConfigError(f"encoder.n_channels + model.speaker_dim ({cfg.encoder.n_channels} + {speaker_dim}) "
                              f"must be divisible by encoder.n_heads ({cfg.encoder.n_heads}): the speaker vector "
                              "widens the encoder's transformer")
        self.encoder = TextEncoder(n_vocab, self.n_feats, cfg.encoder, speaker_dim)
        self.decoder = ScoreUNet(self.process.order, cfg.decoder, self.n_feats, speaker_dim)
        self.segment_frames = fix_len_compatibility(cfg.data.segment_frames, self.decoder.num_downsamplings)
        # rows of the speaker table the training data covered (set from the checkpoint by load_model, and by
        # the trainer); None: every row. MEAN_SPEAKER averages these.
        self.trained_speaker_rows: list[int] | None = None
        self.speaker_ids: list[str] | None = None  # speaker_ids[i]: the speaker of row i (from spk2id)
        if self.n_speakers > 1:
            self.speaker_embedding = nn.Embedding(self.n_speakers, speaker_dim)

    # ------------------------------------------------------------------ speakers

    def speaker_vector(self, speakers: torch.Tensor | None, batch: int | None = None) -> torch.Tensor | None:
        """The speaker condition [B, speaker_dim] from indices [B] (MEAN_SPEAKER: the mean of the trained
        rows) or from vectors [B, speaker_dim] (returned as they are); None for a single-speaker model.
        A vector [speaker_dim] or a 0-dim index is repeated `batch` times."""
        if self.n_speakers == 1:
            if speakers is not None:
                raise HoldttsError("this is a single-speaker model (model.n_speakers = 1): it takes no speaker")
            return None
        if speakers is None:
            raise HoldttsError(f"this is a multi-speaker model ({self.n_speakers} speakers): give the speakers "
                               "(indices into its speaker table, or speaker vectors)")
        if speakers.is_floating_point():
            if speakers.shape[-1] != self.speaker_dim or speakers.dim() not in (1, 2):
                raise HoldttsError(f"speaker vectors must be [B, {self.speaker_dim}], got {tuple(speakers.shape)}")
            return speakers.expand(batch, -1) if speakers.dim() == 1 and batch is not None else speakers
        if speakers.dim() == 0 and batch is not None:
            speakers = speakers.expand(batch)
        speakers = speakers.long()
        if speakers.numel() and (int(speakers.min()) < MEAN_SPEAKER or int(speakers.max()) >= self.n_speakers):
            raise HoldttsError(f"speaker indices must be in [0, {self.n_speakers}) (or {MEAN_SPEAKER} for the mean "
                               f"voice), got {speakers.tolist()}")
        mean = speakers == MEAN_SPEAKER
        vectors = self.speaker_embedding(speakers.clamp_min(0))
        if bool(mean.any()):
            vectors = torch.where(mean.unsqueeze(-1), self.mean_speaker().to(vectors.dtype), vectors)
        return vectors

    def speaker_index(self, speaker: str) -> int:
        """The row of the speaker table of a speaker id (as in the training data's spk2id)."""
        if self.n_speakers == 1:
            raise HoldttsError("this is a single-speaker model (model.n_speakers = 1): it takes no speaker")
        if self.speaker_ids is None:
            raise HoldttsError("this model does not record its speakers' ids (load it with holdtts.load_model); "
                               "give row indices instead")
        if speaker not in self.speaker_ids:
            known = ", ".join(self.speaker_ids[:10]) + (", ..." if len(self.speaker_ids) > 10 else "")
            raise HoldttsError(f"unknown speaker '{speaker}': the model has {len(self.speaker_ids)} speakers "
                               f"({known})")
        return self.speaker_ids.index(speaker)

    def mean_speaker(self) -> torch.Tensor:
        """The mean of the trained rows of the speaker table, [speaker_dim] (the "average voice")."""
        table = self.speaker_embedding.weight
        if self.trained_speaker_rows is not None:
            table = table[torch.as_tensor(self.trained_speaker_rows, dtype=torch.long, device=table.device)]
        return table.mean(0)

    # ------------------------------------------------------------------ the score network

    def eps_hat(self, u_t: torch.Tensor, t: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor,
                speakers: torch.Tensor | None = None) -> torch.Tensor:
        """The predicted noise of the last block, [B, n_feats, frames].

        u_t [B, n, n_feats, frames] is the centred state (x - mu in block 0); t [B] is on the process's
        own clock; frames must be a multiple of 2 ** num_downsamplings (see `pad_frames`). `speakers`:
        a multi-speaker model's speaker condition (see the module's docstring).
        """
        t = t.expand(u_t.shape[0]) if t.dim() == 0 else t
        if self.cfg.decoder.input_scaling == "marginal":
            std = self.process.marginal_std(t).to(u_t.dtype)  # [B, n]
            u_t = u_t / std[:, :, None, None]
        u_t = u_t * mask.unsqueeze(1)
        return self.decoder(u_t, mu, mask, t / self.process.horizon, self.speaker_vector(speakers, u_t.shape[0]))

    def eps_fn(self, mu: torch.Tensor, mask: torch.Tensor, speakers: torch.Tensor | None = None):
        """eps_hat as a function of (u, t) for the samplers and losses of holdtts.diffusion."""
        vectors = self.speaker_vector(speakers, mu.shape[0])  # looked up once for every call (None: one speaker)
        return lambda u, t: self.eps_hat(u, t, mu, mask, vectors)

    def pad_frames(self, frames: int) -> int:
        return fix_len_compatibility(frames, self.decoder.num_downsamplings)

    # ------------------------------------------------------------------ encoder and alignment

    def encode(self, tokens: torch.Tensor, token_lengths: torch.Tensor, speakers: torch.Tensor | None = None):
        """tokens [B, L] -> (mu_x [B, n_feats, L], logw [B, 1, L], x_mask [B, 1, L])."""
        return self.encoder(tokens, token_lengths, self.speaker_vector(speakers, tokens.shape[0]))

    def align(self, tokens, token_lengths, mels, mel_lengths, speakers: torch.Tensor | None = None) -> Alignment:
        """Encode and align to real mels by monotonic alignment search on the Gaussian log-likelihood."""
        mu_x, logw, x_mask = self.encode(tokens, token_lengths, speakers)
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

    def diffusion_loss(self, segment: Segment, t=None, eps=None, generator=None,
                       speakers: torch.Tensor | None = None) -> torch.Tensor:
        """Per-utterance noise-matching loss of the decoder on the segment, [B]."""
        q0 = (segment.x0 - segment.mu) * segment.mask
        return diffusion_loss(self.process, self.eps_fn(segment.mu, segment.mask, speakers), q0, segment.mask,
                              t=t, eps=eps, weighting=self.cfg.loss.weighting, generator=generator)

    def forward(self, tokens, token_lengths, mels, mel_lengths, crop_starts,
                generator: torch.Generator | None = None,
                speakers: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-utterance loss terms [B] for a training batch (the trainer weights and averages them).

        The training step as `forward`, so DistributedDataParallel sees it. The speaker table is read once
        here (per-sample gradient hooks see one use of it).
        """
        speakers = self.speaker_vector(speakers, tokens.shape[0]) if self.n_speakers > 1 else speakers
        alignment = self.align(tokens, token_lengths, mels, mel_lengths, speakers)
        segment = self.crop(mels, alignment, crop_starts)
        t = sample_times(self.process, tokens.shape[0], generator=generator, device=mels.device,
                         method=self.cfg.loss.t_sampling)
        return {
            "duration": self.duration_loss(alignment),
            "prior": self.prior_loss(segment),
            "diffusion": self.diffusion_loss(segment, t=t, generator=generator, speakers=speakers),
        }

    def losses(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if batch.speakers is None:
            return self(batch.tokens, batch.token_lengths, batch.mels, batch.mel_lengths, batch.crop_starts,
                        generator=generator)
        return self(batch.tokens, batch.token_lengths, batch.mels, batch.mel_lengths, batch.crop_starts,
                    generator=generator, speakers=batch.speakers)

    # ------------------------------------------------------------------ synthesis

    @torch.no_grad()
    def text_to_mu(self, tokens, token_lengths, length_scale: float = 1.0, speakers: torch.Tensor | None = None):
        """Encoder + predicted durations -> (mu_y [B, n_feats, T'], y_mask [B, 1, T'], y_lengths [B]).

        T' is padded up to the U-Net's length unit; y_lengths are the real frame counts.
        """
        mu_x, logw, x_mask = self.encode(tokens, token_lengths, speakers)
        durations = torch.ceil(torch.exp(logw) * x_mask) * length_scale
        y_lengths = torch.clamp_min(durations.sum((1, 2)), 1).long()
        frames = self.pad_frames(int(y_lengths.max()))
        y_mask = sequence_mask(y_lengths, frames).unsqueeze(1).to(mu_x.dtype)
        attn = durations_to_path(durations.squeeze(1), x_mask, y_mask)
        mu_y = (attn.transpose(1, 2) @ mu_x.transpose(1, 2)).transpose(1, 2)
        return mu_y, y_mask, y_lengths

    @torch.no_grad()
    def decode(self, mu: torch.Tensor, mask: torch.Tensor, steps: int, sampler: str = "ode_euler",
               temperature: float = 1.5, generator: torch.Generator | None = None,
               speakers: torch.Tensor | None = None) -> torch.Tensor:
        """Run a reverse-time sampler from the prior and return x0 = mu + q0, [B, n_feats, T]."""
        u_T = self.process.prior_sample(mu.shape, temperature=temperature, generator=generator,
                                        device=mu.device, dtype=mu.dtype) * mask.unsqueeze(1)
        eps_fn = self.eps_fn(mu, mask) if speakers is None else self.eps_fn(mu, mask, speakers)
        u0 = get_sampler(sampler)(self.process, eps_fn, u_T, steps, generator=generator, mask=mask)
        return (mu + u0[:, 0]) * mask

    @torch.no_grad()
    def synthesize(self, tokens, token_lengths, steps: int | None = None, sampler: str | None = None,
                   temperature: float | None = None, length_scale: float | None = None,
                   generator: torch.Generator | None = None,
                   speakers: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens -> (mels [B, n_feats, T'], lengths [B]); defaults from the config's synthesis section.
        A multi-speaker model needs `speakers` (indices into its table, see `speaker_index`)."""
        syn = self.cfg.synthesis
        mu, mask, lengths = self.text_to_mu(tokens, token_lengths, syn.length_scale if length_scale is None
                                            else length_scale, speakers)
        mels = self.decode(mu, mask, syn.steps if steps is None else steps,
                           syn.sampler if sampler is None else sampler,
                           syn.temperature if temperature is None else temperature, generator, speakers)
        return mels, lengths
