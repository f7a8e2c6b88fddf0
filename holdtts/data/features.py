"""The features stage: log-mels and token sequences for every utterance, cached for training.

Layout of the dump directory (read by holdtts.data.dataset.FeatureStore):
    mels.npy        float32 [total_frames, n_mels], every utterance's frames back to back (memory-mapped
                    at training time, so no audio is decoded while training)
    mels.index      Kaldi-style table: utt_id offset num_frames
    tokens          Kaldi-style table: utt_id id id ... (blank interspersed)
    symbols.txt     the symbol table the token ids refer to
    manifest.json   written last: settings, counts, fingerprint of the inputs; its presence means complete
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import holdtts
from holdtts.config import FeaturesConfig
from holdtts.data.corpus import WavError, check_wav_complete, resample_audio, resampled_length
from holdtts.data.mel import mel_spectrogram, num_frames
from holdtts.data.tables import read_table, write_table
from holdtts.data.text import TextFrontend
from holdtts.errors import HoldttsError, InputError
from holdtts.utils.fileio import atomic_path, ensure_dir, write_json_atomic

log = logging.getLogger(__name__)
FEATURES_VERSION = 1  # bump when the stored format or the feature definition changes


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _read_wav(utt: str, path: str, expected: int, sample_rate: int, scp: Path, line: int,
              resample: bool = False) -> np.ndarray:
    """The utterance's samples at `sample_rate`, mono. With `resample` (a data directory prepared with
    --defer-resample), audio at another rate or with several channels is resampled (`resample_audio`)."""
    try:
        check_wav_complete(path)  # libsndfile would read the part that is there as the whole recording
    except WavError as err:
        raise InputError(f"'{utt}' ({path}): {err.message}", scp, line) from err
    try:
        wav, sr = sf.read(path, dtype="float32", always_2d=resample)
    except (OSError, RuntimeError, sf.LibsndfileError) as err:
        raise InputError(f"cannot decode wav of '{utt}' ({path}): {err}", scp, line) from err
    if resample and (sr != sample_rate or wav.shape[1] != 1):
        length = resampled_length(wav.shape[0], sr, sample_rate)
        if length != expected:
            raise InputError(f"'{utt}' ({path}) decodes to {wav.shape[0]} samples at {sr} Hz, {length} at "
                             f"{sample_rate} Hz, but utt2num_samples says {expected} (truncated or changed "
                             "file?)", scp, line)
        return resample_audio(wav, sr, sample_rate).astype(np.float32)
    if resample:
        wav = wav[:, 0]
    if sr != sample_rate:
        raise InputError(f"'{utt}' ({path}) is {sr} Hz, features need {sample_rate} Hz "
                         "(re-run prepare with --resample)", scp, line)
    if wav.ndim != 1:
        raise InputError(f"'{utt}' ({path}) is not mono", scp, line)
    if wav.shape[0] != expected:
        raise InputError(f"'{utt}' ({path}) decodes to {wav.shape[0]} samples, but utt2num_samples says "
                         f"{expected} (truncated or changed file?)", scp, line)
    return wav


def defers_resampling(data_dir: str | Path) -> bool:
    """Whether `holdtts prepare --defer-resample` made `data_dir`: its wavs may be at another rate (or not mono)
    and are resampled to the features' rate when read."""
    from holdtts.data.splits import SPLITS_JSON, load_splits_meta

    if not (Path(data_dir) / SPLITS_JSON).exists():
        return False
    return bool(load_splits_meta(data_dir).get("arguments", {}).get("defer_resample", False))


