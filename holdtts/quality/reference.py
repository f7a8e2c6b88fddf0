"""The reference (ceiling) rows and the sanity table: real recordings scored like a system.

`evaluate_reference` takes the test sentences systems are scored on (set A: the first N utterances of
the split) and as many other non-members (set B, never among A), and writes, each like a system's
evaluate/ directory (quality.json, quality.tsv):

    <out_dir>/real/      A's real recordings; set-level metrics against B (real against real)
    <out_dir>/vocoded/   A's real mels through the vocoder; set-level metrics against B, MCD against A
    <out_dir>/sanity/<condition>/   the sanity conditions (holdtts.quality.sanity), when asked for
    <out_dir>/sanity.json           the sanity table: each metric's value per condition, flags
    <out_dir>/reference.json        what was compared with what, and the sample sizes

Clip-level metrics (DNSMOS, WER, CER) score A's clips themselves; MCD compares each clip with A's real
recording of the same sentence (so the real row's MCD is 0 by construction).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from holdtts.data.dataset import FeatureStore, load_split
from holdtts.data.tables import read_table
from holdtts.errors import HoldttsError
from holdtts.quality import sanity
from holdtts.quality.audio import load_audio
from holdtts.quality.evaluate import evaluate_pairs, read_rows_tsv, write_rows_tsv, write_summary_json
from holdtts.utils.fileio import atomic_path, ensure_dir, read_json, refuse_overwrite, write_json_atomic


def split_reference_sets(data_dir: str | Path, split: str = "test", max_utts: int | None = None,
                         pool: str = "nonmembers") -> tuple[list[str], list[str]]:
    """(A, B): A the first max_utts utterances of `split` (what systems are scored on), B as many other
    utterances of `pool` (non-members), disjoint from A, taken from the end of the pool."""
    test = load_split(data_dir, split)
    a = test if max_utts is None else test[:max_utts]
    others = [u for u in load_split(data_dir, pool) if u not in set(a)]
    b = others[-len(a):] if len(others) >= len(a) else others
    if len(a) < 2 or len(b) < 2:
        raise HoldttsError(f"the reference row needs at least 2 test utterances and 2 other {pool} "
                           f"(got {len(a)} and {len(b)}); lower --max-utts to at most half the {pool}")
    return a, b


@torch.no_grad()
def vocode_mels(mels: dict[str, np.ndarray], vocoder, out_dir: Path, sample_rate: int) -> dict[str, Path]:
    """Each [n_mels, frames] log-mel through the vocoder, one at a time, as 16-bit wavs."""
    ensure_dir(out_dir)
    device = next(iter(vocoder.buffers()), torch.zeros(0)).device
    paths = {}
    for utt, mel in mels.items():
        batch = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None].to(device)
        frames = torch.tensor([mel.shape[1]])
        audio = vocoder(batch, frames) if getattr(vocoder, "supports_lengths", False) else vocoder(batch)
        wav = audio[0].float().cpu().numpy()
        path = out_dir / f"{utt}.wav"
        with atomic_path(path, suffix=".wav") as tmp:
            sf.write(tmp, np.clip(wav, -1, 1), sample_rate, subtype="PCM_16")
        paths[utt] = path
    return paths


def _write_wavs(wavs: dict[str, np.ndarray], out_dir: Path, sample_rate: int) -> dict[str, Path]:
    ensure_dir(out_dir)
    paths = {}
    for utt, wav in wavs.items():
        path = out_dir / f"{utt}.wav"
        with atomic_path(path, suffix=".wav") as tmp:
            sf.write(tmp, wav, sample_rate, subtype="PCM_16")
        paths[utt] = path
    return paths


def _score(out_dir: Path, pairs, texts, reference_set, metrics, device, cache_dir,
           extra: dict) -> tuple[list[dict], dict]:
    rows, summary = evaluate_pairs(pairs, texts, device=device, metrics=metrics, cache_dir=cache_dir,
                                   reference_set=reference_set)
    summary.update(extra)
    write_rows_tsv(out_dir / "quality.tsv", rows, overwrite=True)
    write_summary_json(out_dir / "quality.json", summary, overwrite=True)
    return rows, summary


def condition_dirs(out_dir: str | Path) -> dict[str, Path]:
    """Where `evaluate_reference` writes each sanity condition's quality.json and quality.tsv."""
    out_dir = Path(out_dir)
    return {c: out_dir / c if c in ("real", "vocoded") else out_dir / "sanity" / c for c in sanity.CONDITIONS}


def sanity_from_dir(out_dir: str | Path) -> dict:
    """The sanity table recomputed from the files an `evaluate --reference-only` run left (each condition's
    summary and per-utterance rows), as sanity.json holds it."""
    summaries, rows = {}, {}
    for condition, folder in condition_dirs(out_dir).items():
        if (folder / "quality.json").is_file():
            summaries[condition] = read_json(folder / "quality.json")
            rows[condition] = read_rows_tsv(folder / "quality.tsv")
    return sanity.sanity_table(summaries, rows)


