#!/usr/bin/env python
"""The HOLD++ training study: what makes orders 3 and 4 train well on mels.

Trains one system per variant (a base config plus overrides) on the recipe's members, then scores each
on the non-member test sentences with mels only (no vocoder in the way): the Frechet distance between the
log-mel frames of the synthesized and the real sentences (n = frames), the mel-cepstral distortion after
DTW, and the final validation loss terms. It writes results.tsv, loss curves (loss_curves.png) and a
markdown table (results.md) to --out-dir; docs/hold_training.md reports a run of it.

    cd egs/ljspeech
    python local/hold_training_study.py --out-dir exp/hold_study --size tiny --steps 600
    python local/hold_training_study.py --out-dir exp/hold_study --size full --steps 20000 --device cuda

Run the recipe's stages 0-2 first (data/ and dump/ must exist).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from holdtts.config import load_config
from holdtts.data.dataset import FeatureStore, load_split
from holdtts.data.tables import read_table
from holdtts.models.loading import encode_texts, load_model
from holdtts.quality.frechet import frechet_logmel
from holdtts.quality.mcd import mcd_dtw
from holdtts.training.trainer import Trainer
from holdtts.utils.fileio import write_json_atomic, write_text_atomic

# name -> (base config, overrides). The levers THEORY.md names: horizon, loss weighting over t, the
# scaling of the auxiliary blocks (input_scaling), the initial auxiliary variance factor beta.
VARIANTS = {
    "vp": ("vp", []),
    "hold2": ("hold2", []),
    "hold3": ("hold3", []),
    "hold3_unscaled": ("hold3", ["decoder.input_scaling=none"]),
    "hold3_score_weight": ("hold3", ["loss.weighting=score"]),
    "hold3_beta0.5": ("hold3", ["process.beta=0.5"]),
    "hold3_beta2": ("hold3", ["process.beta=2.0"]),
    "hold3_T3": ("hold3", ["process.horizon=3.0"]),
    "hold3_T8": ("hold3", ["process.horizon=8.0"]),
    "hold4": ("hold4", []),
    "hold4_unscaled": ("hold4", ["decoder.input_scaling=none"]),
}


@torch.no_grad()
def score(model, data: Path, dump: Path, utts: list[str], sampler: str, steps: int, seed: int, device: str) -> dict:
    store = FeatureStore(dump)
    texts = read_table(data / "test" / "text")
    generated, real, mcds = [], [], []
    for start in range(0, len(utts), 16):
        chunk = utts[start:start + 16]
        tokens, lengths = encode_texts(model, [texts[u] for u in chunk])
        generator = torch.Generator(device=device).manual_seed(seed + start)
        mels, frames = model.synthesize(tokens, lengths, steps=steps, sampler=sampler, generator=generator)
        for i, utt in enumerate(chunk):
            mel = mels[i, :, : int(frames[i])].float().cpu().numpy()
            ref = store.mel(utt)
            generated.append(mel)
            real.append(ref)
            mcds.append(mcd_dtw(mel, ref).mcd)
    fd = frechet_logmel(generated, real)
    return {"fd_logmel": fd.value, "fd_n_generated": fd.n_a, "fd_n_real": fd.n_b, "mcd": float(np.mean(mcds)),
            "mcd_n": len(mcds)}


def plot_curves(out: Path, names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for name in names:
        rows = [json.loads(line) for line in (out / name / "train_log.jsonl").read_text().splitlines()]
        train = [(r["step"], r["train/loss_diffusion"]) for r in rows if "train/loss_diffusion" in r]
        valid = [(r["step"], r["valid/loss_diffusion"]) for r in rows if "valid/loss_diffusion" in r]
        if train:
            axes[0].plot(*zip(*train), label=name, lw=1)
        if valid:
            axes[1].plot(*zip(*valid), label=name, marker="o", ms=3, lw=1)
    for ax, title in zip(axes, ("train diffusion loss", "validation diffusion loss (EMA weights)")):
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.set_yscale("log")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "loss_curves.png", dpi=120)
    plt.close(fig)


def write_results(out: Path, args, results: list[dict]) -> None:
    """results.tsv, results.md and study.json of the rows so far (rewritten after every variant, so an
    interrupted study keeps what it finished)."""
    columns = list(results[0])
    write_text_atomic(out / "results.tsv", "\t".join(columns) + "\n" + "".join(
        "\t".join(str(r[c]) for c in columns) + "\n" for r in results))
    table = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in results:
        table.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c])
                                       for c in columns) + " |")
    write_text_atomic(out / "results.md", "\n".join(table) + "\n")
    write_json_atomic(out / "study.json", {"args": {k: str(v) for k, v in vars(args).items()}, "results": results})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--dump-dir", type=Path, default=Path("dump"))
    parser.add_argument("--conf-dir", type=Path, default=Path("conf"))
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--steps", type=int, default=600, help="training steps per variant")
    parser.add_argument("--synthesis-steps", type=int, default=30)
    parser.add_argument("--samplers", default="config,splitting",
                        help="samplers to score each variant with ('config': the variant's own)")
    parser.add_argument("--test-utts", type=int, default=32)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    utts = load_split(args.data_dir, "test")[: args.test_utts]
    results = []
    for name in names:
        base, overrides = VARIANTS[name]
        files = [args.conf_dir / f"{base}.yaml"] + ([args.conf_dir / "tiny.yaml"] if args.size == "tiny" else [])
        every = max(1, args.steps // 10)
        cfg = load_config(files, [*overrides, f"train.max_steps={args.steps}", "train.max_epochs=0",
                                  f"train.valid_every={every}", f"train.checkpoint_every={every}",
                                  "train.sample_every=0", f"train.seed={args.seed}", f"name={name}"])
        summary = Trainer(cfg, args.out_dir / name, args.data_dir, args.dump_dir, device=args.device,
                          progress_bar=False).run()
        rows = [json.loads(line) for line in (args.out_dir / name / "train_log.jsonl").read_text().splitlines()]
        valid = [r for r in rows if "valid/loss_diffusion" in r][-1]
        model = load_model(args.out_dir / name, device=args.device)
        samplers = dict.fromkeys(cfg.synthesis.sampler if s == "config" else s for s in args.samplers.split(","))
        for sampler in samplers:
            started = time.perf_counter()
            quality = score(model, args.data_dir, args.dump_dir, utts, sampler, args.synthesis_steps, args.seed,
                            args.device)
            results.append({"variant": name, "base": base, "overrides": " ".join(overrides) or "-",
                            "sampler": sampler, "own_sampler": int(sampler == cfg.synthesis.sampler),
                            "steps": summary["step"], "valid_diffusion": valid["valid/loss_diffusion"],
                            "valid_prior": valid["valid/loss_prior"], **quality,
                            "train_seconds": summary["train_seconds"],
                            "score_seconds": round(time.perf_counter() - started, 1)})
            print(json.dumps(results[-1]), flush=True)
        write_results(args.out_dir, args, results)
    plot_curves(args.out_dir, names)


if __name__ == "__main__":
    main()
