"""HiFi-GAN (Kong, Kim and Bae, NeurIPS 2020): generator V1/V2/V3, multi-period and multi-scale
discriminators, and the paper's losses, on holdtts's mels (which are HiFi-GAN's own convention).

Module and parameter names follow the official implementation (github.com/jik876/hifi-gan), so its
published generators load by renaming the weight-norm parameters only (holdtts.vocoder.official).
The generator computes exactly what the official one does, including two details easy to miss:
  - the activation before `conv_post` is `leaky_relu` with PyTorch's default slope 0.01, not 0.1;
  - the official `init_weights` (N(0, 0.01)) runs after `weight_norm` and so changes nothing
    (jik876/hifi-gan#145): the published models trained from PyTorch's default init. `init_std` 0 keeps
    that; > 0 applies the init the code meant to.
Losses (official train.py): least-squares GAN, feature matching summed over every discriminator layer
(weight 2), and L1 between log-mels of the real and generated audio (weight 45), where the loss mel
is the input mel with f_max = `fmax_for_loss` (null in the official configs, i.e. librosa's default
sample_rate / 2 = 11025 Hz) while the generator's input mel stops at 8000 Hz. One liberty: the
discriminators score real and generated audio in one batched call, so the spectral-norm power iteration
of the first scale discriminator steps once per call where the official code steps once per input.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from holdtts.config import FeaturesConfig
from holdtts.data.mel import mel_spectrogram
from holdtts.errors import ConfigError

LRELU_SLOPE = 0.1


@dataclass
class GeneratorConfig:
    """The generator keys of an official HiFi-GAN config.json (defaults: V1)."""

    resblock: str = "1"  # "1": two convs per dilation (V1, V2); "2": one conv per dilation (V3)
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    init_std: float = 0.0  # 0: PyTorch's default init (what the official code effectively uses)


GENERATOR_PRESETS: dict[str, GeneratorConfig] = {
    "v1": GeneratorConfig(),
    "v2": GeneratorConfig(upsample_initial_channel=128),
    "v3": GeneratorConfig(resblock="2", upsample_rates=(8, 8, 4), upsample_kernel_sizes=(16, 16, 8),
                          upsample_initial_channel=256, resblock_kernel_sizes=(3, 5, 7),
                          resblock_dilation_sizes=((1, 2), (2, 6), (3, 12))),
}


@dataclass
class DiscriminatorConfig:
    """MPD and MSD sizes (defaults: the paper's). Smaller channels only for CPU tests and demos."""

    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    period_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)  # kernel (5, 1); stride 3 but the last
    scales: int = 3  # raw audio, then twice average-pooled by 2
    scale_channels: tuple[int, ...] = (128, 128, 256, 512, 1024, 1024, 1024)
    scale_groups: tuple[int, ...] = (1, 4, 16, 16, 16, 16, 1)


SCALE_KERNELS = (15, 41, 41, 41, 41, 41, 5)
SCALE_STRIDES = (1, 2, 2, 4, 4, 1, 1)


def check_generator_config(cfg: GeneratorConfig, features: FeaturesConfig | None = None) -> None:
    """Raise ConfigError unless the generator turns one mel frame into exactly hop_length samples."""
    features = features or FeaturesConfig()
    if cfg.resblock not in ("1", "2"):
        raise ConfigError(f"generator.resblock must be '1' or '2', got {cfg.resblock!r}")
    if not cfg.upsample_rates or len(cfg.upsample_rates) != len(cfg.upsample_kernel_sizes):
        raise ConfigError("generator.upsample_rates and upsample_kernel_sizes must be non-empty and of equal "
                          f"length, got {list(cfg.upsample_rates)} and {list(cfg.upsample_kernel_sizes)}")
    if math.prod(cfg.upsample_rates) != features.hop_length:
        raise ConfigError(f"generator.upsample_rates {list(cfg.upsample_rates)} multiply to "
                          f"{math.prod(cfg.upsample_rates)}, but one mel frame is {features.hop_length} "
                          "samples")
    for rate, kernel in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes):
        if kernel < rate or (kernel - rate) % 2:
            raise ConfigError(f"upsampling kernel {kernel} with rate {rate}: the kernel must be at least "
                              "the rate and differ from it by an even number (or the output is not "
                              "frames * hop samples long)")
    if cfg.upsample_initial_channel // 2 ** len(cfg.upsample_rates) < 1:
        raise ConfigError(f"generator.upsample_initial_channel {cfg.upsample_initial_channel} halves to 0 "
                          f"channels over {len(cfg.upsample_rates)} upsamplings")
    if not cfg.resblock_kernel_sizes or len(cfg.resblock_kernel_sizes) != len(cfg.resblock_dilation_sizes):
        raise ConfigError("generator.resblock_kernel_sizes and resblock_dilation_sizes must be non-empty and "
                          "of equal length")
    if any(k % 2 == 0 for k in cfg.resblock_kernel_sizes) or any(not d for d in cfg.resblock_dilation_sizes):
        raise ConfigError("generator.resblock_kernel_sizes must be odd and every dilation list non-empty")


