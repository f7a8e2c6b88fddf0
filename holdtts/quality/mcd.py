"""Mel-cepstral distortion (MCD) with dynamic time warping, against the real recording.

Definition implemented (SPTK-free, from the project's log-mels):
- Log-mels: the project's 80-band natural-log magnitude mels x[k, t] (HiFi-GAN convention, 22050 Hz,
  hop 256; see holdtts/data/mel.py).
- Mel-cepstra: the DCT-II over bands scaled by 1 / (2 K), K = 80, i.e.
      c[n, t] = (1 / K) * sum_k x[k, t] cos(pi n (k + 1/2) / K),
  so that x[k, t] = c[0, t] + 2 sum_{n>=1} c[n, t] cos(pi n (k + 1/2) / K) exactly (the cosine series of
  the log-amplitude mel spectrum, the same role as SPTK's mel-cepstrum). Coefficients 1..24 are kept;
  c0 (overall level) is excluded, so a gain change costs nothing.
- Per aligned frame pair: MCD = (10 / ln 10) * sqrt(2 * sum_{n=1}^{24} (c[n] - c'[n])^2) dB.
- Alignment: librosa.sequence.dtw on the Euclidean distance between the 24-d cepstra (steps (1,1),
  (1,0), (0,1), equal weights), which minimises the summed frame MCD; the utterance MCD is the mean
  frame MCD over the warping path. All frames count, silences included.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.fft

MCD_COEFFICIENTS = 24
MCD_SCALE = 10.0 / np.log(10.0) * np.sqrt(2.0)  # dB per unit of Euclidean cepstral distance


@dataclass(frozen=True)
class McdResult:
    """Utterance MCD in dB, with the DTW path length and both frame counts."""

    mcd: float
    path_length: int
    generated_frames: int
    reference_frames: int

    def as_dict(self) -> dict:
        return asdict(self)


def mel_cepstrum(log_mel: np.ndarray, n_coefficients: int = MCD_COEFFICIENTS) -> np.ndarray:
    """Cepstral coefficients 1..n_coefficients [n_coefficients, frames] of a log-mel [n_mels, frames]."""
    log_mel = np.asarray(log_mel, dtype=np.float64)
    if log_mel.ndim != 2:
        raise ValueError(f"expected a log-mel spectrogram [n_mels, frames], got shape {log_mel.shape}")
    n_mels = log_mel.shape[0]
    if not 1 <= n_coefficients < n_mels:
        raise ValueError(f"n_coefficients must be in 1..{n_mels - 1}, got {n_coefficients}")
    cepstrum = scipy.fft.dct(log_mel, type=2, axis=0, norm=None) / (2 * n_mels)
    return cepstrum[1 : n_coefficients + 1]


def check_finite(generated: np.ndarray, reference: np.ndarray) -> None:
    """A clear error instead of the DTW's: a diverged synthesis must pass through
    holdtts.data.mel.silence_nonfinite first."""
    for name, log_mel in (("generated", generated), ("reference", reference)):
        if not np.isfinite(log_mel).all():
            raise ValueError(f"the {name} log-mel holds NaN or infinite values; a synthesis that diverged is "
                             "scored after holdtts.data.mel.silence_nonfinite")


def mcd_dtw(generated_log_mel: np.ndarray, reference_log_mel: np.ndarray,
            n_coefficients: int = MCD_COEFFICIENTS) -> McdResult:
    """MCD (dB) between two log-mels [n_mels, frames] of possibly different lengths, DTW-aligned."""
    import librosa

    check_finite(generated_log_mel, reference_log_mel)  # before the cepstra: no numpy warnings first
    generated = mel_cepstrum(generated_log_mel, n_coefficients)
    reference = mel_cepstrum(reference_log_mel, n_coefficients)
    if generated.shape[1] == 0 or reference.shape[1] == 0:
        raise ValueError("cannot align an empty spectrogram")
    _, path = librosa.sequence.dtw(X=generated, Y=reference, metric="euclidean")
    frame_distance = np.linalg.norm(generated[:, path[:, 0]] - reference[:, path[:, 1]], axis=0)
    return McdResult(mcd=float(MCD_SCALE * frame_distance.mean()), path_length=len(path),
                     generated_frames=generated.shape[1], reference_frames=reference.shape[1])


def mcd_from_waveforms(generated: np.ndarray, reference: np.ndarray, sample_rate: int,
                       device: str = "cpu") -> McdResult:
    """MCD between two clips at `sample_rate`, through the project's log-mels (resampled to 22050 Hz)."""
    from holdtts.quality.audio import log_mel

    return mcd_dtw(log_mel(generated, sample_rate, device), log_mel(reference, sample_rate, device))
