"""Vocoding speed of HiFi-GAN V1/V2/V3 and Griffin-Lim on holdtts mels.

Two numbers per vocoder and device: the real-time factor at batch 1 (seconds of compute per second of
audio; below 1 is faster than real time) and the throughput at batch 32 (seconds of audio vocoded per
second). Generators are randomly initialised (speed does not depend on the weights), weight norm folded
as for inference, float32, under torch.inference_mode; one warm-up call, then the median of --repeats.
Anchors from the paper (batch 1): V1 167.9x faster than real time (RTF 0.006) on a V100 GPU; its
fastest version 13.4x faster than real time (RTF 0.075) on a CPU.

    python bench/bench_vocoder.py [--device cpu|cuda|all] [--seconds 2] [--repeats 3] [--batch-size 32]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from holdtts.vocoder.griffin_lim import GriffinLimVocoder
from holdtts.vocoder.hifigan import GENERATOR_PRESETS, HifiGanGenerator, HifiGanVocoder

SAMPLE_RATE, HOP = 22050, 256


def make_vocoders() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    vocoders = {f"hifigan-{name}": HifiGanVocoder(HifiGanGenerator(cfg), f"hifigan-{name}")
                for name, cfg in GENERATOR_PRESETS.items()}
    vocoders["griffin-lim (60 it.)"] = GriffinLimVocoder()
    return vocoders


def time_call(vocoder, mels: torch.Tensor, repeats: int) -> list[float]:
    def sync():
        if mels.device.type == "cuda":
            torch.cuda.synchronize(mels.device)

    with torch.inference_mode():
        vocoder(mels)  # warm-up (cuDNN algorithm choice, allocator)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            vocoder(mels)
            sync()
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="all",
                        help="cpu, cuda, cuda:N, or all (the CPU, and CUDA when present)")
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per item")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="batch of the throughput column")
    args = parser.parse_args()
    if args.device == "all":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [args.device]

    frames = max(1, round(args.seconds * SAMPLE_RATE / HOP))
    audio_seconds = frames * HOP / SAMPLE_RATE
    print(f"{audio_seconds:.2f} s of audio per item ({frames} frames), median of {args.repeats} runs; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if "cuda" in " ".join(devices) else ""))
    print(f"{'vocoder':<22}{'device':<8}{'params (M)':>11}{'batch-1 ms':>12}{'batch-1 RTF':>13}"
          f"{'batch-' + str(args.batch_size) + ' ms':>14}{'audio s / s':>13}")
    for name, vocoder in make_vocoders().items():
        params = sum(p.numel() for p in vocoder.parameters()) / 1e6
        for device in devices:
            vocoder = vocoder.to(device)
            gen = torch.Generator().manual_seed(0)
            single = (torch.randn(1, 80, frames, generator=gen) - 5).to(device)
            batch = (torch.randn(args.batch_size, 80, frames, generator=gen) - 5).to(device)
            one = statistics.median(time_call(vocoder, single, args.repeats))
            many = statistics.median(time_call(vocoder, batch, args.repeats))
            print(f"{name:<22}{device:<8}{params:>11.2f}{1000 * one:>12.1f}{one / audio_seconds:>13.4f}"
                  f"{1000 * many:>14.1f}{args.batch_size * audio_seconds / many:>13.1f}", flush=True)


if __name__ == "__main__":
    main()
