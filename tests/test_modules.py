"""Text encoder, duration predictor and score U-Net: shapes, masks, sizes, gradients."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from holdtts.config import DecoderConfig, EncoderConfig
from holdtts.models.text_encoder import RelativeSelfAttention, TextEncoder
from holdtts.models.unet import RezeroAttention, ScoreUNet, SinusoidalTimeEmbedding, fix_len_compatibility

TINY_ENCODER = EncoderConfig(n_channels=16, filter_channels=32, n_heads=2, n_layers=2, window_size=2,
                             duration_filter_channels=16)
TINY_DECODER = DecoderConfig(dim=8, dim_mults=(1, 2), groups=2)


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- text encoder


def test_text_encoder_shapes_and_masks_with_ragged_lengths():
    torch.manual_seed(0)
    encoder = TextEncoder(n_vocab=30, n_feats=12, cfg=TINY_ENCODER)
    lengths = torch.tensor([9, 4, 1])
    tokens = torch.randint(0, 30, (3, 9))
    mu_x, logw, x_mask = encoder(tokens, lengths)
    assert mu_x.shape == (3, 12, 9) and logw.shape == (3, 1, 9) and x_mask.shape == (3, 1, 9)
    assert x_mask.dtype == mu_x.dtype
    expected_mask = (torch.arange(9)[None, :] < lengths[:, None]).float().unsqueeze(1)
    torch.testing.assert_close(x_mask, expected_mask)
    assert (mu_x * (1 - x_mask)).abs().max() == 0 and (logw * (1 - x_mask)).abs().max() == 0
    assert mu_x[0].abs().min() > 0  # real tokens are not masked away


@pytest.mark.parametrize("prenet", [True, False])
def test_text_encoder_outputs_do_not_depend_on_padding(prenet):
    # Attention excludes padded keys and every convolution sees zeros there, exactly as at the edge of
    # an unpadded sequence: an utterance encodes the same alone or padded in a batch.
    torch.manual_seed(1)
    cfg = dataclasses.replace(TINY_ENCODER, prenet=prenet)
    encoder = TextEncoder(n_vocab=30, n_feats=12, cfg=cfg).eval()
    tokens = torch.randint(0, 30, (2, 11))
    tokens[1, 6:] = torch.randint(0, 30, (5,))  # arbitrary tokens in the padding
    mu_x, logw, _ = encoder(tokens, torch.tensor([11, 6]))
    mu_alone, logw_alone, _ = encoder(tokens[1:, :6], torch.tensor([6]))
    torch.testing.assert_close(mu_x[1:, :, :6], mu_alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logw[1:, :, :6], logw_alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("length", [3, 11])
def test_relative_attention_matches_the_definition(length):
    # out_i = sum_j a_ij (v_j + ev_{j-i}), a_i = softmax_j(q_i . (k_j + ek_{j-i}) / sqrt(d)), the relative
    # embeddings being zero beyond the window; shorter than the window (3) and longer (11).
    torch.manual_seed(2)
    channels, heads, window = 8, 2, 2
    attention = RelativeSelfAttention(channels, heads, window, p_dropout=0.0).eval()
    with torch.no_grad():
        attention.out.weight.copy_(torch.eye(channels).unsqueeze(-1))
        attention.out.bias.zero_()
    x = torch.randn(2, channels, length)
    mask = torch.ones(2, 1, length)
    mask[1, :, length - 1:] = 0
    got = attention(x, mask)

    d = channels // heads
    projections = (attention.query, attention.key, attention.value)
    q, k, v = (proj(x).view(2, heads, d, length) for proj in projections)
    expected = torch.zeros(2, heads, d, length)
    for b in range(2):
        for h in range(heads):
            for i in range(length):
                scores = torch.full((length,), -math.inf)
                for j in range(length):
                    if mask[b, 0, j] == 0:
                        continue
                    rel = j - i
                    key = k[b, h, :, j] + (attention.rel_key[rel + window] if abs(rel) <= window else 0)
                    scores[j] = q[b, h, :, i] @ key / math.sqrt(d)
                weights = torch.softmax(scores, dim=0)
                for j in range(length):
                    rel = j - i
                    value = v[b, h, :, j] + (attention.rel_value[rel + window] if abs(rel) <= window else 0)
                    expected[b, h, :, i] += weights[j] * value
    expected = expected.reshape(2, channels, length)
    real = mask.bool().expand_as(got)
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)


def test_duration_predictor_does_not_train_the_encoder():
    torch.manual_seed(3)
    encoder = TextEncoder(n_vocab=30, n_feats=12, cfg=TINY_ENCODER)
    _, logw, _ = encoder(torch.randint(0, 30, (2, 7)), torch.tensor([7, 5]))
    logw.square().sum().backward()
    for name, param in encoder.named_parameters():
        if name.startswith("duration_predictor."):
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name


def test_published_sizes():
    # Grad-TTS reports 7.20M encoder + duration predictor and 7.63M decoder parameters, 14.84M in all,
    # for its 149-token vocabulary (148 symbols and the interspersed blank).
    encoder = TextEncoder(n_vocab=149, n_feats=80, cfg=EncoderConfig())
    decoder = ScoreUNet(order=1, cfg=DecoderConfig())
    assert _n_params(encoder) == pytest.approx(7.20e6, rel=0.002)
    assert _n_params(decoder) == pytest.approx(7.635e6, rel=0.002)
    assert _n_params(encoder) + _n_params(decoder) == pytest.approx(14.84e6, rel=0.002)
    # higher orders add only the first convolutions' input channels
    per_channel = _n_params(ScoreUNet(order=2, cfg=DecoderConfig())) - _n_params(decoder)
    assert per_channel == 64 * 9 + 64  # the first ResnetBlock's 3x3 conv and its 1x1 skip


# --------------------------------------------------------------------------- score U-Net


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_unet_shapes_for_each_order(order):
    torch.manual_seed(4)
    net = ScoreUNet(order, DecoderConfig())
    u, mu = torch.randn(2, order, 80, 8), torch.randn(2, 80, 8)
    out = net(u, mu, torch.ones(2, 1, 8), torch.rand(2))
    assert out.shape == (2, 80, 8) and torch.isfinite(out).all()
    assert net(u, mu, torch.ones(2, 1, 8), torch.tensor(0.5)).shape == (2, 80, 8)  # scalar t


def _randomise_gains(net: torch.nn.Module) -> None:
    # ReZero gains start at 0, which would hide the attention branches from these tests
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, RezeroAttention):
                module.gain.fill_(0.7)


def test_unet_mask_zeroes_padding_and_ignores_its_content():
    torch.manual_seed(5)
    net = ScoreUNet(3, TINY_DECODER, n_feats=8).eval()
    _randomise_gains(net)
    frames, lengths = 12, torch.tensor([12, 7])
    mask = (torch.arange(frames)[None, :] < lengths[:, None]).float().unsqueeze(1)
    u, mu, t = torch.randn(2, 3, 8, frames), torch.randn(2, 8, frames), torch.tensor([0.3, 0.9])
    out = net(u, mu, mask, t)
    assert out[1, :, 7:].abs().max() == 0
    assert out[1, :, :7].abs().min() > 0
    u2, mu2 = u.clone(), mu.clone()
    u2[1, :, :, 7:] = 100 * torch.randn(3, 8, 5)
    mu2[1, :, 7:] = -50.0
    torch.testing.assert_close(net(u2, mu2, mask, t), out)


def test_unet_output_depends_on_the_amount_of_padding():
    # Grad-TTS's network normalises (GroupNorm) and attends (linear attention) over the whole padded
    # image, so an item's eps_hat changes with the padding it is batched with. Callers that need
    # batch-independent outputs (attacks) must batch equal lengths or run one utterance at a time.
    torch.manual_seed(6)
    net = ScoreUNet(1, TINY_DECODER, n_feats=8).eval()
    _randomise_gains(net)
    u, mu, t = torch.randn(1, 1, 8, 8), torch.randn(1, 8, 8), torch.tensor([0.5])
    alone = net(u, mu, torch.ones(1, 1, 8), t)
    padded = net(torch.nn.functional.pad(u, (0, 8)), torch.nn.functional.pad(mu, (0, 8)),
                 torch.nn.functional.pad(torch.ones(1, 1, 8), (0, 8)), t)
    assert not torch.allclose(alone, padded[..., :8], atol=1e-4)


def test_unet_gradient_reaches_every_parameter():
    torch.manual_seed(7)
    net = ScoreUNet(2, TINY_DECODER, n_feats=8)
    _randomise_gains(net)
    out = net(torch.randn(2, 2, 8, 8), torch.randn(2, 8, 8), torch.ones(2, 1, 8), torch.rand(2))
    out.square().mean().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_unet_length_rules():
    assert [fix_len_compatibility(n, 2) for n in (1, 4, 5, 171, 172, 173)] == [4, 4, 8, 172, 172, 176]
    assert fix_len_compatibility(7, 0) == 7
    net = ScoreUNet(1, DecoderConfig(dim=8, groups=2), n_feats=8)
    assert net.num_downsamplings == 2
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.randn(1, 1, 8, 6), torch.randn(1, 8, 6), torch.ones(1, 1, 6), torch.rand(1))
    with pytest.raises(ValueError, match="n_feats"):
        ScoreUNet(1, DecoderConfig(), n_feats=90)
    with pytest.raises(ValueError, match="u must be"):
        net(torch.randn(1, 2, 8, 8), torch.randn(1, 8, 8), torch.ones(1, 1, 8), torch.rand(1))


def test_time_embedding_is_grad_tts_sinusoid():
    embed = SinusoidalTimeEmbedding(8, scale=1000.0)
    t = torch.tensor([0.0, 0.25])
    freqs = torch.tensor([10000.0 ** (-k / 3) for k in range(4)])
    angles = 1000.0 * t[:, None] * freqs[None, :]
    torch.testing.assert_close(embed(t), torch.cat([angles.sin(), angles.cos()], dim=1))
