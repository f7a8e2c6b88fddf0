"""Frechet distances ("FID-style") between a generated and a real set of utterances.

Each set is summarised by the mean and covariance of a feature, and the distance between the two
Gaussians is  |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))  (Dowson & Landau 1982; the FID of
Heusel et al. 2017). Two features:

- `fd_speaker`: 256-d utterance embeddings of Resemblyzer's VoiceEncoder (GE2E, weights in its wheel),
  one sample per utterance.
- `fd_logmel`: 80-d frames of the project's natural-log mel spectrogram, one sample per frame.

Frechet distances are biased upwards at small n (the sample covariances are noisy, and singular when
n <= dim), so every result carries its sample sizes; compare values only at equal n.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from holdtts.errors import HoldttsError
from holdtts.quality.audio import MODEL_SAMPLE_RATE, noise_floor, resample

DEFAULT_EPS = 1e-6  # diagonal offset for singular covariances (pytorch-fid's value)


@dataclass(frozen=True)
class FrechetResult:
    """A Frechet distance with what it was computed from.

    n_a, n_b: samples in each set (utterances or frames, see `unit`); dim: feature size;
    eps: the offset added to both covariance diagonals (0.0 when neither was singular).
    """

    value: float
    n_a: int
    n_b: int
    dim: int
    unit: str
    eps: float

    def as_dict(self) -> dict:
        return asdict(self)


class GaussianStats:
    """Running mean and covariance of [n, dim] batches (float64 sums), so sets need not fit in memory."""

    def __init__(self, dim: int):
        self.dim = dim
        self.n = 0
        self._sum = np.zeros(dim)
        self._outer = np.zeros((dim, dim))
        # Sums are taken around the first batch's mean: raw sums of x x^T lose digits for log-mels ~ -5.
        self._shift: np.ndarray | None = None

    def update(self, x: np.ndarray) -> GaussianStats:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected samples of shape [n, {self.dim}], got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("features hold NaN or infinite values")
        if len(x) == 0:
            return self
        if self._shift is None:
            self._shift = x.mean(axis=0)
        centred = x - self._shift
        self.n += len(x)
        self._sum += centred.sum(axis=0)
        self._outer += centred.T @ centred
        return self

    @property
    def mean(self) -> np.ndarray:
        self._check(1)
        return self._shift + self._sum / self.n

    @property
    def cov(self) -> np.ndarray:
        """Unbiased sample covariance (divides by n - 1), as np.cov."""
        self._check(2)
        centred_mean = self._sum / self.n
        return (self._outer - self.n * np.outer(centred_mean, centred_mean)) / (self.n - 1)

    def _check(self, need: int) -> None:
        if self.n < need:
            raise ValueError(f"need at least {need} samples for Gaussian statistics, got {self.n}")


def _is_singular(cov: np.ndarray) -> bool:
    return np.linalg.matrix_rank(cov, hermitian=True) < cov.shape[0]


def _psd_root(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix (eigenvalues below zero from round-off are clipped)."""
    values, vectors = np.linalg.eigh((cov + cov.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """tr((S_a S_b)^(1/2)) for PSD S_a, S_b, computed as tr((S_a^1/2 S_b S_a^1/2)^(1/2)).

    S_a^1/2 S_b S_a^1/2 is symmetric PSD with the eigenvalues of S_a S_b, so its symmetric eigenvalues give
    the trace without a general matrix square root: no complex round-off to discard, and well defined when
    the covariances are singular (always so when n <= dim), where scipy.linalg.sqrtm of the non-symmetric
    product (what pytorch-fid does) works on an ill-conditioned matrix.
    """
    root_a = _psd_root(cov_a)
    cross = root_a @ cov_b @ root_a
    values = np.linalg.eigvalsh((cross + cross.T) / 2)
    return float(np.sqrt(np.clip(values, 0.0, None)).sum())


def frechet_distance_from_stats(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray,
                                eps: float = DEFAULT_EPS) -> tuple[float, float]:
    """Frechet distance between N(mu_a, cov_a) and N(mu_b, cov_b); returns (distance, eps used).

    As in pytorch-fid, when a covariance is singular (rank < dim, always so when n <= dim) `eps` is added to
    both diagonals, and the traces use the same offset covariances, so the value is the exact distance
    between the regularised Gaussians (identical sets still give ~0). The trace of the root is taken by
    symmetric eigendecomposition (`trace_sqrt_product`), which is exact and stable for PSD matrices.
    """
    mu_a, mu_b = np.atleast_1d(np.asarray(mu_a, np.float64)), np.atleast_1d(np.asarray(mu_b, np.float64))
    cov_a, cov_b = np.atleast_2d(np.asarray(cov_a, np.float64)), np.atleast_2d(np.asarray(cov_b, np.float64))
    dim = mu_a.shape[0]
    if mu_b.shape != (dim,) or cov_a.shape != (dim, dim) or cov_b.shape != (dim, dim):
        raise ValueError(f"mismatched shapes: {mu_a.shape}, {cov_a.shape}, {mu_b.shape}, {cov_b.shape}")
    if not (np.isfinite(cov_a).all() and np.isfinite(cov_b).all()):
        raise ValueError("covariances hold NaN or infinite values")
    offset = eps if (_is_singular(cov_a) or _is_singular(cov_b)) else 0.0
    reg_a = cov_a + offset * np.eye(dim)
    reg_b = cov_b + offset * np.eye(dim)
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(reg_a) + np.trace(reg_b) - 2.0 * trace_sqrt_product(reg_a, reg_b)
    return float(value), float(offset)


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = DEFAULT_EPS,
                     unit: str = "samples") -> FrechetResult:
    """Frechet distance between sample sets a [N, D] and b [M, D] (rows are samples)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected [N, D] and [M, D] sample sets, got {a.shape} and {b.shape}")
    stats_a = GaussianStats(a.shape[1]).update(a)
    stats_b = GaussianStats(b.shape[1]).update(b)
    return frechet_distance_between(stats_a, stats_b, eps=eps, unit=unit)


def frechet_distance_between(stats_a: GaussianStats, stats_b: GaussianStats, eps: float = DEFAULT_EPS,
                             unit: str = "samples") -> FrechetResult:
    """Frechet distance between two accumulated GaussianStats."""
    value, used = frechet_distance_from_stats(stats_a.mean, stats_a.cov, stats_b.mean, stats_b.cov, eps=eps)
    return FrechetResult(value=value, n_a=stats_a.n, n_b=stats_b.n, dim=stats_a.dim, unit=unit, eps=used)


# --- (b) log-mel frame statistics --------------------------------------------------------------------

def logmel_stats(mels: Iterable[np.ndarray]) -> GaussianStats:
    """Frame statistics of log-mel spectrograms, each [n_mels, frames] (all frames, silence included)."""
    stats: GaussianStats | None = None
    for mel in mels:
        mel = np.asarray(mel)
        if mel.ndim != 2:
            raise ValueError(f"expected a log-mel spectrogram [n_mels, frames], got shape {mel.shape}")
        stats = stats or GaussianStats(mel.shape[0])
        stats.update(mel.T)
    if stats is None:
        raise ValueError("no log-mel spectrograms given")
    return stats


def frechet_logmel(generated_mels: Iterable[np.ndarray], reference_mels: Iterable[np.ndarray],
                   eps: float = DEFAULT_EPS) -> FrechetResult:
    """Frechet distance between the log-mel frame distributions of two sets of [n_mels, frames] mels."""
    return frechet_distance_between(logmel_stats(generated_mels), logmel_stats(reference_mels),
                                    eps=eps, unit="frames")


# --- (a) Resemblyzer speaker embeddings -----------------------------------------------------------------

_ENCODERS: dict[str, object] = {}
_ENCODER_LOCK = threading.Lock()


def voice_encoder(device: str = "cpu"):
    """Resemblyzer's pretrained VoiceEncoder on `device`, loaded once per device from its wheel."""
    import torch

    key = str(torch.device(device))
    with _ENCODER_LOCK:
        if key not in _ENCODERS:
            import resemblyzer

            weights = Path(resemblyzer.__file__).resolve().parent / "pretrained.pt"
            if not weights.is_file():
                raise HoldttsError(f"{weights}: Resemblyzer's voice encoder weights are missing; "
                                   "reinstall the resemblyzer wheel")
            encoder = resemblyzer.VoiceEncoder(device=key, verbose=False, weights_fpath=weights)
            _ENCODERS[key] = encoder.eval()
        return _ENCODERS[key]


def speaker_embedding(wav: np.ndarray, sample_rate: int = MODEL_SAMPLE_RATE,
                      device: str = "cpu", silent_ok: bool = False) -> np.ndarray:
    """L2-normalised 256-d Resemblyzer utterance embedding of a clip.

    Resemblyzer's own preprocessing (16 kHz, volume raised to -30 dBFS, long silences trimmed by
    WebRTC VAD); when the VAD finds no speech at all the untrimmed clip is embedded instead, so a
    non-speech output still gets an (outlying) embedding rather than none. A clip of digital silence (all
    samples zero) has no volume to normalise: an error, unless `silent_ok` (a system's output: a diverged
    synthesis may vocode to it), when one 16-bit step of noise seeded by its length is embedded instead,
    the recognisers' noise floor (holdtts.quality.asr).
    """
    from resemblyzer.audio import normalize_volume, trim_long_silences
    from resemblyzer.hparams import audio_norm_target_dBFS

    wav = resample(wav, sample_rate, MODEL_SAMPLE_RATE)
    if not np.any(wav):
        if not silent_ok:
            raise ValueError("clip is silent (all samples zero); it has no speaker embedding")
        wav = noise_floor(len(wav)).astype(np.float32) / 32768.0
    wav = normalize_volume(wav, audio_norm_target_dBFS, increase_only=True)
    trimmed = trim_long_silences(wav)
    embedding = voice_encoder(device).embed_utterance(trimmed if len(trimmed) else wav)
    return np.asarray(embedding, dtype=np.float64)


def frechet_speaker(generated: Iterable[np.ndarray], reference: Iterable[np.ndarray],
                    eps: float = DEFAULT_EPS) -> FrechetResult:
    """Frechet distance between two sets of speaker embeddings, each [n, 256] (or lists of [256])."""
    return frechet_distance(np.stack(list(generated)), np.stack(list(reference)), eps=eps, unit="utterances")