def extract_features(data_dir: str | Path, dump_dir: str | Path, device: str = "auto", batch_size: int = 16,
                     nj: int = 2, overwrite: bool = False, cfg: FeaturesConfig | None = None) -> dict:
    """Compute mels and tokens for data_dir/all into dump_dir. Returns a summary dict.

    Re-running with unchanged inputs is a no-op; changed inputs are an error unless `overwrite`.
    """
    cfg = cfg or FeaturesConfig()
    data_dir, dump_dir = Path(data_dir), Path(dump_dir)
    table_dir = data_dir / "all"
    tables = {name: table_dir / name for name in ("wav.scp", "text", "utt2num_samples")}
    for name, path in tables.items():
        if not path.is_file():
            raise InputError(f"missing table '{name}' (run `holdtts prepare` first)", path)
    fingerprint = {
        "features_version": FEATURES_VERSION,
        "features": asdict(cfg),
        "inputs": {name: _sha256(path) for name, path in tables.items()},
    }
    resample = defers_resampling(data_dir)
    if resample:  # recorded only when set, so that existing dumps stay up to date
        fingerprint["resample"] = "features"
    manifest_path = dump_dir / "manifest.json"
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        if previous.get("fingerprint") == fingerprint:
            return {**previous, "skipped": True}
        if not overwrite:
            raise HoldttsError(f"{dump_dir}: features exist but were computed from other inputs or settings; "
                               "pass --overwrite to recompute them")
        manifest_path.unlink()  # from here on the dump is incomplete until the new manifest lands
    ensure_dir(dump_dir)

    wav_scp = read_table(tables["wav.scp"])
    texts = read_table(tables["text"])
    samples = read_table(tables["utt2num_samples"], value_type=int)
    utts = sorted(wav_scp)
    for name, table in (("text", texts), ("utt2num_samples", samples)):
        missing = [u for u in utts if u not in table]
        if missing:
            raise InputError(f"{len(missing)} utterance(s) of wav.scp have no entry, e.g. '{missing[0]}'",
                             tables[name])
    scp_line = {utt: i + 1 for i, utt in enumerate(utts)}  # tables are sorted: line = rank
    text_line = {utt: i + 1 for i, utt in enumerate(sorted(texts))}

    started = time.perf_counter()
    frontend = TextFrontend()
    tokens = {utt: frontend.encode(texts[utt], path=tables["text"], line=text_line[utt]) for utt in utts}

    frames = {utt: num_frames(samples[utt], cfg) for utt in utts}
    too_short = [u for u in utts if frames[u] < 1]
    if too_short:
        u = too_short[0]
        raise InputError(f"'{u}' is too short for one mel frame ({samples[u]} samples)",
                         tables["utt2num_samples"], scp_line[u])
    offsets, total = {}, 0
    for utt in utts:
        offsets[utt] = total
        total += frames[utt]

    torch_device = resolve_device(device)
    order = sorted(utts, key=lambda u: samples[u])  # similar lengths per batch: little padding
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    stats_sum = np.zeros(cfg.n_mels, dtype=np.float64)
    stats_sq = np.zeros(cfg.n_mels, dtype=np.float64)

    def load(batch):
        return [_read_wav(u, wav_scp[u], samples[u], cfg.sample_rate, tables["wav.scp"], scp_line[u], resample)
                for u in batch]

    with atomic_path(dump_dir / "mels.npy", suffix=".npy") as tmp:
        store = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(total, cfg.n_mels))
        with ThreadPoolExecutor(max_workers=max(1, nj)) as pool:
            for batch, wavs in zip(batches, pool.map(load, batches)):
                lengths = [w.shape[0] for w in wavs]
                padded = np.zeros((len(wavs), max(lengths)), dtype=np.float32)
                for i, w in enumerate(wavs):
                    padded[i, : w.shape[0]] = w
                mels, counts = mel_spectrogram(torch.from_numpy(padded).to(torch_device), cfg, lengths=lengths)
                mels = mels.transpose(1, 2).cpu().numpy()
                for i, utt in enumerate(batch):
                    n = int(counts[i])
                    assert n == frames[utt]
                    store[offsets[utt]: offsets[utt] + n] = mels[i, :n]
                    stats_sum += mels[i, :n].sum(0)
                    stats_sq += np.square(mels[i, :n], dtype=np.float64).sum(0)
        store.flush()
        del store

    write_table(dump_dir / "mels.index", {u: f"{offsets[u]} {frames[u]}" for u in utts})
    write_table(dump_dir / "tokens", {u: " ".join(map(str, tokens[u])) for u in utts})
    frontend.symbols.save(dump_dir / "symbols.txt")
    elapsed = time.perf_counter() - started
    mean = stats_sum / total
    manifest = {
        "fingerprint": fingerprint,
        "num_utts": len(utts),
        "num_frames": total,
        "hours": total * cfg.hop_length / cfg.sample_rate / 3600,
        "n_vocab": frontend.symbols.n_vocab,
        "mel_mean": mean.tolist(),
        "mel_std": np.sqrt(np.maximum(stats_sq / total - mean**2, 0)).tolist(),
        "device": str(torch_device),
        "seconds": round(elapsed, 3),
        "clips_per_second": round(len(utts) / max(elapsed, 1e-9), 2),
        "holdtts_version": holdtts.__version__,
    }
    write_json_atomic(manifest_path, manifest)
    return {**manifest, "skipped": False}

