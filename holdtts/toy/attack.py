"""Attacking a toy model with the speech models' attack code (holdtts.privacy.attacks), unchanged.

Each point becomes an AttackInputs whose segment holds x0 = the point as a [2, 1] "mel", mu = 0 and
mask = 1; text-side attacks (duration, prior) do not apply and black-box ones need a synthesizer.
Scores come out as rows in holdtts.privacy.metrics's format, with point ids as utt_id.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from holdtts.models.tts import Segment
from holdtts.privacy.attacks import AttackInputs, NoiseSource, get_attack
from holdtts.privacy.metrics import format_t

# every white-box decoder attack of holdtts.privacy.attacks (the *_mc ones apply to order >= 2 only)
TOY_ATTACKS = ("loss", "secmi", "pia", "pian", "sima", "pia_mc", "sima_mc", "secmi_mc")


def toy_inputs(ids: Sequence[str], points: torch.Tensor) -> AttackInputs:
    """The attack inputs of points [B, 2]: x0 [B, 2, 1], mu zeros, mask ones [B, 1, 1]."""
    x0 = points.float().unsqueeze(-1)
    batch = x0.shape[0]
    mask = torch.ones(batch, 1, 1)
    return AttackInputs(list(ids), tokens=torch.zeros(batch, 0, dtype=torch.long),
                        token_lengths=torch.zeros(batch, dtype=torch.long), mels=x0,
                        mel_lengths=torch.ones(batch, dtype=torch.long), alignment=None,
                        segment=Segment(x0, torch.zeros_like(x0), mask))


@torch.no_grad()
def attack_rows(model, members: torch.Tensor, member_ids: Sequence[str], nonmembers: torch.Tensor,
                nonmember_ids: Sequence[str], attacks: Sequence[str] = TOY_ATTACKS,
                t_grids: dict[str, Sequence[float]] | None = None, params: dict[str, dict] | None = None,
                seed: int = 1234, batch_size: int = 1024) -> tuple[list[dict], list[str]]:
    """Score every (point, attack, t) as holdtts.privacy.runner does for utterances: each attack's default
    t grid (or `t_grids`), noise from a NoiseSource keyed by (seed, point, attack|t). Returns (rows,
    attacks run); attacks that do not apply to the model's order are left out."""
    model.eval()
    chosen = []
    for name in attacks:
        attack = get_attack(name)
        if attack.applies_to(model):
            grid = tuple(t_grids[name]) if t_grids and name in t_grids else attack.grid()
            chosen.append((attack, grid))
    labelled = [(i, 1, p) for i, p in zip(member_ids, members)] + [(i, 0, p) for i, p in zip(nonmember_ids,
                                                                                           nonmembers)]
    rows = []
    for start in range(0, len(labelled), batch_size):
        chunk = labelled[start:start + batch_size]
        ids = [i for i, _, _ in chunk]
        inputs = toy_inputs(ids, torch.stack([p for _, _, p in chunk]))
        for attack, grid in chosen:
            for t in grid:
                noise = NoiseSource(seed, ids, f"{attack.name}|{format_t(t)}", torch.device("cpu"))
                scores = attack(model, inputs, t, noise, **(params or {}).get(attack.name, {}))
                for (pid, member, _), score in zip(chunk, scores.float().tolist()):
                    rows.append({"utt_id": pid, "member": member, "attack": attack.name, "t": format_t(t),
                                 "score": score})
    rows.sort(key=lambda r: (r["attack"], float("-inf") if r["t"] == "-" else float(r["t"]), r["utt_id"]))
    return rows, [attack.name for attack, _ in chosen]
