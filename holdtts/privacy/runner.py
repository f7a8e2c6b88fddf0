"""Run attacks on a trained model: members vs non-members from the splits, batched, rows + metrics.

Multi-speaker data (utt2spk in the data directory): every row carries its utterance's speaker, so the
speaker-level analysis recomputes from rows.tsv alone, and a multi-speaker model is asked under a speaker
condition (`speaker_condition`, docs/speakers.md):
  own   each utterance under its own speaker's row (the utterance protocol: every speaker was trained);
  mean  every utterance under the model's mean voice, the mean of its trained rows (the speaker protocol's
        default: non-member speakers have no row, and the condition must not tell members by itself).
"""
from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from holdtts.data.dataset import FeatureStore, collate, load_split
from holdtts.data.speakers import read_utt2spk
from holdtts.errors import ConfigError, HoldttsError
from holdtts.privacy.attacks import AttackInputs, NoiseSource, get_attack
from holdtts.privacy.metrics import compute_metrics, format_t, write_rows
from holdtts.utils.fileio import ensure_dir, write_json_atomic

log = logging.getLogger(__name__)

SPEAKER_CONDITIONS = ("own", "mean")


@dataclass
class AttackTarget:
    """Who the attacker tests: the model's own training split against utterances never trained on.
    Multi-speaker data adds each utterance's speaker and the membership protocol of splits.json."""

    members: list[str]
    nonmembers: list[str]
    speakers: dict[str, str] | None = None  # utterance -> speaker id (utt2spk), for multi-speaker data
    protocol: str | None = None  # "utterance" or "speaker" (splits.json), None for single-speaker data

    @staticmethod
    def from_splits(data_dir: str | Path, member_split: str, nonmember_split: str = "nonmembers",
                    max_utts: int | None = None, seed: int = 0) -> AttackTarget:
        members = load_split(data_dir, member_split)
        nonmembers = load_split(data_dir, nonmember_split)
        overlap = set(members) & set(nonmembers)
        if overlap:
            raise HoldttsError(f"splits '{member_split}' and '{nonmember_split}' share {len(overlap)} "
                               "utterances: the attack would be meaningless")
        target = AttackTarget(_subsample(members, max_utts, seed), _subsample(nonmembers, max_utts, seed + 1))
        utt2spk = read_utt2spk(data_dir)
        if utt2spk is not None:
            missing = [u for u in target.members + target.nonmembers if u not in utt2spk]
            if missing:
                raise HoldttsError(f"{Path(data_dir) / 'utt2spk'}: {len(missing)} attacked utterance(s) have no "
                                   f"speaker, e.g. '{missing[0]}'")
            target.speakers = {u: utt2spk[u] for u in target.members + target.nonmembers}
            target.protocol = _protocol(data_dir)
        return target


def _protocol(data_dir: str | Path) -> str:
    """splits.json's membership protocol ("utterance" when there is no splits.json or it records none)."""
    from holdtts.data.splits import SPLITS_JSON, load_splits_meta, multi_speaker_protocol

    if not (Path(data_dir) / SPLITS_JSON).is_file():
        return "utterance"
    return multi_speaker_protocol(load_splits_meta(data_dir)) or "utterance"


def default_speaker_condition(protocol: str | None) -> str:
    """The speaker protocol's non-members have no row of their own: every utterance gets the mean voice.
    Under the utterance protocol every attacked speaker was trained: each gets its own row."""
    return "mean" if protocol == "speaker" else "own"


def speaker_rows(model, target: AttackTarget, condition: str | None) -> tuple[dict[str, int] | None, str | None]:
    """(utterance -> speaker-table row, the condition used) for a multi-speaker model; (None, None) for a
    single-speaker one. "own" refuses a speaker the model has no row for."""
    from holdtts.models.tts import MEAN_SPEAKER

    if getattr(model, "n_speakers", 1) == 1:
        if condition is not None:
            raise ConfigError(f"speaker condition '{condition}': this is a single-speaker model")
        return None, None
    condition = condition or default_speaker_condition(target.protocol)
    if condition not in SPEAKER_CONDITIONS:
        raise ConfigError(f"unknown speaker condition {condition!r} (known: {', '.join(SPEAKER_CONDITIONS)})")
    if target.speakers is None:
        raise HoldttsError("a multi-speaker model needs each attacked utterance's speaker: the data directory "
                           "has no utt2spk")
    utts = target.members + target.nonmembers
    if condition == "mean":
        return dict.fromkeys(utts, MEAN_SPEAKER), condition
    known = {s: i for i, s in enumerate(model.speaker_ids or [])}
    unseen = sorted({target.speakers[u] for u in utts} - set(known))
    if unseen:
        raise HoldttsError(f"speaker condition 'own': {len(unseen)} attacked speaker(s) have no row in the model's "
                           f"speaker table, e.g. '{unseen[0]}' (speaker-level non-members): use the mean condition")
    return {u: known[target.speakers[u]] for u in utts}, condition


