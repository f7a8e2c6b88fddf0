"""The multi-speaker model: a speaker table conditions the encoder, the duration predictor and the decoder for
every process order; a single-speaker config builds exactly the model of before; per-sample gradients (DP-SGD)
reach the table."""
import copy
import json

import pytest
import torch
from test_dp import assert_grad_samples_match

from holdtts.config import load_config
from holdtts.errors import ConfigError, HoldttsError
from holdtts.models.tts import MEAN_SPEAKER, GradTTS
from holdtts.training.dp import make_private, per_sample_backward

from single_speaker_reference import N_VOCAB, REFERENCE, fingerprint, synthetic_batch
from tiny import CONF_DIR, tiny_config

SPEAKERS = ("model.n_speakers=3", "model.speaker_dim=8")


def perturbed(model: GradTTS, seed: int = 1) -> GradTTS:
    """Every parameter moved off its initialisation (zero-initialised gains would hide the layers behind)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=gen))
    return model


@pytest.mark.parametrize("system", ["vp", "hold2", "hold3", "hold4"])
def test_every_order_takes_a_speaker_and_trains_its_table(system):
    torch.manual_seed(0)
    model = perturbed(GradTTS(tiny_config(system, *SPEAKERS), N_VOCAB)).train()
    tokens, token_lengths, mels, mel_lengths, crop_starts = synthetic_batch()
    speakers = torch.tensor([0, 0, 1])
    terms = model(tokens, token_lengths, mels, mel_lengths, crop_starts, speakers=speakers)
    assert set(terms) == {"duration", "prior", "diffusion"}
    assert all(v.shape == (3,) and torch.isfinite(v).all() for v in terms.values())
    sum(v.mean() for v in terms.values()).backward()
    grad = model.speaker_embedding.weight.grad
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0
    assert torch.equal(grad[2], torch.zeros_like(grad[2]))  # no utterance of speaker 2 in the batch
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.speaker_mlp.parameters())

    model.eval()
    with torch.no_grad():
        mu_a, logw_a, _ = model.encode(tokens, token_lengths, torch.tensor([0, 1, 2]))
        mu_b, logw_b, _ = model.encode(tokens, token_lengths, torch.tensor([1, 2, 0]))
        assert not torch.allclose(mu_a, mu_b) and not torch.allclose(logw_a, logw_b)
        n, frames = model.process.order, model.pad_frames(40)
        u = torch.randn(3, n, 80, frames)
        mu, mask = torch.randn(3, 80, frames), torch.ones(3, 1, frames)
        t = torch.full((3,), 0.3 * model.process.horizon)
        eps_a = model.eps_hat(u, t, mu, mask, torch.tensor([0, 1, 2]))
        eps_b = model.eps_hat(u, t, mu, mask, torch.tensor([2, 1, 0]))
        assert eps_a.shape == (3, 80, frames)
        assert not torch.allclose(eps_a[0], eps_b[0]) and torch.allclose(eps_a[1], eps_b[1])
        mels_out, lengths = model.synthesize(tokens, token_lengths, steps=2, speakers=torch.tensor([0, 1, 2]),
                                             generator=torch.Generator().manual_seed(0))
        assert mels_out.shape[:2] == (3, 80) and lengths.shape == (3,) and torch.isfinite(mels_out).all()


def test_speaker_conditions_indices_mean_voice_and_vectors():
    torch.manual_seed(0)
    model = GradTTS(tiny_config("vp", *SPEAKERS), N_VOCAB).eval()
    table = model.speaker_embedding.weight
    assert torch.equal(model.speaker_vector(torch.tensor([2, 0])), table[[2, 0]])
    assert torch.allclose(model.speaker_vector(torch.tensor([MEAN_SPEAKER]))[0], table.mean(0))
    model.trained_speaker_rows = [0, 1]  # the mean voice averages the rows the training data covered
    mixed = model.speaker_vector(torch.tensor([MEAN_SPEAKER, 2]))
    assert torch.allclose(mixed[0], table[:2].mean(0)) and torch.equal(mixed[1], table[2])
    vectors = torch.randn(2, 8)
    assert model.speaker_vector(vectors) is vectors
    assert model.speaker_vector(vectors[0], batch=3).shape == (3, 8)
    for bad in (torch.tensor([3]), torch.tensor([-2]), torch.randn(2, 5)):
        with pytest.raises(HoldttsError):
            model.speaker_vector(bad)
    tokens, token_lengths, *_ = synthetic_batch()
    with pytest.raises(HoldttsError, match="multi-speaker"):
        model.encode(tokens, token_lengths)
    model.speaker_ids = ["p1", "p2", "p3"]
    assert model.speaker_index("p3") == 2
    with pytest.raises(HoldttsError, match="unknown speaker 'p9'"):
        model.speaker_index("p9")


def test_a_single_speaker_config_builds_the_model_of_before():
    """n_speakers 1 (whatever speaker_dim) creates no parameter and runs the old code path."""
    torch.manual_seed(0)
    plain = GradTTS(tiny_config("hold3"), N_VOCAB)
    torch.manual_seed(0)
    explicit = GradTTS(tiny_config("hold3", "model.n_speakers=1", "model.speaker_dim=8"), N_VOCAB)
    assert list(plain.state_dict()) == list(explicit.state_dict())
    assert not any("speaker" in key for key in plain.state_dict())
    for key, value in plain.state_dict().items():
        assert torch.equal(value, explicit.state_dict()[key]), key
    inputs = synthetic_batch()
    torch.manual_seed(5)
    a = plain(*inputs)
    torch.manual_seed(5)
    b = explicit(*inputs)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    with pytest.raises(HoldttsError, match="single-speaker"):
        plain.encode(inputs[0], inputs[1], torch.tensor([0, 0, 0]))


@pytest.mark.parametrize("system", ["vp", "hold3"])
def test_single_speaker_models_match_the_code_before_speakers(system):
    """Keys, initial weights, loss terms and a synthesis of tiny single-speaker models equal what the code of
    before speakers existed gave (tests/data/single_speaker_reference.json, see tests/single_speaker_reference.py)."""
    reference = json.loads(REFERENCE.read_text())[system]
    now = fingerprint(system)
    assert now["keys"] == reference["keys"] and now["lengths"] == reference["lengths"]
    assert now["sums"] == pytest.approx(reference["sums"], rel=1e-6, abs=1e-6)
    for key, values in reference["terms"].items():
        assert now["terms"][key] == pytest.approx(values, rel=1e-5, abs=1e-6), key
    assert now["mels_sum"] == pytest.approx(reference["mels_sum"], rel=1e-5)
    assert now["mels_abs_sum"] == pytest.approx(reference["mels_abs_sum"], rel=1e-5)


def test_config_keys_and_checks():
    cfg = load_config(CONF_DIR / "vp.yaml", ["model.n_speakers=247"])
    assert (cfg.model.n_speakers, cfg.model.speaker_dim) == (247, 64)  # Grad-TTS's LibriTTS model
    with pytest.raises(ConfigError, match="model.n_speakers"):
        load_config(CONF_DIR / "vp.yaml", ["model.n_speakers=0"])
    with pytest.raises(ConfigError, match="n_heads"):  # 16 + 7 channels do not split into 2 heads
        GradTTS(tiny_config("vp", "model.n_speakers=2", "model.speaker_dim=7"), N_VOCAB)


def test_per_sample_gradients_reach_the_speaker_table():
    """Opacus's grad_sample of every parameter, the speaker table and its MLP included, equals the
    per-utterance gradient from plain autograd (dropout masks, times and noise shared)."""
    torch.manual_seed(0)
    plain = perturbed(GradTTS(tiny_config("vp", *SPEAKERS), N_VOCAB)).train()
    private = copy.deepcopy(plain).train()
    gsm, _ = make_private(private, torch.optim.SGD(private.parameters(), lr=1.0), noise_multiplier=0.0,
                          max_grad_norm=1.0, expected_batch_size=3)
    inputs = synthetic_batch()
    speakers = torch.tensor([0, 2, 0])
    torch.manual_seed(5)
    per_utt = sum(gsm(*inputs, speakers=speakers).values())
    params = list(private.parameters())
    per_sample_backward(per_utt.mean(), params)
    torch.manual_seed(5)
    reference = sum(plain(*inputs, speakers=speakers).values())
    assert_grad_samples_match(plain, params, per_utt, reference)
    table = private.speaker_embedding.weight.grad_sample  # [B, n_speakers, dim]
    assert table[1, 2].abs().sum() > 0 and table[1, 0].abs().sum() == 0  # utterance 1 touches row 2 only
