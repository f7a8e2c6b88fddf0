"""Membership-inference attacks: a memorising model is caught, an untrained one is not, and the metrics
are exactly what the rows say."""
import json
from itertools import product

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from holdtts.data.dataset import FeatureStore
from holdtts.data.features import extract_features
from holdtts.data.splits import prepare_data_dir
from holdtts.data.tables import read_table, write_table
from holdtts.models.loading import load_model
from holdtts.models.tts import GradTTS
from holdtts.privacy.attacks import ATTACKS, get_attack, register_attack
from holdtts.privacy.metrics import compute_metrics, metrics_from_rows, roc_metrics
from holdtts.privacy.runner import AttackTarget, run_attacks
from holdtts.training.trainer import Trainer

from tiny import tiny_config

ADJECTIVES = "red blue green small tall old new quick slow warm cold bright dark soft loud calm wide deep".split()
NOUNS = "cat dog bird fish tree stone river cloud house road boat lamp".split()


@pytest.fixture(scope="module")
def phrases(tmp_path_factory):
    """24 two-word eSpeak phrases (under 0.7 s each, so one crop holds a whole utterance); 4 members."""
    from holdtts.data.espeak import EspeakSynthesizer
    from holdtts.data.text import english_cleaners

    root = tmp_path_factory.mktemp("phrases")
    corpus = root / "corpus"
    (corpus / "wavs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    synth = EspeakSynthesizer()
    lines = []
    for i in range(24):
        text = f"{ADJECTIVES[i % len(ADJECTIVES)]} {NOUNS[(i * 5) % len(NOUNS)]}."
        wav = synth.synthesize(english_cleaners(text), rate_wpm=int(rng.integers(200, 240)),
                               pitch=int(rng.integers(30, 70)))
        sf.write(corpus / "wavs" / f"P{i:03d}.wav", wav, 22050, subtype="PCM_16")
        lines.append(f"P{i:03d}|{text}|{english_cleaners(text)}")
    (corpus / "metadata.csv").write_text("\n".join(lines) + "\n")
    prepare_data_dir(corpus, root / "data", seed=1, num_members=4, num_nonmembers=18, num_valid=2)
    extract_features(root / "data", root / "dump", device="cpu", nj=1)
    # a second labelling with balanced classes, for the untrained model
    wavs = read_table(root / "data" / "all" / "wav.scp")
    for name, ids in (("groupa", sorted(wavs)[0::2]), ("groupb", sorted(wavs)[1::2])):
        (root / "data" / name).mkdir()
        write_table(root / "data" / name / "wav.scp", {u: wavs[u] for u in ids})
    return root


@pytest.fixture(scope="module")
def memorising_model(phrases):
    """A tiny vp model trained to memorise its 4 members (whole utterances, high learning rate)."""
    frames = max(FeatureStore(phrases / "dump").num_frames(u) for u in FeatureStore(phrases / "dump").utt_ids)
    cfg = tiny_config("vp", "train.max_steps=300", "train.lr=0.003", "train.ema_decay=0.0",
                      "train.checkpoint_every=1000", "train.log_every=100", f"data.segment_frames={frames}")
    Trainer(cfg, phrases / "exp", phrases / "data", phrases / "dump", device="cpu", progress_bar=False).run()
    return load_model(phrases / "exp")


def best_auroc(metrics, attack):
    return metrics["attacks"][attack]["best"]["auroc"]


def test_a_memorising_model_is_caught(phrases, memorising_model):
    target = AttackTarget.from_splits(phrases / "data", "members", "nonmembers")
    assert (len(target.members), len(target.nonmembers)) == (4, 18)
    rows, info = run_attacks(memorising_model, FeatureStore(phrases / "dump"), target,
                             ["loss", "pia", "pian", "sima", "secmi", "duration", "prior"],
                             {"loss": [0.1, 0.3], "pia": [0.1, 0.3], "pian": [0.1, 0.3], "sima": [0.1],
                              "secmi": [0.1]}, batch_size=32, seed=1, params={"loss": {"draws": 4}})
    metrics = compute_metrics(rows, bootstrap_samples=50, seed=0)
    assert best_auroc(metrics, "loss") > 0.9
    assert best_auroc(metrics, "pia") > 0.9
    assert metrics["strongest"]["auroc"] >= best_auroc(metrics, "pia")
    assert set(info["t_grids"]) == {"loss", "pia", "pian", "sima", "secmi", "duration", "prior"}
    assert "pia_mc" not in info["t_grids"]  # Monte-Carlo variants need auxiliary variables (order >= 2)


def test_an_untrained_model_is_near_chance(phrases, memorising_model):
    cfg = memorising_model.config
    torch.manual_seed(0)
    untrained = GradTTS(cfg, memorising_model.symbols.n_vocab).eval()
    target = AttackTarget.from_splits(phrases / "data", "groupa", "groupb")
    rows, _ = run_attacks(untrained, FeatureStore(phrases / "dump"), target, ["loss", "pia"],
                          {"loss": [0.3], "pia": [0.3]}, seed=1, params={"loss": {"draws": 4}})
    metrics = compute_metrics(rows, bootstrap_samples=50, seed=0)
    for attack in ("loss", "pia"):
        assert 0.2 < best_auroc(metrics, attack) < 0.8


def test_scores_do_not_depend_on_batching(phrases, memorising_model):
    target = AttackTarget.from_splits(phrases / "data", "members", "nonmembers")
    store = FeatureStore(phrases / "dump")
    grids = {"loss": [0.3], "pia": [0.3]}
    big, _ = run_attacks(memorising_model, store, target, ["loss", "pia"], grids, batch_size=32, seed=5)
    small, _ = run_attacks(memorising_model, store, target, ["loss", "pia"], grids, batch_size=3, seed=5)
    assert [r["utt_id"] for r in big] == [r["utt_id"] for r in small]
    assert np.allclose([r["score"] for r in big], [r["score"] for r in small], atol=1e-5)
    other, _ = run_attacks(memorising_model, store, target, ["loss"], grids, batch_size=32, seed=6)
    assert [r["score"] for r in other] != [r["score"] for r in big if r["attack"] == "loss"]


def test_attack_cli_rows_recompute_the_metrics_exactly(phrases, memorising_model, tmp_path):
    from holdtts.commands.attack import command

    out = tmp_path / "attack"
    args = ["--model", str(phrases / "exp"), "--out-dir", str(out), "--data-dir", str(phrases / "data"),
            "--dump-dir", str(phrases / "dump"), "--attack", "loss,pia,duration", "--t-grid", "loss=0.3",
            "--t-grid", "pia=0.1,0.3", "--bootstrap", "40", "--device", "cpu"]
    result = CliRunner().invoke(command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(metrics_from_rows(out / "rows.tsv", bootstrap_samples=40, seed=1234)))
    settings = json.loads((out / "attack.json").read_text())
    assert settings["member_split"] == "members" and settings["t_grids"]["pia"] == ["0.1", "0.3"]
    header = (out / "rows.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["utt_id", "member", "attack", "t", "score"]
    again = CliRunner().invoke(command, args)
    assert again.exit_code != 0 and "--overwrite" in str(again.exception)


def test_metrics_match_brute_force():
    rng = np.random.default_rng(3)
    labels = np.array([1] * 40 + [0] * 60)
    scores = np.round(rng.normal(size=100) + 0.8 * labels, 1)  # ties on purpose
    m = roc_metrics(labels, scores)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = [(p > n) + 0.5 * (p == n) for p, n in product(pos, neg)]
    assert m["auroc"] == pytest.approx(np.mean(pairs))
    best_bacc, tpr_at = 0.0, {0.01: 0.0, 0.001: 0.0}
    for threshold in np.concatenate([[np.inf], np.unique(scores)]):
        tpr, fpr = np.mean(pos >= threshold), np.mean(neg >= threshold)
        best_bacc = max(best_bacc, (tpr + 1 - fpr) / 2)
        for target in tpr_at:
            if fpr <= target:
                tpr_at[target] = max(tpr_at[target], tpr)
    assert m["asr"] == pytest.approx(best_bacc)
    assert m["tpr@1%fpr"] == pytest.approx(tpr_at[0.01])
    assert m["tpr@0.1%fpr"] == pytest.approx(tpr_at[0.001])


def test_metrics_json_shape_and_best_t():
    rows = []
    rng = np.random.default_rng(0)
    for i in range(30):
        member = int(i < 15)
        for t, signal in (("0.1", 0.2), ("0.3", 2.0)):
            rows.append({"utt_id": f"u{i}", "member": member, "attack": "a", "t": t,
                         "score": float(rng.normal() + signal * member)})
        rows.append({"utt_id": f"u{i}", "member": member, "attack": "b", "t": "-", "score": float(rng.normal())})
    metrics = compute_metrics(rows, bootstrap_samples=30, seed=1)
    assert metrics["attacks"]["a"]["best_t"] == "0.3"
    assert metrics["strongest"]["attack"] == "a"
    entry = metrics["attacks"]["a"]["by_t"]["0.3"]
    lo, hi = entry["auroc_ci"]
    assert lo <= entry["auroc"] <= hi and entry["num_members"] == entry["num_nonmembers"] == 15
    assert compute_metrics(list(reversed(rows)), bootstrap_samples=30, seed=1) == metrics  # order-free


def test_user_attacks_register_and_run(phrases, memorising_model, tmp_path, monkeypatch):
    @register_attack("test_mu_norm", t_grid=(0.5,))
    def mu_norm(model, inputs, t, noise):
        """A user's attack: minus the norm of the aligned mu (nonsense, but it runs through the machinery)."""
        return -inputs.segment.mu.flatten(1).norm(dim=1)

    try:
        assert get_attack("test_mu_norm").grid() == (0.5,)
        target = AttackTarget.from_splits(phrases / "data", "members", "nonmembers")
        rows, _ = run_attacks(memorising_model, FeatureStore(phrases / "dump"), target, ["test_mu_norm"])
        assert len(rows) == 22 and all(r["t"] == "0.5" for r in rows)
        with pytest.raises(ValueError, match="already registered"):
            register_attack("test_mu_norm")(mu_norm)
    finally:
        ATTACKS.pop("test_mu_norm", None)
    plugin = tmp_path / "my_attacks.py"
    plugin.write_text("from holdtts.privacy import register_attack\n\n"
                      "@register_attack('plugin_zero')\n"
                      "def zero(model, inputs, t, noise):\n"
                      "    return inputs.q0.new_zeros(len(inputs))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from holdtts.commands.attack import command

    result = CliRunner().invoke(command, ["--plugin", "my_attacks", "--list", "--model", str(phrases / "exp"),
                                          "--out-dir", str(tmp_path / "x")])
    ATTACKS.pop("plugin_zero", None)
    assert result.exit_code == 0 and "plugin_zero" in result.output
    with pytest.raises(Exception, match="unknown attack"):
        get_attack("no_such_attack")
