"""Which speaker said each utterance, and which row of a multi-speaker model's speaker table is whose.

The speaker tables of a multi-speaker data directory (utt2spk, spk2utt, spk2id) are written, read and
checked by holdtts.data.speakers; this module turns them into the model's view: spk2id's speakers are the
rows of the speaker table, in index order. A single-speaker data directory has none of them, and nothing
here changes how it is read.

A trained multi-speaker checkpoint records the mapping it was trained with (`SpeakerMap.to_state`), so
synthesis and attacks index the table as training did, whatever the data directory says later.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from holdtts.data.speakers import SPK2ID, UTT2SPK, read_spk2id, read_utt2spk
from holdtts.errors import HoldttsError, InputError


@dataclass(frozen=True)
class SpeakerMap:
    """speakers[i] is the speaker of row i of the model's table; utt2spk names every utterance's speaker."""

    speakers: tuple[str, ...]
    utt2spk: Mapping[str, str]

    def __post_init__(self):
        object.__setattr__(self, "_rows", {s: i for i, s in enumerate(self.speakers)})

    @property
    def num_speakers(self) -> int:
        return len(self.speakers)

    def index(self, speaker: str) -> int | None:
        """The table row of `speaker`, or None for a speaker the table does not have."""
        return self._rows.get(speaker)

    def speaker_of(self, utt: str) -> str:
        try:
            return self.utt2spk[utt]
        except KeyError as err:
            raise HoldttsError(f"utterance '{utt}' has no speaker in {UTT2SPK}") from err

    def utt_rows(self, utts: Iterable[str]) -> dict[str, int]:
        """utt -> table row for utterances whose speaker is in the table (every one, for training data)."""
        out = {}
        for utt in utts:
            row = self.index(self.speaker_of(utt))
            if row is not None:
                out[utt] = row
        return out

    @property
    def checksum(self) -> str:
        return spk2id_checksum(self.speakers)

    def to_state(self, trained_rows: Sequence[int] | None = None) -> dict:
        """What a checkpoint records: the table's speakers in row order, their checksum, and the rows its
        training split covered (the "average voice" averages those)."""
        return {"speakers": list(self.speakers), "sha256": self.checksum,
                "trained_rows": sorted(trained_rows) if trained_rows is not None else list(range(len(self.speakers)))}


def spk2id_checksum(speakers: Sequence[str]) -> str:
    """sha256 of the `speaker index` lines in row order."""
    text = "".join(f"{s} {i}\n" for i, s in enumerate(speakers))
    return hashlib.sha256(text.encode()).hexdigest()


def read_speaker_map(data_dir: str | os.PathLike) -> SpeakerMap | None:
    """The data directory's spk2id and utt2spk, checked, or None for a single-speaker directory (no spk2id)."""
    data_dir = Path(data_dir)
    rows = read_spk2id(data_dir)
    if rows is None:
        return None
    if not rows:
        raise InputError("lists no speaker", data_dir / SPK2ID)
    utt2spk = read_utt2spk(data_dir)
    if utt2spk is None:
        raise InputError(f"a data directory with {SPK2ID} needs {UTT2SPK} too", data_dir / UTT2SPK)
    return SpeakerMap(tuple(sorted(rows, key=rows.__getitem__)), utt2spk)


def training_speaker_map(n_speakers: int, data_dir: str | os.PathLike, train_utts: Sequence[str],
                         train_split: str = "members") -> SpeakerMap | None:
    """The speaker map a model of `n_speakers` trains with on `train_utts` of `data_dir`, checked against the
    config: spk2id present exactly when the model is multi-speaker, no more speakers than the table has,
    and every training utterance's speaker in spk2id. None for a single-speaker model on single-speaker data."""
    data_dir = Path(data_dir)
    speakers = read_speaker_map(data_dir)
    if speakers is None:
        if n_speakers > 1:
            raise HoldttsError(f"{data_dir / SPK2ID}: not found, but model.n_speakers = {n_speakers}: a multi-speaker "
                               "model needs a multi-speaker data directory (utt2spk and spk2id), or set "
                               "model.n_speakers=1")
        return None
    if n_speakers == 1:
        raise HoldttsError(f"{data_dir / SPK2ID}: the data directory is multi-speaker ({speakers.num_speakers} "
                           f"speakers) but model.n_speakers = 1: set model.n_speakers={speakers.num_speakers} "
                           "(or more)")
    if n_speakers < speakers.num_speakers:
        raise HoldttsError(f"{data_dir / SPK2ID}: lists {speakers.num_speakers} speakers, more than the "
                           f"model.n_speakers = {n_speakers} rows of the speaker table")
    missing = sorted(u for u in train_utts if u not in speakers.utt2spk)
    if missing:
        raise HoldttsError(f"{data_dir / UTT2SPK}: {len(missing)} utterance(s) of split '{train_split}' have no "
                           f"speaker, e.g. '{missing[0]}'")
    unseen = sorted({speakers.utt2spk[u] for u in train_utts} - set(speakers.speakers))
    if unseen:
        raise HoldttsError(f"{data_dir / SPK2ID}: {len(unseen)} speaker(s) of split '{train_split}' are not in it, "
                           f"e.g. '{unseen[0]}': the model would have no row for them")
    return speakers


def check_checkpoint_speakers(recorded: dict | None, speakers: SpeakerMap | None, where: str) -> None:
    """Refuse a data directory whose spk2id differs from the mapping a checkpoint was trained with."""
    if recorded is None and speakers is None:
        return
    if recorded is None:
        raise HoldttsError(f"{where}: a single-speaker checkpoint, but the data directory is multi-speaker "
                           f"({speakers.num_speakers} speakers in {SPK2ID})")
    if speakers is None:
        raise HoldttsError(f"{where}: a multi-speaker checkpoint ({len(recorded['speakers'])} speakers), but the "
                           f"data directory has no {SPK2ID}")
    if recorded.get("sha256") != speakers.checksum:
        raise HoldttsError(f"{where}: trained with another {SPK2ID} (sha256 {str(recorded.get('sha256'))[:12]}..., "
                           f"now {speakers.checksum[:12]}...): its speaker rows would be read as other speakers. "
                           "Use the data directory it was trained on, or a new --exp-dir.")