def _subsample(utts: list[str], count: int | None, seed: int) -> list[str]:
    if count is None or count >= len(utts):
        return list(utts)
    picked = np.random.default_rng(seed).permutation(len(utts))[:count]
    return sorted(utts[i] for i in picked)


def _crop_starts(store: FeatureStore, utts: Sequence[str], segment_frames: int, seed: int) -> torch.Tensor:
    """A seeded crop start per utterance, a function of (seed, utterance) only."""
    starts = []
    for utt in utts:
        span = max(0, store.num_frames(utt) - segment_frames)
        starts.append(int(np.random.default_rng([seed, zlib.crc32(utt.encode())]).integers(0, span + 1)))
    return torch.tensor(starts)


@torch.no_grad()
def prepare_inputs(model, store: FeatureStore, utts: Sequence[str], seed: int,
                   device: torch.device, white_box: bool = True,
                   speakers: dict[str, int] | None = None) -> AttackInputs:
    """The published evaluation: encoder mu aligned to the real mel by MAS, a seeded 2-second crop.
    Without `white_box` only the texts and the real mels (black-box attacks need no more). `speakers`:
    each utterance's speaker condition (a row of a multi-speaker model's table, or MEAN_SPEAKER)."""
    batch = collate(store, utts, model.segment_frames, speakers=speakers)
    batch.crop_starts = _crop_starts(store, utts, model.segment_frames, seed)
    batch = batch.to(device)
    alignment = segment = None
    if white_box:
        if batch.speakers is None:
            alignment = model.align(batch.tokens, batch.token_lengths, batch.mels, batch.mel_lengths)
        else:
            alignment = model.align(batch.tokens, batch.token_lengths, batch.mels, batch.mel_lengths,
                                    batch.speakers)
        segment = model.crop(batch.mels, alignment, batch.crop_starts)
    return AttackInputs(list(utts), batch.tokens, batch.token_lengths, batch.mels, batch.mel_lengths,
                        alignment, segment, batch.speakers)


