"""Monotonic alignment search (the Viterbi of Glow-TTS / Grad-TTS) and duration -> alignment paths.

Grad-TTS ships the search as a Cython extension run on the CPU (copying log_p off the GPU and the path
back), a classic install failure and, on an H100, a third of a training step. Here it runs on the
device log_p lives on:

- CUDA with Triton importable: one Triton program per utterance, vectorised over tokens, looping over
  frames, backtracking in the same kernel;
- CPU with numba importable (librosa's dependency): the plain dynamic program compiled by numba, one
  cell at a time (on a 2-core machine the torch loop's per-frame dispatch was 13% of a tiny model's step);
- anywhere else: torch, vectorised over the batch and the tokens, looping over frames (backtracking is
  vectorised over the batch).

Both reproduce Grad-TTS's Cython result exactly, ties included: when staying on a token and moving from
the previous one score the same, the path stays (checked against `_reference_mas`, the plain dynamic
program, in tests/test_alignment.py).
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from holdtts.models.layers import sequence_mask

try:
    import numba
except ImportError:
    numba = None
try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only torch wheels come without triton
    triton = None

__all__ = ["monotonic_alignment_search", "durations_to_path", "sequence_mask"]
_triton_unusable = False


def _lengths(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Text and frame lengths of each item from its [B, L, T] mask (the outer product of the two)."""
    mask = mask.bool()
    return mask.any(2).sum(1), mask.any(1).sum(1)


def _check_lengths(t_x: torch.Tensor, t_y: torch.Tensor) -> None:
    feasible = ((t_x >= 1) & (t_x <= t_y)).all()
    if t_x.device.type == "cpu":
        if not bool(feasible):
            raise ValueError("monotonic alignment search needs 1 <= text length <= frame length for every "
                             f"item; got text lengths {t_x.tolist()} and frame lengths {t_y.tolist()}")
    else:
        # No host round trip on an accelerator: the assert fires on the device.
        torch._assert_async(feasible, "monotonic alignment search needs 1 <= text length <= frame length")


def _path_from_tokens(token_of_frame: torch.Tensor, n_text: int, t_y: torch.Tensor,
                      dtype: torch.dtype) -> torch.Tensor:
    """[B, T] token index per frame (any valid index on padded frames) -> [B, L, T] 0/1 path."""
    batch, n_frames = token_of_frame.shape
    real_frames = sequence_mask(t_y, n_frames).unsqueeze(1).to(dtype)
    path = torch.zeros(batch, n_text, n_frames, dtype=dtype, device=token_of_frame.device)
    return path.scatter_(1, token_of_frame.unsqueeze(1), real_frames)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Scores summed over hundreds of frames: never accumulate in half precision.
    return torch.float64 if dtype == torch.float64 else torch.float32


def _mas_torch(log_p: torch.Tensor, t_x: torch.Tensor, t_y: torch.Tensor) -> torch.Tensor:
    batch, n_text, n_frames = log_p.shape
    frames = log_p.to(_compute_dtype(log_p.dtype)).permute(2, 0, 1).contiguous()  # [T, B, L]

    # Forward pass: score[b, x] is the best score of a path ending on token x at the current frame.
    # Two buffers alternate (previous frame, this frame); column 0 is a -inf sentinel, so that the
    # slice shifted by one gives "arrived from the previous token". moved[y, b, x] records that the best
    # way into (x, y) came from token x - 1: strictly better, so ties stay, as in Grad-TTS.
    buffers = frames.new_full((2, batch, n_text + 1), float("-inf"))
    buffers[0, :, 1] = frames[0, :, 0]  # frame 0: only the first token is reachable
    stay = [buffers[p, :, 1:] for p in (0, 1)]
    move = [buffers[p, :, :-1] for p in (0, 1)]
    moved = torch.zeros(n_frames, batch, n_text, dtype=torch.uint8, device=log_p.device)
    moved_bool = moved.view(torch.bool)
    for y in range(1, n_frames):
        previous, current = (y - 1) % 2, y % 2
        torch.gt(move[previous], stay[previous], out=moved_bool[y])
        torch.maximum(stay[previous], move[previous], out=stay[current])
        stay[current].add_(frames[y])

    # Token y at frame y can only have come from token y - 1 (Grad-TTS's `index == y` rule; the -inf
    # sentinel gives the same for finite log_p, this keeps the path valid for -inf or NaN scores too).
    diagonal = torch.arange(1, min(n_text, n_frames), device=log_p.device)
    moved[diagonal, :, diagonal] = 1

    # Backtracking from the last token at each item's last frame. Moves past an item's last frame are
    # cleared, so its index waits at the last token until the loop reaches that frame.
    moved.masked_fill_(~sequence_mask(t_y, n_frames).t().unsqueeze(-1), 0)
    index = t_x.long().unsqueeze(1) - 1  # [B, 1]
    token_of_frame = [index]
    for y in range(n_frames - 1, 0, -1):
        index = index - moved[y].gather(1, index)
        token_of_frame.append(index)
    return _path_from_tokens(torch.cat(token_of_frame[::-1], dim=1), n_text, t_y, log_p.dtype)


