"""Cost of a HiFi-GAN training step (V1, V2, V3 generators with the paper's discriminators; the demo's tiny
one), and the budget that follows: how many steps an hour buys and how long the paper's schedule would take.

Each step is VocoderTrainer.train_step itself (a discriminator update, then a generator update with
adversarial, feature-matching and mel losses), on segments of random clips written to a scratch data
directory (speed does not depend on the audio). One warm-up step, then the median of --repeats.
Anchor: the paper trained every generator for 2.5M steps at batch 16 (segments of 8192 samples) on a GPU;
the last column is that schedule's time at the measured speed.

    python bench/bench_vocoder_training.py [--presets v1,v2,v3,tiny] [--batch 16] [--segment 8192]
                                           [--repeats 2] [--threads N] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from holdtts.training.vocoder import VocoderTrainer, load_vocoder_config
from holdtts.vocoder.hifigan import GENERATOR_PRESETS

CONF = Path(__file__).resolve().parents[1] / "egs" / "ljspeech" / "conf"
PAPER_STEPS = 2_500_000
SAMPLE_RATE = 22050


def config(preset: str, batch: int, segment: int):
    """vocoder_v1.yaml with the preset's generator (the paper's discriminators for V1-V3), or the tiny
    layer; never validated on clips, never checkpointed during the bench."""
    paths = [CONF / "vocoder_v1.yaml"] + ([CONF / "vocoder_tiny.yaml"] if preset == "tiny" else [])
    overrides = [f"train.batch_size={batch}", f"data.segment_size={segment}", "data.valid_clips=0",
                 "train.max_steps=1", "train.checkpoint_every=0"]
    cfg = load_vocoder_config(paths, overrides)
    if preset != "tiny":
        cfg.generator = GENERATOR_PRESETS[preset]
    return cfg


def scratch_data(root: Path, clips: int, seconds: float) -> Path:
    data = root / "data"
    (data / "members").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(clips):
        path = root / f"clip{i:03d}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32), SAMPLE_RATE)
        lines.append(f"clip{i:03d} {path}\n")
    (data / "members" / "wav.scp").write_text("".join(lines))
    return data


def time_steps(preset: str, batch: int, segment: int, repeats: int, device: str, root: Path):
    cfg = config(preset, batch, segment)
    data = scratch_data(root / preset, batch, seconds=max(1.0, 2 * segment / SAMPLE_RATE))
    trainer = VocoderTrainer(cfg, root / preset / "exp", data, device=device, progress_bar=False)
    trainer.setup()
    try:
        audio = trainer.batches.batch(0, 0, list(range(batch)))
        trainer.train_step(audio)  # warm-up
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            trainer.train_step(audio)
            if trainer.device.type == "cuda":
                torch.cuda.synchronize(trainer.device)
            times.append(time.perf_counter() - start)
        params = (sum(p.numel() for p in trainer.generator.parameters()) / 1e6,
                  sum(p.numel() for p in trainer.discriminator.parameters()) / 1e6)
    finally:
        trainer.lock.release()
    return statistics.median(times), params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="v1,v2,v3,tiny")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--segment", type=int, default=8192, help="samples per segment (a multiple of 256)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"batch {args.batch} x {args.segment} samples, median of {args.repeats} steps after one warm-up; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {args.device}")
    print(f"{'preset':<8}{'G params (M)':>13}{'D params (M)':>13}{'s / step':>10}{'steps / hour':>14}"
          f"{'2.5M steps (days)':>19}")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            seconds, (g, d) = time_steps(preset, args.batch, args.segment, args.repeats, args.device, Path(tmp))
            print(f"{preset:<8}{g:>13.2f}{d:>13.2f}{seconds:>10.2f}{3600 / seconds:>14.0f}"
                  f"{PAPER_STEPS * seconds / 86400:>19.1f}", flush=True)


if __name__ == "__main__":
    main()
