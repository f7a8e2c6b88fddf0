"""What the held-out statistics do on rows with no membership signal (and with some), against the in-sample
maximum the published attacks report. Simulated rows files (holdtts.privacy.simulate), the default grids.

    python bench/bench_statistics.py                       # 200 rows files per setting
    python bench/bench_statistics.py --runs 1000 --bootstrap 0

Prints a table (docs/statistics.md quotes it); asserts nothing.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from holdtts.privacy.simulate import ORDER1_GRID, ORDER_N_GRID, simulated_rows
from holdtts.privacy.statistics import ScoreTable, leakage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--bootstrap", type=int, default=100, help="0: no intervals (faster)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
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