if triton is not None:

    def _mas_kernel(log_p_ptr, score_ptr, token_ptr, t_x_ptr, t_y_ptr, n_text, n_frames,
                    BLOCK: tl.constexpr):
        """One program per item. log_p and score are [B, T, L] (a frame's column contiguous), token is
        [B, T]. Columns go through global memory: a barrier orders a column's stores before the next
        frame reads them shifted by one token."""
        item = tl.program_id(0).to(tl.int64)
        t_x = tl.load(t_x_ptr + item)
        t_y = tl.load(t_y_ptr + item)
        x = tl.arange(0, BLOCK)
        rows = x < t_x
        log_p_ptr += item * n_frames * n_text
        score_ptr += item * n_frames * n_text
        token_ptr += item * n_frames

        first = tl.load(log_p_ptr + x, mask=rows & (x == 0), other=float("-inf"))
        tl.store(score_ptr + x, first, mask=rows)
        for y in range(1, t_y):
            tl.debug_barrier()
            column = score_ptr + (y - 1) * n_text
            stay = tl.load(column + x, mask=rows, other=float("-inf"))
            move = tl.load(column + x - 1, mask=rows & (x > 0), other=float("-inf"))
            here = tl.load(log_p_ptr + y * n_text + x, mask=rows, other=0.0)
            tl.store(score_ptr + y * n_text + x, tl.maximum(stay, move) + here, mask=rows)
        tl.debug_barrier()

        index = t_x - 1
        for step in range(0, t_y):
            y = t_y - 1 - step
            tl.store(token_ptr + y, index)
            if index == y:
                index -= 1
            elif index > 0:
                column = score_ptr + (y - 1) * n_text
                if tl.load(column + index - 1) > tl.load(column + index):
                    index -= 1

    @functools.cache
    def _triton_kernel():
        # Decorated on first use rather than at import: triton.jit reads TRITON_INTERPRET when it runs.
        return triton.jit(_mas_kernel)


def _mas_triton(log_p: torch.Tensor, t_x: torch.Tensor, t_y: torch.Tensor) -> torch.Tensor:
    """The Triton search; runs on CUDA tensors, or on CPU tensors under TRITON_INTERPRET=1."""
    if triton is None:
        raise RuntimeError("triton is not installed")
    batch, n_text, n_frames = log_p.shape
    frames = log_p.to(_compute_dtype(log_p.dtype)).transpose(1, 2).contiguous()  # [B, T, L]
    score = torch.empty_like(frames)
    token_of_frame = torch.zeros(batch, n_frames, dtype=torch.int64, device=log_p.device)
    block = triton.next_power_of_2(n_text)
    _triton_kernel()[(batch,)](frames, score, token_of_frame, t_x.to(torch.int64).contiguous(),
                               t_y.to(torch.int64).contiguous(), n_text, n_frames, BLOCK=block,
                               num_warps=4 if block <= 512 else 8)
    return _path_from_tokens(token_of_frame, n_text, t_y, log_p.dtype)


def _mas_cells(log_p, t_x, t_y, token_of_frame):
    """The monotonic alignment dynamic program (float32, ties stay on the current token, as Grad-TTS's
    Cython), writing each frame's token. Token x is reachable at frame y only if x <= y, and can still
    reach the end only if n_x - x <= n_y - y."""
    for b in range(log_p.shape[0]):
        n_x, n_y = t_x[b], t_y[b]
        score = np.full((n_x, n_y), -np.inf, dtype=np.float32)
        for y in range(n_y):
            for x in range(max(0, n_x - n_y + y), min(n_x, y + 1)):
                if y == 0:
                    best = np.float32(0.0)
                else:
                    best = score[x, y - 1]
                    if x > 0 and score[x - 1, y - 1] > best:
                        best = score[x - 1, y - 1]
                score[x, y] = best + log_p[b, x, y]
        x = n_x - 1
        for y in range(n_y - 1, -1, -1):
            token_of_frame[b, y] = x
            if x > 0 and (x == y or score[x - 1, y - 1] > score[x, y - 1]):
                x -= 1


