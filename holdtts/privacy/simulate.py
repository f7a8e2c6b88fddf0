"""Rows files with a known membership signal (none, by default): what the statistics are checked against.

The grid mimics a real attack run: every attack sweeps a few t values whose scores are correlated (they are
one statistic at neighbouring times), and the text-side attacks have no t.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# The default grid of an order-1 model (27 cells): loss 6 t, secmi 4, pia 5, pian 5, sima 5, duration, prior.
ORDER1_GRID = {"loss": 6, "secmi": 4, "pia": 5, "pian": 5, "sima": 5, "duration": 1, "prior": 1}
# Order >= 2 adds the Monte-Carlo variants (41 cells).
ORDER_N_GRID = {**ORDER1_GRID, "pia_mc": 5, "sima_mc": 5, "secmi_mc": 4}


def simulated_rows(rng: np.random.Generator, members: int = 32, nonmembers: int = 32, signal: float = 0.0,
                   grid: dict[str, int] = ORDER1_GRID, correlation: float = 0.7,
                   leaking: Iterable[str] = ("pia",)) -> list[dict]:
    """Rows (ROW_FIELDS) for `members` + `nonmembers` utterances; cells of one attack share a fraction
    `correlation` of their variance. `signal` shifts the members' scores of the `leaking` attacks (in
    standard deviations); 0 means no membership signal anywhere."""
    leaking = set(leaking)
    n = members + nonmembers
    labels = np.array([1] * members + [0] * nonmembers)
    utts = [f"u{i:04d}" for i in range(n)]
    rows = []
    for attack, count in grid.items():
        common = rng.normal(size=n)
        for k in range(count):
            score = np.sqrt(correlation) * common + np.sqrt(1 - correlation) * rng.normal(size=n)
            if attack in leaking:
                score = score + signal * labels
            t = "-" if count == 1 else f"{0.05 * (k + 1):g}"
            rows += [{"utt_id": u, "member": int(m), "attack": attack, "t": t, "score": float(s)}
                     for u, m, s in zip(utts, labels, score)]
    return rows
