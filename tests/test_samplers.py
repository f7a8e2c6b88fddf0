"""Every sampler, for orders 1-3, with the exact score of Gaussian data: the marginals of Gaussian data
are Gaussian, so eps_fn can be written in closed form and the samples must reproduce the data's law."""
from __future__ import annotations

import pytest
import torch

from holdtts.diffusion import (
    SAMPLERS,
    diffusion_loss,
    get_sampler,
    make_process,
    ode_step,
    probability_flow_drift,
    register_sampler,
)
from holdtts.errors import ConfigError

DATA_MEAN = torch.tensor([0.8, -0.5], dtype=torch.float64)
DATA_COV = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=torch.float64)


def process_of_order(order):
    if order == 1:
        return make_process("vp")
    return make_process("hold", order=order, horizon=5.0)


def marginal_law(process, t):
    """Mean [n*d] and covariance [n*d, n*d] of u_t (block-major) for q0 ~ N(DATA_MEAN, DATA_COV)."""
    times = torch.tensor([t], dtype=torch.float64)
    a = process.mean_coefficients(times)[0]
    C = process.cholesky(times)[0]
    d = DATA_MEAN.numel()
    mean = torch.kron(a, DATA_MEAN)
    cov = torch.kron(torch.outer(a, a), DATA_COV) + torch.kron(C @ C.T, torch.eye(d, dtype=torch.float64))
    return mean, cov, C


def gaussian_eps_fn(process):
    """The optimal noise predictor E[eps_n | u_t] = -C_t[n,n] * (last block of grad log p_t(u_t))."""

    def eps_fn(u, t):
        assert torch.all(t == t[0]), "the samplers give every batch element the same time"
        mean, cov, C = marginal_law(process, float(t[0]))
        flat = u.reshape(u.shape[0], -1).double()
        score = -torch.linalg.solve(cov, (flat - mean).T).T
        d = DATA_MEAN.numel()
        return (-C[-1, -1] * score[:, -d:]).to(u.dtype)

    return eps_fn


def whitened_prior(process, batch, generator):
    """Prior draws whose sample mean and covariance are exactly the prior's: a deterministic sampler maps
    them affinely (the score is linear in u), so its output's moments carry no Monte-Carlo error."""
    u = process.prior_sample((batch, 2), generator=generator, dtype=torch.float64).reshape(batch, -1)
    u = u - u.mean(0)
    root = torch.linalg.cholesky(torch.cov(u.T) / process.l_inv)
    return torch.linalg.solve_triangular(root, u.T, upper=False).T.reshape(batch, process.order, 2)


# Steps for each solver to be accurate on the stiff early times of each order (beta = 0.08: the last
# block's conditional variance near t = 0 is small). Euler on the ODE is first order and needs many.
STEPS = {
    ("euler_maruyama", 1): 200, ("euler_maruyama", 2): 200, ("euler_maruyama", 3): 200,
    ("splitting", 1): 100, ("splitting", 2): 100, ("splitting", 3): 200,
    ("ode_heun", 1): 20, ("ode_heun", 2): 50, ("ode_heun", 3): 50,
    ("ode_euler", 1): 50, ("ode_euler", 2): 800, ("ode_euler", 3): 800,
}


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("name", ["euler_maruyama", "ode_euler", "ode_heun", "splitting"])
def test_sampler_recovers_gaussian_data(name, order):
    process = process_of_order(order)
    gen = torch.Generator().manual_seed(10 * order + len(name))
    if name.startswith("ode"):
        u_T = whitened_prior(process, 500, gen)
    else:
        u_T = process.prior_sample((8000, 2), generator=gen, dtype=torch.float64)
    u0 = get_sampler(name)(process, gaussian_eps_fn(process), u_T, STEPS[name, order], generator=gen)
    assert u0.shape == u_T.shape
    q = u0[:, 0]
    torch.testing.assert_close(q.mean(0), DATA_MEAN, atol=0.04, rtol=0)
    torch.testing.assert_close(torch.cov(q.T), DATA_COV, atol=0.04, rtol=0)


def test_gaussian_check_detects_a_wrong_score():
    # The test above can fail: a score off by 20% moves the samples' law out of tolerance.
    process = process_of_order(2)
    exact = gaussian_eps_fn(process)
    gen = torch.Generator().manual_seed(0)
    u_T = whitened_prior(process, 500, gen)
    u0 = get_sampler("ode_heun")(process, lambda u, t: 0.8 * exact(u, t), u_T, 50)
    assert (torch.cov(u0[:, 0].T) - DATA_COV).abs().max() > 0.1