@functools.cache
def _numba_cells():
    # Compiled on first use (about a second) and cached on disk by numba for later processes.
    return numba.njit(cache=True, nogil=True)(_mas_cells)


def _mas_cpu(log_p: torch.Tensor, t_x: torch.Tensor, t_y: torch.Tensor, cells=None) -> torch.Tensor:
    """`_mas_cells` on CPU tensors: compiled by numba, or (cells=_mas_cells) as plain Python."""
    frames = np.ascontiguousarray(log_p.detach().to(torch.float32).numpy())
    token_of_frame = np.zeros(log_p.shape[::2], dtype=np.int64)
    (cells or _numba_cells())(frames, t_x.numpy().astype(np.int64), t_y.numpy().astype(np.int64), token_of_frame)
    return _path_from_tokens(torch.from_numpy(token_of_frame), log_p.shape[1], t_y, log_p.dtype)


@torch.no_grad()
def monotonic_alignment_search(log_p: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The most likely monotonic alignment of tokens to frames.

    log_p [B, L_text, T_mel]: score of frame t under token i (Grad-TTS: the Gaussian log-likelihood of
    the mel frame under mu_x[i]); mask [B, L_text, T_mel]: x_mask (x) y_mask, giving each item's lengths.
    Returns a 0/1 path [B, L_text, T_mel] with log_p's dtype, on log_p's device: within each item's
    lengths, every frame belongs to exactly one token, tokens advance by at most one per frame starting
    at the first and ending at the last, so every token gets at least one frame; zero elsewhere.
    Needs 1 <= text length <= frame length for every item. No gradient flows through the path.
    """
    if log_p.dim() != 3 or mask.shape != log_p.shape:
        raise ValueError(f"log_p and mask must both be [B, L_text, T_mel]; got {tuple(log_p.shape)} and "
                         f"{tuple(mask.shape)}")
    t_x, t_y = _lengths(mask)
    _check_lengths(t_x, t_y)
    global _triton_unusable
    if log_p.is_cuda and triton is not None and not _triton_unusable:
        try:
            return _mas_triton(log_p, t_x, t_y)
        except Exception as err:  # a GPU or toolchain Triton cannot compile for: fall back once, loudly
            _triton_unusable = True
            warnings.warn(f"the Triton alignment search failed ({type(err).__name__}: {err}); "
                          "using the torch version from now on", RuntimeWarning, stacklevel=2)
    if log_p.device.type == "cpu" and numba is not None and log_p.dtype != torch.float64:
        return _mas_cpu(log_p, t_x, t_y)
    return _mas_torch(log_p, t_x, t_y)


def durations_to_path(durations: torch.Tensor, x_mask: torch.Tensor, y_mask: torch.Tensor) -> torch.Tensor:
    """Durations -> alignment (Grad-TTS's generate_path, used at inference).

    durations [B, L] frame counts, x_mask [B, 1, L], y_mask [B, 1, T] -> [B, L, T] with y_mask's dtype:
    token i covers the frames t with sum(d[:i]) <= t < sum(d[:i + 1]), cut to the real tokens and frames.
    For integer durations it is the inverse of path.sum(-1); fractional ones (Grad-TTS's
    ceil(w) * length_scale) are handled as Grad-TTS does, each frame going to the token whose span holds it.
    """
    end = torch.cumsum(durations, dim=1)
    start = end - durations
    frames = torch.arange(y_mask.shape[-1], device=durations.device)
    path = (frames >= start.unsqueeze(-1)) & (frames < end.unsqueeze(-1))
    mask = x_mask.squeeze(1).bool().unsqueeze(-1) & y_mask.squeeze(1).bool().unsqueeze(1)
    return (path & mask).to(y_mask.dtype)


def _reference_mas(log_p: np.ndarray, t_x: np.ndarray, t_y: np.ndarray) -> np.ndarray:
    """The textbook dynamic program (`_mas_cells`) run as plain Python, one cell at a time in float32, like
    Grad-TTS's Cython: the CPU search is the same function compiled by numba, the torch and Triton searches
    are independent implementations checked against it.

    Used by the tests and the benchmark as the reference; too slow for training.
    """
    return _mas_cpu(torch.from_numpy(np.asarray(log_p, dtype=np.float32)), torch.as_tensor(t_x),
                    torch.as_tensor(t_y), cells=_mas_cells).numpy()
