"""The two membership protocols of multi-speaker corpora (holdtts.data.speakers) as pure functions: their
invariants, determinism, and the errors for corpora they cannot split."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from holdtts.data.speakers import (
    SpeakerSplitError,
    make_speaker_splits,
    make_utterance_splits,
    speaker_problems,
    speakers_of,
    spk2id_of,
    spk2utt_of,
    stratified_order,
)
from holdtts.data.splits import split_problems, split_sizes

# Unequal speakers, as real corpora have.
SPEAKERS = {"A": 40, "B": 25, "C": 12, "D": 30, "E": 9, "F": 20}
UTT2SPK = {f"{spk}-{i:04d}": spk for spk, n in SPEAKERS.items() for i in range(n)}


def utterance_splits(seed: int = 3, **sizes):
    return make_utterance_splits(UTT2SPK, seed, split_sizes(len(UTT2SPK), **sizes))


def test_tables():
    spk2utt = spk2utt_of(UTT2SPK)
    assert list(spk2utt) == sorted(SPEAKERS) and all(len(spk2utt[s]) == n for s, n in SPEAKERS.items())
    assert all(utts == sorted(utts) for utts in spk2utt.values())
    assert spk2id_of(UTT2SPK, ["D-0001", "A-0003", "D-0002"]) == {"A": 0, "D": 1}


def test_stratified_order_spreads_every_speaker():
    order = stratified_order(UTT2SPK, seed=5)
    assert sorted(order) == sorted(UTT2SPK)
    n = len(order)
    for start, stop in ((0, 20), (20, 97), (40, 136)):  # any contiguous cut holds each speaker's share
        counts = Counter(UTT2SPK[u] for u in order[start:stop])
        for spk, total in SPEAKERS.items():
            assert abs(counts[spk] - total * (stop - start) / n) <= 1.0 + 1e-9, (spk, start, stop)


def test_utterance_protocol_invariants():
    splits = utterance_splits()
    assert split_problems(splits, "utterance", UTT2SPK) == []
    sizes = split_sizes(len(UTT2SPK))
    for name in ("valid", "members", "nonmembers", "test"):
        assert len(splits[name]) == sizes[name]
    members = Counter(UTT2SPK[u] for u in splits["members"])
    nonmembers = Counter(UTT2SPK[u] for u in splits["nonmembers"])
    for spk, total in SPEAKERS.items():  # stratified: each speaker's share, within one utterance
        share = total * sizes["members"] / len(UTT2SPK)
        assert members[spk] >= 1 and nonmembers[spk] >= 1
        assert abs(members[spk] - share) <= 1 and abs(nonmembers[spk] - share) <= 1
    # halves: each speaker's members halved, so each half holds every speaker
    assert speakers_of(UTT2SPK, splits["half1"]) == speakers_of(UTT2SPK, splits["half2"]) == sorted(SPEAKERS)
    assert abs(len(splits["half1"]) - len(splits["half2"])) <= 1
    assert set(splits["test"]) <= set(splits["nonmembers"])
    assert len(speakers_of(UTT2SPK, splits["test"])) == len(SPEAKERS)


def test_utterance_protocol_is_deterministic_and_order_free():
    shuffled = list(UTT2SPK.items())
    random.Random(0).shuffle(shuffled)
    assert utterance_splits(seed=9) == make_utterance_splits(dict(shuffled), 9, split_sizes(len(UTT2SPK)))
    assert utterance_splits(seed=9)["members"] != utterance_splits(seed=10)["members"]


def test_utterance_protocol_refuses_a_speaker_without_members_or_nonmembers():
    utt2spk = {**UTT2SPK, "Z-0001": "Z"}  # a speaker of one utterance cannot be on both sides
    with pytest.raises(SpeakerSplitError, match="speaker 'Z'"):
        make_utterance_splits(utt2spk, 3, split_sizes(len(utt2spk)))


def test_speaker_protocol_invariants():
    splits = make_speaker_splits(UTT2SPK, seed=4, num_member_speakers=4, valid_per_speaker=1, test_per_speaker=2)
    assert split_problems(splits, "speaker", UTT2SPK) == []
    member_spk = speakers_of(UTT2SPK, splits["members"])
    nonmember_spk = speakers_of(UTT2SPK, splits["nonmembers"])
    assert len(member_spk) == 4 and set(member_spk) | set(nonmember_spk) == set(SPEAKERS)
    assert not set(member_spk) & set(nonmember_spk)
    # non-members: every utterance of the non-member speakers
    assert sorted(splits["nonmembers"]) == sorted(u for u, s in UTT2SPK.items() if s in nonmember_spk)
    # held out of each member speaker: 1 valid, 2 test; the rest are members
    for spk in member_spk:
        assert sum(UTT2SPK[u] == spk for u in splits["valid"]) == 1
        assert sum(UTT2SPK[u] == spk for u in splits["test"]) == 2
        assert sum(UTT2SPK[u] == spk for u in splits["members"]) == SPEAKERS[spk] - 3
    assert not set(splits["test"]) & (set(splits["members"]) | set(splits["nonmembers"]))
    # halves by speaker
    h1, h2 = speakers_of(UTT2SPK, splits["half1"]), speakers_of(UTT2SPK, splits["half2"])
    assert len(h1) == len(h2) == 2 and not set(h1) & set(h2)
    assert splits["unused"] == []


def test_speaker_protocol_defaults_and_determinism():
    splits = make_speaker_splits(UTT2SPK, seed=4)
    assert len(speakers_of(UTT2SPK, splits["members"])) == 3  # half of 6
    shuffled = dict(sorted(UTT2SPK.items(), reverse=True))
    assert make_speaker_splits(shuffled, seed=4) == splits
    assert any(make_speaker_splits(UTT2SPK, seed=s)["members"] != splits["members"] for s in range(5, 9))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_member_speakers": 1}, "at least 2 member speakers"),
    ({"num_member_speakers": 6}, "at least 1 non-member speaker"),
    ({"num_member_speakers": 5, "test_per_speaker": 11}, r"member speaker '(C' has 12|E' has 9) utterance"),
    ({"valid_per_speaker": 0}, "valid-per-speaker"),
])
def test_speaker_protocol_errors(kwargs, message):
    with pytest.raises(SpeakerSplitError, match=message):
        make_speaker_splits(UTT2SPK, seed=4, **kwargs)


def test_speaker_problems_catch_broken_invariants():
    splits = make_speaker_splits(UTT2SPK, seed=4)
    member, nonmember = splits["members"][0], splits["nonmembers"][0]
    moved = {**UTT2SPK, nonmember: UTT2SPK[member]}  # a member speaker among the non-members
    assert any("both member and non-member" in p for p in speaker_problems(splits, moved, "speaker"))
    mixed = dict(splits, half1=sorted(splits["half1"] + splits["half2"][:1]),
                 half2=splits["half2"][1:])
    assert any("share speakers" in p for p in speaker_problems(mixed, UTT2SPK, "speaker"))
    unseen = dict(splits, test=sorted(splits["test"] + [nonmember]))
    assert any("'test' without members" in p for p in speaker_problems(unseen, UTT2SPK, "speaker"))
    # the utterance protocol: a speaker with members and no non-members
    u = utterance_splits()
    spk = UTT2SPK[u["nonmembers"][0]]
    lacking = dict(u, nonmembers=[x for x in u["nonmembers"] if UTT2SPK[x] != spk])
    assert any("lack members or non-members" in p for p in speaker_problems(lacking, UTT2SPK, "utterance"))
    # split_problems: under the speaker protocol test is its own part; elsewhere it must be non-members
    assert split_problems(splits, "speaker") == []
    assert any("subset" in p for p in split_problems(splits))

