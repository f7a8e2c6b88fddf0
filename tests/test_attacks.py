"""Membership-inference attacks: a memorising model is caught, an untrained one is not, and the metrics
are exactly what the rows say."""
import json
import sys
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
from holdtts.diffusion import make_process
from holdtts.models.loading import load_model
from holdtts.models.tts import GradTTS, Segment
from holdtts.privacy.attacks import (
    ATTACKS,
    DEFAULT_ATTACKS,
    PIAN_LEVEL_GRADTTS_CODE,
    PIAN_LEVEL_PAPER,
    AttackInputs,
    NoiseSource,
    get_attack,
    register_attack,
)
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
    assert metrics["in_sample_max"]["auroc"] >= best_auroc(metrics, "pia")
    # 4 members against 18 non-members, perfectly separated: the permutation test finds it
    assert metrics["headline"]["p_value"] < 0.01 and metrics["headline"]["detected"]
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
    assert metrics["in_sample_max"]["attack"] == "a" and metrics["headline"]["attack"] == "a"
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
    monkeypatch.chdir(tmp_path)  # found in the current directory, as README's `--plugin my_attacks` expects
    monkeypatch.setattr("sys.path", [p for p in sys.path if p not in ("", str(tmp_path))])
    from holdtts.commands.attack import command

    try:
        result = CliRunner().invoke(command, ["--plugin", "my_attacks", "--list"])  # --list needs no model
    finally:
        ATTACKS.pop("plugin_zero", None)
        sys.modules.pop("my_attacks", None)  # a rerun in this process imports (and registers) it again
    assert result.exit_code == 0 and "plugin_zero" in result.output
    (tmp_path / "needs_more.py").write_text("import no_such_dependency\n")
    result = CliRunner().invoke(command, ["--plugin", "needs_more", "--list"])
    assert result.exit_code == 2 and "--plugin needs_more: importing it failed" in result.output
    result = CliRunner().invoke(command, ["--plugin", "no_such_module", "--list"])
    assert result.exit_code == 2 and "--plugin no_such_module: cannot import it" in result.output
    result = CliRunner().invoke(command, ["--out-dir", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Missing option '--model'" in result.output
    with pytest.raises(Exception, match="unknown attack"):
        get_attack("no_such_attack")


# --------------------------------------------------------------------------- an oracle, for the adaptive attacks


class MemoryOracle:
    """A decoder whose eps_hat is exact for a point mass at what it remembers for the utterance (known by its
    mu): the member's own q0 for members (a perfectly memorising model), q0 = 0 (x0 = mu) otherwise.
    `memory={}` remembers nothing: members and non-members look alike. Records every query (u, t)."""

    def __init__(self, process, memory: dict | None = None):
        self.process, self.memory, self.queries = process, memory or {}, []

    def eps_hat(self, u, t, mu, mask):
        return self.eps_fn(mu, mask)(u, t)

    def eps_fn(self, mu, mask):
        def fn(u, t):
            self.queries.append((u.clone(), t.clone()))
            a = self.process.mean_coefficients(t.double())
            C = self.process.cholesky(t.double())
            out = []
            for b in range(u.shape[0]):
                q0 = next((q for m, q in self.memory.values() if torch.equal(m, mu[b])), torch.zeros_like(mu[b]))
                residual = u[b].double().flatten(1) - a[b, :, None] * q0.double().flatten()[None]
                out.append(torch.linalg.solve_triangular(C[b], residual, upper=False)[-1].view(mu.shape[1:]))
            return torch.stack(out).to(u.dtype) * mask

        return fn


def oracle_inputs(count=48, feats=4, frames=8, seed=0):
    """`count` random utterances in pairs (2k, 2k + 1) of one q0 and two mu (standard normal), so a model
    that remembers nothing scores both alike; the second-to-last crop is padded by 3 frames."""
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(count, feats, frames, generator=gen)
    q0 = torch.randn((count + 1) // 2, feats, frames, generator=gen).repeat_interleave(2, dim=0)[:count]
    mask = torch.ones(count, 1, frames)
    mask[-2, :, -3:] = 0
    x0, mu = (mu + q0) * mask, mu * mask
    ids = [f"u{i:02d}" for i in range(count)]
    return AttackInputs(ids, torch.zeros(count, 0, dtype=torch.long), torch.zeros(count, dtype=torch.long), x0,
                        mask.sum((1, 2)).long(), None, Segment(x0, mu, mask))


def oracle_scores(model, inputs, name, t, seed=1, **params):
    noise = NoiseSource(seed, inputs.utt_ids, f"{name}|{t}", torch.device("cpu"))
    return get_attack(name)(model, inputs, t, noise, **params).numpy()


def auroc(scores, members):
    pos, neg = scores[members], scores[~members]
    return float(np.mean([(p > n) + 0.5 * (p == n) for p, n in product(pos, neg)]))


ADAPTIVE = ("pia_mc", "sima_mc", "secmi_mc")


@pytest.mark.parametrize("order", [2, 3, 4])
def test_adaptive_attacks_catch_a_memorising_oracle_and_not_a_forgetful_one(order):
    process = make_process("hold", order=order, beta=0.5)
    inputs = oracle_inputs()
    members = np.arange(len(inputs)) % 2 == 0
    memory = {u: (inputs.segment.mu[i], inputs.q0[i]) for i, u in enumerate(inputs.utt_ids) if members[i]}
    for name in ADAPTIVE:
        caught = oracle_scores(MemoryOracle(process, memory), inputs, name, 0.1, draws=2)
        assert auroc(caught, members) > 0.9, name
        chance = oracle_scores(MemoryOracle(process), inputs, name, 0.1, draws=2)
        assert 0.3 < auroc(chance, members) < 0.7, name


def test_published_attacks_catch_the_memorising_oracle_at_every_order():
    inputs = oracle_inputs()
    members = np.arange(len(inputs)) % 2 == 0
    memory = {u: (inputs.segment.mu[i], inputs.q0[i]) for i, u in enumerate(inputs.utt_ids) if members[i]}
    for process in (make_process("vp"), make_process("hold", order=2, beta=0.5), make_process("hold", order=4)):
        for name in ("pia", "pian", "pian_paper", "sima", "secmi"):
            assert auroc(oracle_scores(MemoryOracle(process, memory), inputs, name, 0.3), members) > 0.9, name


@pytest.mark.parametrize("order", [2, 3])
def test_adaptive_attacks_draw_the_auxiliary_state_and_keep_the_data_block_clean(order):
    """What each adaptive attack queries: the data block is q0 itself (at t = 0), the auxiliary blocks are
    N(0, beta L^-1) draws, a fresh one per draw, the same for two systems attacked with the same seed."""
    process = make_process("hold", order=order, beta=2.0, l_inv=0.5)
    inputs = oracle_inputs(count=6, feats=40, frames=16)
    std = process.initial_aux_std()
    mask = inputs.segment.mask.unsqueeze(1).bool().expand(-1, order - 1, inputs.q0.shape[1], -1)
    for name, queries_per_draw in (("sima_mc", 1), ("pia_mc", 2)):
        first, second = MemoryOracle(process), MemoryOracle(make_process("hold", order=order, beta=2.0, l_inv=0.5))
        oracle_scores(first, inputs, name, 0.2, draws=3)
        oracle_scores(second, inputs, name, 0.2, draws=3)
        starts = [u for u, _ in first.queries[::queries_per_draw]]
        assert len(starts) == 3
        for u0 in starts:
            torch.testing.assert_close(u0[:, 0], inputs.q0)
            assert u0[:, 1:][mask].std().item() == pytest.approx(std, rel=0.1)
        assert not torch.equal(starts[0][:, 1:], starts[1][:, 1:])  # a fresh draw each time
        for (u, t), (v, s) in zip(first.queries, second.queries):
            assert torch.equal(u, v) and torch.equal(t, s)  # same seed, same draws
    # PIA's second query is the point at t built from the drawn state: mean exp(F t) u0, the estimated
    # noise on the last block only (chol(Q_t) is lower-triangular), through the point-start kernel
    oracle = MemoryOracle(process)
    oracle_scores(oracle, inputs, "pia_mc", 0.2, draws=1)
    (u0, t_init), (u_t, t) = oracle.queries
    assert t_init[0].item() == pytest.approx(0.1 * process.horizon)
    assert t[0].item() == pytest.approx(0.2 * process.horizon)
    A, _ = process.transition(t.double())
    mean = torch.einsum("bij,bj...->bi...", A, u0.double())
    torch.testing.assert_close(u_t[:, :-1].double(), mean[:, :-1] * inputs.segment.mask.unsqueeze(1), atol=1e-5,
                               rtol=1e-5)
    e_n = oracle.eps_fn(inputs.segment.mu, inputs.segment.mask)(u0, t_init)
    last = mean[:, -1] + process.transition_cholesky(t.double())[:, -1, -1].view(-1, 1, 1) * e_n.double()
    torch.testing.assert_close(u_t[:, -1].double(), last * inputs.segment.mask, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("order", [2, 4])
def test_without_auxiliary_randomness_the_adaptive_attacks_are_the_plain_ones(order):
    # beta = 0: the initial auxiliary state is exactly 0 and the point-start kernel is the hybrid one
    process = make_process("hold", order=order, beta=0.0)
    inputs = oracle_inputs(count=8)
    memory = {u: (inputs.segment.mu[i], inputs.q0[i]) for i, u in enumerate(inputs.utt_ids[:4])}
    for adaptive, plain in (("pia_mc", "pia"), ("sima_mc", "sima"), ("secmi_mc", "secmi")):
        np.testing.assert_allclose(oracle_scores(MemoryOracle(process, memory), inputs, adaptive, 0.2, draws=2),
                                   oracle_scores(MemoryOracle(process, memory), inputs, plain, 0.2),
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name, level, lag", [("pian", PIAN_LEVEL_GRADTTS_CODE, 0.01),
                                              ("pian_paper", PIAN_LEVEL_PAPER, 0.0)])
def test_pian_variants_rescale_the_noise_and_take_the_score_where_published(name, level, lag):
    process = make_process("vp")
    inputs = oracle_inputs(count=5)
    oracle = MemoryOracle(process)
    oracle_scores(oracle, inputs, name, 0.3)
    (start, t_init), (u, t) = oracle.queries
    assert t_init[0].item() == pytest.approx(0.1)  # step 10 of 1000 on Grad-TTS's clock
    torch.testing.assert_close(start[:, 0], inputs.q0)  # queried at the clean data, as the official code does
    assert t[0].item() == pytest.approx(0.3 + lag)
    a, std = process.mean_coefficients(t.double())[:, 0], process.cholesky(t.double())[:, 0, 0]
    eps = (u[:, 0].double() - a.view(-1, 1, 1) * inputs.q0.double()) / std.view(-1, 1, 1)
    mask = inputs.segment.mask.expand_as(eps).bool()
    for b in range(len(inputs)):
        assert eps[b][mask[b]].abs().mean().item() == pytest.approx(level, rel=1e-4)
    assert get_attack("pia").params["t_init"] == 0.1 and get_attack("pia").published_t == 0.3


def test_default_attacks_are_registered():
    assert set(DEFAULT_ATTACKS) <= set(ATTACKS) | {"synth_distance"}
    with pytest.raises(Exception, match="PIA start"):
        oracle_scores(MemoryOracle(make_process("vp")), oracle_inputs(count=2), "pia", 0.3, start="middle")