@torch.no_grad()
def run_attacks(model, store: FeatureStore, target: AttackTarget, attacks: Sequence[str],
                t_grids: dict[str, Sequence[float]] | None = None, batch_size: int = 32, seed: int = 1234,
                params: dict[str, dict] | None = None, progress: bool = False,
                speaker_condition: str | None = None) -> tuple[list[dict], dict]:
    """Score every (utterance, attack, t). Returns (rows, info): rows carry ROW_FIELDS (and the speaker, for
    multi-speaker data); info holds the grids and parameters actually used, the speaker condition and the
    time each attack took. `speaker_condition` ("own" or "mean"; default by the target's protocol) applies
    to multi-speaker models."""
    device = next(model.parameters()).device
    model.eval()
    rows_of, condition = speaker_rows(model, target, speaker_condition)
    chosen = []
    for name in attacks:
        attack = get_attack(name)
        if not attack.applies_to(model):
            why = ("a white-box attack; this model is a black box" if attack.white_box and not hasattr(model, "eps_hat")
                   else f"needs order >= {attack.min_order}, the model has order {model.process.order}")
            log.info("attack %s skipped: %s", name, why)
            continue
        grid = tuple(t_grids[name]) if t_grids and name in t_grids else attack.grid()
        chosen.append((attack, grid))
    if not chosen:
        hint = "" if hasattr(model, "eps_hat") else " (it exposes only synthesis: use a black-box attack)"
        raise HoldttsError("none of the requested attacks applies to this model" + hint)
    labelled = [(u, 1) for u in target.members] + [(u, 0) for u in target.nonmembers]
    store.check_utts([u for u, _ in labelled], "the attack's member/non-member lists")
    # batches of similar length: less padding in the alignment search
    labelled.sort(key=lambda x: store.num_frames(x[0]))
    rows: list[dict] = []
    seconds = {attack.name: 0.0 for attack, _ in chosen}
    notes: dict[str, dict[str, list[str]]] = {}  # key -> attack (and t) -> utterances (Attack.score)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(labelled), unit="utt", desc="attacks")
    for start in range(0, len(labelled), batch_size):
        chunk = labelled[start:start + batch_size]
        utts = [u for u, _ in chunk]
        inputs = prepare_inputs(model, store, utts, seed, device, any(attack.white_box for attack, _ in chosen),
                                rows_of)
        for attack, grid in chosen:
            began = time.perf_counter()
            for t in grid:
                noise = NoiseSource(seed, utts, f"{attack.name}|{format_t(t)}", device)
                scores, found = attack.score(model, inputs, t, noise, **(params or {}).get(attack.name, {}))
                for key, utts_noted in found.items():
                    cell = attack.name if t is None else f"{attack.name}|{format_t(t)}"
                    notes.setdefault(key, {}).setdefault(cell, []).extend(utts_noted)
                scores = scores.float().cpu().tolist()
                for (utt, member), score in zip(chunk, scores):
                    row = {"utt_id": utt, "member": member, "attack": attack.name, "t": format_t(t), "score": score}
                    if target.speakers is not None:
                        row["speaker"] = target.speakers[utt]
                    rows.append(row)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds[attack.name] += time.perf_counter() - began
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    rows.sort(key=lambda r: (r["attack"], float("-inf") if r["t"] == "-" else float(r["t"]), r["utt_id"]))
    info = {
        "timing": {name: {"seconds": round(s, 3), "utts_per_second": round(len(labelled) / max(s, 1e-9), 2)}
                   for name, s in seconds.items()},
        "t_grids": {attack.name: [format_t(t) for t in grid] for attack, grid in chosen},
        "params": {attack.name: {**attack.params, **(params or {}).get(attack.name, {})} for attack, _ in chosen},
    }
    if notes:
        info["notes"] = {key: {cell: sorted(utts) for cell, utts in cells.items()} for key, cells in notes.items()}
    if target.speakers is not None:
        info["protocol"] = target.protocol
        info["num_speakers"] = len(set(target.speakers.values()))
    if condition is not None:
        info["speaker_condition"] = condition
    return rows, info


def attack_experiment(model, store: FeatureStore, target: AttackTarget, out_dir: str | Path,
                      attacks: Sequence[str], t_grids=None, batch_size: int = 32, seed: int = 1234,
                      bootstrap_samples: int = 1000, params=None, progress: bool = False,
                      meta: dict | None = None, speaker_condition: str | None = None) -> dict:
    """Run attacks and write <out_dir>/rows.tsv, metrics.json and attack.json (settings and timing)."""
    out_dir = ensure_dir(out_dir)
    rows, info = run_attacks(model, store, target, attacks, t_grids, batch_size, seed, params, progress,
                             speaker_condition)
    metrics = compute_metrics(rows, bootstrap_samples, seed)
    write_rows(out_dir / "rows.tsv", rows)
    write_json_atomic(out_dir / "metrics.json", metrics)
    write_json_atomic(out_dir / "attack.json", {
        **(meta or {}),
        "attacks": list(info["t_grids"]),
        "seed": seed,
        "batch_size": batch_size,
        "num_members": len(target.members),
        "num_nonmembers": len(target.nonmembers),
        "bootstrap_samples": bootstrap_samples,
        **info,
    })
    return metrics


def log_metrics_to_tensorboard(metrics: dict, log_dir: str | Path, step: int, prefix: str = "attack") -> None:
    """As TensorBoard scalars at the model's step: each attack's held-out AUROC (t picked on the calibration
    half, measured on the test half) and AUROC per t, the headline's held-out AUROC and its permutation p."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(log_dir))
    try:
        for name, result in metrics["attacks"].items():
            writer.add_scalar(f"{prefix}/{name}/auroc", metrics["heldout"][name]["auroc"], step)
            for t, entry in result["by_t"].items():
                if t != "-":
                    writer.add_scalar(f"{prefix}/{name}/auroc_t{t}", entry["auroc"], step)
        writer.add_scalar(f"{prefix}/headline_auroc", metrics["headline"]["auroc"], step)
        writer.add_scalar(f"{prefix}/headline_p_value", metrics["headline"]["p_value"], step)
    finally:
        writer.close()
