"""The features stage and the training batches read from it."""
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

import holdtts
from holdtts.data.dataset import BucketedBatches, FeatureStore, collate, load_split
from holdtts.data.features import extract_features
from holdtts.data.tables import read_table
from holdtts.data.text import TextFrontend
from holdtts.errors import HoldttsError, InputError


def test_features_match_the_wavs_and_the_frontend(mini_recipe):
    store = FeatureStore(mini_recipe / "dump")
    wavs = read_table(mini_recipe / "data" / "all" / "wav.scp")
    texts = read_table(mini_recipe / "data" / "all" / "text")
    assert store.utt_ids == sorted(wavs)
    frontend = TextFrontend()
    for utt in store.utt_ids[:4]:
        wav, sr = sf.read(wavs[utt], dtype="float32")
        expected = holdtts.mel_spectrogram(torch.from_numpy(wav)).numpy()
        assert np.array_equal(store.mel(utt).shape, expected.shape)
        assert np.abs(store.mel(utt) - expected).max() < 1e-4  # batched on the CPU vs one by one
        assert store.tokens(utt).tolist() == frontend.encode(texts[utt])
    manifest = store.manifest
    assert manifest["num_utts"] == 24 and manifest["n_vocab"] == store.symbols.n_vocab
    assert store.symbols == frontend.symbols


