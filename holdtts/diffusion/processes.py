"""Forward diffusion processes: Grad-TTS's variance-preserving SDE (order 1) and critically-damped
higher-order Langevin dynamics, HOLD++ (order n >= 2). The specification is docs/THEORY.md, sections 1-2.

Conventions shared by the model, the losses, the samplers and the attacks:

- A process diffuses the centred data q0 = x0 - mu; the model subtracts and adds mu.
- The state u has shape [B, n, *data_shape]: n blocks (q, p_1, ..., p_{n-1}) of the data's shape. Order 1
  keeps a block axis of size 1. Nothing here depends on data_shape (mels: (80, frames); toys: (2,)).
- Times are tensors of shape [B] on the process's own clock, t in [0, horizon].
- The small n x n algebra runs in float64; results come back in the dtype of the input (the times for
  matrices, the data or state for tensors of the data's shape).
- Only the last block carries noise (G = g E_nn), so only the last block's score is ever needed. A network
  predicts the last block's noise eps_n, and score_n = -eps_n / C_t[n, n] (C_t the Cholesky factor of the
  perturbation kernel's covariance).
"""
from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from holdtts.errors import ConfigError

# --------------------------------------------------------------------------- helpers


def _times(t: Tensor) -> Tensor:
    """Times as a 1-D tensor [B] (a 0-d tensor becomes [1])."""
    t = torch.as_tensor(t)
    if t.dim() == 0:
        t = t.reshape(1)
    if t.dim() != 1:
        raise ValueError(f"times must have shape [B], got {tuple(t.shape)}")
    return t


def _float_dtype(t: Tensor) -> torch.dtype:
    return t.dtype if t.is_floating_point() else torch.get_default_dtype()


def _bcast(coef: Tensor, ndim: int) -> Tensor:
    """Append singleton axes so that coef [B, ...] broadcasts against a tensor with ndim axes."""
    return coef.reshape(tuple(coef.shape) + (1,) * (ndim - coef.dim()))


def apply_block_matrix(matrix: Tensor, u: Tensor) -> Tensor:
    """(M (x) I) u for M [B, n, n] (or [n, n]) and u [B, n, *data_shape]: mixes blocks, not features.

    Runs in u's dtype even under autocast: the noised state and its noise target must not be rounded to
    half precision (the data block's noise is ~1e-3 of its mean at small t).
    """
    flat = u.reshape(u.shape[0], u.shape[1], -1)
    matrix = matrix.to(u.dtype)
    eq = "bij,bjd->bid" if matrix.dim() == 3 else "ij,bjd->bid"
    with torch.autocast(device_type=u.device.type, enabled=False):
        return torch.einsum(eq, matrix, flat).reshape(u.shape)


def _replace_last_block(u: Tensor, last: Tensor) -> Tensor:
    return torch.cat([u[:, :-1], last.unsqueeze(1)], dim=1)


def critical_damping(order: int) -> tuple[list[float], float, float]:
    """(gamma_1..gamma_{n-1}, xi, lambda*) of critically-damped order-n Langevin dynamics (THEORY.md 2).

    With these values F has the single eigenvalue lambda* = -sqrt(2n - 3) of multiplicity n.
    """
    if order < 2:
        raise ValueError(f"critical damping needs order >= 2, got {order}")
    n = order
    root = math.sqrt(2 * n - 3)
    gammas = [root * math.sqrt(k * (2 * n - k) / ((2 * n - 2 * k - 1) * (2 * n - 2 * k + 1)))
              for k in range(1, n)]
    return gammas, n * root, -root


def hold_drift_matrix(order: int) -> Tensor:
    """F = sum_i gamma_i (E_{i,i+1} - E_{i+1,i}) - xi E_nn, float64 [n, n]."""
    gammas, xi, _ = critical_damping(order)
    F = torch.zeros(order, order, dtype=torch.float64)
    for i, gamma in enumerate(gammas):
        F[i, i + 1] = gamma
        F[i + 1, i] = -gamma
    F[-1, -1] = -xi
    return F


def psd_sqrt(matrix: Tensor) -> Tensor:
    """A square root R (R R^T = M) of symmetric positive semi-definite matrices [..., n, n].

    Eigenvalues are clipped at zero: covariances of short steps are nearly singular and rounding can
    make their smallest eigenvalue slightly negative, where a Cholesky factorisation would fail.
    """
    evals, evecs = torch.linalg.eigh(matrix)
    return evecs * evals.clamp_min(0).sqrt().unsqueeze(-2)


