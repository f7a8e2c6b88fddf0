"""Training data: features read from the dump (no audio decoding), length-bucketed batches, random crops.

Everything random here is a pure function of (seed, epoch, batch index), so a resumed run sees exactly
the batches and crops an uninterrupted run would have seen.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from holdtts.data.tables import read_list, read_table
from holdtts.data.text import SymbolTable
from holdtts.errors import InputError


class FeatureStore:
    """Random access to the mels and tokens written by `holdtts features`."""

    def __init__(self, dump_dir: str | Path):
        self.dump_dir = Path(dump_dir)
        manifest = self.dump_dir / "manifest.json"
        if not manifest.is_file():
            raise InputError("features are missing or incomplete (run `holdtts features`)", manifest)
        self.manifest = json.loads(manifest.read_text())
        self.symbols = SymbolTable.load(self.dump_dir / "symbols.txt")
        index = read_table(self.dump_dir / "mels.index")
        self._span = {}
        for utt, value in index.items():
            offset, frames = value.split()
            self._span[utt] = (int(offset), int(frames))
        self._tokens = {utt: np.asarray(value.split(), dtype=np.int64)
                        for utt, value in read_table(self.dump_dir / "tokens").items()}
        self._mels = np.load(self.dump_dir / "mels.npy", mmap_mode="r")

    def __contains__(self, utt: str) -> bool:
        return utt in self._span

    @property
    def utt_ids(self) -> list[str]:
        return sorted(self._span)

    def num_frames(self, utt: str) -> int:
        return self._span[utt][1]

    def mel(self, utt: str) -> np.ndarray:
        """[n_mels, frames] float32."""
        offset, frames = self._span[utt]
        return np.ascontiguousarray(self._mels[offset: offset + frames].T)

    def tokens(self, utt: str) -> np.ndarray:
        return self._tokens[utt]

    def check_utts(self, utts: Sequence[str], source: str | Path) -> None:
        missing = [u for u in utts if u not in self._span]
        if missing:
            raise InputError(f"{len(missing)} utterance(s) have no features in {self.dump_dir}, "
                             f"e.g. '{missing[0]}' (re-run `holdtts features`)", source)


def load_split(data_dir: str | Path, split: str) -> list[str]:
    """The utterance ids of a split written by `holdtts prepare` (data/<split>/wav.scp)."""
    path = Path(data_dir) / split / "wav.scp"
    if not path.is_file():
        alt = Path(data_dir) / split
        if alt.is_file():
            return read_list(alt)
        raise InputError(f"no split '{split}' (run `holdtts prepare`)", path)
    return sorted(read_table(path))


@dataclass
class Batch:
    utt_ids: list[str]
    tokens: torch.Tensor  # [B, L] long, padded with 0
    token_lengths: torch.Tensor  # [B]
    mels: torch.Tensor  # [B, n_mels, T] float32, padded with 0
    mel_lengths: torch.Tensor  # [B]
    crop_starts: torch.Tensor  # [B] start frame of each utterance's decoder crop
    speakers: torch.Tensor | None = None  # [B] long: rows of a multi-speaker model's speaker table (else None)

    _TENSORS = ("tokens", "token_lengths", "mels", "mel_lengths", "crop_starts")

    def to(self, device, non_blocking: bool = False) -> Batch:
        move = {k: getattr(self, k).to(device, non_blocking=non_blocking) for k in self._TENSORS}
        speakers = None if self.speakers is None else self.speakers.to(device, non_blocking=non_blocking)
        return Batch(utt_ids=self.utt_ids, **move, speakers=speakers)

    def pin_memory(self) -> Batch:
        return Batch(self.utt_ids, *(getattr(self, k).pin_memory() for k in self._TENSORS),
                     speakers=None if self.speakers is None else self.speakers.pin_memory())

    def __len__(self) -> int:
        return len(self.utt_ids)


def collate(store: FeatureStore, utts: Sequence[str], segment_frames: int,
            rng: np.random.Generator | None = None, speakers: Mapping[str, int] | None = None) -> Batch:
    """Pad a list of utterances into a Batch. Crops start uniformly at random (rng) or at 0. With `speakers`
    (utterance -> row of the model's speaker table) the batch carries each utterance's row."""
    tokens = [store.tokens(u) for u in utts]
    mels = [store.mel(u) for u in utts]
    token_lengths = np.array([len(t) for t in tokens])
    mel_lengths = np.array([m.shape[1] for m in mels])
    tok = np.zeros((len(utts), token_lengths.max()), dtype=np.int64)
    mel = np.zeros((len(utts), mels[0].shape[0], mel_lengths.max()), dtype=np.float32)
    for i, (t, m) in enumerate(zip(tokens, mels)):
        tok[i, : len(t)] = t
        mel[i, :, : m.shape[1]] = m
    max_start = np.maximum(mel_lengths - segment_frames, 0)
    starts = np.zeros(len(utts), dtype=np.int64) if rng is None else rng.integers(0, max_start + 1)
    rows = None if speakers is None else torch.tensor([speakers[u] for u in utts], dtype=torch.long)
    return Batch(list(utts), torch.from_numpy(tok), torch.from_numpy(token_lengths),
                 torch.from_numpy(mel), torch.from_numpy(mel_lengths), torch.from_numpy(starts), rows)


class BucketedBatches:
    """Length-bucketed batches over a fixed list of utterances, one deterministic order per epoch.

    Each epoch: a seeded shuffle, pools of `bucket_size * batch_size` utterances sorted by length and cut
    into batches (little padding), then the batches shuffled. With several ranks (DDP) each takes every
    world_size-th batch of the same order, and all ranks get the same number of batches.
    """

    def __init__(self, store: FeatureStore, utts: Sequence[str], batch_size: int, segment_frames: int,
                 seed: int, bucket_size: int = 32, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False, speakers: Mapping[str, int] | None = None):
        if not utts:
            raise ValueError("no utterances to batch")
        self.speakers = speakers  # utterance -> speaker-table row (multi-speaker models), else None
        self.store = store
        self.utts = sorted(utts)
        self.lengths = np.array([store.num_frames(u) for u in self.utts])
        self.batch_size = batch_size
        self.segment_frames = segment_frames
        self.seed = seed
        self.bucket_size = bucket_size
        self.rank, self.world_size = rank, world_size
        self.drop_last = drop_last

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.utts))
        pool = self.batch_size * self.bucket_size
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start: start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i: i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        batches = [batches[i] for i in rng.permutation(len(batches))]
        per_rank = len(batches) // self.world_size
        if per_rank == 0:
            raise ValueError(f"{len(self.utts)} utterances make fewer batches than ranks ({self.world_size})")
        return batches[self.rank: per_rank * self.world_size: self.world_size]

    def __len__(self) -> int:
        return len(self.epoch_batches(0))

    def batch(self, epoch: int, index: int, indices: Sequence[int]) -> Batch:
        rng = np.random.default_rng([self.seed, epoch, index, 1])
        return collate(self.store, [self.utts[i] for i in indices], self.segment_frames, rng, self.speakers)

    def iterate(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The batches of `epoch` from position `start` (for resuming mid-epoch)."""
        for index, indices in enumerate(self.epoch_batches(epoch)):
            if index >= start:
                yield self.batch(epoch, index, indices)

    def loader(self, epoch: int, start: int = 0, num_workers: int = 0, pin_memory: bool = False):
        """A DataLoader over `iterate(epoch, start)` that prefetches in worker processes."""
        return epoch_loader(self.epoch_batches(epoch), self.batch, epoch, start, self.seed, num_workers, pin_memory)


def epoch_loader(order: Sequence, fetch: Callable, epoch: int, start: int, seed: int, num_workers: int = 0,
                 pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader yielding `fetch(epoch, i, order[i])` for i = start, start + 1, ...: the batches of one
    epoch, resumable mid-epoch, each built whole in a worker (every trainer's batch source uses it)."""
    # Its own generator: a DataLoader draws a base seed when iterated, which would otherwise consume
    # the global RNG at a different point in a resumed run than in an uninterrupted one.
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.utils.data.DataLoader(_EpochView(order, fetch, epoch, start), batch_size=None, shuffle=False,
                                       num_workers=num_workers, pin_memory=pin_memory, collate_fn=_identity,
                                       generator=generator)


def _identity(x):
    return x


class _EpochView(torch.utils.data.Dataset):
    def __init__(self, order: Sequence, fetch: Callable, epoch: int, start: int):
        self.order, self.fetch, self.epoch, self.start = order, fetch, epoch, start

    def __len__(self) -> int:
        return max(0, len(self.order) - self.start)

    def __getitem__(self, k: int):
        index = self.start + k
        return self.fetch(self.epoch, index, self.order[index])
