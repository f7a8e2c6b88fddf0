"""Speakers of a multi-speaker corpus: Kaldi speaker tables and the two membership protocols.

    <data_dir>/utt2spk   <utt-id> <speaker-id>         every utterance of `all`, sorted by utterance id
    <data_dir>/spk2utt   <speaker-id> <utt-id> ...     its inverse: speakers sorted, their ids sorted
    <data_dir>/spk2id    <speaker-id> <index>          the speakers of `members`, sorted, indexed 0..K-1:
                                                       the rows of a multi-speaker model's speaker table
                                                       (a speaker absent from it is unseen by the model)

A single-speaker corpus (LJSpeech's three metadata columns) has none of these files.

Membership protocols (`holdtts prepare --protocol`):

utterance  (PIA's protocol, within the training speakers) every speaker has members and non-members.
           The utterances are ordered so that each speaker's are spread evenly over the whole order
           (systematic sampling: a speaker with n utterances, permuted, gets the keys (r + u) / n,
           r = 0..n-1, u drawn once per speaker), and the order is cut into valid, members, nonmembers
           and unused, as the single-speaker protocol cuts its permutation: every contiguous cut holds
           each speaker's share of it, to within one utterance. test = the first non-members in that
           order, half1/half2 = each speaker's members halved (an odd speaker's extra utterance goes to
           half1 and half2 in turn).
speaker    whole speakers are members or not. The sorted speakers are permuted: the first
           --num-member-speakers are member speakers, the rest non-member speakers. Of each member
           speaker's utterances (permuted), the first --valid-per-speaker are `valid`, the next
           --test-per-speaker are `test` (sentences of a trained voice that no model has heard, for
           quality per speaker), the rest are `members`. nonmembers = every utterance of the non-member
           speakers. half1/half2 split the member speakers (the first half of them, in permuted order,
           give half1), so that all of a speaker's utterances are in one half.

Both are pure functions of (sorted ids, their speakers, seed, sizes): the input order does not matter.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from holdtts.data.tables import iter_lines, read_table, write_table
from holdtts.errors import HoldttsError, InputError
from holdtts.utils.fileio import atomic_open

UTT2SPK = "utt2spk"
SPK2UTT = "spk2utt"
SPK2ID = "spk2id"
PROTOCOLS = ("utterance", "speaker")
SPEAKER_SPLITS = ("members", "nonmembers", "half1", "half2", "valid", "test")
DESCRIPTIONS = {
    "utterance": "utterance-level membership within the training speakers: each speaker's sorted ids "
                 "permuted with numpy.random.default_rng(seed) and spread evenly over one order (keys "
                 "(rank + u_speaker) / n_speaker); in that order: valid, members, nonmembers, unused; "
                 "test = first nonmembers; half1/half2 = each speaker's members halved",
    "speaker": "speaker-level membership: sorted speakers permuted with numpy.random.default_rng(seed); the "
               "first num_member_speakers are member speakers; of each member speaker's permuted ids: "
               "valid_per_speaker valid, test_per_speaker test, the rest members; nonmembers = every "
               "utterance of the other speakers; half1/half2 = the member speakers halved in permuted order",
}


class SpeakerSplitError(HoldttsError, ValueError):
    """Speaker counts or split sizes that do not fit the corpus's speakers."""