# --------------------------------------------------------------------------- the interface


class Process(ABC):
    """The interface every process implements (see the module docstring for shapes and dtypes).

    Forward SDE: du = (F(t) (x) I) u dt + (G(t) (x) I) dW with G = g(t) E_nn. The perturbation kernel
    from u_0 = (q0, 0, ..., 0) is u_t = a_t (x) q0 + (C_t (x) I) eps, eps ~ N(0, I).
    """

    kind: ClassVar[str]
    order: int
    horizon: float
    t_min: float
    l_inv: float
    jitter: float = 0.0  # added to covariances' diagonals before a Cholesky factorisation

    # ---- perturbation kernel

    @abstractmethod
    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(A [B, n, n], Sigma [B, n, n]): the mean map and the covariance of u_t given u_0 = (q0, 0, ...)."""

    @abstractmethod
    def cholesky(self, t: Tensor) -> Tensor:
        """C_t [B, n, n], lower triangular, C_t C_t^T = Sigma_t (+ jitter I for hold)."""

    def mean_coefficients(self, t: Tensor) -> Tensor:
        """a_t [B, n], the first column of A: the mean of u_t is a_t (x) q0."""
        return self.marginal(t)[0][:, :, 0]

    def last_noise_std(self, t: Tensor) -> Tensor:
        """C_t[n, n] [B]: the scale that turns the last block's noise into its score."""
        return self.cholesky(t)[:, -1, -1]

    def marginal_std(self, t: Tensor, data_var: float = 1.0) -> Tensor:
        """Per-block standard deviation [B, n] of u_t for data of per-feature variance data_var.

        Useful to scale the network's input blocks to unit size (a_t^2 data_var + diag(C_t C_t^T)).
        """
        a = self.mean_coefficients(t)
        C = self.cholesky(t)
        return (a.square() * data_var + C.square().sum(-1)).sqrt()

    def initial_state(self, q0: Tensor) -> Tensor:
        """The clean state (q0, 0, ..., 0) [B, n, *data_shape] (auxiliary blocks at their mean)."""
        rest = q0.new_zeros((q0.shape[0], self.order - 1, *q0.shape[1:]))
        return torch.cat([q0.unsqueeze(1), rest], dim=1)

    def sample(self, q0: Tensor, t: Tensor, eps: Tensor | None = None,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """u_t = a_t (x) q0 + (C_t (x) I) eps for q0 [B, *data_shape]; returns (u_t, eps), both
        [B, n, *data_shape]. eps is drawn from N(0, I) unless given."""
        shape = (q0.shape[0], self.order, *q0.shape[1:])
        if eps is None:
            eps = torch.randn(shape, generator=generator, device=q0.device, dtype=q0.dtype)
        elif tuple(eps.shape) != shape:
            raise ValueError(f"eps must have shape {shape}, got {tuple(eps.shape)}")
        t = _times(t)
        a = self.mean_coefficients(t).to(q0.dtype)
        noise = apply_block_matrix(self.cholesky(t), eps)
        return _bcast(a, len(shape)) * q0.unsqueeze(1) + noise, eps

    # ---- the kernel from a given initial state
    #
    # Hybrid score matching folds the auxiliary blocks' initial randomness into the kernel above. An
    # attacker who knows the process can draw that randomness instead: u_0 = (q0, p_1(0), ..., p_{n-1}(0))
    # with p_k(0) ~ N(0, beta L^-1 I), then u_t | u_0 ~ N(exp(F t) u_0, Q_t), Q_t the covariance from a
    # point start. Averaged over the draw this is exactly the kernel above: A Sigma_0 A^T + Q_t = Sigma_t.

    def initial_aux_std(self) -> float:
        """The standard deviation of each auxiliary block at t = 0 (0 where there are none)."""
        return 0.0

    def initial_draw(self, q0: Tensor, z: Tensor) -> Tensor:
        """u_0 = (q0, initial_aux_std * z) [B, n, *data_shape]: a draw of the initial state hybrid score
        matching integrates over; z [B, n - 1, *data_shape] is standard normal. The data block is q0."""
        shape = (q0.shape[0], self.order - 1, *q0.shape[1:])
        if tuple(z.shape) != shape:
            raise ValueError(f"z must have shape {shape}, got {tuple(z.shape)}")
        return torch.cat([q0.unsqueeze(1), z.to(q0.dtype) * self.initial_aux_std()], dim=1)

    @abstractmethod
    def transition(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(A [B, n, n], Q [B, n, n]): u_t given any initial state u_0 is N((A (x) I) u_0, Q (x) I)."""

    def transition_cholesky(self, t: Tensor) -> Tensor:
        """The lower-triangular factor of Q_t [B, n, n] (+ the process's jitter on the diagonal)."""
        t = _times(t)
        _, q = self.transition(t.to(torch.float64))
        eye = torch.eye(self.order, dtype=torch.float64, device=q.device)
        return torch.linalg.cholesky(q + self.jitter * eye).to(_float_dtype(t))

    def sample_from(self, u0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """u_t = (A_t (x) I) u0 + (chol(Q_t) (x) I) eps, for an initial state u0 and noise eps, both
        [B, n, *data_shape]. With u0 = initial_state(q0) and no auxiliary draw this is the kernel from
        a point start, not `sample`'s hybrid one (they agree when beta = 0)."""
        if tuple(eps.shape) != tuple(u0.shape):
            raise ValueError(f"eps must have u0's shape {tuple(u0.shape)}, got {tuple(eps.shape)}")
        t = _times(t)
        A, _ = self.transition(t.to(torch.float64))
        return apply_block_matrix(A, u0) + apply_block_matrix(self.transition_cholesky(t), eps)

    def score_from_eps(self, eps_n_hat: Tensor, t: Tensor) -> Tensor:
        """The last block's score -eps_n_hat / C_t[n, n] (exact for the perturbation kernel)."""
        std = self.last_noise_std(_times(t)).to(eps_n_hat.dtype)
        return -eps_n_hat / _bcast(std, eps_n_hat.dim())

    # ---- forward SDE and its reversal

    @abstractmethod
    def drift(self, u: Tensor, t: Tensor) -> Tensor:
        """The forward drift (F(t) (x) I) u, all blocks."""

    @abstractmethod
    def diffusion_sq(self, t: Tensor) -> Tensor:
        """g(t)^2 [B]: the squared diffusion coefficient of the last block."""

    def reverse_drift(self, u: Tensor, t: Tensor, score_n: Tensor, probability_flow: bool = False) -> Tensor:
        """F u - G G^T s (reverse SDE) or F u - 1/2 G G^T s (probability-flow ODE), in forward time.

        score_n [B, *data_shape] is the last block's score; only the last block gets the score term.
        """
        t = _times(t)
        f = self.drift(u, t)
        g2 = _bcast(self.diffusion_sq(t).to(u.dtype), score_n.dim())
        weight = 0.5 if probability_flow else 1.0
        return _replace_last_block(f, f[:, -1] - weight * g2 * score_n)

    def prior_sample(self, shape: tuple[int, ...] | torch.Size, temperature: float = 1.0,
                     generator: torch.Generator | None = None, device: torch.device | str | None = None,
                     dtype: torch.dtype | None = None) -> Tensor:
        """u_T ~ N(0, L^-1 I / temperature^2) in every block.

        `shape` is the data's shape [B, *data_shape]; the result is the state [B, n, *data_shape].
        Grad-TTS's convention: the noise std is divided by the temperature (1.5 at synthesis).
        """
        state = (shape[0], self.order, *shape[1:])
        noise = torch.randn(state, generator=generator, device=device, dtype=dtype)
        return noise * (math.sqrt(self.l_inv) / temperature)

    # ---- splitting: the reverse-time linear part, solved exactly
    #
    # In reverse time s = T - t the reverse SDE reads du = [-F u + G G^T score] ds + G dW. Splitting the
    # score as score = s_inf + (score - s_inf) around the stationary score s_inf = -L u gives
    #     linear part:  du = (-F - G G^T L) u ds + G dW     (an OU process, solved exactly)
    #     remainder:    du = G G^T (score + L u) ds         (zero when the data are N(0, L^-1 I))
    # For hold, F + F^T = -2 xi E_nn and G G^T L = 2 xi E_nn, so -F - G G^T L = F^T; for vp it is
    # -beta(t)/2, the forward drift again.

    @abstractmethod
    def reverse_linear_transition(self, t_from: Tensor, t_to: Tensor) -> tuple[Tensor, Tensor]:
        """(Phi [B, n, n], Q [B, n, n]): the exact step of the reverse-time linear part from t_from down
        to t_to <= t_from: u_{t_to} = Phi u_{t_from} + N(0, Q (x) I)."""

    def reverse_remainder(self, u: Tensor, t: Tensor, score_n: Tensor) -> Tensor:
        """G G^T (score + L u): the score part the linear step leaves out, non-zero on the last block
        only. It is a drift in reverse time: a step from t down to t - h adds h times it."""
        g2 = _bcast(self.diffusion_sq(_times(t)).to(u.dtype), score_n.dim())
        last = g2 * (score_n + u[:, -1] / self.l_inv)
        return _replace_last_block(torch.zeros_like(u), last)

    # ---- checkpoints

    def to_dict(self) -> dict[str, Any]:
        """Plain data ({"kind": ..., parameters}) that `Process.from_dict` turns back into the process."""
        data = {"kind": self.kind}
        data.update({f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init})
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Process:
        data = dict(data)
        if "kind" not in data:
            raise ConfigError(f"process description has no 'kind' (got keys: {', '.join(sorted(data))})")
        return make_process(data.pop("kind"), **data)


# --------------------------------------------------------------------------- order 1: Grad-TTS


@dataclass(frozen=True)
class VPProcess(Process):
    """Grad-TTS's VP SDE: dq = -1/2 beta(t) q dt + sqrt(beta(t)) dW, beta(t) = b0 + (b1 - b0) t.

    q_t = exp(-B(t)/2) q0 + sqrt(1 - exp(-B(t))) eps, B(t) = b0 t + (b1 - b0) t^2 / 2. No jitter is
    added (the kernel is exactly Grad-TTS's).
    """

    beta_min: float = 0.05
    beta_max: float = 20.0
    horizon: float = 1.0
    t_min: float = 1e-5

    kind: ClassVar[str] = "vp"
    order: ClassVar[int] = 1
    l_inv: ClassVar[float] = 1.0

    def __post_init__(self):
        if not 0 < self.beta_min <= self.beta_max:
            raise ConfigError("vp process needs 0 < beta_min <= beta_max, "
                              f"got {self.beta_min}, {self.beta_max}")
        if not 0 <= self.t_min < self.horizon:
            raise ConfigError(f"process needs 0 <= t_min < horizon, got {self.t_min}, {self.horizon}")

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + (self.beta_max - self.beta_min) * t

    def cumulative_beta(self, t: Tensor) -> Tensor:
        """B(t) = int_0^t beta."""
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        t = _times(t)
        cum = self.cumulative_beta(t.to(torch.float64))
        A = torch.exp(-0.5 * cum).reshape(-1, 1, 1)
        sigma = (-torch.expm1(-cum)).reshape(-1, 1, 1)
        dtype = _float_dtype(t)
        return A.to(dtype), sigma.to(dtype)

    def cholesky(self, t: Tensor) -> Tensor:
        t = _times(t)
        cum = self.cumulative_beta(t.to(torch.float64))
        return (-torch.expm1(-cum)).sqrt().reshape(-1, 1, 1).to(_float_dtype(t))

    def transition(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return self.marginal(t)  # the initial state is a point already

    def transition_cholesky(self, t: Tensor) -> Tensor:
        return self.cholesky(t)

    def drift(self, u: Tensor, t: Tensor) -> Tensor:
        beta = self.beta(_times(t).to(u.dtype))
        return -0.5 * _bcast(beta, u.dim()) * u

    def diffusion_sq(self, t: Tensor) -> Tensor:
        t = _times(t)
        return self.beta(t.to(_float_dtype(t)))

    def reverse_linear_transition(self, t_from: Tensor, t_to: Tensor) -> tuple[Tensor, Tensor]:
        t_from, t_to = _times(t_from), _times(t_to)
        # du = -beta/2 u ds + sqrt(beta) dW over [t_to, t_from]: an OU process with stationary variance 1.
        span = self.cumulative_beta(t_from.to(torch.float64)) - self.cumulative_beta(t_to.to(torch.float64))
        phi = torch.exp(-0.5 * span).reshape(-1, 1, 1)
        q = (-torch.expm1(-span)).reshape(-1, 1, 1)
        dtype = _float_dtype(t_from)
        return phi.to(dtype), q.to(dtype)


# --------------------------------------------------------------------------- order n: HOLD++


@dataclass(frozen=True)
class HoldProcess(Process):
    """Critically-damped higher-order Langevin dynamics of order n >= 2 (n = 2: CLD; n = 3: TOLD++).

    du = (F (x) I) u dt + (G (x) I) dW, G = sqrt(2 xi L^-1) E_nn, F from `critical_damping`. The initial
    covariance follows hybrid score matching, Sigma_0 = diag(0, beta L^-1, ..., beta L^-1), so the
    auxiliary blocks start at zero and their initial randomness lives in the kernel. `jitter` is added to
    the covariance's diagonal before its Cholesky factor (Sigma_t is singular at t = 0).
    """

    order: int = 2
    l_inv: float = 1.0
    beta: float = 0.08
    horizon: float = 5.0
    t_min: float = 1e-5
    jitter: float = 1e-6

    kind: ClassVar[str] = "hold"

    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        if isinstance(self.order, bool) or int(self.order) != self.order or self.order < 2:
            raise ConfigError(f"hold process needs an integer order >= 2, got {self.order!r}")
        object.__setattr__(self, "order", int(self.order))
        if self.l_inv <= 0:
            raise ConfigError(f"hold process needs l_inv > 0, got {self.l_inv}")
        if self.beta < 0:
            raise ConfigError(f"hold process needs beta >= 0, got {self.beta}")
        if self.jitter < 0:
            raise ConfigError(f"hold process needs jitter >= 0, got {self.jitter}")
        if not 0 <= self.t_min < self.horizon:
            raise ConfigError(f"process needs 0 <= t_min < horizon, got {self.t_min}, {self.horizon}")
        gammas, xi, eigenvalue = critical_damping(self.order)
        object.__setattr__(self, "gammas", tuple(gammas))
        object.__setattr__(self, "xi", xi)
        object.__setattr__(self, "eigenvalue", eigenvalue)

    def _constants(self, device: torch.device) -> dict[str, Tensor]:
        """Float64 constants on `device`: F, the powers N^0..N^{n-1} of N = F - lambda* I stacked as
        [n, n, n], 1/k!, the identity and diag(Sigma_0 - L^-1 I)."""
        key = str(device)
        if key not in self._cache:
            n = self.order
            F = hold_drift_matrix(n)
            eye = torch.eye(n, dtype=torch.float64)
            N = F - self.eigenvalue * eye
            powers = [eye]
            for _ in range(n - 1):
                powers.append(powers[-1] @ N)
            offset = torch.full((n,), (self.beta - 1.0) * self.l_inv, dtype=torch.float64)
            offset[0] = -self.l_inv
            constants = {"F": F, "powers": torch.stack(powers), "eye": eye, "offset": offset,
                         "exponents": torch.arange(n, dtype=torch.float64),
                         "inv_factorials": torch.tensor([1.0 / math.factorial(k) for k in range(n)],
                                                        dtype=torch.float64)}
            self._cache[key] = {name: value.to(device) for name, value in constants.items()}
        return self._cache[key]

    @property
    def drift_matrix(self) -> Tensor:
        """F, float64 [n, n] on the CPU."""
        return self._constants(torch.device("cpu"))["F"].clone()

    def transition_matrix(self, t: Tensor) -> Tensor:
        """exp(F t) [B, n, n] in float64: exp(lambda* t) sum_{k<n} t^k / k! N^k (N is nilpotent)."""
        t = _times(t).to(torch.float64)
        const = self._constants(t.device)
        coef = t.unsqueeze(-1).pow(const["exponents"]) * const["inv_factorials"]
        return torch.exp(self.eigenvalue * t).reshape(-1, 1, 1) * torch.einsum("bk,kij->bij", coef,
                                                                                  const["powers"])

    def _covariance64(self, t: Tensor) -> tuple[Tensor, Tensor]:
        A = self.transition_matrix(t)
        const = self._constants(A.device)
        # Sigma_t = L^-1 I + A (Sigma_0 - L^-1 I) A^T, exact since L^-1 I is stationary.
        sigma = self.l_inv * const["eye"] + (A * const["offset"]) @ A.transpose(-1, -2)
        return A, 0.5 * (sigma + sigma.transpose(-1, -2))

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        t = _times(t)
        A, sigma = self._covariance64(t)
        dtype = _float_dtype(t)
        return A.to(dtype), sigma.to(dtype)

    def cholesky(self, t: Tensor) -> Tensor:
        t = _times(t)
        _, sigma = self._covariance64(t)
        eye = self._constants(sigma.device)["eye"]
        return torch.linalg.cholesky(sigma + self.jitter * eye).to(_float_dtype(t))

    def initial_aux_std(self) -> float:
        return math.sqrt(self.beta * self.l_inv)

    def transition(self, t: Tensor) -> tuple[Tensor, Tensor]:
        t = _times(t)
        A = self.transition_matrix(t)
        # Q_t = L^-1 (I - A A^T): the kernel of the marginal with Sigma_0 = 0, exact since L^-1 I is stationary.
        q = self.l_inv * (self._constants(A.device)["eye"] - A @ A.transpose(-1, -2))
        dtype = _float_dtype(t)
        return A.to(dtype), (0.5 * (q + q.transpose(-1, -2))).to(dtype)

    def drift(self, u: Tensor, t: Tensor) -> Tensor:
        return apply_block_matrix(self._constants(u.device)["F"], u)

    def diffusion_sq(self, t: Tensor) -> Tensor:
        t = _times(t)
        return torch.full(t.shape, 2.0 * self.xi * self.l_inv, dtype=_float_dtype(t), device=t.device)

    def reverse_linear_transition(self, t_from: Tensor, t_to: Tensor) -> tuple[Tensor, Tensor]:
        t_from, t_to = _times(t_from), _times(t_to)
        # du = F^T u ds + G dW over h = t_from - t_to. Phi = exp(F^T h) = exp(F h)^T; L^-1 I is also its
        # stationary covariance (F^T + F + G G^T L = 0), hence Q = L^-1 (I - Phi Phi^T) in closed form.
        A = self.transition_matrix(t_from.to(torch.float64) - t_to.to(torch.float64))
        phi = A.transpose(-1, -2)
        q = self.l_inv * (self._constants(A.device)["eye"] - phi @ A)
        dtype = _float_dtype(t_from)
        return phi.to(dtype), (0.5 * (q + q.transpose(-1, -2))).to(dtype)


# --------------------------------------------------------------------------- construction

PROCESSES: dict[str, type[Process]] = {"vp": VPProcess, "hold": HoldProcess}


def make_process(kind: str, **params: Any) -> Process:
    """`make_process("vp", beta_min=0.05, beta_max=20.0, horizon=1.0, t_min=1e-5)` or
    `make_process("hold", order=3, l_inv=1.0, beta=0.08, horizon=5.0, t_min=1e-5, jitter=1e-6)`."""
    if kind not in PROCESSES:
        raise ConfigError(f"unknown process kind {kind!r} (known: {', '.join(sorted(PROCESSES))})")
    cls = PROCESSES[kind]
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)} for process kind {kind!r} "
                          f"(known: {', '.join(known)})")
    return cls(**params)


def process_from_config(cfg) -> Process:
    """The process a `holdtts.config.ProcessConfig` describes ("vp" ignores order, l_inv, beta and jitter;
    "hold" needs order >= 2)."""
    if cfg.kind == "vp":
        return make_process("vp", beta_min=cfg.beta_min, beta_max=cfg.beta_max, horizon=cfg.horizon,
                            t_min=cfg.t_min)
    if cfg.kind == "hold":
        if cfg.order < 2:
            raise ConfigError(f"process.order must be >= 2 for kind 'hold' (got {cfg.order}); "
                              "order 1 is kind 'vp'")
        return make_process("hold", order=cfg.order, l_inv=cfg.l_inv, beta=cfg.beta, horizon=cfg.horizon,
                            t_min=cfg.t_min, jitter=cfg.jitter)
    raise ConfigError(f"unknown process.kind {cfg.kind!r} (known: {', '.join(sorted(PROCESSES))})")


def process_from_dict(data: dict[str, Any]) -> Process:
    """Inverse of `Process.to_dict` (for checkpoints)."""
    return Process.from_dict(data)
