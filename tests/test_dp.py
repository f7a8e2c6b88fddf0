"""DP-SGD training: per-sample gradients, clipping and noise, Poisson batches, accounting, calibration, resume."""
import copy
import json
import math
import shutil
import warnings

import numpy as np
import pytest
import torch
from opacus.accountants import PRVAccountant, RDPAccountant
from scipy.optimize import brentq
from scipy.special import logsumexp
from scipy.stats import norm

from holdtts.data.dataset import FeatureStore, load_split
from holdtts.errors import ConfigError
from holdtts.models.tts import GradTTS
from holdtts.training.dp import (
    COVERS,
    DPTrainer,
    PoissonBatches,
    calibrate_noise,
    check_dp_config,
    epsilon_for,
    make_accountant,
    make_private,
    membership_auroc_bound,
    per_sample_backward,
)
from holdtts.training.factory import make_trainer
from holdtts.utils.checkpoint import list_checkpoints, load_checkpoint

from single_speaker_reference import N_VOCAB, synthetic_batch
from tiny import tiny_config


@pytest.fixture(scope="module")
def short_recipe(tmp_path_factory):
    """16 short utterances (under a second, a few words): DP steps in milliseconds, not seconds."""
    from holdtts.data.features import extract_features
    from holdtts.data.splits import prepare_data_dir

    from corpus_factory import make_short_corpus

    root = tmp_path_factory.mktemp("dp_recipe")
    corpus = make_short_corpus(root / "corpus")
    prepare_data_dir(corpus, root / "data", seed=3, num_members=8, num_nonmembers=6, num_valid=1, num_test=1)
    extract_features(root / "data", root / "dump", device="cpu", nj=1)
    return root


def dp_config(system="vp", *overrides):
    return tiny_config(system, "dp.enabled=true", *overrides)


def run(root, exp, *overrides, system="vp"):
    trainer = make_trainer(dp_config(system, *overrides), exp, root / "data", root / "dump", device="cpu",
                           progress_bar=False)
    return trainer.run()


def tiny_models(system):
    """Two copies of a tiny GradTTS, every parameter moved off its initialisation: the zero-initialised
    ReZero gains and prenet projection would otherwise hide the gradients of the layers behind them."""
    torch.manual_seed(0)
    plain = GradTTS(tiny_config(system), N_VOCAB)
    with torch.no_grad():
        for param in plain.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return plain, copy.deepcopy(plain)


# --------------------------------------------------------------------------- per-sample gradients


@pytest.mark.parametrize("system", ["vp", "hold3"])
def test_per_sample_gradients_match_a_per_example_loop(system):
    """Opacus's grad_sample of every parameter (the custom relative-attention sampler, the functorch
    fallback for ReZero and ConvTranspose2d, the built-in ones) equals d loss_i / d theta from plain autograd,
    with dropout on and the same dropout masks, times and noise in both."""
    plain, private = tiny_models(system)
    plain.train()
    private.train()
    gsm, _ = make_private(private, torch.optim.SGD(private.parameters(), lr=1.0), noise_multiplier=0.0,
                          max_grad_norm=1.0, expected_batch_size=3)
    inputs = synthetic_batch()
    torch.manual_seed(5)
    per_utt = sum(gsm(*inputs).values())
    params = list(private.parameters())
    norms = per_sample_backward(per_utt.mean(), params)
    assert norms.shape == (3,) and torch.isfinite(norms).all()

    torch.manual_seed(5)
    reference = sum(plain(*inputs).values())
    assert_grad_samples_match(plain, params, per_utt, reference)


