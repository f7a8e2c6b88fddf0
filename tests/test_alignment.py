"""Monotonic alignment search against the plain dynamic program, brute force and path invariants."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from holdtts.models import alignment
from holdtts.models.alignment import (
    _mas_torch,
    _reference_mas,
    durations_to_path,
    monotonic_alignment_search,
    sequence_mask,
)


def _mask(t_x: torch.Tensor, t_y: torch.Tensor, n_text: int, n_frames: int) -> torch.Tensor:
    return sequence_mask(t_x, n_text).unsqueeze(2) & sequence_mask(t_y, n_frames).unsqueeze(1)


def _random_case(gen: torch.Generator, max_batch: int, max_text: int, max_frames: int, ties: bool):
    """Ragged lengths within a batch; `ties` draws small integers, so that equal scores are common."""
    batch = int(torch.randint(1, max_batch + 1, (1,), generator=gen))
    n_text = int(torch.randint(1, max_text + 1, (1,), generator=gen))
    n_frames = int(torch.randint(n_text, max_frames + 1, (1,), generator=gen))
    t_x = torch.randint(1, n_text + 1, (batch,), generator=gen)
    t_x[0] = n_text
    t_y = torch.stack([torch.randint(int(x), n_frames + 1, (1,), generator=gen)[0] for x in t_x])
    t_y[-1] = n_frames
    if ties:
        log_p = torch.randint(-2, 1, (batch, n_text, n_frames), generator=gen).float()
    else:
        log_p = torch.randn(batch, n_text, n_frames, generator=gen) * 3.0
    return log_p, _mask(t_x, t_y, n_text, n_frames), t_x, t_y


def _check_path(path: torch.Tensor, t_x: torch.Tensor, t_y: torch.Tensor) -> None:
    for b in range(path.shape[0]):
        n_x, n_y = int(t_x[b]), int(t_y[b])
        p = path[b].numpy()
        assert set(np.unique(p)) <= {0.0, 1.0}
        assert p[n_x:].sum() == 0 and p[:, n_y:].sum() == 0, "path outside the item's lengths"
        real = p[:n_x, :n_y]
        assert (real.sum(0) == 1).all(), "every frame belongs to exactly one token"
        assert (real.sum(1) >= 1).all(), "every token gets at least one frame"
        token = real.argmax(0)
        assert token[0] == 0 and token[-1] == n_x - 1
        assert set(np.diff(token)) <= {0, 1}, "tokens advance by at most one per frame"


@pytest.mark.parametrize("ties", [False, True])
def test_matches_reference_on_random_ragged_batches(ties):
    gen = torch.Generator().manual_seed(1 + ties)
    for _ in range(150):
        log_p, mask, t_x, t_y = _random_case(gen, max_batch=4, max_text=9, max_frames=24, ties=ties)
        path = monotonic_alignment_search(log_p, mask)
        np.testing.assert_array_equal(path.numpy(), _reference_mas(log_p.numpy(), t_x.numpy(), t_y.numpy()))
        _check_path(path, t_x, t_y)


@pytest.mark.parametrize("ties", [False, True])
def test_the_torch_fallback_matches_the_reference_too(ties):
    """On the CPU the search runs compiled by numba; the torch loop (no numba, or float64) must agree."""
    gen = torch.Generator().manual_seed(7 + ties)
    for _ in range(60):
        log_p, mask, t_x, t_y = _random_case(gen, max_batch=4, max_text=9, max_frames=24, ties=ties)
        np.testing.assert_array_equal(_mas_torch(log_p, t_x, t_y).numpy(),
                                      _reference_mas(log_p.numpy(), t_x.numpy(), t_y.numpy()))


def test_ties_stay_on_the_current_token_like_grad_tts():
    # Every path scores 0: backtracking stays on a token whenever staying is as good as moving, so the
    # last token takes all the slack (Grad-TTS's Cython rule).
    log_p = torch.zeros(1, 3, 6)
    path = monotonic_alignment_search(log_p, torch.ones_like(log_p, dtype=torch.bool))
    expected = torch.tensor([[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1]]).float()
    torch.testing.assert_close(path[0], expected)


def test_equals_brute_force_optimum():
    gen = torch.Generator().manual_seed(3)
    for n_text, n_frames in [(1, 1), (1, 5), (2, 2), (2, 6), (3, 7), (4, 8), (5, 9)]:
        log_p = torch.randn(1, n_text, n_frames, generator=gen, dtype=torch.float64)
        best = -np.inf
        # a monotonic path is a choice of the n_text - 1 frames where the next token starts
        for starts in itertools.combinations(range(1, n_frames), n_text - 1):
            bounds = (0, *starts, n_frames)
            score = sum(float(log_p[0, i, bounds[i]:bounds[i + 1]].sum()) for i in range(n_text))
            best = max(best, score)
        path = monotonic_alignment_search(log_p, torch.ones_like(log_p, dtype=torch.bool))
        assert path.dtype == torch.float64
        assert float((path * log_p).sum()) == pytest.approx(best, abs=1e-12)


def test_text_as_long_as_frames_gives_the_diagonal():
    gen = torch.Generator().manual_seed(4)
    t = torch.tensor([7, 4, 1])
    log_p = torch.randn(3, 7, 7, generator=gen)
    path = monotonic_alignment_search(log_p, _mask(t, t, 7, 7))
    for b, n in enumerate(t.tolist()):
        expected = torch.zeros(7, 7)
        expected[:n, :n] = torch.eye(n)
        torch.testing.assert_close(path[b], expected)


def test_single_token_takes_every_frame():
    gen = torch.Generator().manual_seed(5)
    t_y = torch.tensor([9, 3, 1])
    log_p = torch.randn(3, 1, 9, generator=gen)
    path = monotonic_alignment_search(log_p, _mask(torch.ones(3, dtype=torch.long), t_y, 1, 9))
    torch.testing.assert_close(path[:, 0], sequence_mask(t_y, 9).float())


def test_large_batch_matches_reference():
    gen = torch.Generator().manual_seed(6)
    batch, n_text, n_frames = 64, 24, 70
    t_x = torch.randint(1, n_text + 1, (batch,), generator=gen)
    t_y = torch.clamp(t_x * 3 + torch.randint(-20, 10, (batch,), generator=gen), max=n_frames)
    t_y = torch.maximum(t_y, t_x)
    log_p = torch.randn(batch, n_text, n_frames, generator=gen)
    path = monotonic_alignment_search(log_p, _mask(t_x, t_y, n_text, n_frames))
    np.testing.assert_array_equal(path.numpy(), _reference_mas(log_p.numpy(), t_x.numpy(), t_y.numpy()))
    _check_path(path, t_x, t_y)


def test_padding_content_is_ignored_and_dtype_kept():
    gen = torch.Generator().manual_seed(7)
    t_x, t_y = torch.tensor([5, 3]), torch.tensor([12, 8])
    mask = _mask(t_x, t_y, 5, 12)
    log_p = torch.randn(2, 5, 12, generator=gen)
    noisy = log_p.masked_fill(~mask, float("nan"))
    noisy[1, 3, 0] = 1e6  # a huge score on a padded token must not attract the path
    expected = monotonic_alignment_search(log_p, mask)
    torch.testing.assert_close(monotonic_alignment_search(noisy, mask), expected)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        low = log_p.to(dtype)
        path = monotonic_alignment_search(low, mask.float())
        assert path.dtype == dtype and not path.requires_grad
        ref = _reference_mas(low.float().numpy(), t_x.numpy(), t_y.numpy())
        np.testing.assert_array_equal(path.float().numpy(), ref)


@pytest.mark.parametrize("bad", [float("-inf"), float("nan")])
def test_path_stays_valid_when_scores_are_not_finite(bad):
    t_x, t_y = torch.tensor([4, 2]), torch.tensor([9, 5])
    log_p = torch.full((2, 4, 9), bad)
    _check_path(monotonic_alignment_search(log_p, _mask(t_x, t_y, 4, 9)), t_x, t_y)


def test_rejects_bad_shapes_and_infeasible_lengths():
    with pytest.raises(ValueError, match="text length <= frame length"):
        monotonic_alignment_search(torch.zeros(1, 4, 3), torch.ones(1, 4, 3))
    with pytest.raises(ValueError, match="B, L_text, T_mel"):
        monotonic_alignment_search(torch.zeros(1, 4, 5), torch.ones(1, 4, 6))


def test_durations_to_path_round_trips_a_search_path():
    gen = torch.Generator().manual_seed(8)
    log_p, mask, t_x, t_y = _random_case(gen, max_batch=6, max_text=10, max_frames=40, ties=False)
    path = monotonic_alignment_search(log_p, mask)
    x_mask = sequence_mask(t_x, log_p.shape[1]).unsqueeze(1).float()
    y_mask = sequence_mask(t_y, log_p.shape[2]).unsqueeze(1).float()
    durations = path.sum(-1)
    torch.testing.assert_close(durations_to_path(durations, x_mask, y_mask), path)
    torch.testing.assert_close(durations_to_path(durations.long(), x_mask, y_mask), path)


def test_durations_to_path_cuts_to_the_masks():
    durations = torch.tensor([[2, 0, 3, 4]])  # token 3 is padding; the frames stop at 4
    x_mask = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]])
    y_mask = torch.tensor([[[1.0, 1.0, 1.0, 1.0, 0.0, 0.0]]])
    expected = torch.tensor([[[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0],
                              [0, 0, 0, 0, 0, 0]]]).float()
    torch.testing.assert_close(durations_to_path(durations, x_mask, y_mask), expected)


def test_fractional_durations_follow_grad_tts_generate_path():
    # Grad-TTS: path = mask(t < cumsum(d)) minus the same shifted by one token
    durations = torch.tensor([[1.5, 2.25, 0.5, 3.0], [2.0, 1.0, 0.0, 0.0]])
    x_mask = torch.tensor([[[1.0, 1.0, 1.0, 1.0]], [[1.0, 1.0, 0.0, 0.0]]])
    y_mask = torch.tensor([[[1.0] * 8], [[1.0] * 3 + [0.0] * 5]])
    frames = torch.arange(8.0)
    below_end = (frames < durations.cumsum(1).unsqueeze(-1)).float()
    expected = below_end - torch.nn.functional.pad(below_end, (0, 0, 1, 0))[:, :-1]
    expected = expected * x_mask.transpose(1, 2) * y_mask
    torch.testing.assert_close(durations_to_path(durations, x_mask, y_mask), expected)
    assert (expected.sum(1)[0] == 1).all()


def test_sequence_mask():
    mask = sequence_mask(torch.tensor([3, 0, 1]), 4)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True, True, True, False], [False] * 4, [True, False, False, False]]
    assert sequence_mask(torch.tensor([2, 5])).shape == (2, 5)


def _interpreter_check() -> None:
    """Run by test_triton_kernel_matches_reference_in_the_interpreter in a process of its own."""
    assert os.environ.get("TRITON_INTERPRET") == "1"
    from triton.runtime import interpreter

    # Triton <= 3.5's interpreter converts scalars with int() on 1-element arrays, which numpy >= 2.4
    # refuses (triton-lang/triton#9171): convert through the array's element instead.
    original = interpreter._patch_lang_tensor

    def patch_lang_tensor(tensor, *args, **kwargs):
        original(tensor, *args, **kwargs)
        tensor.__index__ = lambda self: int(self.handle.data.reshape(-1)[0])

    interpreter._patch_lang_tensor = patch_lang_tensor

    gen = torch.Generator().manual_seed(9)
    cases = [_random_case(gen, max_batch=3, max_text=7, max_frames=16, ties=bool(i % 2)) for i in range(16)]
    for t in (torch.tensor([5, 2]), torch.tensor([1, 1])):  # text as long as frames; a single token
        n_text = int(t.max())
        t_y = t if n_text > 1 else torch.tensor([6, 2])
        cases.append((torch.randn(2, n_text, int(t_y.max()), generator=gen), None, t, t_y))
    for log_p, _, t_x, t_y in cases:
        path = alignment._mas_triton(log_p, t_x, t_y)
        np.testing.assert_array_equal(path.numpy(), _reference_mas(log_p.numpy(), t_x.numpy(), t_y.numpy()))
    t_x, t_y = torch.tensor([4, 2]), torch.tensor([9, 5])
    _check_path(alignment._mas_triton(torch.full((2, 4, 9), float("nan")), t_x, t_y), t_x, t_y)


def test_triton_kernel_matches_reference_in_the_interpreter():
    # Triton's interpreter runs the kernel on the CPU. It patches triton.language for good in the
    # process that uses it (Triton 3.5), which would break compiled kernels afterwards: use a child.
    if alignment.triton is None:
        pytest.skip("triton is not installed")
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "import test_alignment; test_alignment._interpreter_check()")
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("dtype", ["fp32", "fp64"])
def test_triton_kernel_compiles_for_an_h100(dtype, monkeypatch, tmp_path):
    # Compiling needs no GPU (Triton ships ptxas): catches kernels the interpreter accepts but the
    # compiler rejects.
    if alignment.triton is None:
        pytest.skip("triton is not installed")
    compiler = pytest.importorskip("triton.compiler")
    from triton.backends.compiler import GPUTarget

    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    signature = {"log_p_ptr": f"*{dtype}", "score_ptr": f"*{dtype}", "token_ptr": "*i64", "t_x_ptr": "*i64",
                 "t_y_ptr": "*i64", "n_text": "i32", "n_frames": "i32", "BLOCK": "constexpr"}
    source = compiler.ASTSource(fn=alignment.triton.jit(alignment._mas_kernel), signature=signature,
                                constexprs={"BLOCK": 512})
    kernel = alignment.triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
    assert "bar.sync" in kernel.asm["ptx"]  # the barrier between frames survived


@pytest.mark.gpu
def test_cuda_search_matches_the_cpu_search():
    gen = torch.Generator().manual_seed(10)
    batch, n_text, n_frames = 16, 300, 860
    t_x = torch.randint(100, n_text + 1, (batch,), generator=gen)
    t_y = torch.clamp(t_x * 3, max=n_frames)
    log_p = torch.randn(batch, n_text, n_frames, generator=gen)
    mask = _mask(t_x, t_y, n_text, n_frames)
    path = monotonic_alignment_search(log_p.cuda(), mask.cuda())
    assert path.is_cuda
    torch.testing.assert_close(path.cpu(), _mas_torch(log_p, t_x, t_y))
