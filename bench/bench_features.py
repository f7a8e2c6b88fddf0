"""Feature extraction throughput: clips per second for the mel transform alone and for the whole
`holdtts features` stage (decode + mels + tokens + writing), on the CPU and on CUDA when present.

    python bench/bench_features.py                    # a 64-clip mini corpus built in a temporary dir
    python bench/bench_features.py --clips 512 --nj 16
    python bench/bench_features.py --data-dir egs/ljspeech/data   # an existing prepared corpus

Prints a table; asserts nothing about time.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import holdtts
from holdtts.data.features import extract_features
from holdtts.data.tables import read_table


def build_corpus(root: Path, clips: int, nj: int) -> Path:
    from holdtts.data.minicorpus import make_mini_corpus
    from holdtts.data.splits import prepare_data_dir

    make_mini_corpus(root / "corpus", num_utts=clips, seed=0, nj=nj)
    prepare_data_dir(root / "corpus", root / "data", seed=0, nj=nj)
    return root / "data"


def mel_only(wavs: list[np.ndarray], device: torch.device, batch: int, repeats: int) -> float:
    """Clips/s of the batched mel transform on audio already in memory."""
    def run():
        for start in range(0, len(wavs), batch):
            chunk = wavs[start:start + batch]
            lengths = [len(w) for w in chunk]
            padded = torch.zeros(len(chunk), max(lengths))
            for i, w in enumerate(chunk):
                padded[i, : len(w)] = torch.from_numpy(w)
            mels, _ = holdtts.mel_spectrogram(padded.to(device), lengths=lengths)
            mels.cpu()
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return len(wavs) / statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="a prepared data dir (default: build a mini corpus)")
    parser.add_argument("--clips", type=int, default=64, help="mini corpus size when building one")
    parser.add_argument("--nj", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_features."))
    try:
        data = args.data_dir or build_corpus(tmp, args.clips, args.nj)
        wav_paths = read_table(data / "all" / "wav.scp")
        wavs = [sf.read(p, dtype="float32")[0] for p in wav_paths.values()]
        hours = sum(len(w) for w in wavs) / 22050 / 3600
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
        print(f"{len(wavs)} clips, {hours:.3f} h; nj {args.nj}; batch {args.batch}; torch {torch.__version__}")
        print(f"{'device':10s} {'mels only clips/s':>18s} {'stage clips/s':>14s} {'stage s':>8s} {'h audio / s':>12s}")
        for device in devices:
            rate = mel_only(wavs, device, args.batch, args.repeats)
            dump = tmp / f"dump_{device.type}"
            started = time.perf_counter()
            extract_features(data, dump, device=str(device), batch_size=args.batch, nj=args.nj)
            seconds = time.perf_counter() - started
            print(f"{device.type:10s} {rate:18.1f} {len(wavs) / seconds:14.1f} {seconds:8.2f} "
                  f"{hours / seconds:12.4f}")
            shutil.rmtree(dump)
        print("stage: `holdtts features` end to end (decode, mels, tokens, writing), first run of the process")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