@pytest.mark.parametrize("name", ["euler_maruyama", "splitting"])
def test_stochastic_samplers_follow_the_generator(name):
    process = process_of_order(2)
    eps_fn = gaussian_eps_fn(process)
    u_T = process.prior_sample((8, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    runs = [get_sampler(name)(process, eps_fn, u_T, 20, generator=torch.Generator().manual_seed(s))
            for s in (1, 1, 2)]
    torch.testing.assert_close(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_mask_zeroes_padded_frames_everywhere(name):
    process = process_of_order(3)
    frames = 6
    mask = torch.ones(2, 1, frames)
    mask[1, :, 4:] = 0
    seen = []

    def eps_fn(u, t):
        seen.append(u)
        return torch.tanh(u[:, -1]) * 0.3

    gen = torch.Generator().manual_seed(0)
    u_T = process.prior_sample((2, 3, frames), generator=gen)
    u0 = get_sampler(name)(process, eps_fn, u_T, 5, generator=gen, mask=mask)
    for u in seen + [u0]:
        assert torch.all(u[1, :, :, 4:] == 0)
    assert torch.all(u0[0] != 0)


def test_ode_euler_order_one_is_grad_tts_reverse_diffusion():
    # Grad-TTS: t = 1 - (i + 0.5) h; dx = 0.5 (mu - x - score) beta(t) h; x = (x - dx) * mask.
    process = make_process("vp")
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(2, 4, 6, generator=gen)
    z = mu + torch.randn(2, 4, 6, generator=gen) / 1.5
    mask = torch.ones(2, 1, 6)
    mask[0, :, 5:] = 0

    def score_net(x, t):  # any smooth function stands in for the network's score
        return -0.7 * (x - mu) + 0.1 * t.reshape(-1, 1, 1)

    steps, h = 10, 1.0 / 10
    x = z * mask
    for i in range(steps):
        t = torch.full((2,), 1.0 - (i + 0.5) * h)
        beta = 0.05 + (20.0 - 0.05) * t.reshape(-1, 1, 1)
        x = (x - 0.5 * (mu - x - score_net(x, t)) * beta * h) * mask

    def eps_fn(u, t):
        std = process.last_noise_std(t).reshape(-1, 1, 1)
        return -std * score_net(u[:, 0] + mu, t)

    u0 = get_sampler("ode_euler")(process, eps_fn, (z - mu).unsqueeze(1), steps, t_end=0.0, mask=mask)
    torch.testing.assert_close(u0[:, 0] + mu * mask, x, atol=1e-5, rtol=1e-5)


def test_ode_step_is_invertible_to_first_order():
    process = process_of_order(2)
    eps_fn = gaussian_eps_fn(process)
    u = torch.randn(5, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.full((5,), 1.0, dtype=torch.float64)
    drift = probability_flow_drift(process, eps_fn, u, t)
    up = ode_step(process, eps_fn, u, t, t + 1e-3)
    torch.testing.assert_close(up, u + 1e-3 * drift)
    back = ode_step(process, eps_fn, up, t + 1e-3, t)
    assert (back - u).abs().max() < 1e-5  # O(dt^2)
    assert (up - u).abs().max() > 1e-4


@pytest.mark.parametrize("order", [1, 3])
def test_loss_of_exact_predictor_is_posterior_variance(order):
    # E[(E[eps_n|u] - eps_n)^2] = the posterior variance of eps_n given u_t (closed form).
    process = process_of_order(order)
    t_value = 0.3 * process.horizon
    mean, cov, C = marginal_law(process, t_value)
    d = DATA_MEAN.numel()
    cross = torch.zeros(d, cov.shape[0], dtype=torch.float64)
    cross[:, -d:] = C[-1, -1] * torch.eye(d, dtype=torch.float64)  # Cov(eps_n, u): C is lower triangular
    posterior = torch.eye(d, dtype=torch.float64) - cross @ torch.linalg.solve(cov, cross.T)
    gen = torch.Generator().manual_seed(3)
    white = torch.randn(20000, d, generator=gen, dtype=torch.float64)
    q0 = DATA_MEAN + white @ torch.linalg.cholesky(DATA_COV).T
    t = torch.full((20000,), t_value, dtype=torch.float64)
    loss = diffusion_loss(process, gaussian_eps_fn(process), q0, t=t, generator=gen)
    assert loss.mean().item() == pytest.approx(posterior.trace().item() / d, abs=0.015)


def test_registry():
    assert {"euler_maruyama", "ode_euler", "ode_heun", "splitting"} <= set(SAMPLERS)
    with pytest.raises(ConfigError, match="known: .*ode_euler"):
        get_sampler("ddim")
    with pytest.raises(ValueError, match="already registered"):
        register_sampler("ode_euler")(lambda *args, **kwargs: None)