def assert_grad_samples_match(plain, params, per_utt, reference):
    """`per_utt` (the private copy's per-utterance losses) equals `reference` (the plain model's, computed
    with the same randomness), and each private parameter's grad_sample[i] equals d reference[i] / d theta
    from plain autograd (zero for a parameter utterance i does not reach)."""
    torch.testing.assert_close(per_utt, reference, rtol=0, atol=0)  # same function, same randomness
    names = [name for name, _ in plain.named_parameters()]
    for i in range(len(reference)):
        grads = torch.autograd.grad(reference[i], list(plain.parameters()), retain_graph=True, allow_unused=True)
        scale = max(float(g.abs().max()) for g in grads if g is not None)
        for name, grad, param in zip(names, grads, params):
            expected = torch.zeros_like(param) if grad is None else grad
            torch.testing.assert_close(param.grad_sample[i], expected, rtol=1e-4, atol=1e-6 * scale,
                                       msg=lambda m, name=name, i=i: f"{name}, utterance {i}: {m}")


def test_relative_attention_tables_have_per_sample_gradients():
    """The sampler is exercised: the tables are raw parameters with non-zero, utterance-specific gradients."""
    _, private = tiny_models("vp")
    private.train()
    gsm, _ = make_private(private, torch.optim.SGD(private.parameters(), lr=1.0), noise_multiplier=0.0,
                          max_grad_norm=1.0, expected_batch_size=3)
    per_sample_backward(sum(gsm(*synthetic_batch()).values()).mean(), list(private.parameters()))
    attention = private.encoder.encoder.attention[0]
    for table in (attention.rel_key, attention.rel_value):
        assert table.grad_sample.shape == (3, *table.shape)
        assert not torch.allclose(table.grad_sample[0], table.grad_sample[1])
    assert attention.dp_attention_weights == []  # every saved forward was consumed by the backward


