"""Membership splits (PIA's protocol) and Kaldi-style tables."""
from __future__ import annotations

import random

import numpy as np
import pytest

from holdtts.data.splits import SplitError, make_splits, split_problems, split_sizes
from holdtts.data.tables import read_list, read_table, write_list, write_table
from holdtts.errors import InputError

IDS = [f"LJ{i // 100:03d}-{i % 100:04d}" for i in range(1, 301)]


def test_default_sizes_for_ljspeech():
    assert split_sizes(13100) == {"all": 13100, "valid": 100, "members": 6500, "nonmembers": 6500,
                                  "unused": 0, "half1": 3250, "half2": 3250, "test": 100}


@pytest.mark.parametrize("n, valid", [(6, 2), (250, 2), (251, 3), (1000, 10), (9999, 100)])
def test_default_valid_size(n, valid):
    sizes = split_sizes(n)
    assert sizes["valid"] == valid
    assert sizes["members"] == sizes["nonmembers"] == (n - valid) // 2
    assert sizes["unused"] == (n - valid) % 2


@pytest.mark.parametrize("kwargs", [
    {},
    {"num_members": 7},  # odd: half1 gets the extra one; most of the corpus is left unused
    {"num_members": 100, "num_nonmembers": 40, "num_valid": 5, "num_test": 40},
    {"num_members": 2, "num_nonmembers": 1, "num_valid": 1, "num_test": 1},
    {"num_valid": 10, "num_members": 145, "num_nonmembers": 145},
])
def test_splits_partition_the_corpus(kwargs):
    s = make_splits(IDS, 1234, **kwargs)
    sizes = split_sizes(len(IDS), **kwargs)
    assert {name: len(ids) for name, ids in s.items()} == sizes
    assert split_problems(s) == []
    members, nonmembers, valid, unused = (set(s[k]) for k in ("members", "nonmembers", "valid", "unused"))
    assert members | nonmembers | valid | unused == set(IDS)
    assert not (members & nonmembers or members & valid or nonmembers & valid or unused & (members | valid))
    assert set(s["half1"]) | set(s["half2"]) == members and not set(s["half1"]) & set(s["half2"])
    assert len(s["half1"]) - len(s["half2"]) in (0, 1)
    assert set(s["test"]) <= nonmembers
    assert all(lst == sorted(lst) for lst in s.values())


def test_permuted_order_reference():
    """The protocol spelt out on the permutation: valid, members, nonmembers, unused; halves; test."""
    s = make_splits(IDS, 99, num_members=20, num_nonmembers=15, num_valid=4, num_test=6)
    perm = [sorted(IDS)[i] for i in np.random.default_rng(99).permutation(len(IDS))]
    assert s["valid"] == sorted(perm[:4])
    assert s["members"] == sorted(perm[4:24])
    assert s["half1"] == sorted(perm[4:14]) and s["half2"] == sorted(perm[14:24])
    assert s["nonmembers"] == sorted(perm[24:39])
    assert s["test"] == sorted(perm[24:30])
    assert s["unused"] == sorted(perm[39:])


def test_pinned_split():
    """Splits must not change under a numpy or holdtts upgrade: models are trained on them."""
    s = make_splits([f"u{i:02d}" for i in range(20)], 0, num_members=6, num_test=2)
    assert s["valid"] == ["u04", "u19"]
    assert s["members"] == ["u02", "u03", "u06", "u11", "u13", "u16"]
    assert s["half1"] == ["u02", "u06", "u13"]
    assert s["nonmembers"] == ["u00", "u05", "u07", "u08", "u10", "u12"]
    assert s["test"] == ["u08", "u10"]


def test_deterministic_and_independent_of_input_order():
    shuffled = list(IDS)
    random.Random(3).shuffle(shuffled)
    assert make_splits(shuffled, 5) == make_splits(IDS, 5)
    assert make_splits(IDS, 5)["members"] != make_splits(IDS, 6)["members"]