# ------------------------------------------------------------------------------ tables
def spk2utt_of(utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    """Each speaker's sorted utterance ids."""
    out: dict[str, list[str]] = {}
    for utt in sorted(utt2spk):
        out.setdefault(utt2spk[utt], []).append(utt)
    return {spk: out[spk] for spk in sorted(out)}


def speakers_of(utt2spk: Mapping[str, str], utts: Iterable[str]) -> list[str]:
    """The sorted speakers of `utts`."""
    return sorted({utt2spk[u] for u in utts})


def spk2id_of(utt2spk: Mapping[str, str], members: Iterable[str]) -> dict[str, int]:
    """The speakers of `members`, sorted, indexed 0..K-1."""
    return {spk: i for i, spk in enumerate(speakers_of(utt2spk, members))}


def write_speaker_tables(data_dir: str | os.PathLike, utt2spk: Mapping[str, str], members: Iterable[str]) -> None:
    """Write utt2spk, spk2utt and spk2id at the top of `data_dir` (atomically, each)."""
    data_dir = Path(data_dir)
    write_table(data_dir / UTT2SPK, utt2spk)
    with atomic_open(data_dir / SPK2UTT, "w") as f:
        f.writelines(f"{spk} {' '.join(utts)}\n" for spk, utts in spk2utt_of(utt2spk).items())
    write_table(data_dir / SPK2ID, spk2id_of(utt2spk, members))


def read_utt2spk(data_dir: str | os.PathLike) -> dict[str, str] | None:
    """`<data_dir>/utt2spk`, or None for a single-speaker data directory (no utt2spk)."""
    path = Path(data_dir) / UTT2SPK
    if not path.exists():
        return None
    table = read_table(path)
    for number, line in iter_lines(path):
        if len(line.split()) != 2:
            raise InputError(f"expected '<utterance-id> <speaker-id>', got {len(line.split())} fields", path,
                             number)
    return table


def read_spk2id(data_dir: str | os.PathLike) -> dict[str, int] | None:
    """`<data_dir>/spk2id` (speaker -> row of the model's speaker table), or None when there is none.
    The indices must be 0..K-1 in the speakers' sorted order."""
    path = Path(data_dir) / SPK2ID
    if not path.exists():
        return None
    table = read_table(path, value_type=int)
    expected = {spk: i for i, spk in enumerate(sorted(table))}
    if table != expected:
        wrong = next(spk for spk in sorted(table) if table[spk] != expected[spk])
        raise InputError(f"speaker '{wrong}' has index {table[wrong]}, expected {expected[wrong]} (the "
                         "sorted speakers are numbered 0..K-1)", path)
    return table


def check_speaker_tables(data_dir: str | os.PathLike, splits: Mapping[str, list[str]]) -> dict[str, str] | None:
    """Read utt2spk, spk2utt and spk2id and check them against each other and the splits; returns utt2spk
    (None for a single-speaker data directory). A mismatch is an InputError naming the table."""
    data_dir = Path(data_dir)
    utt2spk = read_utt2spk(data_dir)
    if utt2spk is None:
        for name in (SPK2UTT, SPK2ID):
            if (data_dir / name).exists():
                raise InputError(f"{name} without {UTT2SPK}: the data directory was changed after "
                                 "`holdtts prepare`", data_dir / name)
        return None
    if set(utt2spk) != set(splits["all"]):
        differing = sorted(set(utt2spk) ^ set(splits["all"]))
        raise InputError(f"{len(differing)} ids differ between utt2spk and all/wav.scp (e.g. '{differing[0]}')",
                         data_dir / UTT2SPK)
    spk2utt: dict[str, list[str]] = {}
    path = data_dir / SPK2UTT
    for number, line in iter_lines(path):
        spk, *utts = line.split()
        if not utts:
            raise InputError(f"speaker '{spk}' has no utterances", path, number)
        if spk in spk2utt:
            raise InputError(f"duplicate speaker '{spk}'", path, number)
        spk2utt[spk] = sorted(utts)
    if spk2utt != spk2utt_of(utt2spk):
        raise InputError(f"not the inverse of {UTT2SPK}: the data directory was changed after `holdtts prepare`",
                         path)
    spk2id = read_spk2id(data_dir)
    if spk2id is None:
        raise InputError(f"missing: a data directory with {UTT2SPK} needs it (run `holdtts prepare`)",
                         data_dir / SPK2ID)
    if list(spk2id) != speakers_of(utt2spk, splits["members"]):
        raise InputError("does not list exactly the speakers of 'members': the data directory was changed "
                         "after `holdtts prepare`", data_dir / SPK2ID)
    return utt2spk


# ------------------------------------------------------------------------------ the protocols
def _speaker_permutations(utt2spk: Mapping[str, str], rng: np.random.Generator) -> dict[str, list[str]]:
    """Each speaker's sorted ids, permuted (speakers in sorted order, one draw each)."""
    return {spk: [utts[i] for i in rng.permutation(len(utts))] for spk, utts in spk2utt_of(utt2spk).items()}


def stratified_order(utt2spk: Mapping[str, str], seed: int) -> list[str]:
    """Every id, ordered so that each speaker's (permuted) ids are spread evenly over the order."""
    rng = np.random.default_rng(seed)
    permuted = _speaker_permutations(utt2spk, rng)
    speakers = list(permuted)
    offsets = rng.random(len(speakers))
    tiebreak = rng.permutation(len(speakers))
    keyed = [((rank + offsets[s]) / len(permuted[spk]), int(tiebreak[s]), utt)
             for s, spk in enumerate(speakers) for rank, utt in enumerate(permuted[spk])]
    return [utt for *_, utt in sorted(keyed)]


def _halve_per_speaker(members: list[str], utt2spk: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Each speaker's members (in the given order) halved; odd speakers give their extra one in turn to
    half1 and half2."""
    by_speaker: dict[str, list[str]] = {}
    for utt in members:
        by_speaker.setdefault(utt2spk[utt], []).append(utt)
    half1, half2, extra_to_first = [], [], True
    for spk in sorted(by_speaker):
        utts = by_speaker[spk]
        cut = len(utts) // 2
        if len(utts) % 2:
            cut += extra_to_first
            extra_to_first = not extra_to_first
        half1 += utts[:cut]
        half2 += utts[cut:]
    return half1, half2


def make_utterance_splits(utt2spk: Mapping[str, str], seed: int, sizes: Mapping[str, int]) -> dict[str, list[str]]:
    """The utterance protocol (module docstring) with the resolved `sizes` of `splits.split_sizes`."""
    order = stratified_order(utt2spk, seed)
    bounds = np.cumsum([0, sizes["valid"], sizes["members"], sizes["nonmembers"]])
    valid, members, nonmembers = (order[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
    counts = {spk: [0, 0, len(utts)] for spk, utts in spk2utt_of(utt2spk).items()}
    for utt in members:
        counts[utt2spk[utt]][0] += 1
    for utt in nonmembers:
        counts[utt2spk[utt]][1] += 1
    lacking = [(spk, m, n, total) for spk, (m, n, total) in counts.items() if not m or not n]
    if lacking:
        spk, m, n, total = lacking[0]
        raise SpeakerSplitError(
            f"the utterance protocol needs members and non-members of every speaker, but speaker '{spk}' gets "
            f"{m} member(s) and {n} non-member(s) of its {total} utterances ({len(lacking)} speaker(s) lack one "
            "or the other): ask for more members and non-members, or use --protocol speaker")
    half1, half2 = _halve_per_speaker(members, utt2spk)
    return {
        "all": sorted(utt2spk),
        "valid": sorted(valid),
        "members": sorted(members),
        "nonmembers": sorted(nonmembers),
        "unused": sorted(order[bounds[-1]:]),
        "half1": sorted(half1),
        "half2": sorted(half2),
        "test": sorted(nonmembers[:sizes["test"]]),
    }


def speaker_counts(num_speakers: int, num_member_speakers: int | None) -> tuple[int, int]:
    """(member speakers, non-member speakers): by default half the speakers (rounded down) are members."""
    members = num_speakers // 2 if num_member_speakers is None else num_member_speakers
    if members < 2:
        raise SpeakerSplitError(f"the speaker protocol needs at least 2 member speakers (one per half), got "
                                f"{members} (corpus of {num_speakers} speakers)")
    if num_speakers - members < 1:
        raise SpeakerSplitError(f"the speaker protocol needs at least 1 non-member speaker: {members} member "
                                f"speakers leave none of the {num_speakers}")
    return members, num_speakers - members


def make_speaker_splits(utt2spk: Mapping[str, str], seed: int, num_member_speakers: int | None = None,
                        valid_per_speaker: int = 1, test_per_speaker: int = 2) -> dict[str, list[str]]:
    """The speaker protocol (module docstring)."""
    if valid_per_speaker < 1:
        raise SpeakerSplitError(f"--valid-per-speaker must be at least 1, got {valid_per_speaker}")
    if test_per_speaker < 1:
        raise SpeakerSplitError(f"--test-per-speaker must be at least 1, got {test_per_speaker}")
    rng = np.random.default_rng(seed)
    speakers = sorted(set(utt2spk.values()))
    num_members, _ = speaker_counts(len(speakers), num_member_speakers)
    order = [speakers[i] for i in rng.permutation(len(speakers))]
    member_speakers, nonmember_speakers = order[:num_members], order[num_members:]
    permuted = _speaker_permutations(utt2spk, rng)
    held = valid_per_speaker + test_per_speaker
    short = [spk for spk in member_speakers if len(permuted[spk]) <= held]
    if short:
        spk = sorted(short)[0]
        raise SpeakerSplitError(
            f"member speaker '{spk}' has {len(permuted[spk])} utterance(s): too few to hold out "
            f"{valid_per_speaker} valid and {test_per_speaker} test sentence(s) and keep a member "
            f"({len(short)} member speaker(s) are that short); lower --valid-per-speaker/--test-per-speaker")
    valid, test, members, half1 = [], [], [], []
    first_half = set(member_speakers[:(num_members + 1) // 2])
    for spk in member_speakers:
        utts = permuted[spk]
        valid += utts[:valid_per_speaker]
        test += utts[valid_per_speaker:held]
        members += utts[held:]
        if spk in first_half:
            half1 += utts[held:]
    nonmembers = [utt for spk in nonmember_speakers for utt in permuted[spk]]
    return {
        "all": sorted(utt2spk),
        "valid": sorted(valid),
        "members": sorted(members),
        "nonmembers": sorted(nonmembers),
        "unused": [],
        "half1": sorted(half1),
        "half2": sorted(set(members) - set(half1)),
        "test": sorted(test),
    }


def speakers_per_split(splits: Mapping[str, list[str]], utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    """The sorted speakers of each split in SPEAKER_SPLITS."""
    return {name: speakers_of(utt2spk, splits[name]) for name in SPEAKER_SPLITS}


def speaker_problems(splits: Mapping[str, list[str]], utt2spk: Mapping[str, str], protocol: str) -> list[str]:
    """What breaks a protocol's speaker invariants (empty when consistent)."""
    missing = set(splits["all"]) - set(utt2spk)
    if missing:
        return [f"{len(missing)} utterance(s) have no speaker (e.g. '{sorted(missing)[0]}')"]
    spk = {name: set(speakers_of(utt2spk, splits[name])) for name in SPEAKER_SPLITS}
    problems = []
    for name in ("valid", "test", "half1", "half2"):
        unseen = spk[name] - spk["members"]
        if unseen:
            problems.append(f"speaker(s) of '{name}' without members, unseen by the model: {sorted(unseen)[:3]}")
    if protocol == "speaker":
        shared = spk["members"] & spk["nonmembers"]
        if shared:
            problems.append(f"{len(shared)} speaker(s) are both member and non-member speakers (e.g. "
                            f"'{sorted(shared)[0]}')")
        if spk["half1"] & spk["half2"]:
            problems.append(f"'half1' and 'half2' share speakers (e.g. '{sorted(spk['half1'] & spk['half2'])[0]}')")
    elif protocol == "utterance":
        if spk["members"] != spk["nonmembers"]:
            odd = sorted(spk["members"] ^ spk["nonmembers"])
            problems.append(f"{len(odd)} speaker(s) lack members or non-members (e.g. '{odd[0]}')")
    else:
        problems.append(f"unknown protocol {protocol!r} (expected one of {', '.join(PROTOCOLS)})")
    return problems

