"""Thread settings for small models on few cores: one training with N threads against N single-threaded
trainings side by side (what egs/ljspeech/local/cpu_study.sh does), in training utterances per second.

    python bench/bench_threads.py --data-dir egs/ljspeech/study/data_m16 --dump-dir egs/ljspeech/study/dump_m16
    python bench/bench_threads.py ... --system hold3 --steps 60 --batch 8

Each configuration runs `holdtts train` (conf/<system>.yaml + conf/tiny.yaml) for --steps steps in fresh
temporary experiment directories and reads utts_per_second from train_summary.json (start-up excluded).
Run it on an otherwise idle machine. Prints a table; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "egs" / "ljspeech" / "conf"


def launch(exp: Path, args, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "holdtts.cli", "train", "--config", str(CONF / f"{args.system}.yaml"),
           "--config", str(CONF / "tiny.yaml"), "--set", f"train.max_steps={args.steps}", "--set",
           "train.max_epochs=0", "--set", f"train.batch_size={args.batch}", "--set", "train.sample_every=0",
           "--set", f"train.checkpoint_every={args.steps}", "--set", f"train.valid_every={args.steps}",
           "--exp-dir", str(exp), "--data-dir", args.data_dir, "--dump-dir", args.dump_dir, "--device", "cpu",
           "--no-progress"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run(args, processes: int, threads: int) -> tuple[float, float]:
    """Aggregate utterances/s over the processes, and the wall time of the slowest."""
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        procs = [launch(Path(tmp) / f"run{i}", args, threads) for i in range(processes)]
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                sys.exit(f"holdtts train failed:\n{err.decode()[-2000:]}")
        wall = time.perf_counter() - began
        total = sum(json.loads((Path(tmp) / f"run{i}" / "train_summary.json").read_text())["utts_per_second"]
                    for i in range(processes))
    return total, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--dump-dir", required=True)
    parser.add_argument("--system", default="vp")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    print(f"{args.system} tiny, batch {args.batch}, {args.steps} steps per run, {args.cores} cores")
    print("processes x threads | utterances/s (all processes) | wall s")
    for processes, threads in ((1, 1), (1, args.cores), (args.cores, 1)):
        total, wall = run(args, processes, threads)
        print(f"{processes} x {threads} | {total:.1f} | {wall:.1f}")


if __name__ == "__main__":
    main()
