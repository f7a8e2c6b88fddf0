"""What the held-out statistics do on rows with no membership signal (and with some), against the in-sample
maximum the published attacks report. Simulated rows files (holdtts.privacy.simulate), the default grids.

    python bench/bench_statistics.py                       # 200 rows files per setting
    python bench/bench_statistics.py --runs 1000 --bootstrap 0
    python bench/bench_statistics.py --comparisons --runs 150   # paired system comparisons (statistics.compare)

--comparisons: how often statistics.compare calls two systems different (p < 0.05) when neither leaks, and
how often it calls a non-leaking system "lower" than a leaking baseline, by training seeds per side.

Prints a table (docs/statistics.md quotes it); asserts nothing.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from holdtts.privacy.simulate import ORDER1_GRID, ORDER_N_GRID, simulated_rows
from holdtts.privacy.statistics import ScoreTable, compare, leakage


def comparison_rates(runs: int, seed: int, samples: int = 500) -> None:
    """Two systems per run, `seeds` training seeds each (independent rows files): the fraction of runs whose
    comparison is resolved at p < 0.05 with no signal anywhere (should be about 0.05 or less), and with the
    baseline's pia cells shifted by 1.5 sd the fraction resolved "lower" for the other system (power)."""
    print(f"{runs} simulated pairs of systems per row; {samples} bootstrap samples; order-1 grid, corr 0.7")
    print(" | ".join(("members/non", "seeds per side", "null: resolved p<0.05", "signal 1.5: resolved lower",
                      "s/run")))
    for members, nonmembers in ((16, 16), (8, 128)):
        for seeds in (1, 2, 3):
            rng = np.random.default_rng(seed)
            null, power = [], []
            began = time.perf_counter()
            for run in range(runs):
                draw = [[ScoreTable.from_rows(simulated_rows(rng, members, nonmembers, signal)) for _ in range(seeds)]
                        for signal in (0.0, 0.0, 0.0, 1.5)]
                null.append(compare(draw[0], draw[1], samples=samples, seed=run)["p_value"] < 0.05)
                out = compare(draw[2], draw[3], samples=samples, seed=run)
                power.append(out["p_value"] < 0.05 and out["ci"][1] < 0)
            seconds = (time.perf_counter() - began) / runs
            print(" | ".join([f"{members}/{nonmembers}", str(seeds), f"{np.mean(null):.3f}", f"{np.mean(power):.3f}",
                              f"{seconds:.2f}"]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comparisons", action="store_true", help="the paired comparisons' rates instead")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--bootstrap", type=int, default=100, help="0: no intervals (faster)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.comparisons:
        comparison_rates(args.runs, args.seed)
        return
    print(f"{args.runs} simulated rows files per row; {args.permutations} permutations; "
          f"{args.bootstrap} bootstrap samples")
    header = ("grid", "members/non", "corr", "signal", "held-out mean", "held-out sd", "CI covers 0.5",
              "detected p<0.05", "in-sample max mean", "in-sample p95", "s/run")
    print(" | ".join(header))
    for grid_name, grid in (("order 1 (27 cells)", ORDER1_GRID), ("order n (41 cells)", ORDER_N_GRID)):
        for members, nonmembers, corr, signal in ((32, 32, 0.0, 0.0), (32, 32, 0.7, 0.0), (32, 128, 0.7, 0.0),
                                                   (32, 32, 0.7, 1.0)):
            rng = np.random.default_rng(args.seed)
            head, covers, detected, in_sample = [], [], [], []
            began = time.perf_counter()
            for _ in range(args.runs):
                rows = simulated_rows(rng, members, nonmembers, signal, grid, corr)
                result = leakage(ScoreTable.from_rows(rows), permutations=args.permutations,
                                 bootstrap_samples=args.bootstrap, seed=int(rng.integers(1 << 30)))
                h = result["headline"]
                head.append(h["auroc"])
                detected.append(h["p_value"] < 0.05)
                in_sample.append(result["in_sample_max"]["auroc"])
                if h["auroc_ci"] is not None:
                    covers.append(h["auroc_ci"][0] <= 0.5 <= h["auroc_ci"][1])
            seconds = (time.perf_counter() - began) / args.runs
            cover = f"{np.mean(covers):.3f}" if covers else "-"
            print(" | ".join([grid_name, f"{members}/{nonmembers}", f"{corr:g}", f"{signal:g}",
                              f"{np.mean(head):.3f}", f"{np.std(head):.3f}", cover, f"{np.mean(detected):.3f}",
                              f"{np.mean(in_sample):.3f}", f"{np.percentile(in_sample, 95):.3f}", f"{seconds:.2f}"]))


if __name__ == "__main__":
    main()
