"""The processes and the loss against closed forms, scipy references and simulation (THEORY.md 1-2)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import torch

from holdtts.config import ProcessConfig
from holdtts.diffusion import (
    critical_damping,
    diffusion_loss,
    hold_drift_matrix,
    make_process,
    noised_state,
    process_from_config,
    process_from_dict,
    sample_times,
    score_weight,
)
from holdtts.errors import ConfigError

ORDERS = [2, 3, 4, 5, 6]


def hold(order, **kw):
    params = dict(order=order, l_inv=0.7, beta=0.5, horizon=5.0)
    params.update(kw)
    return make_process("hold", **params)


def vp():
    return make_process("vp", beta_min=0.05, beta_max=20.0, horizon=1.0)


def noise_matrix(process):
    """G G^T as an n x n numpy matrix."""
    n = process.order
    GG = np.zeros((n, n))
    GG[-1, -1] = 2 * process.xi * process.l_inv
    return GG


def t64(*values):
    return torch.tensor(values, dtype=torch.float64)


# --------------------------------------------------------------------------- critical damping


@pytest.mark.parametrize("n", ORDERS)
def test_critical_damping_single_eigenvalue_and_nilpotent(n):
    F = hold_drift_matrix(n).numpy()
    _, _, lam = critical_damping(n)
    assert lam == pytest.approx(-math.sqrt(2 * n - 3))
    # Characteristic polynomial (x - lam)^n: eigenvalues of a defective matrix are ill-conditioned, its
    # polynomial's coefficients are not.
    expected = np.poly(np.full(n, lam))
    np.testing.assert_allclose(np.poly(F), expected, rtol=1e-9, atol=1e-9)
    N = F - lam * np.eye(n)
    scale = np.linalg.norm(N) ** n
    assert np.linalg.norm(np.linalg.matrix_power(N, n)) < 1e-12 * scale
    # index exactly n: N^(n-1) != 0, i.e. a single Jordan block (rank n - 1)
    assert np.linalg.norm(np.linalg.matrix_power(N, n - 1)) > 1e-4 * np.linalg.norm(N) ** (n - 1)
    assert np.linalg.matrix_rank(N) == n - 1


def test_critical_damping_tabled_values():
    assert critical_damping(2)[:2] == (pytest.approx([1.0]), pytest.approx(2.0))
    assert critical_damping(3)[:2] == (pytest.approx([1.0, 2 * math.sqrt(2)]),
                                       pytest.approx(3 * math.sqrt(3)))
    assert critical_damping(4)[:2] == (pytest.approx([1.0, 2.0, 5.0]), pytest.approx(4 * math.sqrt(5)))
    F = hold_drift_matrix(2).numpy()
    np.testing.assert_allclose(F, [[0.0, 1.0], [-1.0, -2.0]])


@pytest.mark.parametrize("n", ORDERS)
def test_stationary_covariance_solves_lyapunov(n):
    process = hold(n)
    F = hold_drift_matrix(n).numpy()
    np.testing.assert_allclose(F + F.T, -2 * process.xi * np.diag(np.eye(n)[-1]), atol=1e-12)
    sigma = scipy.linalg.solve_continuous_lyapunov(F, -noise_matrix(process))
    np.testing.assert_allclose(sigma, process.l_inv * np.eye(n), atol=1e-10)
    _, sigma_t = process.marginal(t64(60.0))
    np.testing.assert_allclose(sigma_t[0].numpy(), process.l_inv * np.eye(n), atol=1e-10)


# --------------------------------------------------------------------------- marginals


@pytest.mark.parametrize("n", ORDERS)
def test_hold_marginal_matches_expm_and_covariance_ode(n):
    process = hold(n)
    F = hold_drift_matrix(n).numpy()
    GG = noise_matrix(process)
    sigma0 = np.diag([0.0] + [process.beta * process.l_inv] * (n - 1))
    times = [0.0, 0.03, 0.4, 1.7, 5.0]
    A, sigma = process.marginal(t64(*times))

    def rhs(_, flat):
        S = flat.reshape(n, n)
        return (F @ S + S @ F.T + GG).ravel()

    ode = scipy.integrate.solve_ivp(rhs, (0.0, times[-1]), sigma0.ravel(), t_eval=times, rtol=1e-11,
                                    atol=1e-13, method="DOP853")
    for i, t in enumerate(times):
        np.testing.assert_allclose(A[i].numpy(), scipy.linalg.expm(F * t), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(sigma[i].numpy(), ode.y[:, i].reshape(n, n), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(process.mean_coefficients(t64(*times)).numpy(), A[:, :, 0].numpy())
    C = process.cholesky(t64(*times)).numpy()
    np.testing.assert_allclose(C @ C.transpose(0, 2, 1), sigma.numpy() + process.jitter * np.eye(n),
                               atol=1e-12)
    np.testing.assert_allclose(process.last_noise_std(t64(*times)).numpy(), C[:, -1, -1])


def test_vp_marginal_closed_form_and_ode():
    process = vp()
    times = [1e-5, 0.1, 0.5, 1.0]
    A, sigma = process.marginal(t64(*times))
    for i, t in enumerate(times):
        cum = 0.05 * t + 0.5 * (20.0 - 0.05) * t**2
        assert A[i, 0, 0].item() == pytest.approx(math.exp(-cum / 2), rel=1e-12)
        assert sigma[i, 0, 0].item() == pytest.approx(1 - math.exp(-cum), rel=1e-10)
        std = process.cholesky(t64(t))[0, 0, 0].item()
        assert std == pytest.approx(math.sqrt(1 - math.exp(-cum)), rel=1e-10)

    def beta(t):
        return 0.05 + (20.0 - 0.05) * t

    # mean and variance ODEs of the forward SDE
    ode = scipy.integrate.solve_ivp(lambda t, y: [-0.5 * beta(t) * y[0], -beta(t) * y[1] + beta(t)],
                                    (0.0, 1.0), [1.0, 0.0], t_eval=times, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(A[:, 0, 0].numpy(), ode.y[0], rtol=1e-8)
    np.testing.assert_allclose(sigma[:, 0, 0].numpy(), ode.y[1], rtol=1e-7, atol=1e-12)


def simulate_forward(drift, g2, u0, t_end, dt, rng):
    """Euler-Maruyama of du = drift(u, t) dt + g(t) dW_last (noise on the last coordinate)."""
    u = u0.copy()
    steps = int(round(t_end / dt))
    for i in range(steps):
        t = i * dt
        noise = rng.standard_normal(u.shape[0]) * math.sqrt(g2(t) * dt)
        u = u + drift(u, t) * dt
        u[:, -1] += noise
    return u


@pytest.mark.parametrize("n", [2, 3])
def test_hold_marginal_matches_sde_simulation(n):
    process = hold(n)
    rng = np.random.default_rng(0)
    particles, q0 = 40000, 1.5
    F = hold_drift_matrix(n).numpy()
    u0 = np.zeros((particles, n))
    u0[:, 0] = q0
    u0[:, 1:] = rng.standard_normal((particles, n - 1)) * math.sqrt(process.beta * process.l_inv)
    t_end = 0.8
    u = simulate_forward(lambda u, t: u @ F.T, lambda t: 2 * process.xi * process.l_inv, u0, t_end, 1e-3, rng)
    A, sigma = process.marginal(t64(t_end))
    np.testing.assert_allclose(u.mean(0), q0 * A[0, :, 0].numpy(), atol=0.02)
    np.testing.assert_allclose(np.cov(u.T), sigma[0].numpy(), atol=0.02)


def test_vp_marginal_matches_sde_simulation():
    process = vp()
    rng = np.random.default_rng(1)
    u0 = np.full((40000, 1), 1.5)
    t_end = 0.4
    u = simulate_forward(lambda u, t: -0.5 * (0.05 + 19.95 * t) * u, lambda t: 0.05 + 19.95 * t, u0,
                         t_end, 5e-4, rng)
    A, sigma = process.marginal(t64(t_end))
    assert u.mean() == pytest.approx(1.5 * A.item(), abs=0.015)
    assert u.var() == pytest.approx(sigma.item(), abs=0.015)


# --------------------------------------------------------------------------- sampling and scores


@pytest.mark.parametrize("process", [vp(), hold(2), hold(4)], ids=["vp", "hold2", "hold4"])
def test_sample_is_mean_plus_cholesky_noise(process):
    gen = torch.Generator().manual_seed(0)
    q0 = torch.randn(3, 5, 7, generator=gen)
    t = torch.tensor([0.01, 0.3, 0.9])
    u, eps = process.sample(q0, t, generator=gen)
    n = process.order
    assert u.shape == eps.shape == (3, n, 5, 7) and u.dtype == torch.float32
    a, C = process.mean_coefficients(t.double()), process.cholesky(t.double())
    for b in range(3):
        for i in range(n):
            expected = a[b, i] * q0[b].double() + sum(C[b, i, j] * eps[b, j].double() for j in range(n))
            torch.testing.assert_close(u[b, i].double(), expected, rtol=1e-5, atol=1e-5)
    u_again, _ = process.sample(q0, t, eps=eps)
    torch.testing.assert_close(u_again, u)
    with pytest.raises(ValueError):
        process.sample(q0, t, eps=eps[:, :1] if n > 1 else eps[:, :, :1])


@pytest.mark.parametrize("process", [vp(), hold(2), hold(3)], ids=["vp", "hold2", "hold3"])
def test_score_from_eps_is_gradient_of_kernel_log_density(process):
    gen = torch.Generator().manual_seed(1)
    d = 4
    t = t64(0.05, 0.6)
    q0 = torch.randn(2, d, generator=gen, dtype=torch.float64)
    u, eps = process.sample(q0, t, generator=gen)
    a, C = process.mean_coefficients(t), process.cholesky(t)
    u = u.detach().requires_grad_(True)
    log_density = 0.0
    for b in range(2):
        for k in range(d):  # the kernel factorises over features: N(a q0_k, C C^T) for each feature
            dist = torch.distributions.MultivariateNormal(a[b] * q0[b, k], scale_tril=C[b])
            log_density = log_density + dist.log_prob(u[b, :, k])
    (grad,) = torch.autograd.grad(log_density, u)
    torch.testing.assert_close(process.score_from_eps(eps[:, -1], t), grad[:, -1])


# --------------------------------------------------------------------------- the kernel from a given initial state


@pytest.mark.parametrize("n", [2, 3, 4])
def test_transition_from_a_point_matches_expm_and_covariance_ode(n):
    process = hold(n)
    F = hold_drift_matrix(n).numpy()
    GG = noise_matrix(process)
    times = [0.0, 0.03, 0.4, 1.7, 5.0]
    A, Q = process.transition(t64(*times))
    # the covariance ODE dQ/dt = F Q + Q F^T + G G^T started from Q_0 = 0 (a point start)
    ode = scipy.integrate.solve_ivp(lambda _, flat: (F @ flat.reshape(n, n) + flat.reshape(n, n) @ F.T + GG).ravel(),
                                    (0.0, times[-1]), np.zeros(n * n), t_eval=times, rtol=1e-11, atol=1e-13,
                                    method="DOP853")
    _, sigma = process.marginal(t64(*times))
    sigma0 = np.diag([0.0] + [process.beta * process.l_inv] * (n - 1))
    for i, t in enumerate(times):
        np.testing.assert_allclose(A[i].numpy(), scipy.linalg.expm(F * t), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(Q[i].numpy(), ode.y[:, i].reshape(n, n), rtol=1e-7, atol=1e-10)
        # averaged over the initial auxiliary draw, the point-start kernel is the hybrid one
        np.testing.assert_allclose(A[i].numpy() @ sigma0 @ A[i].numpy().T + Q[i].numpy(), sigma[i].numpy(),
                                   atol=1e-12)
    C = process.transition_cholesky(t64(*times)).numpy()
    np.testing.assert_allclose(C @ C.transpose(0, 2, 1), Q.numpy() + process.jitter * np.eye(n), atol=1e-12)
    assert np.allclose(np.triu(C, 1), 0)


def test_vp_transition_is_its_marginal():
    process, t = vp(), t64(0.01, 0.3, 1.0)
    for got, expected in zip(process.transition(t), process.marginal(t)):
        torch.testing.assert_close(got, expected)
    torch.testing.assert_close(process.transition_cholesky(t), process.cholesky(t))
    q0 = torch.randn(3, 4, dtype=torch.float64)
    eps = torch.randn(3, 1, 4, dtype=torch.float64)
    u0 = process.initial_draw(q0, torch.zeros(3, 0, 4, dtype=torch.float64))
    torch.testing.assert_close(process.sample_from(u0, t, eps), process.sample(q0, t, eps=eps)[0])


@pytest.mark.parametrize("n", [2, 4])
def test_initial_draw_and_sample_from(n):
    process = hold(n)
    gen = torch.Generator().manual_seed(4)
    q0 = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    z = torch.randn(3, n - 1, 5, generator=gen, dtype=torch.float64)
    u0 = process.initial_draw(q0, z)
    assert u0.shape == (3, n, 5)
    torch.testing.assert_close(u0[:, 0], q0)  # the data block is noise-free
    torch.testing.assert_close(u0[:, 1:], z * math.sqrt(process.beta * process.l_inv))
    with pytest.raises(ValueError):
        process.initial_draw(q0, z[:, :1] if n > 2 else z[:, :, :2])
    t = t64(0.01, 0.5, 2.0)
    eps = torch.randn(3, n, 5, generator=gen, dtype=torch.float64)
    A, C = process.transition(t)[0], process.transition_cholesky(t)
    expected = torch.einsum("bij,bjd->bid", A, u0) + torch.einsum("bij,bjd->bid", C, eps)
    torch.testing.assert_close(process.sample_from(u0, t, eps), expected)
    # from the clean state with beta = 0 it is the hybrid kernel's sample
    point = hold(n, beta=0.0)
    torch.testing.assert_close(point.sample_from(point.initial_state(q0), t, eps), point.sample(q0, t, eps=eps)[0])


@pytest.mark.parametrize("n", [2, 3])
def test_sample_from_a_drawn_state_matches_simulation_and_averages_to_the_hybrid_kernel(n):
    process = hold(n)
    rng = np.random.default_rng(5)
    F = hold_drift_matrix(n).numpy()
    particles, t_end = 40000, 0.8
    # one fixed initial state with non-zero auxiliary blocks: mean exp(F t) u0, covariance Q_t
    start = np.array([1.5, -0.7, 0.4][:n])
    u = simulate_forward(lambda u, t: u @ F.T, lambda t: 2 * process.xi * process.l_inv,
                         np.tile(start, (particles, 1)), t_end, 1e-3, rng)
    A, Q = process.transition(t64(t_end))
    np.testing.assert_allclose(u.mean(0), A[0].numpy() @ start, atol=0.02)
    np.testing.assert_allclose(np.cov(u.T), Q[0].numpy(), atol=0.02)
    # u_0 drawn as hybrid score matching draws it, then the point-start kernel: the hybrid marginal
    gen = torch.Generator().manual_seed(6)
    q0 = torch.full((particles, 1), 1.5, dtype=torch.float64)
    u0 = process.initial_draw(q0, torch.randn(particles, n - 1, 1, generator=gen, dtype=torch.float64))
    eps = torch.randn(particles, n, 1, generator=gen, dtype=torch.float64)
    u_t = process.sample_from(u0, t64(t_end).expand(particles), eps)[..., 0].numpy()
    A, sigma = process.marginal(t64(t_end))
    np.testing.assert_allclose(u_t.mean(0), 1.5 * A[0, :, 0].numpy(), atol=0.02)
    np.testing.assert_allclose(np.cov(u_t.T), sigma[0].numpy(), atol=0.02)


# --------------------------------------------------------------------------- reverse time


@pytest.mark.parametrize("n", [2, 3, 5])
def test_reverse_linear_part_is_transpose_and_exact(n):
    process = hold(n)
    F = hold_drift_matrix(n).numpy()
    GG = noise_matrix(process)
    np.testing.assert_allclose(F.T, -F - GG / process.l_inv, atol=1e-12)  # L = 1 / l_inv
    t_from, t_to = 2.3, 1.6
    phi, q = process.reverse_linear_transition(t64(t_from), t64(t_to))

    def rhs(_, y):
        P, Q = y[: n * n].reshape(n, n), y[n * n:].reshape(n, n)
        return np.concatenate([(F.T @ P).ravel(), (F.T @ Q + Q @ F + GG).ravel()])

    start = np.concatenate([np.eye(n).ravel(), np.zeros(n * n)])
    ode = scipy.integrate.solve_ivp(rhs, (0.0, t_from - t_to), start, rtol=1e-11, atol=1e-13, method="DOP853")
    np.testing.assert_allclose(phi[0].numpy(), ode.y[: n * n, -1].reshape(n, n), atol=1e-9)
    np.testing.assert_allclose(q[0].numpy(), ode.y[n * n:, -1].reshape(n, n), atol=1e-9)
    # the stationary law is invariant under the exact linear step
    np.testing.assert_allclose((process.l_inv * phi @ phi.transpose(1, 2) + q)[0].numpy(),
                               process.l_inv * np.eye(n), atol=1e-12)


def test_vp_reverse_linear_transition_matches_ode():
    process = vp()
    t_from, t_to = 0.9, 0.35
    phi, q = process.reverse_linear_transition(t64(t_from), t64(t_to))

    def beta(t):
        return 0.05 + 19.95 * t

    # s = t_from - t: du = -beta/2 u ds + sqrt(beta) dW; mean map and variance from a point start
    ode = scipy.integrate.solve_ivp(
        lambda s, y: [-0.5 * beta(t_from - s) * y[0], -beta(t_from - s) * y[1] + beta(t_from - s)],
        (0.0, t_from - t_to), [1.0, 0.0], rtol=1e-11, atol=1e-13)
    assert phi.item() == pytest.approx(ode.y[0, -1], rel=1e-8)
    assert q.item() == pytest.approx(ode.y[1, -1], rel=1e-8)


@pytest.mark.parametrize("process", [vp(), hold(2), hold(3)], ids=["vp", "hold2", "hold3"])
def test_reverse_sde_splits_into_linear_part_and_remainder(process):
    # In reverse time the SDE drift -reverse_drift equals the linear part's generator (the derivative of
    # Phi at h = 0) applied to u, plus the remainder.
    gen = torch.Generator().manual_seed(2)
    n, t = process.order, t64(0.4, 0.4)
    u = torch.randn(2, n, 3, generator=gen, dtype=torch.float64)
    score_n = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    h = 1e-6
    phi_plus, _ = process.reverse_linear_transition(t + h, t)
    phi_minus, _ = process.reverse_linear_transition(t, t - h)
    generator = (phi_plus + phi_minus - 2 * torch.eye(n, dtype=torch.float64)) / (2 * h)
    linear = torch.einsum("bij,bjd->bid", generator, u)
    expected = -process.reverse_drift(u, t, score_n)
    split = linear + process.reverse_remainder(u, t, score_n)
    torch.testing.assert_close(split, expected, atol=1e-5, rtol=1e-5)
    ode_drift = process.reverse_drift(u, t, score_n, probability_flow=True)
    sde_drift = process.reverse_drift(u, t, score_n)
    g2 = process.diffusion_sq(t)[0]
    torch.testing.assert_close((ode_drift - sde_drift)[:, -1], 0.5 * g2 * score_n)
    torch.testing.assert_close((ode_drift - sde_drift)[:, :-1], torch.zeros_like(u[:, :-1]))


def test_prior_sample_shape_and_temperature():
    process = hold(3)
    gen = torch.Generator().manual_seed(3)
    u = process.prior_sample((4000, 2, 5), temperature=1.5, generator=gen)
    assert u.shape == (4000, 3, 2, 5)
    assert u.std().item() == pytest.approx(math.sqrt(process.l_inv) / 1.5, rel=0.02)
    assert vp().prior_sample((2, 80, 4)).shape == (2, 1, 80, 4)


# --------------------------------------------------------------------------- construction


def test_config_and_dict_round_trip():
    p = process_from_config(ProcessConfig(kind="hold", order=3, beta=2.0, horizon=6.0))
    assert (p.order, p.beta, p.horizon, p.l_inv) == (3, 2.0, 6.0, 1.0)
    assert process_from_dict(p.to_dict()) == p
    v = process_from_config(ProcessConfig(kind="vp", order=4))
    assert v.order == 1 and v.l_inv == 1.0 and process_from_dict(v.to_dict()) == v
    with pytest.raises(ConfigError, match="order must be >= 2"):
        process_from_config(ProcessConfig(kind="hold", order=1))
    with pytest.raises(ConfigError, match="known: hold, vp"):
        make_process("cld")
    with pytest.raises(ConfigError, match="unknown parameter"):
        make_process("vp", order=2)
    with pytest.raises(ConfigError, match="t_min < horizon"):
        make_process("hold", order=2, horizon=0.0)


# --------------------------------------------------------------------------- the loss


def test_sample_times_uniform_and_stratified():
    process = hold(2)
    gen = torch.Generator().manual_seed(4)
    t = sample_times(process, 1000, generator=gen)
    assert t.min() >= process.t_min and t.max() <= process.horizon
    strat = sample_times(process, 64, generator=gen, method="antithetic")
    strata = ((strat - process.t_min) / (process.horizon - process.t_min) * 64).floor().long()
    assert sorted(strata.tolist()) == list(range(64))  # exactly one time per stratum
    with pytest.raises(ConfigError):
        sample_times(process, 4, method="sobol")


@pytest.mark.parametrize("process", [vp(), hold(3)], ids=["vp", "hold3"])
def test_diffusion_loss_is_masked_mean_and_network_sees_masked_state(process):
    gen = torch.Generator().manual_seed(5)
    B, feats, frames = 3, 6, 8
    q0 = torch.randn(B, feats, frames, generator=gen)
    mask = torch.ones(B, 1, frames)
    mask[1, :, 5:] = 0
    mask[2, :, 2:] = 0
    t = torch.tensor([0.1, 0.5, 0.9]) * process.horizon
    eps = torch.randn(B, process.order, feats, frames, generator=gen)
    seen = {}
    prediction = torch.randn(B, feats, frames, generator=gen)

    def eps_fn(u, t_in):
        seen["u"] = u
        return prediction

    loss = diffusion_loss(process, eps_fn, q0, mask, t=t, eps=eps)
    assert torch.all(seen["u"] * (1 - mask.unsqueeze(1)) == 0)
    expected_u, _ = noised_state(process, q0, t, eps=eps, mask=mask)
    torch.testing.assert_close(seen["u"], expected_u)
    for b in range(B):
        real = int(mask[b].sum())
        diff = (prediction[b, :, :real] - eps[b, -1, :, :real]).square()
        assert loss[b].item() == pytest.approx(diff.mean().item(), rel=1e-5)
    perfect = diffusion_loss(process, lambda u, t_in: eps[:, -1], q0, mask, t=t, eps=eps)
    assert torch.all(perfect == 0)
    weighted = diffusion_loss(process, eps_fn, q0, mask, t=t, eps=eps, weighting="score")
    torch.testing.assert_close(weighted, loss * score_weight(process, t))


@pytest.mark.parametrize("process", [vp(), hold(2), hold(4)], ids=["vp", "hold2", "hold4"])
def test_score_weight_has_unit_mean_over_time(process):
    t = torch.linspace(math.log(process.t_min), math.log(process.horizon), 200001, dtype=torch.float64).exp()
    weights = score_weight(process, t)
    mean = torch.trapezoid(weights, t) / (process.horizon - process.t_min)
    assert mean.item() == pytest.approx(1.0, rel=1e-3)
    expected = process.last_noise_std(t[:1]).pow(-2) / process.last_noise_std(t[-1:]).pow(-2)
    torch.testing.assert_close(weights[:1] / weights[-1:], expected)