def check_discriminator_config(cfg: DiscriminatorConfig) -> None:
    if not cfg.periods or any(p < 1 for p in cfg.periods) or len(cfg.period_channels) < 2:
        raise ConfigError("discriminator.periods must be positive and period_channels hold at least 2 sizes")
    if cfg.scales < 1:
        raise ConfigError(f"discriminator.scales must be at least 1, got {cfg.scales}")
    if len(cfg.scale_channels) != len(SCALE_KERNELS) or len(cfg.scale_groups) != len(SCALE_KERNELS):
        raise ConfigError(f"discriminator.scale_channels and scale_groups need {len(SCALE_KERNELS)} entries "
                          "(one per scale-discriminator layer)")
    channels_in = (1,) + tuple(cfg.scale_channels[:-1])
    for c_in, c_out, groups in zip(channels_in, cfg.scale_channels, cfg.scale_groups):
        if c_in % groups or c_out % groups:
            raise ConfigError(f"discriminator.scale_groups: {groups} groups do not divide {c_in} -> {c_out} "
                              "channels")


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def _dilated_conv(channels: int, kernel_size: int, dilation: int) -> nn.Conv1d:
    return weight_norm(nn.Conv1d(channels, channels, kernel_size, dilation=dilation,
                                 padding=get_padding(kernel_size, dilation)))


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask


class ResBlock1(nn.Module):
    """Per dilation d: x + conv(lrelu(conv_d(lrelu(x))))."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.convs1 = nn.ModuleList([_dilated_conv(channels, kernel_size, d) for d in dilations])
        self.convs2 = nn.ModuleList([_dilated_conv(channels, kernel_size, 1) for _ in dilations])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = _masked(c1(F.leaky_relu(x, LRELU_SLOPE)), mask)
            xt = _masked(c2(F.leaky_relu(xt, LRELU_SLOPE)), mask)
            x = xt + x
        return x


class ResBlock2(nn.Module):
    """Per dilation d: x + conv_d(lrelu(x))."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.convs = nn.ModuleList([_dilated_conv(channels, kernel_size, d) for d in dilations])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for c in self.convs:
            x = _masked(c(F.leaky_relu(x, LRELU_SLOPE)), mask) + x
        return x


