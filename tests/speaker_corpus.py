"""Multi-speaker data directories for the tests, in the layout the data side writes (utt2spk, spk2utt, spk2id,
splits.json with "protocol" and "num_speakers"), built by hand over already extracted features."""
from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from holdtts.data.tables import read_table, write_table


def write_speaker_data_dir(base: Path, out: Path, utt2spk: Mapping[str, str], splits: Mapping[str, Sequence[str]],
                           protocol: str, spk2id_speakers: Sequence[str] | None = None) -> Path:
    """`out`: base's all/ tables, the given splits (subsets of them), utt2spk/spk2utt of every utterance,
    spk2id of the members' speakers (or `spk2id_speakers`), splits.json with the protocol."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base / "all", out / "all")
    tables = {name: read_table(base / "all" / name) for name in ("wav.scp", "text", "text.raw", "utt2num_samples")}
    for name, utts in splits.items():
        (out / name).mkdir(parents=True)
        for table, values in tables.items():
            write_table(out / name / table, {u: values[u] for u in utts})
    write_table(out / "utt2spk", dict(utt2spk))
    spk2utt: dict[str, list[str]] = {}
    for utt, speaker in sorted(utt2spk.items()):
        spk2utt.setdefault(speaker, []).append(utt)
    write_table(out / "spk2utt", {s: " ".join(u) for s, u in spk2utt.items()})
    speakers = sorted(spk2id_speakers if spk2id_speakers is not None
                      else {utt2spk[u] for u in splits["members"]})
    write_table(out / "spk2id", {s: i for i, s in enumerate(speakers)})
    (out / "splits.json").write_text(json.dumps({
        "protocol": protocol, "num_speakers": len(spk2utt),
        "sizes": {name: len(utts) for name, utts in splits.items()}}))
    return out
