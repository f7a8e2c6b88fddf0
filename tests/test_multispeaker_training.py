"""Training, checkpoints, synthesis and attack conditions of multi-speaker systems on a small multi-speaker data
directory; every way the config and the data can disagree is refused, naming the file."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from holdtts.data.dataset import FeatureStore, load_split
from holdtts.data.speaker_map import read_speaker_map
from holdtts.defenses.dualmd import DualGradTTS, teacher_speakers
from holdtts.errors import HoldttsError, InputError
from holdtts.models.loading import load_model
from holdtts.models.tts import MEAN_SPEAKER, GradTTS
from holdtts.privacy.runner import AttackTarget, run_attacks
from holdtts.quality.evaluate import speaker_similarity_summary
from holdtts.training.factory import make_trainer
from holdtts.utils.checkpoint import load_checkpoint

from speaker_factory import write_speaker_data_dir
from tiny import tiny_config

SPEAKER_DIM = "model.speaker_dim=8"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """16 short utterances, 4 speakers (utterance i is speaker i % 4); `data` follows the utterance protocol,
    `data_speaker` the speaker protocol (members: speakers 0 and 1, non-members: speakers 2 and 3)."""
    from holdtts.data.features import extract_features
    from holdtts.data.splits import prepare_data_dir

    from corpus_factory import make_short_corpus, utt_id

    root = tmp_path_factory.mktemp("ms_recipe")
    corpus = make_short_corpus(root / "corpus")
    prepare_data_dir(corpus, root / "base", seed=3, num_members=8, num_nonmembers=6, num_valid=1, num_test=1)
    extract_features(root / "base", root / "dump", device="cpu", nj=1)
    utts = [utt_id(i) for i in range(1, 17)]
    utt2spk = {u: f"spk{i % 4}" for i, u in enumerate(utts, 1)}
    splits = {name: load_split(root / "base", name) for name in ("members", "nonmembers", "valid", "test")}
    write_speaker_data_dir(root / "base", root / "data", utt2spk, splits, "utterance",
                           spk2id_speakers=sorted(set(utt2spk.values())))
    by_speaker = {"members": [u for u in utts if utt2spk[u] in ("spk0", "spk1")],
                  "nonmembers": [u for u in utts if utt2spk[u] in ("spk2", "spk3")]}
    write_speaker_data_dir(root / "base", root / "data_speaker", utt2spk, by_speaker, "speaker")
    return root


def other_speaker(utt2spk):
    """utt2spk with speaker spk3 renamed spk9: a spk2id of the same size whose last row is someone else."""
    return {u: "spk9" if s == "spk3" else s for u, s in utt2spk.items()}


def train(root, exp, *overrides, data="data", system="vp"):
    cfg = tiny_config(system, "train.max_steps=2", *overrides)
    return make_trainer(cfg, exp, root / data, root / "dump", device="cpu", progress_bar=False).run()


def test_a_multi_speaker_system_trains_and_records_its_speakers(recipe, tmp_path):
    exp = tmp_path / "exp"
    assert train(recipe, exp, "model.n_speakers=4", SPEAKER_DIM)["finished"]
    state = load_checkpoint(exp)
    speakers = read_speaker_map(recipe / "data")
    assert state["speakers"]["speakers"] == ["spk0", "spk1", "spk2", "spk3"]
    assert state["speakers"]["sha256"] == speakers.checksum
    members = load_split(recipe / "data", "members")
    trained = sorted({speakers.index(speakers.speaker_of(u)) for u in members})
    assert state["speakers"]["trained_rows"] == trained
    model = load_model(exp)
    assert model.speaker_ids == ["spk0", "spk1", "spk2", "spk3"] and model.trained_speaker_rows == trained
    assert "speaker_embedding.weight" in state["model"]
    # resuming onto another spk2id (same count, row 3 now another speaker's) is refused
    other = write_speaker_data_dir(recipe / "base", tmp_path / "data_other", other_speaker(speakers.utt2spk),
                                   {n: load_split(recipe / "data", n) for n in ("members", "nonmembers")},
                                   "utterance")
    with pytest.raises(HoldttsError, match="another spk2id"):
        train(recipe, exp, "model.n_speakers=4", SPEAKER_DIM, "train.max_steps=3", data=other)


def test_config_and_data_disagreements_are_refused(recipe, tmp_path):
    with pytest.raises(HoldttsError, match="spk2id.*model.n_speakers = 1"):
        train(recipe, tmp_path / "a")
    with pytest.raises(HoldttsError, match="lists 4 speakers, more than the model.n_speakers = 3"):
        train(recipe, tmp_path / "b", "model.n_speakers=3", SPEAKER_DIM)
    with pytest.raises(HoldttsError, match="spk2id: not found"):
        train(recipe, tmp_path / "c", "model.n_speakers=4", SPEAKER_DIM, data="base")
    speakers = read_speaker_map(recipe / "data")
    members = load_split(recipe / "data", "members")
    dropped = speakers.speaker_of(members[0])
    write_speaker_data_dir(recipe / "base", tmp_path / "partial", dict(speakers.utt2spk),
                           {"members": members}, "utterance",
                           spk2id_speakers=[s for s in speakers.speakers if s != dropped])
    with pytest.raises(HoldttsError, match=f"spk2id.*are not in it, e.g. '{dropped}'"):
        make_trainer(tiny_config("vp", "train.max_steps=2", "model.n_speakers=4", SPEAKER_DIM), tmp_path / "d",
                     tmp_path / "partial", recipe / "dump", device="cpu", progress_bar=False).run()


def test_dp_sgd_trains_a_multi_speaker_model(recipe, tmp_path):
    summary = train(recipe, tmp_path / "dp", "model.n_speakers=4", SPEAKER_DIM, "dp.enabled=true",
                    "dp.noise_multiplier=1.0", "train.batch_size=3")
    assert summary["finished"] and summary["dp"]["noise_multiplier"] == 1.0
    assert load_checkpoint(tmp_path / "dp")["speakers"]["speakers"] == ["spk0", "spk1", "spk2", "spk3"]


def test_synthesize_takes_a_speaker(recipe, tmp_path):
    from holdtts.commands.synthesize import command

    exp = tmp_path / "exp"
    train(recipe, exp, "model.n_speakers=4", SPEAKER_DIM, "train.max_steps=1")
    base = ["--model", str(exp), "--text", "Red cat.", "--device", "cpu", "--steps", "2",
            "--vocoder", "griffin-lim"]
    out = tmp_path / "syn"
    result = CliRunner().invoke(command, [*base, "--out-dir", str(out), "--speaker", "spk2"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "synthesis.json").read_text())["speaker"] == "spk2"
    assert np.load(out / "utt00001.npy").shape[0] == 80
    mean = CliRunner().invoke(command, [*base, "--out-dir", str(tmp_path / "mean"), "--speaker", "@mean"])
    assert mean.exit_code == 0, mean.output
    missing = CliRunner().invoke(command, [*base, "--out-dir", str(tmp_path / "x")])
    assert missing.exit_code != 0 and "--speaker" in str(missing.exception)
    unknown = CliRunner().invoke(command, [*base, "--out-dir", str(tmp_path / "y"), "--speaker", "nobody"])
    assert unknown.exit_code != 0 and "unknown speaker 'nobody'" in str(unknown.exception)
    single = tmp_path / "single"
    train(recipe, single, "train.max_steps=1", data="base")
    refused = CliRunner().invoke(command, ["--model", str(single), "--text", "Red cat.", "--device", "cpu",
                                           "--out-dir", str(tmp_path / "z"), "--speaker", "spk0"])
    assert refused.exit_code != 0 and "single-speaker" in str(refused.exception)


def untrained(n_speakers, speaker_ids, trained_rows=None, seed=0, n_vocab=60):
    torch.manual_seed(seed)
    model = GradTTS(tiny_config("vp", f"model.n_speakers={n_speakers}", SPEAKER_DIM), n_vocab).eval()
    model.speaker_ids, model.trained_speaker_rows = list(speaker_ids), trained_rows
    return model


def test_attack_conditions_follow_the_protocol(recipe):
    store = FeatureStore(recipe / "dump")
    grids = {"loss": [0.3], "pia": [0.3]}
    utterance = AttackTarget.from_splits(recipe / "data", "members", "nonmembers")
    assert utterance.protocol == "utterance" and utterance.speakers is not None
    model = untrained(4, ["spk0", "spk1", "spk2", "spk3"], n_vocab=store.symbols.n_vocab)
    rows, info = run_attacks(model, store, utterance, ["loss", "pia", "duration"], grids, seed=1)
    assert info["speaker_condition"] == "own" and info["protocol"] == "utterance"
    assert all(r["speaker"] == utterance.speakers[r["utt_id"]] for r in rows)
    mean_rows, mean_info = run_attacks(model, store, utterance, ["loss"], grids, seed=1, speaker_condition="mean")
    assert mean_info["speaker_condition"] == "mean"
    own_loss = {r["utt_id"]: r["score"] for r in rows if r["attack"] == "loss"}
    assert any(abs(own_loss[r["utt_id"]] - r["score"]) > 1e-6 for r in mean_rows)  # the condition matters

    speaker = AttackTarget.from_splits(recipe / "data_speaker", "members", "nonmembers")
    assert speaker.protocol == "speaker"
    two = untrained(2, ["spk0", "spk1"], n_vocab=store.symbols.n_vocab)  # non-member speakers have no row
    rows, info = run_attacks(two, store, speaker, ["loss", "prior"], grids, seed=1)
    assert info["speaker_condition"] == "mean"
    with pytest.raises(HoldttsError, match="no row in the model's speaker table"):
        run_attacks(two, store, speaker, ["loss"], grids, seed=1, speaker_condition="own")
    single = GradTTS(tiny_config("vp"), store.symbols.n_vocab).eval()
    rows, info = run_attacks(single, store, speaker, ["loss"], grids, seed=1)  # rows still carry speakers
    assert "speaker_condition" not in info and all("speaker" in r for r in rows)


def test_dual_teachers_are_asked_under_rows_they_trained():
    first = untrained(3, ["a", "b", "c"], trained_rows=[0], seed=1)
    second = untrained(3, ["a", "b", "c"], trained_rows=[1, 2], seed=2)
    rows = torch.tensor([0, 1, 2, MEAN_SPEAKER])
    assert teacher_speakers(first, rows).tolist() == [0, MEAN_SPEAKER, MEAN_SPEAKER, MEAN_SPEAKER]
    assert teacher_speakers(second, rows).tolist() == [MEAN_SPEAKER, 1, 2, MEAN_SPEAKER]
    dual = DualGradTTS([first, second], first.cfg).eval()
    tokens = torch.randint(1, 60, (3, 6))
    mels, lengths = dual.synthesize(tokens, torch.tensor([6, 5, 4]), steps=2, speakers=torch.tensor([0, 1, 2]),
                                    generator=torch.Generator().manual_seed(0))
    assert mels.shape[:2] == (3, 80) and torch.isfinite(mels).all()
    assert dual.speaker_index("c") == 2


def test_speaker_similarity_per_speaker_and_overall():
    rng = np.random.default_rng(0)
    centres = {s: rng.standard_normal(16) for s in ("a", "b")}
    rows, embeddings = [], {}
    for i in range(6):
        speaker = "a" if i < 4 else "b"
        ref = centres[speaker] + 0.1 * rng.standard_normal(16)
        gen = centres["a"] + 0.1 * rng.standard_normal(16)  # always speaker a's voice
        ref, gen = ref / np.linalg.norm(ref), gen / np.linalg.norm(gen)
        rows.append({"utt_id": f"u{i}", "speaker": speaker, "spk_cosine": float(gen @ ref)})
        embeddings[f"u{i}"] = {"generated": gen, "reference": ref}
    summary = speaker_similarity_summary(rows, embeddings)
    per = summary["per_speaker"]
    assert per["a"]["n"] == 4 and per["b"]["n"] == 2
    assert per["a"]["mean_cosine_to_speaker"] > 0.9 > per["b"]["mean_cosine_to_speaker"]
    assert summary["speaker_mean_cosine_to_speaker"] == pytest.approx(
        (per["a"]["mean_cosine_to_speaker"] + per["b"]["mean_cosine_to_speaker"]) / 2)
    assert all("spk_cosine_speaker" in r for r in rows)


def test_dual_model_defenses_with_halves_split_by_speaker(recipe, tmp_path):
    """DualMD and DistillMD on a speaker-protocol data directory whose halves are split by speaker: each
    teacher trains its own speakers' rows only, is asked under its mean voice for the others, and the
    systems synthesize and attack under the speaker condition."""
    from holdtts.defenses import DistillMDTraining, DualMDTraining

    speakers = read_speaker_map(recipe / "data_speaker")
    members = load_split(recipe / "data_speaker", "members")
    halves = {"half1": [u for u in members if speakers.speaker_of(u) == "spk0"],
              "half2": [u for u in members if speakers.speaker_of(u) == "spk1"]}
    data = write_speaker_data_dir(recipe / "base", tmp_path / "data", dict(speakers.utt2spk),
                                  {"members": members, "nonmembers": load_split(recipe / "data_speaker", "nonmembers"),
                                   **halves}, "speaker")
    small = ("train.max_steps=2", "train.batch_size=2", "model.n_speakers=2", SPEAKER_DIM)
    dual_exp = tmp_path / "dualmd"
    info = DualMDTraining(tiny_config("dualmd", *small), dual_exp, data, recipe / "dump", device="cpu",
                          progress_bar=False).run()
    assert info["finished"]
    assert [load_model(dual_exp / f"teacher{k}").trained_speaker_rows for k in (1, 2)] == [[0], [1]]
    dual = load_model(dual_exp)
    assert isinstance(dual, DualGradTTS) and dual.speaker_ids == ["spk0", "spk1"]
    store = FeatureStore(recipe / "dump")
    target = AttackTarget.from_splits(data, "members", "nonmembers", max_utts=2)
    rows, info = run_attacks(dual, store, target, ["synth_distance"], params={"synth_distance": {"steps": 2}})
    assert info["speaker_condition"] == "mean" and len(rows) == 4

    student_exp = tmp_path / "distillmd"
    cfg = tiny_config("distillmd", *small, f"defense.teachers_dir='{dual_exp}'")
    info = DistillMDTraining(cfg, student_exp, data, recipe / "dump", device="cpu", progress_bar=False).run()
    assert info["finished"] and info["kind"] == "distillmd"
    student = load_model(student_exp)
    assert student.speaker_ids == ["spk0", "spk1"] and student.trained_speaker_rows == [0, 1]
    rows, info = run_attacks(student, store, target, ["loss", "duration"], {"loss": [0.3]})
    assert info["speaker_condition"] == "mean" and {r["speaker"] for r in rows} >= {"spk2", "spk3"}  # unseen too


def test_synthesize_texts_takes_a_voice_per_text(recipe):
    from holdtts.data.text import TextFrontend
    from holdtts.synthesis import MEAN_VOICE, synthesize_texts
    from holdtts.vocoder import GriffinLimVocoder

    symbols = TextFrontend().symbols
    model = untrained(3, ["a", "b", "c"], n_vocab=symbols.n_vocab)
    model.symbols, model.config, model.checkpoint = symbols, model.cfg, "untrained"
    vocoder = GriffinLimVocoder(model.cfg.features)
    texts = ["Red cat.", "Blue dog runs.", "Sun."]
    each = synthesize_texts(model, texts, ["x", "y", "z"], vocoder, steps=2, speaker=["a", MEAN_VOICE, "c"])
    alone = synthesize_texts(model, texts[2:], ["z"], vocoder, steps=2, speaker="c", seed=1234, batch_size=1)
    assert [m.shape[0] for m in each.mels] == [80, 80, 80] and alone.mels[0].shape[0] == 80
    with pytest.raises(HoldttsError, match="2 speakers for 3 texts"):
        synthesize_texts(model, texts, ["x", "y", "z"], vocoder, steps=2, speaker=["a", "b"])
    with pytest.raises(HoldttsError, match="--speaker"):
        synthesize_texts(model, texts, ["x", "y", "z"], vocoder, steps=2)


def test_attack_cli_and_evaluate_on_a_multi_speaker_system(recipe, tmp_path):
    from holdtts.commands.attack import command
    from holdtts.quality.system import evaluate_system
    from holdtts.vocoder import GriffinLimVocoder

    exp = tmp_path / "exp"
    train(recipe, exp, "model.n_speakers=4", SPEAKER_DIM, "train.max_steps=1")
    args = ["--model", str(exp), "--dump-dir", str(recipe / "dump"), "--attack", "loss,duration",
            "--t-grid", "loss=0.3", "--bootstrap", "20", "--device", "cpu"]
    out = tmp_path / "attack"
    result = CliRunner().invoke(command, [*args, "--out-dir", str(out), "--data-dir", str(recipe / "data"),
                                          "--speaker-condition", "mean"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (out / "rows.tsv").read_text().splitlines()[0].split("\t")[-1] == "speaker"
    settings = json.loads((out / "attack.json").read_text())
    assert settings["speaker_condition"] == "mean" and settings["protocol"] == "utterance"
    assert json.loads((out / "metrics.json").read_text())["protocol"] == "utterance"
    other = write_speaker_data_dir(recipe / "base", tmp_path / "other", other_speaker(read_speaker_map(
        recipe / "data").utt2spk), {n: load_split(recipe / "data", n) for n in ("members", "nonmembers")},
        "utterance")
    refused = CliRunner().invoke(command, [*args, "--out-dir", str(tmp_path / "a2"), "--data-dir", str(other)])
    assert refused.exit_code != 0 and "another spk2id" in str(refused.exception)
    # rows reassigned by hand (spk2id out of the sorted order `holdtts prepare` writes) are refused on reading
    (other / "spk2id").write_text("spk0 1\nspk1 0\nspk2 2\nspk9 3\n")
    with pytest.raises(InputError, match="spk2id: speaker 'spk0' has index 1, expected 0"):
        read_speaker_map(other)

    model = load_model(exp)
    summary = evaluate_system(model, GriffinLimVocoder(model.config.features), recipe / "data", recipe / "dump",
                              tmp_path / "evaluate", split="nonmembers", max_utts=4, metrics=["fd_speaker", "mcd"],
                              steps=2)
    similarity = summary["speaker_similarity"]
    assert similarity["num_speakers"] == len(similarity["per_speaker"]) >= 2
    assert -1 <= similarity["mean_cosine_to_speaker"] <= 1
    header = (tmp_path / "evaluate" / "quality.tsv").read_text().splitlines()[0].split("\t")
    assert "speaker" in header and "spk_cosine_speaker" in header
    from holdtts.report.verify import verify_quality

    check = verify_quality(tmp_path / "evaluate")  # speaker similarity recomputes from quality.tsv
    assert check.ok and check.checked > 10, check.mismatches
    assert set(summary["timing"]) == {"synthesis_seconds", "references_and_scoring_seconds"}
    assert all(seconds >= 0 for seconds in summary["timing"].values())