def test_rerun_is_a_no_op_and_changed_inputs_need_overwrite(mini_recipe, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(mini_recipe / "data", data)
    dump = tmp_path / "dump"
    first = extract_features(data, dump, device="cpu", nj=1)
    assert not first["skipped"]
    again = extract_features(data, dump, device="cpu", nj=1)
    assert again["skipped"]
    text = data / "all" / "text"
    lines = text.read_text().splitlines()
    utt = lines[0].split()[0]
    lines[0] = f"{utt} a different sentence now."
    text.write_text("\n".join(lines) + "\n")
    with pytest.raises(HoldttsError, match="--overwrite"):
        extract_features(data, dump, device="cpu", nj=1)
    redone = extract_features(data, dump, device="cpu", nj=1, overwrite=True)
    assert not redone["skipped"]
    assert FeatureStore(dump).tokens(utt).tolist() == TextFrontend().encode("a different sentence now.")


def test_bad_inputs_name_the_file_and_line(mini_recipe, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(mini_recipe / "data", data)
    scp = data / "all" / "wav.scp"
    lines = scp.read_text().splitlines()
    utt, wav_path = lines[2].split(maxsplit=1)
    wav, sr = sf.read(wav_path, dtype="float32")
    short = tmp_path / "short.wav"
    sf.write(short, wav[: len(wav) // 2], sr, subtype="PCM_16")
    lines[2] = f"{utt} {short}"
    scp.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        extract_features(data, tmp_path / "dump", device="cpu", nj=1)
    assert err.value.path == str(scp) and err.value.line == 3 and "truncated" in str(err.value)
    assert not (tmp_path / "dump" / "manifest.json").exists()  # nothing that looks complete

    text = data / "all" / "text"
    tl = text.read_text().splitlines()
    tl[1] = tl[1].split()[0] + " ###"
    text.write_text("\n".join(tl) + "\n")
    with pytest.raises(InputError) as err:
        extract_features(data, tmp_path / "dump2", device="cpu", nj=1)
    assert err.value.path == str(text) and err.value.line == 2
    (data / "all" / "utt2num_samples").unlink()
    with pytest.raises(InputError, match="prepare"):
        extract_features(data, tmp_path / "dump3", device="cpu", nj=1)


def test_feature_store_needs_a_complete_dump(tmp_path):
    with pytest.raises(InputError, match="manifest"):
        FeatureStore(tmp_path)


def test_batches_are_bucketed_reproducible_and_resumable(mini_recipe):
    store = FeatureStore(mini_recipe / "dump")
    members = load_split(mini_recipe / "data", "members")
    batches = BucketedBatches(store, members, batch_size=4, segment_frames=32, seed=3, bucket_size=2)
    epoch0 = [b.utt_ids for b in batches.iterate(0)]
    assert [b.utt_ids for b in batches.iterate(0)] == epoch0
    assert [b.utt_ids for b in batches.iterate(1)] != epoch0
    assert sorted(u for ids in epoch0 for u in ids) == sorted(members)
    tail = list(batches.iterate(0, start=2))
    full = list(batches.iterate(0))
    assert [b.utt_ids for b in tail] == [b.utt_ids for b in full[2:]]
    assert all(torch.equal(a.crop_starts, b.crop_starts) for a, b in zip(tail, full[2:]))
    via_loader = list(batches.loader(0, start=2, num_workers=0))
    assert all(torch.equal(a.mels, b.mels) for a, b in zip(via_loader, tail))
    for b in full:
        assert torch.all(b.crop_starts <= torch.clamp(b.mel_lengths - 32, min=0))
        for i, utt in enumerate(b.utt_ids):
            n = store.num_frames(utt)
            assert int(b.mel_lengths[i]) == n and torch.all(b.mels[i, :, n:] == 0)
            assert torch.equal(b.mels[i, :, :n], torch.from_numpy(store.mel(utt)))
    # length bucketing: within a pool, batches hold neighbours in length
    ranks = [BucketedBatches(store, members, 2, 32, seed=3, rank=r, world_size=2).epoch_batches(0)
             for r in range(2)]
    assert len(ranks[0]) == len(ranks[1])
    assert not {i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}


def test_collate_pads_tokens_and_defaults_crops_to_zero(mini_recipe):
    store = FeatureStore(mini_recipe / "dump")
    utts = store.utt_ids[:3]
    batch = collate(store, utts, 32)
    assert batch.tokens.shape[0] == 3 and torch.all(batch.crop_starts == 0)
    for i, utt in enumerate(utts):
        n = len(store.tokens(utt))
        assert int(batch.token_lengths[i]) == n and torch.all(batch.tokens[i, n:] == 0)
    assert json.loads((mini_recipe / "dump" / "manifest.json").read_text())["num_utts"] == 24


def test_a_cut_wav_recorded_at_its_cut_length_is_still_an_error(mini_recipe, tmp_path):
    """Issue 14: a wav cut to half its bytes (tables made from it, as an older prepare recorded them) decodes
    consistently to half the samples; only its header tells it lost the end of the sentence."""
    data = tmp_path / "data"
    shutil.copytree(mini_recipe / "data", data)
    scp = data / "all" / "wav.scp"
    lines = scp.read_text().splitlines()
    utt, wav_path = lines[4].split(maxsplit=1)
    cut = tmp_path / "cut.wav"
    whole = open(wav_path, "rb").read()
    cut.write_bytes(whole[: len(whole) // 2])
    lines[4] = f"{utt} {cut}"
    scp.write_text("\n".join(lines) + "\n")
    samples = data / "all" / "utt2num_samples"
    counts = read_table(samples)
    counts[utt] = str(sf.info(str(cut)).frames)  # what libsndfile reports: the part that is there
    samples.write_text("".join(f"{u} {n}\n" for u, n in sorted(counts.items())))
    with pytest.raises(InputError, match="truncated wav") as err:
        extract_features(data, tmp_path / "dump", device="cpu", nj=1)
    assert err.value.path == str(scp) and err.value.line == 5 and str(cut) in str(err.value)
    assert not (tmp_path / "dump" / "manifest.json").exists()


def test_text_prepare_accepts_features_can_encode(mini_recipe, tmp_path):
    """Issue 14: emoji-only text is refused by the same check in prepare (holdtts.data.corpus.read_metadata)
    and in features, with the same words."""
    from holdtts.data.corpus import read_metadata

    data = tmp_path / "data"
    shutil.copytree(mini_recipe / "data", data)
    text = data / "all" / "text"
    lines = text.read_text().splitlines()
    lines[3] = lines[3].split()[0] + " \U0001f600\U0001f44d"
    text.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="nothing to speak") as in_features:
        extract_features(data, tmp_path / "dump", device="cpu", nj=1)
    assert in_features.value.line == 4
    metadata = tmp_path / "metadata.csv"
    metadata.write_text("LJ1|fine|fine\nLJ2|\U0001f600\U0001f44d|\U0001f600\U0001f44d\n", encoding="utf-8")
    with pytest.raises(InputError, match="nothing to speak") as in_prepare:
        read_metadata(metadata)
    assert in_prepare.value.line == 2
