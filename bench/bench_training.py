"""Training-step time per process order, the alignment search alone, and synthesis real-time factor.

Shapes follow the anchor in ../shared/docs/EVALUATION.md (official Grad-TTS on one H100): batch 16,
LJSpeech-shaped batches (100-300 tokens, up to 860 frames), 2-second decoder crops, published model
sizes. The anchor: 151 ms per training step (106 utts/s) of which 51 ms alignment search; synthesis RTF
0.036 at 10 steps, batch 1. Targets on one H100: >= 3x the anchor's training throughput, alignment >= 10x
faster, order 3 within 15% of order 1's step, batch-1 RTF < 0.01 at 10 steps.

    python bench/bench_training.py                       # CUDA when present, else CPU
    python bench/bench_training.py --device cpu --size tiny --repeats 3
    python bench/bench_training.py --precision bf16 --orders 1,3

Prints a table; asserts nothing about time.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from holdtts.config import load_config
from holdtts.data.dataset import Batch
from holdtts.models.alignment import monotonic_alignment_search
from holdtts.models.tts import GradTTS

CONF = Path(__file__).resolve().parents[1] / "egs" / "ljspeech" / "conf"
ANCHOR = {"step_ms": 151.0, "utts_per_s": 106.0, "mas_ms": 51.0, "rtf_b1_10": 0.036}
N_VOCAB = 150


def system_config(order: int, size: str, precision: str):
    name = "vp" if order == 1 else f"hold{order}"
    files = [CONF / f"{name}.yaml"] + ([CONF / "tiny.yaml"] if size == "tiny" else [])
    return load_config(files, [f"train.precision={precision}"])


def ljspeech_batch(batch: int, seed: int, device) -> Batch:
    """Random tokens and mels of LJSpeech-like lengths (frames about 2.9x tokens, at most 860)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(100, 301, batch)
    frames = np.minimum((tokens * rng.uniform(2.4, 3.2, batch)).astype(int), 860)
    tok = torch.zeros(batch, tokens.max(), dtype=torch.long)
    mel = torch.zeros(batch, 80, frames.max())
    for i in range(batch):
        tok[i, : tokens[i]] = torch.from_numpy(rng.integers(1, N_VOCAB, tokens[i]))
        mel[i, :, : frames[i]] = torch.from_numpy(rng.normal(-5, 2, (80, frames[i])).astype(np.float32))
    starts = torch.from_numpy(rng.integers(0, np.maximum(frames - 172, 0) + 1))
    return Batch([f"u{i}" for i in range(batch)], tok, torch.from_numpy(tokens), mel, torch.from_numpy(frames),
                 starts).to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats: int, device) -> float:
    """Median seconds of fn() after one warm-up call."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_step(order, size, batch, precision, repeats, device):
    cfg = system_config(order, size, precision)
    model = GradTTS(cfg, N_VOCAB).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    data = ljspeech_batch(batch, 0, device)
    use_amp = device.type == "cuda" and precision != "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=use_amp):
            terms = model(data.tokens, data.token_lengths, data.mels, data.mel_lengths, data.crop_starts)
            loss = sum(v.float().mean() for v in terms.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = timed(step, repeats, device)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    params = sum(p.numel() for p in model.parameters())
    return seconds, peak, params


def bench_alignment(batch, repeats, device):
    data = ljspeech_batch(batch, 1, device)
    log_p = torch.randn(batch, int(data.token_lengths.max()), int(data.mel_lengths.max()), device=device)
    mask = ((torch.arange(log_p.shape[1], device=device)[None, :, None] < data.token_lengths[:, None, None])
            & (torch.arange(log_p.shape[2], device=device)[None, None, :] < data.mel_lengths[:, None, None]))
    return timed(lambda: monotonic_alignment_search(log_p, mask.float()), repeats, device)


@torch.no_grad()
def bench_synthesis(order, size, batch, steps, repeats, device):
    cfg = system_config(order, size, "fp32")
    model = GradTTS(cfg, N_VOCAB).to(device).eval()
    tokens = torch.randint(1, N_VOCAB, (batch, 150), device=device)
    lengths = torch.full((batch,), 150, device=device)
    mu, mask, frames = model.text_to_mu(tokens, lengths)
    seconds = timed(lambda: model.decode(mu, mask, steps, cfg.synthesis.sampler), repeats, device)
    audio = float(frames.sum()) * cfg.features.hop_length / cfg.features.sample_rate
    return seconds / audio


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", choices=("full", "tiny"), default="full", help="published sizes or conf/tiny.yaml")
    parser.add_argument("--orders", default="1,2,3,4")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--steps", type=int, default=10, help="synthesis steps")
    parser.add_argument("--repeats", type=int, default=None, help="default: 10 on CUDA, 2 on the CPU")
    args = parser.parse_args()
    device = torch.device(args.device)
    repeats = args.repeats or (10 if device.type == "cuda" else 2)
    orders = [int(o) for o in args.orders.split(",")]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; size: {args.size}; batch {args.batch}; precision {args.precision}; "
          f"median of {repeats}; torch {torch.__version__}")
    print(f"{'what':44s} {'ms':>10s} {'utts/s':>9s} {'peak GiB':>9s} {'params':>11s} {'vs anchor':>10s}")
    base = None
    for order in orders:
        seconds, peak, params = bench_step(order, args.size, args.batch, args.precision, repeats, device)
        base = base or seconds
        rel = f"order1 x{seconds / base:.2f}" if order != 1 else ""
        speedup = f"x{ANCHOR['step_ms'] / (seconds * 1000):.2f}"
        print(f"{'train step, order ' + str(order):44s} {seconds * 1000:10.1f} {args.batch / seconds:9.1f} "
              f"{peak:9.2f} {params:11,d} {speedup:>10s} {rel}")
    mas = bench_alignment(args.batch, repeats, device)
    print(f"{'alignment search alone':44s} {mas * 1000:10.1f} {args.batch / mas:9.1f} {'':9s} {'':11s} "
          f"{'x' + format(ANCHOR['mas_ms'] / (mas * 1000), '.2f'):>10s}")
    for order in orders:
        for batch in (1, 32):
            rtf = bench_synthesis(order, args.size, batch, args.steps, max(1, repeats // 2), device)
            anchor = f"x{ANCHOR['rtf_b1_10'] / rtf:.2f}" if batch == 1 and args.steps == 10 else ""
            print(f"{f'synthesis RTF, order {order}, batch {batch}, {args.steps} steps':44s} {rtf:10.4f} "
                  f"{'':9s} {'':9s} {'':11s} {anchor:>10s}")
    print("vs anchor: the anchor's time divided by ours (> 1 is faster); RTF rows show RTF, not ms")


if __name__ == "__main__":
    main()
