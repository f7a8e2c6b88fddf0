"""Membership splits (PIA's protocol) and the data directory that holds them.

    <data_dir>/all/{wav.scp,text,text.raw,utt2num_samples}   every usable utterance
    <data_dir>/<split>/{same tables}   split in members nonmembers half1 half2 valid test
    <data_dir>/splits.json             provenance: seed, sizes, corpus, checksums, arguments

The sorted ids are permuted with numpy's default_rng(seed). `valid` takes the first ids and is held out
from everything (validation loss only); of the rest, `members` (the training set) then `nonmembers`
(never seen by any stage); whatever remains is unused. `half1`/`half2` split the members for the
dual-model defenses; `test` is the first non-members, the sentences audio quality is measured on.
The splits are written once: a re-run with other settings or another corpus is refused.

A multi-speaker corpus (metadata.csv with a speaker column) also gets, at the top of the data directory,
utt2spk, spk2utt and spk2id, and its splits follow one of two protocols, `utterance` (the above,
stratified by speaker) or `speaker` (whole speakers are members or not); see holdtts.data.speakers.
Its splits.json then records "protocol" ("utterance" or "speaker"), "num_speakers",
"num_member_speakers" and, for the speaker protocol, "speakers" (the sorted speakers of each split).
A single-speaker data directory is exactly what it was before speakers existed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from holdtts.data.corpus import SAMPLE_RATE, check_corpus_dir, read_metadata, scan_corpus
from holdtts.data.speakers import (
    DESCRIPTIONS,
    PROTOCOLS,
    SpeakerSplitError,
    check_speaker_tables,
    make_speaker_splits,
    make_utterance_splits,
    speaker_problems,
    speakers_of,
    speakers_per_split,
    write_speaker_tables,
)
from holdtts.data.tables import read_table, write_table
from holdtts.errors import HoldttsError, InputError
from holdtts.utils.fileio import ensure_dir, file_sha256, write_json_atomic

SPLITS = ("members", "nonmembers", "half1", "half2", "valid", "test")
TABLES = ("wav.scp", "text", "text.raw", "utt2num_samples")
SPLITS_JSON = "splits.json"
CONVERTED_WAVS = "wavs_22050"
PROTOCOL = ("sorted ids permuted by numpy.random.default_rng(seed); in permuted order: valid, members, "
            "nonmembers, unused; half1/half2 = members halved in permuted order; test = first nonmembers")
_SIZE_ARGS = {"num_valid": "valid", "num_members": "members", "num_nonmembers": "nonmembers",
              "num_test": "test"}
# Arguments added with multi-speaker corpora, and their defaults. splits.json records them for a
# multi-speaker corpus, and for a single-speaker one only when not at their default, so that data
# directories made before them stay "unchanged".
_SPEAKER_ARGS = {"protocol": "utterance", "num_member_speakers": None, "valid_per_speaker": 1,
                 "test_per_speaker": 2}
_NEW_ARGS = {**_SPEAKER_ARGS, "defer_resample": False}


class SplitError(HoldttsError, ValueError):
    """Split sizes that do not fit the corpus."""


def member_checksum(utt_ids: Iterable[str]) -> str:
    """sha256 of the sorted ids, one per line: the fingerprint of a member list. Every checkpoint and
    train_summary.json records the one of its training utterances, splits.json the one of every split,
    so a model is never resumed nor attacked across remade splits."""
    return hashlib.sha256("".join(f"{utt}\n" for utt in sorted(utt_ids)).encode()).hexdigest()


def split_checksum(data_dir: str | os.PathLike, split: str) -> str:
    """`member_checksum` of a split as it is on disk now (data/<split>/wav.scp)."""
    from holdtts.data.dataset import load_split

    return member_checksum(load_split(data_dir, split))


def split_sizes(num_utts: int, num_members: int | None = None, num_nonmembers: int | None = None,
                num_valid: int | None = None, num_test: int | None = None) -> dict[str, int]:
    """Resolve the defaults and check the sizes fit `num_utts` utterances.

    Defaults: valid min(100, max(2, round(N / 100))); members floor((N - valid) / 2); nonmembers =
    members; test min(100, nonmembers). half1 gets the extra member when their number is odd.
    """
    valid = min(100, max(2, round(0.01 * num_utts))) if num_valid is None else num_valid
    rest = num_utts - valid
    members = max(rest, 0) // 2 if num_members is None else num_members
    nonmembers = members if num_nonmembers is None else num_nonmembers
    test = min(100, nonmembers) if num_test is None else num_test
    if valid < 1:
        raise SplitError(f"the valid split needs at least 1 utterance, got {valid}")
    if members < 2:
        raise SplitError(f"members need at least 2 utterances (one per half), got {members} "
                         f"(corpus of {num_utts})")
    if nonmembers < 1:
        raise SplitError(f"non-members need at least 1 utterance, got {nonmembers}")
    if not 1 <= test <= nonmembers:
        raise SplitError(f"the test split takes 1 to {nonmembers} non-members, got {test}")
    if valid + members + nonmembers > num_utts:
        raise SplitError(f"valid ({valid}) + members ({members}) + non-members ({nonmembers}) = "
                         f"{valid + members + nonmembers} exceeds the {num_utts} utterances")
    half1 = (members + 1) // 2
    return {"all": num_utts, "valid": valid, "members": members, "nonmembers": nonmembers,
            "unused": rest - members - nonmembers, "half1": half1, "half2": members - half1, "test": test}


def make_splits(utt_ids: Iterable[str], seed: int, num_members: int | None = None,
                num_nonmembers: int | None = None, num_valid: int | None = None,
                num_test: int | None = None) -> dict[str, list[str]]:
    """Draw the splits; returns sorted id lists for 'all', 'unused' and every name in SPLITS."""
    ids = sorted(utt_ids)
    if len(set(ids)) != len(ids):
        raise SplitError("utterance ids are not unique")
    sizes = split_sizes(len(ids), num_members, num_nonmembers, num_valid, num_test)
    order = np.random.default_rng(seed).permutation(len(ids))
    permuted = [ids[i] for i in order]
    bounds = np.cumsum([0, sizes["valid"], sizes["members"], sizes["nonmembers"]])
    valid, members, nonmembers = (permuted[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
    splits = {
        "all": ids,
        "valid": valid,
        "members": members,
        "nonmembers": nonmembers,
        "unused": permuted[bounds[-1]:],
        "half1": members[:sizes["half1"]],
        "half2": members[sizes["half1"]:],
        "test": nonmembers[:sizes["test"]],
    }
    return {name: sorted(lst) for name, lst in splits.items()}


def held_parts(protocol: str | None = None) -> tuple[str, ...]:
    """The splits that partition 'all'. Under the speaker protocol `test` is a part of its own (member
    speakers' held-out sentences); otherwise it is taken from the non-members."""
    if protocol == "speaker":
        return ("valid", "members", "nonmembers", "test", "unused")
    return ("valid", "members", "nonmembers", "unused")


def split_problems(splits: dict[str, list[str]], protocol: str | None = None,
                   utt2spk: dict[str, str] | None = None) -> list[str]:
    """What breaks the protocol's invariants (empty when the splits are consistent). `protocol` is None
    for a single-speaker corpus; with `utt2spk` the speaker invariants are checked too."""
    sets = {name: set(splits[name]) for name in splits}
    problems = [f"'{name}' has duplicate ids" for name in splits if len(sets[name]) != len(splits[name])]
    held = held_parts(protocol)
    for i, a in enumerate(held):
        for b in held[i + 1:]:
            if sets[a] & sets[b]:
                problems.append(f"'{a}' and '{b}' share {len(sets[a] & sets[b])} ids")
    if set().union(*(sets[name] for name in held)) != sets["all"]:
        problems.append(f"{', '.join(held[:-1])} and {held[-1]} do not cover exactly all utterances")
    if sets["half1"] & sets["half2"] or sets["half1"] | sets["half2"] != sets["members"]:
        problems.append("'half1' and 'half2' do not partition 'members'")
    if protocol != "speaker" and not sets["test"] <= sets["nonmembers"]:
        problems.append("'test' is not a subset of 'nonmembers'")
    if utt2spk is not None:
        problems += speaker_problems(splits, utt2spk, protocol or "utterance")
    return problems


def write_splits(data_dir: str | os.PathLike, splits: dict[str, list[str]], meta: dict,
                 utt2spk: dict[str, str] | None = None) -> None:
    """Write `<data_dir>/<split>/` tables (subsets of `<data_dir>/all/`) and splits.json (meta + sizes);
    with `utt2spk` (a multi-speaker corpus; meta holds its "protocol"), utt2spk, spk2utt and spk2id too."""
    data_dir = Path(data_dir)
    protocol = meta.get("protocol") if utt2spk is not None else None
    problems = split_problems(splits, protocol, utt2spk)
    if problems:
        raise SplitError("inconsistent splits: " + "; ".join(problems))
    tables = {name: read_table(data_dir / "all" / name) for name in TABLES}
    differing = set(splits["all"]) ^ set(tables["wav.scp"])
    if differing:
        raise SplitError(f"{len(differing)} ids differ between the splits and {data_dir / 'all' / 'wav.scp'}")
    for split in SPLITS:
        for name, table in tables.items():
            write_table(data_dir / split / name, {utt: table[utt] for utt in splits[split]})
    if utt2spk is not None:
        write_speaker_tables(data_dir, {utt: utt2spk[utt] for utt in splits["all"]}, splits["members"])
    sizes = {name: len(splits[name]) for name in ("all", *SPLITS, "unused")}
    checksums = {name: member_checksum(splits[name]) for name in ("all", *SPLITS)}
    write_json_atomic(data_dir / SPLITS_JSON, {**meta, "sizes": sizes, "checksums": checksums})


def load_splits_meta(data_dir: str | os.PathLike) -> dict:
    """The provenance recorded in `<data_dir>/splits.json`."""
    path = Path(data_dir) / SPLITS_JSON
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InputError("not found: run `holdtts prepare` to make the data directory", path) from err
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read ({err})", path) from err
    except json.JSONDecodeError as err:
        raise InputError(f"invalid JSON ({err.msg})", path, err.lineno) from err
    if not isinstance(meta, dict) or not isinstance(meta.get("sizes"), dict):
        raise InputError("not a holdtts splits file (no 'sizes')", path)
    return meta


def load_splits(data_dir: str | os.PathLike) -> dict[str, list[str]]:
    """Sorted ids of 'all', 'unused' and every split, checked against splits.json and the protocol."""
    data_dir = Path(data_dir)
    meta = load_splits_meta(data_dir)
    protocol = multi_speaker_protocol(meta)
    splits = {name: sorted(read_table(data_dir / name / "wav.scp")) for name in ("all", *SPLITS)}
    held = set().union(*(splits[name] for name in held_parts(protocol) if name != "unused"))
    splits["unused"] = sorted(set(splits["all"]) - held)
    path = data_dir / SPLITS_JSON
    for name, lst in splits.items():
        if meta["sizes"].get(name) != len(lst):
            raise InputError(f"'{name}' has {len(lst)} utterances on disk but {meta['sizes'].get(name)} "
                             "recorded: the data directory was changed after `holdtts prepare`", path)
        recorded = meta.get("checksums", {}).get(name)  # absent in data directories of older versions
        if recorded is not None and recorded != member_checksum(lst):
            raise InputError(f"the ids of '{name}' on disk differ from the ones recorded (sha256 {recorded[:12]}...): "
                             "the data directory was changed after `holdtts prepare`", path)
    utt2spk = check_speaker_tables(data_dir, splits)
    if (utt2spk is None) != (protocol is None):
        raise InputError("splits.json and the speaker tables disagree on whether the corpus has speakers: the "
                         "data directory was changed after `holdtts prepare`", path)
    problems = split_problems(splits, protocol, utt2spk)
    if problems:
        raise InputError("inconsistent splits on disk: " + "; ".join(problems), path)
    return splits


def multi_speaker_protocol(meta: dict) -> str | None:
    """"utterance" or "speaker" for a multi-speaker data directory's splits.json, None for a single-speaker
    one (whose "protocol" is the description of the single-speaker protocol)."""
    if "num_speakers" not in meta:
        return None

    protocol = meta.get("protocol")
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown membership protocol {protocol!r} (expected one of {', '.join(PROTOCOLS)})")
    return protocol


@dataclass
class PrepareResult:
    data_dir: Path
    status: str  # "created", "replaced" or "unchanged" (same corpus and settings: nothing done)
    meta: dict  # splits.json

    @property
    def num_skipped(self) -> int:
        return self.meta["num_skipped"]

    @property
    def num_converted(self) -> int:
        return self.meta["num_converted"]


def _differences(recorded: dict, wanted: dict) -> list[str]:
    """Human-readable differences between recorded provenance and a new request."""
    diffs = []
    if recorded.get("corpus_dir") != wanted["corpus_dir"]:
        diffs.append(f"corpus directory {recorded.get('corpus_dir')} then, {wanted['corpus_dir']} now")
    if recorded.get("metadata_sha256") != wanted["metadata_sha256"]:
        diffs.append(f"metadata.csv changed (sha256 {recorded.get('metadata_sha256')} then, "
                     f"{wanted['metadata_sha256']} now)")
    then, now = recorded.get("arguments", {}), wanted["arguments"]
    for key in ("seed", "skip_bad", "resample"):
        if then.get(key) != now[key]:
            diffs.append(f"{key} {then.get(key)} then, {now[key]} now")
    for key, default in _NEW_ARGS.items():
        if then.get(key, default) != now.get(key, default):
            diffs.append(f"{key} {then.get(key, default)} then, {now.get(key, default)} now")
    if then.get("protocol") == now.get("protocol") == "speaker":
        return diffs  # its sizes follow from the speaker arguments, compared above
    # Sizes are compared once resolved, so spelling out a default is not a change.
    sizes = recorded["sizes"]
    try:
        resolved = split_sizes(sizes.get("all", 0), **{k: now[k] for k in _SIZE_ARGS})
    except SplitError:
        resolved = None
    for arg, name in _SIZE_ARGS.items():
        changed = then.get(arg) != now[arg] if resolved is None else resolved[name] != sizes.get(name)
        if changed:
            requested = "default" if now[arg] is None else now[arg]
            diffs.append(f"{name} {sizes.get(name)} then, {requested} requested now")
    return diffs


def _install(tmp: Path, data_dir: Path, replace: bool) -> None:
    """Rename the finished `tmp` onto `data_dir` (absent or empty), or swap it for the old one."""
    if not replace:
        os.replace(tmp, data_dir)  # rename(2) also replaces an empty directory
        return
    old = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.", suffix=".old", dir=data_dir.parent))
    os.replace(data_dir, old)
    try:
        os.replace(tmp, data_dir)
    except BaseException:
        os.replace(old, data_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def prepare_data_dir(corpus_dir: str | os.PathLike, data_dir: str | os.PathLike, *, seed: int = 1234,
                     num_members: int | None = None, num_nonmembers: int | None = None,
                     num_valid: int | None = None, num_test: int | None = None, skip_bad: bool = False,
                     resample: bool = False, overwrite: bool = False, nj: int = 1,
                     progress: bool = False, protocol: str = "utterance", num_member_speakers: int | None = None,
                     valid_per_speaker: int = 1, test_per_speaker: int = 2,
                     defer_resample: bool = False) -> PrepareResult:
    """Validate a corpus (LJSpeech's format, or with a speaker column) and write the tables and splits (see
    the module docstring).

    Everything is built in a temporary sibling of `data_dir` and renamed into place. An existing data
    directory made from the same corpus with the same settings is left as it is ("unchanged"); other
    settings or a changed corpus raise, unless `overwrite` (which invalidates models trained on it).
    `protocol`, `num_member_speakers`, `valid_per_speaker` and `test_per_speaker` are for a multi-speaker
    corpus (holdtts.data.speakers); with `defer_resample`, wavs at another rate are kept as they are and
    `holdtts features` resamples them.
    """
    from holdtts import __version__

    if protocol not in PROTOCOLS:
        raise HoldttsError(f"unknown protocol {protocol!r} (expected one of {', '.join(PROTOCOLS)})")
    if resample and defer_resample:
        raise HoldttsError("--resample converts wavs in prepare, --defer-resample leaves them to features: "
                           "pass one or the other")
    metadata = check_corpus_dir(corpus_dir)
    listed = read_metadata(metadata, skipped=[])
    multi = any(utt.speaker is not None for utt in listed)
    data = Path(os.path.abspath(data_dir))
    arguments = {"seed": seed, "num_members": num_members, "num_nonmembers": num_nonmembers,
                 "num_valid": num_valid, "num_test": num_test, "skip_bad": skip_bad, "resample": resample}
    new_arguments = {"protocol": protocol, "num_member_speakers": num_member_speakers,
                     "valid_per_speaker": valid_per_speaker, "test_per_speaker": test_per_speaker,
                     "defer_resample": defer_resample}
    arguments.update({key: value for key, value in new_arguments.items()
                      if (multi and key in _SPEAKER_ARGS) or value != _NEW_ARGS[key]})
    _check_protocol_arguments(metadata, multi, arguments)
    wanted = {"corpus_dir": os.fspath(metadata.parent),
              "metadata_sha256": file_sha256(metadata), "arguments": arguments}
    replace = False
    if data.exists() and not data.is_dir():
        raise HoldttsError(f"{data}: exists and is not a directory")
    if (data / SPLITS_JSON).exists():
        recorded = load_splits_meta(data)
        diffs = _differences(recorded, wanted)
        if not diffs and not overwrite:
            load_splits(data)  # a data directory edited since is an error, not "up to date"
            return PrepareResult(data, "unchanged", recorded)
        if diffs and not overwrite:
            raise InputError("splits were prepared with other settings or another corpus: "
                             + "; ".join(diffs) + ". Re-run with the recorded settings, or pass --overwrite "
                             "to replace the splits (this invalidates every model trained on the old ones)",
                             data / SPLITS_JSON)
        replace = True
    elif data.is_dir() and any(data.iterdir()):
        raise HoldttsError(f"{data}: not empty and has no {SPLITS_JSON} (not made by `holdtts prepare`); "
                           "choose another data directory or remove it")
    # Sizes that cannot fit even if no utterance is skipped fail now, before the wav scan.
    if listed and multi:
        _make_multi_speaker_splits({utt.utt_id: utt.speaker for utt in listed}, seed, arguments)
    elif listed:
        split_sizes(len(listed), num_members, num_nonmembers, num_valid, num_test)

    ensure_dir(data.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{data.name}.", suffix=".tmp", dir=data.parent))
    except OSError as err:
        raise HoldttsError(f"{data.parent}: cannot create a directory there ({err.strerror})") from err
    try:
        scan = scan_corpus(metadata.parent, expected_sr=SAMPLE_RATE, skip_bad=skip_bad,
                           convert_dir=tmp / CONVERTED_WAVS if resample else None, defer_resample=defer_resample,
                           nj=nj, progress=progress)
        entries = scan.entries
        # Converted wavs are written inside tmp but listed at the path they have once it is renamed.
        wav_scp = {e.utt_id: os.fspath(data / CONVERTED_WAVS / f"{e.utt_id}.wav") if e.converted
                   else e.wav_path for e in entries}
        write_table(tmp / "all" / "wav.scp", wav_scp)
        write_table(tmp / "all" / "text", {e.utt_id: e.normalized for e in entries})
        write_table(tmp / "all" / "text.raw", {e.utt_id: e.text for e in entries})
        write_table(tmp / "all" / "utt2num_samples", {e.utt_id: e.num_samples for e in entries})
        if skip_bad:
            write_table(tmp / "all" / "skipped", {bad.utt_id: bad.reason for bad in scan.skipped})
        ids = sorted(wav_scp)
        utt2spk = {e.utt_id: e.speaker for e in entries} if multi else None
        meta = {
            **wanted,
            "ids_sha256": member_checksum(ids),
            "seed": seed,
            "protocol": PROTOCOL,
            "sample_rate": SAMPLE_RATE,
            "num_utterances": len(ids),
            "num_skipped": len(scan.skipped),
            "num_converted": scan.num_converted,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "holdtts_version": __version__,
        }
        if defer_resample:
            meta["num_deferred"] = scan.num_deferred  # wavs features will resample
        if utt2spk is None:
            splits = make_splits(ids, seed, num_members, num_nonmembers, num_valid, num_test)
        else:
            splits = _make_multi_speaker_splits(utt2spk, seed, arguments)
            meta.update(_speaker_meta(splits, utt2spk, protocol))
            meta["protocol_description"] = DESCRIPTIONS[protocol]
        write_splits(tmp, splits, meta, utt2spk)
        _install(tmp, data, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PrepareResult(data, "replaced" if replace else "created", load_splits_meta(data))


def _check_protocol_arguments(metadata: Path, multi: bool, arguments: dict) -> None:
    """Refuse speaker arguments for a single-speaker corpus and arguments the protocol does not use."""
    protocol = arguments.get("protocol", "utterance")
    speaker_only = [key for key, default in _SPEAKER_ARGS.items() if arguments.get(key, default) != default]
    if not multi:
        if speaker_only:
            raise InputError(f"{', '.join('--' + k.replace('_', '-') for k in speaker_only)} need(s) a "
                             "multi-speaker corpus (a fourth metadata column, the speaker); this one has none",
                             metadata)
        return
    if protocol == "speaker":
        given = [arg for arg in _SIZE_ARGS if arguments[arg] is not None]
        if given:
            raise HoldttsError(f"{', '.join('--' + k.replace('_', '-') for k in given)}: not used by the speaker "
                               "protocol (members are the member speakers' utterances; use "
                               "--num-member-speakers, --valid-per-speaker and --test-per-speaker)")
    else:
        given = [key for key in ("num_member_speakers", "valid_per_speaker", "test_per_speaker")
                 if arguments[key] != _SPEAKER_ARGS[key]]
        if given:
            raise HoldttsError(f"{', '.join('--' + k.replace('_', '-') for k in given)}: only for "
                               "--protocol speaker")


def _make_multi_speaker_splits(utt2spk: dict[str, str], seed: int, arguments: dict) -> dict[str, list[str]]:
    try:
        if arguments["protocol"] == "speaker":
            return make_speaker_splits(utt2spk, seed, arguments["num_member_speakers"],
                                       arguments["valid_per_speaker"], arguments["test_per_speaker"])
        sizes = split_sizes(len(utt2spk), **{k: arguments[k] for k in _SIZE_ARGS})
        return make_utterance_splits(utt2spk, seed, sizes)
    except SpeakerSplitError as err:
        raise SplitError(str(err)) from err


def _speaker_meta(splits: dict[str, list[str]], utt2spk: dict[str, str], protocol: str) -> dict:
    """The splits.json keys of a multi-speaker data directory (the data contract of the model side)."""
    meta = {"protocol": protocol, "num_speakers": len(set(utt2spk.values())),
            "num_member_speakers": len(speakers_of(utt2spk, splits["members"]))}
    if protocol == "speaker":
        meta["speakers"] = speakers_per_split(splits, utt2spk)
    return meta