def test_private_model_computes_the_same_function():
    plain, private = tiny_models("hold3")
    make_private(private, torch.optim.SGD(private.parameters(), lr=1.0), noise_multiplier=1.0,
                 max_grad_norm=1.0, expected_batch_size=3)
    assert plain.state_dict().keys() == private.state_dict().keys()
    tokens, token_lengths, mels, mel_lengths, crop_starts = synthetic_batch()
    plain.eval()
    private.eval()
    with torch.no_grad():
        for a, b in zip(plain.encode(tokens, token_lengths), private.encode(tokens, token_lengths)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        g1, g2 = (torch.Generator().manual_seed(1) for _ in range(2))
        mel_a, _ = plain.synthesize(tokens, token_lengths, steps=3, generator=g1)
        mel_b, _ = private.synthesize(tokens, token_lengths, steps=3, generator=g2)
    torch.testing.assert_close(mel_a, mel_b, rtol=0, atol=0)


def test_an_utterance_loss_does_not_depend_on_the_rest_of_the_batch():
    """Per-sample clipping bounds one utterance's influence only if its loss is a function of it alone:
    padding to the batch's longest text and mel, the alignment search and the norms must not mix items."""
    model, _ = tiny_models("hold3")
    model.eval()
    tokens, token_lengths, mels, mel_lengths, crop_starts = synthetic_batch(4)
    t = torch.tensor([0.1, 0.5, 0.9, 0.3]) * model.process.horizon
    frames = model.segment_frames
    eps = torch.randn(4, model.process.order, 80, frames, generator=torch.Generator().manual_seed(2))

    def losses(idx):
        tl, ml = token_lengths[idx], mel_lengths[idx]
        tok, mel = tokens[idx][:, : int(tl.max())], mels[idx][:, :, : int(ml.max())]
        alignment = model.align(tok, tl, mel, ml)
        segment = model.crop(mel, alignment, crop_starts[idx])
        return torch.stack([model.duration_loss(alignment), model.prior_loss(segment),
                            model.diffusion_loss(segment, t=t[idx], eps=eps[idx])], 1)

    with torch.no_grad():
        together = losses(torch.arange(4))
        for i in range(4):
            torch.testing.assert_close(losses(torch.tensor([i]))[0], together[i], rtol=1e-5, atol=1e-6)


def test_a_dp_step_clips_sums_adds_noise_and_divides_by_the_expected_batch_size():
    _, private = tiny_models("vp")
    private.train()
    sigma, clip, expected_batch = 0.5, 0.05, 4  # 3 utterances drawn, 4 expected (Poisson sampling)
    gsm, optimizer = make_private(private, torch.optim.SGD(private.parameters(), lr=1.0),
                                  noise_multiplier=sigma, max_grad_norm=clip, expected_batch_size=expected_batch)
    params = list(private.parameters())
    before = [p.detach().clone() for p in params]
    norms = per_sample_backward(sum(gsm(*synthetic_batch()).values()).mean(), params)
    assert (norms > 10 * clip).all()  # every gradient is clipped
    samples = [p.grad_sample.detach().clone() for p in params]
    norms = torch.stack([s.reshape(3, -1).norm(dim=1) for s in samples], 1).norm(dim=1)
    factor = (clip / (norms + 1e-6)).clamp(max=1.0)
    optimizer.step()
    noise = []
    for p, old, s in zip(params, before, samples):
        clipped_mean = torch.einsum("i,i...->...", factor, s) / expected_batch
        noise.append(((old - p.detach()) - clipped_mean).flatten() * expected_batch)
    noise = torch.cat(noise)
    assert abs(float(noise.mean())) < 5 * sigma * clip / math.sqrt(len(noise))
    assert float(noise.std()) == pytest.approx(sigma * clip, rel=0.03)


def test_a_non_finite_gradient_contributes_zero():
    _, private = tiny_models("vp")
    private.train()
    gsm, _ = make_private(private, torch.optim.SGD(private.parameters(), lr=1.0), noise_multiplier=0.0,
                          max_grad_norm=1.0, expected_batch_size=3)
    per_utt = sum(gsm(*synthetic_batch()).values())
    per_utt = per_utt * torch.tensor([1.0, float("nan"), 1.0])
    params = list(private.parameters())
    norms = per_sample_backward(per_utt.mean(), params)
    assert torch.isnan(norms[1]) and torch.isfinite(norms[[0, 2]]).all()
    assert all(torch.isfinite(p.grad_sample).all() and not p.grad_sample[1].any() for p in params)


# --------------------------------------------------------------------------- sampling and accounting


def test_poisson_batches_sample_each_utterance_with_probability_q(short_recipe):
    store = FeatureStore(short_recipe / "dump")
    utts = load_split(short_recipe / "data", "members")
    batches = PoissonBatches(store, utts, batch_size=2, segment_frames=32, seed=1)
    q = 2 / len(utts)
    assert batches.sample_rate == q and len(batches) == int(1 / q)
    draws = [b for epoch in range(500) for b in batches.epoch_batches(epoch)]
    assert all(len(set(b)) == len(b) for b in draws)
    counts = np.bincount(np.concatenate([b for b in draws if b]), minlength=len(utts))
    n = len(draws)
    assert np.all(np.abs(counts / n - q) < 4 * math.sqrt(q * (1 - q) / n))
    sizes = np.array([len(b) for b in draws])
    assert sizes.mean() == pytest.approx(2, abs=4 * math.sqrt(len(utts) * q * (1 - q) / n))
    assert (sizes == 0).any() and sizes.max() > 2  # sizes vary, empty batches happen
    assert batches.epoch_batches(7) == batches.epoch_batches(7)
    empty = batches.batch(0, 0, [])
    assert len(empty) == 0 and empty.tokens.shape[0] == 0
    with pytest.raises(ConfigError, match="batch_size"):
        PoissonBatches(store, utts, batch_size=len(utts) + 1, segment_frames=32, seed=1)


@pytest.mark.parametrize("accountant, cls", [("prv", PRVAccountant), ("rdp", RDPAccountant)])
def test_epsilon_matches_opacus_and_grows_with_steps(accountant, cls):
    q, sigma, delta = 0.01, 1.0, 1e-5
    stepped = make_accountant(accountant)
    for _ in range(300):
        stepped.step(noise_multiplier=sigma, sample_rate=q)
    reference = cls()
    reference.history = [(sigma, q, 300)]
    assert epsilon_for(sigma, q, 300, delta, accountant) == pytest.approx(reference.get_epsilon(delta), rel=1e-9)
    assert stepped.get_epsilon(delta) == pytest.approx(reference.get_epsilon(delta), rel=1e-9)
    curve = [epsilon_for(sigma, q, steps, delta, accountant) for steps in (10, 100, 1000, 10000)]
    assert all(a < b for a, b in zip(curve, curve[1:]))
    assert epsilon_for(sigma, q, 0, delta, accountant) == 0.0
    assert math.isinf(epsilon_for(0.0, q, 10, delta, accountant))


def test_rdp_matches_the_sampled_gaussian_closed_form():
    """Integer orders alpha of the sampled Gaussian mechanism (Mironov, Talwar, Zhang 2019, eq. 3):
    RDP_alpha = log sum_k C(alpha, k) (1 - q)^(alpha - k) q^k exp((k^2 - k) / (2 sigma^2)) / (alpha - 1),
    composed over T steps, to (eps, delta) by Balle et al. 2020's conversion, minimised over alpha. Opacus
    also searches fractional orders, so it may only be lower, and not by much."""
    q, sigma, steps, delta = 0.01, 1.0, 1000, 1e-5
    best = math.inf
    for alpha in range(2, 64):
        log_terms = [math.log(math.comb(alpha, k)) + (alpha - k) * math.log1p(-q) + k * math.log(q)
                     + (k * k - k) / (2 * sigma ** 2) for k in range(alpha + 1)]
        rdp = steps * logsumexp(log_terms) / (alpha - 1)
        eps = rdp + math.log((alpha - 1) / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)
        best = min(best, eps)
    assert best * 0.95 <= epsilon_for(sigma, q, steps, delta, "rdp") <= best + 1e-9


def test_prv_matches_the_analytic_gaussian_mechanism_without_subsampling():
    """q = 1: T Gaussian mechanisms of sensitivity 1 and noise sigma are one with mu = sqrt(T) / sigma, whose
    exact curve is delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2) (Balle & Wang 2018).
    PRV is tight to its error bound; RDP is an upper bound."""
    sigma, steps, delta = 2.0, 16, 1e-5
    mu = math.sqrt(steps) / sigma

    def excess(eps):
        return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2) - delta

    exact = brentq(excess, 1e-6, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PRV's log(1 - q) at q = 1 is benign and not printed at every step
        prv = epsilon_for(sigma, 1.0, steps, delta, "prv")
        calibrate_noise(8.0, delta, 1.0, steps, "prv")
    assert prv == pytest.approx(exact, abs=0.03)
    assert exact - 1e-6 <= epsilon_for(sigma, 1.0, steps, delta, "rdp") <= exact + 1.0


@pytest.mark.parametrize("target, accountant", [(1.0, "rdp"), (8.0, "rdp"), (8.0, "prv")])
def test_noise_calibration_reaches_the_target(target, accountant):
    q, steps, delta = 0.02, 2000, 1 / 3000
    sigma = calibrate_noise(target, delta, q, steps, accountant)
    assert target - 0.02 <= epsilon_for(sigma, q, steps, delta, accountant) <= target
    assert epsilon_for(0.97 * sigma, q, steps, delta, accountant) > target  # and no more noise than needed


def test_an_unreachable_budget_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot be reached"):
        calibrate_noise(1e-9, 1e-5, 1.0, 10 ** 6, "rdp")


@pytest.mark.parametrize("epsilon, delta", [(0.0, 0.0), (1.0, 0.0), (1.0, 1e-3), (8.0, 1 / 6550), (0.5, 0.2)])
def test_auroc_bound_is_the_area_under_the_dp_roc_bound(epsilon, delta):
    fpr = np.linspace(0.0, 1.0, 200001)
    tpr = np.minimum.reduce([np.ones_like(fpr), delta + math.exp(epsilon) * fpr,
                             1 - math.exp(-epsilon) * (1 - delta - fpr)])
    assert membership_auroc_bound(epsilon, delta) == pytest.approx(np.trapezoid(tpr, fpr), abs=1e-8)
    assert membership_auroc_bound(1.0, 0.0) == pytest.approx(math.e / (1 + math.e))


# --------------------------------------------------------------------------- the trainer


def make_dp_trainer(root, exp, *overrides):
    trainer = DPTrainer(dp_config("vp", *overrides), exp, root / "data", root / "dump", device="cpu",
                        progress_bar=False)
    trainer.setup()
    return trainer


def test_physical_chunks_make_the_same_step_as_the_whole_batch(short_recipe, tmp_path):
    """dp.max_physical_batch_size only bounds memory: clipped gradients of the chunks are summed, then one
    noisy step. Without randomness in the loss (no dropout, no diffusion term) both give the same update."""
    deterministic = ("dp.noise_multiplier=0", "encoder.p_dropout=0", "encoder.prenet=false",
                     "loss.diffusion_weight=0", "train.max_steps=4")
    whole = make_dp_trainer(short_recipe, tmp_path / "whole", *deterministic)
    chunked = make_dp_trainer(short_recipe, tmp_path / "chunked", *deterministic, "dp.max_physical_batch_size=2")
    batch = whole.batches.batch(0, 0, [0, 2, 3, 5, 7])
    out_whole, out_chunked = whole.train_step(batch), chunked.train_step(batch)
    assert out_whole["batch_size"] == out_chunked["batch_size"] == 5
    assert out_whole["loss"] == pytest.approx(out_chunked["loss"], rel=1e-6)
    for (name, a), b in zip(whole.model.named_parameters(), chunked.model.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-5 * float(a.grad.abs().max()) + 1e-9,
                                   msg=lambda m, name=name: f"{name}: {m}")  # what Adam receives


def test_non_finite_utterance_gradients_are_counted_in_the_summary(short_recipe, tmp_path):
    """An utterance whose own gradient is non-finite contributes zero (the step still runs, noised and
    accounted); train_summary.json says how many there were, across a resume."""
    trainer = make_dp_trainer(short_recipe, tmp_path / "a", "dp.noise_multiplier=1.0", "dp.accountant=rdp",
                              "train.max_steps=4")
    real = trainer.step_losses

    def one_nan(batch):
        terms = real(batch)
        terms["diffusion"] = terms["diffusion"] * torch.tensor([float("nan")] + [1.0] * (len(batch) - 1))
        return terms

    trainer.step_losses = one_nan
    assert trainer.train_step(trainer.batches.batch(0, 0, [0, 2, 3])) is not None
    assert trainer.state.nonfinite_utt_gradients == 1 and trainer.state.skipped_steps == 0
    assert trainer.summary(stopped=True)["dp"]["nonfinite_utt_gradients"] == 1
    assert trainer.checkpoint_state()["progress"]["nonfinite_utt_gradients"] == 1  # resumed with the rest


def test_an_empty_poisson_batch_is_a_noisy_accounted_step(short_recipe, tmp_path):
    trainer = make_dp_trainer(short_recipe, tmp_path / "empty", "dp.noise_multiplier=1.0", "dp.accountant=rdp",
                              "train.max_steps=4")
    before = [p.detach().clone() for p in trainer.model.parameters()]
    assert trainer.train_step(trainer.batches.batch(0, 0, [])) is None
    assert trainer.accountant.history == [(1.0, 0.5, 1)]
    assert all(not torch.equal(a, p) for a, p in zip(before, trainer.model.parameters()))


def test_config_checks():
    check_dp_config(dp_config("vp", "dp.target_epsilon=8"))
    bad = {"both": ("dp.target_epsilon=8", "dp.noise_multiplier=1.0"),
           "fp32": ("train.precision=fp16",), "uniform": ("loss.t_sampling=antithetic",),
           "accountant": ("dp.accountant=gdp",), "delta": ("dp.delta=1.5",), "max_grad_norm": ("dp.max_grad_norm=0",),
           "max_physical_batch_size": ("dp.max_physical_batch_size=-1",)}
    for match, overrides in bad.items():
        with pytest.raises(ConfigError, match=match):
            check_dp_config(dp_config("vp", *overrides))
    assert isinstance(make_trainer(dp_config(), "x", "d", "f"), DPTrainer)
    assert not isinstance(make_trainer(tiny_config(), "x", "d", "f"), DPTrainer)


# The trainer tests use the RDP accountant: PRV's epsilon costs about a second per call on the CPU.
BUDGET = ("dp.target_epsilon=8", "dp.accountant=rdp", "train.batch_size=2", "train.keep_last=5")


@pytest.fixture(scope="module")
def whole_run(short_recipe, tmp_path_factory):
    exp = tmp_path_factory.mktemp("dp") / "whole"
    summary = run(short_recipe, exp, *BUDGET, "train.max_steps=4")
    return exp, summary


def test_a_dp_run_reaches_its_budget_and_reports_it(whole_run):
    exp, summary = whole_run
    privacy = json.loads((exp / "privacy.json").read_text())
    assert privacy["steps"] == summary["step"] == 4
    assert privacy["sample_rate"] == pytest.approx(2 / 8) and privacy["delta"] == pytest.approx(1 / 8)
    assert 8 - 0.05 <= privacy["epsilon"] <= 8  # calibrated for exactly these 4 steps
    assert privacy["epsilon"] == pytest.approx(epsilon_for(privacy["noise_multiplier"], 0.25, 4, 1 / 8, "rdp"))
    assert privacy["covers"] == COVERS and privacy["accountant"] == "rdp" and privacy["target_epsilon"] == 8
    assert privacy["auroc_bound"] == pytest.approx(membership_auroc_bound(privacy["epsilon"], 1 / 8))
    assert summary["dp"]["epsilon"] == privacy["epsilon"]
    assert summary["dp"]["nonfinite_utt_gradients"] == 0 and summary["skipped_steps"] == 0
    logged = [json.loads(line) for line in (exp / "train_log.jsonl").read_text().splitlines()]
    epsilons = [r["privacy/epsilon"] for r in logged]
    assert len(epsilons) == 4 and all(a < b for a, b in zip(epsilons, epsilons[1:]))
    assert epsilons[-1] == privacy["epsilon"]
    assert all("train/clipped_fraction" in r for r in logged if r.get("train/batch_size", 0) > 0)
    state = load_checkpoint(exp)
    assert state["dp"]["accountant"]["history"] == [[privacy["noise_multiplier"], 0.25, 4]]


def test_a_dp_run_resumes_with_its_accountant(whole_run, short_recipe, tmp_path):
    """Interrupted after the step-2 checkpoint and resumed: same weights, optimizer, epsilon and step
    count as the uninterrupted run."""
    whole, _ = whole_run
    split = tmp_path / "split"
    shutil.copytree(whole, split)
    for step, path in list_checkpoints(split):
        if step > 2:
            path.unlink()
    (split / "privacy.json").unlink()
    (split / "train_summary.json").unlink()
    summary = run(short_recipe, split, *BUDGET, "train.max_steps=4")
    assert summary["step"] == 4
    a, b = load_checkpoint(whole), load_checkpoint(split)
    for key in ("model", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    for index, state in a["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg_sq"], b["optimizer"]["state"][index]["exp_avg_sq"])
    assert a["dp"] == b["dp"]
    assert json.loads((whole / "privacy.json").read_text()) == json.loads((split / "privacy.json").read_text())


def test_a_longer_resumed_run_keeps_its_noise_and_spends_more(whole_run, short_recipe, tmp_path):
    whole, _ = whole_run
    longer = tmp_path / "longer"
    shutil.copytree(whole, longer)
    run(short_recipe, longer, *BUDGET, "train.max_steps=6")
    before = json.loads((whole / "privacy.json").read_text())
    after = json.loads((longer / "privacy.json").read_text())
    assert after["noise_multiplier"] == before["noise_multiplier"] and after["planned_steps"] == 4
    assert after["steps"] == 6 and after["epsilon"] > 8


def test_the_non_private_reference_has_no_guarantee(short_recipe, tmp_path):
    exp = tmp_path / "reference"
    summary = run(short_recipe, exp, "train.max_steps=2")
    assert summary["dp"]["epsilon"] is None and summary["dp"]["noise_multiplier"] == 0.0
    assert not (exp / "privacy.json").exists()
    assert load_checkpoint(exp)["dp"]["accountant"] is None
