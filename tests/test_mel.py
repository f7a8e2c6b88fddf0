"""holdtts.mel_spectrogram against an independent librosa computation of HiFi-GAN's convention."""
import librosa
import numpy as np
import pytest
import torch

import holdtts
from holdtts.data.mel import num_frames


def librosa_mel(y: np.ndarray) -> np.ndarray:
    padded = np.pad(y, (384, 384), mode="reflect")
    spec = librosa.stft(padded, n_fft=1024, hop_length=256, win_length=1024, window="hann", center=False)
    magnitude = np.sqrt(np.abs(spec) ** 2 + 1e-9)
    basis = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0)  # Slaney
    return np.log(np.maximum(basis @ magnitude, 1e-5))


def speechlike(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 22050
    f0 = 120 + 30 * np.sin(2 * np.pi * 3 * t)
    y = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / 22050) + 0.02 * rng.standard_normal(n)
    return y.astype(np.float32)


@pytest.mark.parametrize("n", [1000, 22050, 22050 * 3 + 77])
def test_matches_librosa(n):
    y = speechlike(n)
    ours = holdtts.mel_spectrogram(torch.from_numpy(y)).numpy()
    ref = librosa_mel(y)
    assert ours.shape == ref.shape == (80, n // 256) == (80, num_frames(n))
    assert np.abs(ours - ref).max() < 1e-3


def test_batched_with_lengths_equals_one_by_one():
    clips = [speechlike(n, seed=i) for i, n in enumerate([5000, 12345, 9000])]
    batch = np.zeros((3, 12345), dtype=np.float32)
    for i, c in enumerate(clips):
        batch[i, : len(c)] = c
    mels, frames = holdtts.mel_spectrogram(torch.from_numpy(batch), lengths=[len(c) for c in clips])
    for i, c in enumerate(clips):
        single = holdtts.mel_spectrogram(torch.from_numpy(c))
        assert int(frames[i]) == single.shape[-1]
        assert torch.allclose(mels[i, :, : frames[i]], single, atol=1e-5)


def test_leading_dims_and_dtype():
    y = torch.from_numpy(np.stack([speechlike(4000, 1), speechlike(4000, 2)])).double()
    mel = holdtts.mel_spectrogram(y.reshape(1, 2, 4000))
    assert mel.shape == (1, 2, 80, 15) and mel.dtype == torch.float32
    with pytest.raises(TypeError):
        holdtts.mel_spectrogram(torch.zeros(4000, dtype=torch.int16))
    with pytest.raises(ValueError, match="too short"):
        holdtts.mel_spectrogram(torch.zeros(100))


def test_silence_hits_the_log_floor():
    mel = holdtts.mel_spectrogram(torch.zeros(4096))
    assert torch.all(mel <= np.log(1e-4)) and torch.all(mel >= np.log(1e-5) - 1e-6)


def test_nonfinite_synthesis_becomes_the_log_floor():
    from holdtts.data.mel import LOG_FLOOR, silence_nonfinite

    mels = torch.randn(3, 80, 12)
    finite, failed = silence_nonfinite(mels, torch.tensor([12, 12, 12]))
    assert finite is mels and failed.tolist() == [False, False, False]  # finite mels untouched, bit for bit
    broken = mels.clone()
    broken[0, 5, 3] = float("nan")
    broken[1, 0, 0] = float("inf")
    broken[2, 7, 11] = float("-inf")  # in item 2's padding (length 10): repaired, but not a failed synthesis
    repaired, failed = silence_nonfinite(broken, torch.tensor([12, 12, 10]))
    assert failed.tolist() == [True, True, False]
    assert torch.isfinite(repaired).all()
    bad = ~torch.isfinite(broken)
    assert torch.equal(repaired[bad], torch.full((3,), float(np.log(LOG_FLOOR))))
    assert torch.equal(repaired[~bad], mels[~bad])
    assert silence_nonfinite(broken)[1].tolist() == [True, True, True]  # without lengths every frame counts