def evaluate_reference(vocoder, data_dir: str | Path, dump_dir: str | Path, out_dir: str | Path,
                       metrics, split: str = "test", max_utts: int | None = None, device: str = "cpu",
                       overwrite: bool = False, cache_dir: str | Path | None = None,
                       with_sanity: bool = True) -> dict:
    """Write the reference rows (and the sanity table) under out_dir; return {row: summary}."""
    out_dir = Path(out_dir)
    refuse_overwrite(out_dir / "reference.json", overwrite, "reference results")
    set_a, set_b = split_reference_sets(data_dir, split, max_utts)
    tables = [Path(data_dir) / "nonmembers", Path(data_dir) / split]
    wav_scp = {k: v for folder in tables for k, v in read_table(folder / "wav.scp").items()}
    texts = {k: v for folder in tables for k, v in read_table(folder / "text").items()}
    real_a = {u: Path(wav_scp[u]) for u in set_a}
    real_b = [Path(wav_scp[u]) for u in set_b]
    store = FeatureStore(dump_dir)
    store.check_utts(set_a, Path(data_dir) / split)
    sample_rate = int(getattr(vocoder, "sample_rate", 22050))
    vocoder_name = getattr(vocoder, "name", str(vocoder))
    mels_a = {u: store.mel(u) for u in set_a}
    common = {"split": split, "vocoder": vocoder_name, "test_utterances": set_a, "reference_utterances": set_b,
              "model": None, "decoder_rtf": None}

    folders = condition_dirs(out_dir)
    rows: dict[str, list[dict]] = {}  # condition -> per-utterance rows: the sanity table's paired test
    summaries: dict[str, dict] = {}

    def score(condition: str, pairs, extra: dict) -> None:
        rows[condition], summaries[condition] = _score(ensure_dir(folders[condition]), pairs, texts, real_b,
                                                       metrics, device, cache_dir, {**common, **extra})

    score("real", {u: (real_a[u], real_a[u]) for u in set_a},
          {"reference": "real recordings; set-level metrics against other real non-member recordings", "row": "real"})
    vocoded = vocode_mels(mels_a, vocoder, folders["vocoded"] / "wavs", sample_rate)
    score("vocoded", {u: (vocoded[u], real_a[u]) for u in set_a},
          {"reference": "real recordings through the vocoder; set-level metrics against other real non-member "
           "recordings", "row": "vocoded"})
    result = {"real": summaries["real"], "vocoded": summaries["vocoded"]}
    table = None
    if with_sanity:
        audio = {u: load_audio(real_a[u]) for u in set_a}
        noisy = _write_wavs({u: sanity.add_noise(w, seed=i) for i, (u, (w, _)) in enumerate(audio.items())},
                            folders["noisy"] / "wavs", audio[set_a[0]][1])
        stretched = _write_wavs({u: sanity.time_stretch(w) for u, (w, _) in audio.items()},
                                folders["stretched"] / "wavs", audio[set_a[0]][1])
        low = min(float(m.min()) for m in mels_a.values())
        high = max(float(m.max()) for m in mels_a.values())
        random = vocode_mels({u: sanity.random_mel(m, low, high, seed=i) for i, (u, m) in enumerate(mels_a.items())},
                             vocoder, folders["random_mels"] / "wavs", sample_rate)
        rotated = {u: set_a[(i + 1) % len(set_a)] for i, u in enumerate(set_a)}
        variants = {
            "noisy": {u: (noisy[u], real_a[u]) for u in set_a},
            "stretched": {u: (stretched[u], real_a[u]) for u in set_a},
            "random_mels": {u: (random[u], real_a[u]) for u in set_a},
            # the recording of the next sentence, scored against this sentence's text and recording
            "wrong_text": {u: (real_a[rotated[u]], real_a[u]) for u in set_a},
        }
        for name, pairs in variants.items():
            score(name, pairs, {"row": f"sanity: {name}"})
        table = sanity.sanity_table(summaries, rows)
        table.update({"n_test": len(set_a), "n_reference": len(set_b), "vocoder": vocoder_name,
                      "noise_snr_db": sanity.NOISE_SNR_DB, "stretch_rate": sanity.STRETCH_RATE,
                      "flagged": sanity.flagged(table)})
        write_json_atomic(out_dir / "sanity.json", table)
        result["sanity"] = table
    write_json_atomic(out_dir / "reference.json", {
        "rows": {"real": str(out_dir / "real" / "quality.json"), "vocoded": str(out_dir / "vocoded" / "quality.json")},
        "sanity": str(out_dir / "sanity.json") if table is not None else None,
        "test_utterances": set_a, "reference_utterances": set_b, "split": split, "vocoder": vocoder_name,
        "metrics": list(metrics)})
    return result