@pytest.mark.parametrize("kwargs, message", [
    ({"num_members": 150}, "exceeds the 300 utterances"),
    ({"num_members": 100, "num_nonmembers": 199}, "exceeds"),
    ({"num_members": 1}, "members need at least 2"),
    ({"num_nonmembers": 0}, "non-members need at least 1"),
    ({"num_valid": 0}, "valid split needs at least 1"),
    ({"num_members": 10, "num_test": 11}, "test split takes 1 to 10"),
    ({"num_test": 0}, "test split takes"),
])
def test_sizes_that_do_not_fit(kwargs, message):
    with pytest.raises(SplitError, match=message):
        make_splits(IDS, 0, **kwargs)


def test_too_small_or_duplicated():
    with pytest.raises(SplitError, match="members need at least 2"):
        make_splits(IDS[:4], 0)
    with pytest.raises(SplitError, match="not unique"):
        make_splits(IDS + IDS[:1], 0)


def test_split_problems_catch_broken_invariants():
    s = make_splits(IDS, 0)
    leaked = dict(s, nonmembers=sorted(s["nonmembers"] + s["members"][:1]))
    assert any("'members' and 'nonmembers' share 1" in p for p in split_problems(leaked))
    assert any("partition" in p for p in split_problems(dict(s, half2=s["half2"][1:])))
    assert any("subset" in p for p in split_problems(dict(s, test=s["members"][:3])))
    assert any("cover" in p for p in split_problems(dict(s, valid=s["valid"][1:])))


# ----------------------------------------------------------------------------------------------- tables


def test_table_round_trip_sorted(tmp_path):
    path = tmp_path / "text"
    table = {"b": "two  words", "a": "/data/with space/x.wav", "c": 3}
    write_table(path, table)
    assert path.read_text() == "a /data/with space/x.wav\nb two  words\nc 3\n"
    assert read_table(path) == {"a": "/data/with space/x.wav", "b": "two  words", "c": "3"}
    assert read_table(path, value_type=str)["c"] == "3"
    write_table(path, {"x": 10, "y": 20})
    assert read_table(path, value_type=int) == {"x": 10, "y": 20}


@pytest.mark.parametrize("content, line, message", [
    ("a 1\nb\n", 2, "key 'b' has no value"),
    ("a 1\nb 2\n\nb 3\n", 4, "duplicate key 'b' (first on line 2)"),
    ("a 1\nb two\n", 2, "value 'two' is not a valid int"),
])
def test_table_errors_name_line(tmp_path, content, line, message):
    path = tmp_path / "utt2num_samples"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        read_table(path, value_type=int)
    assert (info.value.path, info.value.line) == (str(path), line)
    assert message in str(info.value) and str(info.value).startswith(f"{path}:{line}: ")


def test_table_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_table(tmp_path / "nope")


def test_write_table_rejects_what_cannot_be_read_back(tmp_path):
    with pytest.raises(ValueError, match="without whitespace"):
        write_table(tmp_path / "t", {"a b": "x"})
    with pytest.raises(ValueError, match="single line"):
        write_table(tmp_path / "t", {"a": "x\ny"})
    with pytest.raises(ValueError, match="non-empty"):
        write_table(tmp_path / "t", {"a": "  "})
    assert not (tmp_path / "t").exists()


def test_lists(tmp_path):
    path = tmp_path / "ids"
    write_list(path, ["c", "a", "b"])
    assert path.read_text() == "a\nb\nc\n" and read_list(path) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="duplicate"):
        write_list(path, ["a", "a"])
    path.write_text("a\nb x\n")
    with pytest.raises(InputError, match="one key per line") as info:
        read_list(path)
    assert info.value.line == 2
    path.write_text("a\nb\na\n")
    with pytest.raises(InputError, match="first on line 1") as info:
        read_list(path)
    assert info.value.line == 3
