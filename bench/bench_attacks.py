"""Attack throughput: utterances per second for each attack at its default t grid (one row per attack and
per t), on a randomly initialised model of the published size (or the tiny one), 2-second crops of
LJSpeech-like utterances. Throughput does not depend on the weights, so no training is needed.

    python bench/bench_attacks.py                          # CUDA when present, else CPU
    python bench/bench_attacks.py --device cpu --size tiny --utts 16
    python bench/bench_attacks.py --orders 1,3 --attacks loss,pia,secmi

Prints a table; asserts nothing about time.
"""
from __future__ import annotations

import argparse
import time

import torch

from holdtts.models.tts import Alignment, GradTTS, Segment
from holdtts.privacy.attacks import DEFAULT_ATTACKS, AttackInputs, NoiseSource, get_attack, load_plugins

from bench_training import N_VOCAB, ljspeech_batch, sync, system_config


@torch.no_grad()
def inputs_for(model: GradTTS, utts: int, device) -> AttackInputs:
    batch = ljspeech_batch(utts, 2, device)
    alignment: Alignment = model.align(batch.tokens, batch.token_lengths, batch.mels, batch.mel_lengths)
    segment: Segment = model.crop(batch.mels, alignment, batch.crop_starts)
    return AttackInputs(batch.utt_ids, batch.tokens, batch.token_lengths, batch.mels, batch.mel_lengths,
                        alignment, segment)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--orders", default="1,3")
    parser.add_argument("--attacks", default=",".join(a for a in DEFAULT_ATTACKS))
    parser.add_argument("--utts", type=int, default=32, help="utterances per batch")
    args = parser.parse_args()
    device = torch.device(args.device)
    load_plugins()
    print(f"device {device}; size {args.size}; batch of {args.utts} utterances; torch {torch.__version__}")
    print(f"{'order':>5s} {'attack':10s} {'t':>6s} {'utts/s':>10s} {'ms/batch':>10s}")
    for order in (int(o) for o in args.orders.split(",")):
        model = GradTTS(system_config(order, args.size, "fp32"), N_VOCAB).to(device).eval()
        inputs = inputs_for(model, args.utts, device)
        for name in args.attacks.split(","):
            attack = get_attack(name)
            if not attack.applies_to(model) or not attack.white_box:
                continue
            for t in attack.grid():
                noise = NoiseSource(0, inputs.utt_ids, name, device)
                with torch.no_grad():
                    attack(model, inputs, t, noise)  # warm-up
                    sync(device)
                    start = time.perf_counter()
                    attack(model, inputs, t, noise)
                    sync(device)
                seconds = time.perf_counter() - start
                t_text = "-" if t is None else f"{t:g}"
                print(f"{order:5d} {name:10s} {t_text:>6s} {args.utts / seconds:10.1f} {seconds * 1000:10.1f}")
    print("utts/s: per attack and t; a full sweep costs the sum over its grid (SecMI grows with t)")


if __name__ == "__main__":
    main()