class HifiGanGenerator(nn.Module):
    """Log-mels [B, n_mels, T] -> waveform [B, 1, T * prod(upsample_rates)] in [-1, 1].

    With `lengths` (valid frames per item of a padded batch) every layer's output is zeroed past each
    item's end, which is exactly the zero padding an unpadded convolution sees: each item comes out as
    it would alone (and silent past its end), so batches of unequal lengths vocode exactly.
    """

    def __init__(self, cfg: GeneratorConfig | None = None, n_mels: int = 80):
        super().__init__()
        self.cfg = cfg = cfg or GeneratorConfig()
        self.n_mels = n_mels
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.conv_pre = weight_norm(nn.Conv1d(n_mels, cfg.upsample_initial_channel, 7, 1, padding=3))
        resblock = ResBlock1 if cfg.resblock == "1" else ResBlock2
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        channels = cfg.upsample_initial_channel
        for rate, kernel in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes):
            self.ups.append(weight_norm(nn.ConvTranspose1d(channels, channels // 2, kernel, rate,
                                                           padding=(kernel - rate) // 2)))
            channels //= 2
            for kernel_size, dilations in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                self.resblocks.append(resblock(channels, kernel_size, dilations))
        self.conv_post = weight_norm(nn.Conv1d(channels, 1, 7, 1, padding=3))
        if cfg.init_std > 0:
            for module in [*self.ups, *self.resblocks.modules(), self.conv_post]:
                if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                    _init_weight_normed(module, cfg.init_std)

    @property
    def hop_length(self) -> int:
        return math.prod(self.cfg.upsample_rates)

    def forward(self, mels: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        mask = None
        if lengths is not None:
            frames = torch.arange(mels.shape[-1], device=mels.device)
            mask = (frames < lengths.to(mels.device).view(-1, 1)).unsqueeze(1).to(mels.dtype)
        x = self.conv_pre(_masked(mels, mask))
        x = _masked(x, mask)
        for i, (up, rate) in enumerate(zip(self.ups, self.cfg.upsample_rates)):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            if mask is not None:
                mask = mask.repeat_interleave(rate, dim=-1)
                x = x * mask
            xs = None
            for block in self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]:
                xs = block(x, mask) if xs is None else xs + block(x, mask)
            x = xs / self.num_kernels
        x = F.leaky_relu(x)  # default slope 0.01, as the official generator
        return _masked(torch.tanh(self.conv_post(x)), mask)

    def remove_weight_norm(self) -> HifiGanGenerator:
        """Fold g * v / ||v|| into plain weights (inference: same outputs, no per-call normalisation)."""
        remove_parametrizations(self)
        return self


def _init_weight_normed(module: nn.Module, std: float) -> None:
    """N(0, std) weights behind weight norm: v = the draw and g = ||v||, so the weight equals the draw."""
    with torch.no_grad():
        param = module.parametrizations.weight
        weight = torch.randn_like(param.original1) * std
        param.original1.copy_(weight)
        dims = tuple(range(1, weight.dim()))
        param.original0.copy_(torch.linalg.vector_norm(weight, dim=dims, keepdim=True))


def remove_parametrizations(model: nn.Module) -> nn.Module:
    """Replace every parametrized weight (weight or spectral norm) by its current value."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


# --------------------------------------------------------------------------- discriminators


class PeriodDiscriminator(nn.Module):
    """Audio folded into [T / p, p] and judged by 2-D convs that never mix the p phases."""

    def __init__(self, period: int, channels: Sequence[int] = (32, 128, 512, 1024, 1024),
                 kernel_size: int = 5, stride: int = 3):
        super().__init__()
        self.period = period
        sizes = (1,) + tuple(channels)
        last = len(channels) - 1
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(sizes[i], sizes[i + 1], (kernel_size, 1), (stride if i < last else 1, 1),
                                  padding=(get_padding(kernel_size), 0)))
            for i in range(len(channels))])
        self.conv_post = weight_norm(nn.Conv2d(sizes[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), "reflect")
        x = x.view(b, c, -1, self.period)
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class ScaleDiscriminator(nn.Module):
    """MelGAN's grouped, strided 1-D conv stack on the raw (or average-pooled) waveform."""

    def __init__(self, channels: Sequence[int] = (128, 128, 256, 512, 1024, 1024, 1024),
                 groups: Sequence[int] = (1, 4, 16, 16, 16, 16, 1), use_spectral_norm: bool = False):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        sizes = (1,) + tuple(channels)
        self.convs = nn.ModuleList([
            norm(nn.Conv1d(sizes[i], sizes[i + 1], k, s, groups=g, padding=k // 2))
            for i, (k, s, g) in enumerate(zip(SCALE_KERNELS, SCALE_STRIDES, groups))])
        self.conv_post = norm(nn.Conv1d(sizes[-1], 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig | None = None):
        super().__init__()
        cfg = cfg or DiscriminatorConfig()
        self.discriminators = nn.ModuleList([PeriodDiscriminator(p, cfg.period_channels)
                                             for p in cfg.periods])

    def forward(self, y: torch.Tensor):
        """Scores and feature maps of each period discriminator: (list of [B, n], list of fmap lists)."""
        outs = [d(y) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig | None = None):
        super().__init__()
        cfg = cfg or DiscriminatorConfig()
        # The first (raw-audio) scale uses spectral norm, as in the paper and the official code.
        self.discriminators = nn.ModuleList([
            ScaleDiscriminator(cfg.scale_channels, cfg.scale_groups, use_spectral_norm=i == 0)
            for i in range(cfg.scales)])
        self.meanpools = nn.ModuleList([nn.AvgPool1d(4, 2, padding=2) for _ in range(cfg.scales - 1)])

    def forward(self, y: torch.Tensor):
        scores, fmaps = [], []
        for i, d in enumerate(self.discriminators):
            if i:
                y = self.meanpools[i - 1](y)
            score, fmap = d(y)
            scores.append(score)
            fmaps.append(fmap)
        return scores, fmaps


class HifiGanDiscriminator(nn.Module):
    """MPD and MSD together (one module, so one optimizer and one DDP wrapper cover both)."""

    def __init__(self, cfg: DiscriminatorConfig | None = None):
        super().__init__()
        cfg = cfg or DiscriminatorConfig()
        check_discriminator_config(cfg)
        self.mpd = MultiPeriodDiscriminator(cfg)
        self.msd = MultiScaleDiscriminator(cfg)

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        """Real y and generated y_hat [B, 1, samples] -> (real scores, generated scores, real feature maps,
        generated feature maps), one entry per sub-discriminator, MPD first.

        Both go through in one batch; nothing mixes batch items, so this equals scoring them apart.
        """
        both = torch.cat([y, y_hat.to(y.dtype)], dim=0)
        mpd_scores, mpd_fmaps = self.mpd(both)
        msd_scores, msd_fmaps = self.msd(both)
        n = y.shape[0]
        scores, fmaps = mpd_scores + msd_scores, mpd_fmaps + msd_fmaps
        return ([s[:n] for s in scores], [s[n:] for s in scores],
                [[f[:n] for f in fm] for fm in fmaps], [[f[n:] for f in fm] for fm in fmaps])


# --------------------------------------------------------------------------- losses


def discriminator_loss(real_scores: Sequence[torch.Tensor],
                       fake_scores: Sequence[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN: sum over discriminators of E[(1 - D(y))^2] + E[D(G(s))^2]."""
    return sum(torch.mean((1 - r.float()) ** 2) + torch.mean(g.float() ** 2)
               for r, g in zip(real_scores, fake_scores))


def generator_adversarial_loss(fake_scores: Sequence[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN: sum over discriminators of E[(1 - D(G(s)))^2]."""
    return sum(torch.mean((1 - g.float()) ** 2) for g in fake_scores)


def feature_matching_loss(real_fmaps, fake_fmaps) -> torch.Tensor:
    """Sum over discriminators and layers of the mean |D_l(y) - D_l(G(s))| (unweighted; the paper uses 2)."""
    return sum(torch.mean(torch.abs(r.float() - g.float()))
               for real, fake in zip(real_fmaps, fake_fmaps) for r, g in zip(real, fake))


def loss_mel_features(features: FeaturesConfig, fmax_for_loss: Optional[float] = None) -> FeaturesConfig:
    """The mel settings of the L1 mel loss: the input mel's, with f_max = fmax_for_loss (None: sr / 2,
    which is what librosa's mel filter, used by the official code, takes for fmax=None)."""
    f_max = features.sample_rate / 2 if fmax_for_loss is None else float(fmax_for_loss)
    return dataclasses.replace(features, f_max=f_max)


def mel_loss(real: torch.Tensor, fake: torch.Tensor, loss_features: FeaturesConfig) -> torch.Tensor:
    """Mean |log-mel(real) - log-mel(fake)| in float32; real/fake [B, 1, samples] or [B, samples]."""
    with torch.autocast(real.device.type, enabled=False):
        real_mel = mel_spectrogram(real.float().reshape(real.shape[0], -1), loss_features)
        fake_mel = mel_spectrogram(fake.float().reshape(fake.shape[0], -1), loss_features)
        return F.l1_loss(fake_mel, real_mel)


# --------------------------------------------------------------------------- the vocoder interface


class HifiGanVocoder(nn.Module):
    """A trained generator behind holdtts's vocoder interface: natural-log mels [B, n_mels, T] (or
    [n_mels, T]) -> waveforms [B, T * hop] (or [T * hop]). Weight norm is folded away for inference.
    `lengths` (valid frames per item) makes a padded batch vocode exactly as its items would alone."""

    supports_lengths = True

    def __init__(self, generator: HifiGanGenerator, name: str, sample_rate: int = 22050):
        super().__init__()
        self.generator = generator.remove_weight_norm().eval().requires_grad_(False)
        self.name = name
        self.sample_rate = sample_rate
        self.hop_length = generator.hop_length
        self.n_mels = generator.n_mels

    @torch.no_grad()
    def forward(self, mels: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        squeeze = mels.dim() == 2
        if squeeze:
            mels = mels.unsqueeze(0)
        if mels.dim() != 3 or mels.shape[1] != self.n_mels:
            raise ValueError(f"{self.name} takes log-mels [batch, {self.n_mels}, frames], "
                             f"got {tuple(mels.shape)}")
        device = self.generator.conv_pre.weight.device
        wav = self.generator(mels.to(device=device, dtype=torch.float32), lengths).squeeze(1)
        return wav[0] if squeeze else wav
