"""The toy data: a 2-D Swiss roll, members, non-members and held-out points from one seeded draw.

All three sets come from the same distribution (one draw, shuffled and cut), so an attack can only tell
members from non-members through what the model learnt about the members themselves.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from holdtts.errors import ConfigError


def swiss_roll(count: int, noise: float, seed: int) -> np.ndarray:
    """[count, 2] float64 points: sklearn's 3-D Swiss roll projected onto its (x, z) plane (the spiral).

    Raw units: the spiral's radius runs from 1.5 pi to 4.5 pi; `noise` is the std of the Gaussian noise
    sklearn adds to every coordinate, in those units.
    """
    from sklearn.datasets import make_swiss_roll

    points, _ = make_swiss_roll(count, noise=noise, random_state=seed)
    return points[:, [0, 2]]


@dataclass
class ToyData:
    """Standardised points (one shift per axis, one scale for both, so the spiral keeps its shape).

    `members` train the models; `nonmembers` are the attack's negatives; `heldout` is the reference
    for sample quality (never trained on, never attacked).
    """

    members: torch.Tensor  # [M, 2] float32
    nonmembers: torch.Tensor  # [N, 2]
    heldout: torch.Tensor  # [H, 2]
    member_ids: list[str]
    nonmember_ids: list[str]
    shift: list[float]
    scale: float

    @property
    def data_var(self) -> float:
        """The members' per-coordinate variance (what the network's input scaling assumes)."""
        return float(self.members.var(0, unbiased=True).mean())


def make_toy_data(members: int, nonmembers: int, heldout: int, noise: float = 0.5, seed: int = 0) -> ToyData:
    """Draw members + nonmembers + heldout points at once, shuffle, cut. Point ids are `pt00000`, ...
    in draw order, so an id names the same point whatever the split sizes."""
    for name, value in (("members", members), ("nonmembers", nonmembers), ("heldout points", heldout)):
        if value < 2:
            raise ConfigError(f"the toy study needs at least 2 {name}, got {value}")
    if noise < 0:
        raise ConfigError(f"swiss-roll noise must be >= 0, got {noise}")
    total = members + nonmembers + heldout
    raw = swiss_roll(total, noise, seed)
    shift = raw.mean(0)
    scale = float(raw.std(0).mean())
    points = (raw - shift) / scale
    order = np.random.default_rng([seed, 1]).permutation(total)
    ids = [f"pt{i:05d}" for i in range(total)]
    cut_m, cut_n = members, members + nonmembers

    def take(index):
        return torch.from_numpy(points[index]).float(), [ids[i] for i in index]

    m, m_ids = take(order[:cut_m])
    n, n_ids = take(order[cut_m:cut_n])
    h, _ = take(order[cut_n:])
    return ToyData(m, n, h, m_ids, n_ids, [float(s) for s in shift], scale)
