"""Time monotonic alignment search alone at Grad-TTS's LJSpeech batch shapes.

Batch 16, 100-300 tokens, up to 860 frames (the longest item is exactly 300 x 860). The anchor in
docs/EVALUATION.md: 51 ms per batch on an H100 for official Grad-TTS's Cython search, GPU<->CPU copies
included. Prints one row per implementation: median and best milliseconds per batch over --repeats runs,
and whether its paths equal the reference dynamic program's.

    python bench/bench_alignment.py [--device cpu|cuda] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from holdtts.models import alignment
from holdtts.models.alignment import _mas_torch, _reference_mas, monotonic_alignment_search, sequence_mask


def make_batch(batch: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    t_x = torch.randint(100, 301, (batch,), generator=gen)
    frames_per_token = 2.5 + 0.37 * torch.rand(batch, generator=gen)
    t_y = torch.clamp((t_x * frames_per_token).long(), max=860)
    t_x[0], t_y[0] = 300, 860
    log_p = torch.randn(batch, 300, 860, generator=gen)
    mask = sequence_mask(t_x, 300).unsqueeze(2) & sequence_mask(t_y, 860).unsqueeze(1)
    return log_p, mask, t_x, t_y


def time_it(fn, repeats: int, sync) -> tuple[list[float], torch.Tensor]:
    out = fn()  # warm-up (Triton compiles here)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        sync()
        times.append(1000.0 * (time.perf_counter() - start))
    return times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    log_p, mask, t_x, t_y = make_batch(args.batch_size)
    start = time.perf_counter()
    reference = torch.from_numpy(_reference_mas(log_p.numpy(), t_x.numpy(), t_y.numpy()))
    reference_ms = 1000.0 * (time.perf_counter() - start)

    device = torch.device(args.device)
    rows = [("reference (numpy, one cell at a time)", "cpu", [reference_ms], True)]

    def no_sync():
        return None

    times, path = time_it(lambda: _mas_torch(log_p, t_x, t_y), args.repeats, no_sync)
    rows.append(("torch, vectorised", "cpu", times, torch.equal(path, reference)))
    if device.type != "cpu":
        sync = torch.cuda.synchronize if device.type == "cuda" else no_sync
        d_log_p, d_mask = log_p.to(device), mask.to(device)
        d_t_x, d_t_y = t_x.to(device), t_y.to(device)
        times, path = time_it(lambda: _mas_torch(d_log_p, d_t_x, d_t_y), args.repeats, sync)
        rows.append(("torch, vectorised", args.device, times, torch.equal(path.cpu(), reference)))
        if device.type == "cuda" and alignment.triton is not None:
            times, path = time_it(lambda: alignment._mas_triton(d_log_p, d_t_x, d_t_y), args.repeats, sync)
            rows.append(("triton", args.device, times, torch.equal(path.cpu(), reference)))
        times, path = time_it(lambda: monotonic_alignment_search(d_log_p, d_mask), args.repeats, sync)
        rows.append(("monotonic_alignment_search (dispatch)", args.device, times,
                     torch.equal(path.cpu(), reference)))

    print(f"batch {args.batch_size}, text lengths {t_x.min().item()}-{t_x.max().item()}, frames "
          f"{t_y.min().item()}-{t_y.max().item()}, padded [{args.batch_size}, 300, 860]; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    print("anchor: official Grad-TTS (Cython on the CPU, with GPU<->CPU copies) 51 ms on an H100")
    print(f"{'implementation':<40}{'device':<8}{'median ms':>11}{'best ms':>10}{'runs':>6}  same path")
    for name, where, times, same in rows:
        print(f"{name:<40}{where:<8}{statistics.median(times):>11.1f}{min(times):>10.1f}{len(times):>6}  "
              f"{'yes' if same else 'NO'}")
    if not all(same for *_, same in rows):
        print("warning: an implementation disagrees with the reference")


if __name__ == "__main__":
    main()
