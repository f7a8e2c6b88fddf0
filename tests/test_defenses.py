"""DualMD and DistillMD on a tiny recipe: each teacher trains on its half only, DualMD's networks alternate
per sampler step in every sampler, the student's targets come from the other teacher and its gradients
never depend on the teacher that saw the batch, the black-box attack, and the dual system as a model."""
from __future__ import annotations

import copy
import itertools
import json
import shutil
from unittest import mock

import numpy as np
import pytest
import torch

from holdtts.cli import main
from holdtts.config import load_config
from holdtts.data.dataset import FeatureStore, load_split
from holdtts.data.features import extract_features
from holdtts.data.splits import prepare_data_dir
from holdtts.defenses import (
    AlternatingEpsFn,
    DistillMDTraining,
    DistillTrainer,
    DualGradTTS,
    distillation_targets,
    is_dual_system,
)
from holdtts.diffusion import SAMPLERS, get_sampler, make_process, noised_state, sample_times
from holdtts.errors import CheckpointError, HoldttsError
from holdtts.models.loading import load_model
from holdtts.models.tts import GradTTS
from holdtts.privacy.blackbox import logmel_dtw_distance
from holdtts.privacy.metrics import compute_metrics
from holdtts.privacy.runner import AttackTarget, run_attacks
from holdtts.quality.mcd import mcd_dtw
from holdtts.training.trainer import Trainer
from holdtts.utils.checkpoint import load_checkpoint
from holdtts.utils.fileio import file_sha256

from corpus_factory import utt_id, write_metadata, write_wav
from tiny import CONF_DIR, TINY_OVERRIDES, tiny_config

WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen"]
# the recipe's configs at test size: halves of 3 utterances, 2 steps per run
SMALL = (*TINY_OVERRIDES, "train.batch_size=2", "train.max_steps=2", "train.checkpoint_every=1000")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """14 short utterances (43-81 frames, "Item <n>."): valid 2, members 6 (halves of 3), non-members 6."""
    root = tmp_path_factory.mktemp("defenses")
    corpus = root / "corpus"
    (corpus / "wavs").mkdir(parents=True)
    lines = []
    for i, word in enumerate(WORDS, 1):
        write_wav(corpus / "wavs" / f"{utt_id(i)}.wav", 11000 + 700 * i, seed=i)
        lines.append(f"{utt_id(i)}|Item {i}.|Item {word}.")
    write_metadata(corpus, lines)
    prepare_data_dir(corpus, root / "data", seed=3, num_valid=2)
    extract_features(root / "data", root / "dump", device="cpu", nj=1)
    return root


def config(system="dualmd", *overrides):
    return tiny_config(system, *SMALL, *overrides)


def train_argv(recipe, exp):
    """`holdtts train` of conf/dualmd.yaml at test size."""
    sets = [arg for override in SMALL for arg in ("--set", override)]
    return ["train", "--config", str(CONF_DIR / "dualmd.yaml"), *sets, "--exp-dir", str(exp), "--data-dir",
            str(recipe / "data"), "--dump-dir", str(recipe / "dump"), "--device", "cpu", "--no-progress"]


def train_recording(argv):
    """Run `holdtts` with every training batch's utterances recorded per experiment directory."""
    seen: dict[str, set[str]] = {}
    original = Trainer.train_step

    def recording(self, batch):
        seen.setdefault(self.exp_dir.name, set()).update(batch.utt_ids)
        return original(self, batch)

    with mock.patch.object(Trainer, "train_step", recording):
        main(argv)
    return seen


@pytest.fixture(scope="module")
def dual(recipe):
    """A DualMD system trained through `holdtts train`; returns (its directory, the utterances each run saw)."""
    exp = recipe / "exp" / "dualmd"
    seen = train_recording(train_argv(recipe, exp))
    return exp, seen


STUDENT_DIRS = itertools.count(1)


def distill_trainer(recipe, dual_dir, exp_name=None):
    """A set-up DistillTrainer in its own experiment directory (a set-up trainer holds that directory)."""
    cfg = config("distillmd", f"defense.teachers_dir={dual_dir}")
    exp_name = exp_name or f"student{next(STUDENT_DIRS)}"
    trainer = DistillTrainer(cfg, recipe / "exp" / exp_name, recipe / "data", recipe / "dump",
                             [dual_dir / "teacher1", dual_dir / "teacher2"], device="cpu", progress_bar=False)
    trainer.setup()
    return trainer


# --------------------------------------------------------------------------- the teachers


def test_each_teacher_trains_on_its_half_only(recipe, dual):
    exp, seen = dual
    data = recipe / "data"
    for k in (1, 2):
        half = load_split(data, f"half{k}")
        assert seen[f"teacher{k}"] and seen[f"teacher{k}"] <= set(half)
        state = load_checkpoint(exp / f"teacher{k}")
        assert state["train_split"] == f"half{k}" and state["num_train_utts"] == len(half)
        assert state["config"]["defense"]["kind"] == "none" and state["config"]["name"] == f"dualmd_teacher{k}"
    info = json.loads((exp / "system.json").read_text())
    teachers = [info["components"][f"teacher{k}"] for k in (1, 2)]
    assert info["kind"] == "dualmd" and info["train_split"] == "members"
    assert info["num_train_utts"] == len(load_split(data, "members")) == 6
    assert info["parameters"] == sum(t["parameters"] for t in teachers) == info["deployed_parameters"]
    assert info["train_seconds"] == pytest.approx(sum(t["train_seconds"] for t in teachers), abs=0.011)
    assert [t["path"] for t in teachers] == ["teacher1", "teacher2"]
    assert load_config(exp / "config.yaml").defense.kind == "dualmd"


def test_rerun_resumes_only_the_unfinished_teacher(recipe, dual, tmp_path):
    exp = tmp_path / "dualmd"
    shutil.copytree(dual[0], exp)
    shutil.rmtree(exp / "teacher2")
    (exp / "system.json").unlink()
    argv = train_argv(recipe, exp)
    assert set(train_recording(argv)) == {"teacher2"}
    assert (exp / "system.json").is_file()
    assert train_recording(argv) == {}  # both finished: nothing to train


def test_halves_must_partition_the_members(recipe, tmp_path):
    from holdtts.defenses.dualmd import load_halves

    with pytest.raises(HoldttsError, match="do not make up"):
        load_halves(config("dualmd", "defense.halves=[half1, valid]"), recipe / "data")
    with pytest.raises(HoldttsError, match="share"):
        load_halves(config("dualmd", "defense.halves=[half1, half1]"), recipe / "data")


# --------------------------------------------------------------------------- DualMD synthesis


class RecordingAlternation(AlternatingEpsFn):
    def __init__(self):
        self.log = []  # (announced step, network, t) of every call

        def network(k):
            def eps_fn(u, t):
                self.log.append((self.step, k, float(t[0])))
                return torch.zeros_like(u[:, -1])

            return eps_fn

        super().__init__([network(0), network(1)])


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_step_i_uses_network_i_mod_2_in_every_sampler(name, order):
    process = make_process("vp") if order == 1 else make_process("hold", order=order, horizon=5.0)
    steps = 5
    eps_fn = RecordingAlternation()
    u_T = process.prior_sample((2, 3, 4), generator=torch.Generator().manual_seed(0))
    get_sampler(name)(process, eps_fn, u_T, steps, generator=torch.Generator().manual_seed(1))
    h = (process.horizon - process.t_min) / steps
    assert sorted({step for step, _, _ in eps_fn.log}) == list(range(steps))
    for step, network, t in eps_fn.log:
        assert network == step % 2
        # the announced step is the one the sampler is integrating: its times lie in that step's interval
        assert process.horizon - (step + 1) * h - 1e-5 <= t <= process.horizon - step * h + 1e-5  # float32 times
    per_step = [sum(1 for s, _, _ in eps_fn.log if s == i) for i in range(steps)]
    assert per_step == [2 if name == "ode_heun" else 1] * steps


def test_without_announcements_networks_alternate_per_call():
    used = []
    eps_fn = AlternatingEpsFn([lambda u, t: used.append(0), lambda u, t: used.append(1)])
    for _ in range(5):
        eps_fn(None, None)
    assert used == [0, 1, 0, 1, 0]


def tiny_model(recipe, seed):
    torch.manual_seed(seed)
    return GradTTS(config(), FeatureStore(recipe / "dump").symbols.n_vocab).eval()


def test_dual_decode_is_the_sampler_with_hand_alternated_networks(recipe):
    teachers = [tiny_model(recipe, 1), tiny_model(recipe, 2)]
    dual = DualGradTTS(teachers, teachers[0].cfg).eval()
    tokens = torch.tensor([[3, 17, 40, 9, 22, 5], [8, 12, 30, 4, 0, 0]])
    lengths = torch.tensor([6, 4])
    mu, mask, _ = dual.text_to_mu(tokens, lengths)
    steps = 4
    with torch.no_grad():
        mels = dual.decode(mu, mask, steps, "ode_euler", 1.5, torch.Generator().manual_seed(5))
        process = dual.process
        u = process.prior_sample(mu.shape, temperature=1.5, generator=torch.Generator().manual_seed(5))
        u = u * mask.unsqueeze(1)
        h = (process.horizon - process.t_min) / steps
        for i in range(steps):
            t = torch.full((2,), process.horizon - (i + 0.5) * h)
            eps = teachers[i % 2].eps_hat(u, t, mu, mask)
            drift = process.reverse_drift(u, t, process.score_from_eps(eps, t), probability_flow=True)
            u = (u - h * drift) * mask.unsqueeze(1)
    torch.testing.assert_close(mels, (mu + u[:, 0]) * mask, rtol=0, atol=0)
    # one teacher twice is that teacher
    twin = DualGradTTS([teachers[0], copy.deepcopy(teachers[0])], teachers[0].cfg).eval()
    a = twin.synthesize(tokens, lengths, generator=torch.Generator().manual_seed(3))
    b = teachers[0].synthesize(tokens, lengths, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_dual_text_side_averages_mu_and_log_durations(recipe):
    teachers = [tiny_model(recipe, 1), tiny_model(recipe, 2)]
    with torch.no_grad():
        for teacher in teachers:  # durations of a few frames per token, different per teacher
            teacher.encoder.duration_predictor.proj.bias.fill_(float(teacher is teachers[0]) + 0.5)
    dual = DualGradTTS(teachers, teachers[0].cfg).eval()
    tokens, lengths = torch.tensor([[3, 17, 40, 9, 22]]), torch.tensor([5])
    with torch.no_grad():
        (mu1, w1, _), (mu2, w2, _) = (t.encode(tokens, lengths) for t in teachers)
        mu_x, logw, _ = dual.encode(tokens, lengths)
        mu_y, mask, frames = dual.text_to_mu(tokens, lengths)
    torch.testing.assert_close(mu_x, (mu1 + mu2) / 2)
    torch.testing.assert_close(logw, (w1 + w2) / 2)
    durations = torch.ceil(torch.exp((w1 + w2) / 2))[0, 0].long()
    assert int(frames) == int(durations.sum()) and mu_y.shape[-1] % 2 == 0
    token_of_frame = torch.repeat_interleave(torch.arange(5), durations)
    torch.testing.assert_close(mu_y[0, :, : int(frames)], mu_x[0][:, token_of_frame])


def test_load_model_synthesize_and_attack_the_dual_system(recipe, dual, tmp_path):
    exp = dual[0]
    model = load_model(exp)
    assert isinstance(model, DualGradTTS) and model.checkpoint_state["train_split"] == "members"
    for k, teacher in enumerate(model.teachers, 1):
        alone = load_model(exp / f"teacher{k}")
        for (name, a), b in zip(teacher.state_dict().items(), alone.state_dict().values()):
            assert torch.equal(a, b), name
    out = tmp_path / "syn"
    main(["synthesize", "--model", str(exp), "--text", "Item two.", "--out-dir", str(out), "--device", "cpu",
          "--steps", "2"])
    assert (out / "utt00001.wav").is_file() and np.load(out / "utt00001.npy").shape[0] == 80
    target = AttackTarget.from_splits(recipe / "data", "members", max_utts=2)
    with pytest.raises(HoldttsError, match="black-box"):
        run_attacks(model, FeatureStore(recipe / "dump"), target, ["loss", "pia"])


def test_dual_systems_load_through_the_registered_loader(dual, tmp_path):
    import holdtts
    from holdtts.defenses.dualmd import load_dual_model
    from holdtts.models import loading

    exp = dual[0]
    assert isinstance(holdtts.load_model(exp), DualGradTTS)
    assert (is_dual_system, load_dual_model) in loading._LOADERS
    with mock.patch.object(loading, "_LOADERS", []):  # the model layer alone knows GradTTS checkpoints only
        with pytest.raises(CheckpointError, match="holdtts.load_model"):
            loading.load_model(exp)
        assert isinstance(loading.load_model(exp / "teacher1"), GradTTS)
    calls = []
    with mock.patch.object(loading, "_LOADERS", list(loading._LOADERS)):
        loading.register_loader(lambda path: path.name == "elsewhere", lambda path, **kw: calls.append(kw) or "x")
        loading.register_loader(lambda path: path.name == "elsewhere", lambda path, **kw: "second")
        assert loading.load_model(tmp_path / "elsewhere", device="cpu", ema=False) == "x"
        assert calls == [{"device": "cpu", "ema": False}]


# --------------------------------------------------------------------------- DistillMD


def test_batches_alternate_between_the_halves(recipe, dual):
    trainer = distill_trainer(recipe, dual[0])
    halves = [set(load_split(recipe / "data", f"half{k}")) for k in (1, 2)]
    for epoch in (0, 1):
        batches = list(trainer.batches.loader(epoch))
        sides = [0 if set(b.utt_ids) <= halves[0] else 1 if set(b.utt_ids) <= halves[1] else None for b in batches]
        assert sides == [0, 1, 0, 1]
        assert sorted(u for b in batches for u in b.utt_ids) == sorted(halves[0] | halves[1])
        resumed = list(trainer.batches.loader(epoch, start=2))
        for a, b in zip(batches[2:], resumed, strict=True):
            assert a.utt_ids == b.utt_ids and torch.equal(a.crop_starts, b.crop_starts)
    assert [trainer.teacher_for(b) for b in batches] == [1, 0, 1, 0]


def test_student_targets_are_the_other_teachers(recipe, dual):
    trainer = distill_trainer(recipe, dual[0])
    student, (teacher1, teacher2) = trainer.model, trainer.teachers
    batch = trainer.batches.batch(0, 0)
    assert set(batch.utt_ids) <= set(load_split(recipe / "data", "half1")) and trainer.teacher_for(batch) == 1
    targets = distillation_targets(teacher2, student, batch, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        alignment = teacher2.align(batch.tokens, batch.token_lengths, batch.mels, batch.mel_lengths)
        segment = student.crop(batch.mels, alignment, batch.crop_starts)
        generator = torch.Generator().manual_seed(4)
        t = sample_times(student.process, len(batch), generator=generator)
        u_t, _ = noised_state(student.process, (segment.x0 - segment.mu) * segment.mask, t, generator=generator,
                              mask=segment.mask)
        eps = teacher2.eps_hat(u_t, t, segment.mu, segment.mask)
    for got, want in [(targets.attn, alignment.attn), (targets.logw, alignment.logw), (targets.mu, segment.mu),
                      (targets.t, t), (targets.u_t, u_t), (targets.eps, eps)]:
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    # the decoder's term is the masked mean square distance to the teacher's eps_hat at the same point
    student.eval()
    terms = student(batch.tokens, batch.token_lengths, targets=targets)
    with torch.no_grad():
        mine = student.eps_hat(u_t, t, segment.mu, segment.mask)
        want = ((mine - eps) * segment.mask).square().sum((1, 2)) / (segment.mask.sum((1, 2)) * 80)
    torch.testing.assert_close(terms["diffusion"], want)
    # a student equal to teacher 2 has nothing to learn from teacher 2 (up to kernel rounding: the targets
    # were computed without autograd), but from teacher 1 it has
    student.load_state_dict(teacher2.state_dict())
    for term in student(batch.tokens, batch.token_lengths, targets=targets).values():
        assert torch.all(term < 1e-10)
    other = trainer.batches.batch(0, 1)
    assert trainer.teacher_for(other) == 0
    other_terms = student(other.tokens, other.token_lengths, targets=distillation_targets(teacher1, student, other))
    assert all(torch.all(term > 1e-9) for term in other_terms.values()), other_terms


def student_gradients(trainer, batch):
    torch.manual_seed(11)  # the same times, noise and dropout every time
    trainer.model.zero_grad(set_to_none=True)
    terms = trainer.step_losses(batch)
    sum(terms[k].mean() for k in ("duration", "prior", "diffusion")).backward()
    return {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("position", [0, 1], ids=["half1_batch", "half2_batch"])
def test_student_gradients_never_depend_on_the_teacher_that_saw_the_batch(recipe, dual, position):
    trainer = distill_trainer(recipe, dual[0])
    trainer.model.train()
    batch = trainer.batches.batch(0, position)
    seen_by = position  # batch 0 comes from half 1, batch 1 from half 2
    reference = student_gradients(trainer, batch)
    assert reference and all(torch.isfinite(g).all() for g in reference.values())
    assert {name.split(".")[0] for name in reference} == {"encoder", "decoder"}
    with torch.no_grad():
        for p in trainer.teachers[seen_by].parameters():
            p.fill_(float("nan"))
    unchanged = student_gradients(trainer, batch)
    assert unchanged.keys() == reference.keys()
    assert all(torch.equal(unchanged[k], reference[k]) for k in reference)
    with torch.no_grad():
        for p in trainer.teachers[1 - seen_by].parameters():
            p.add_(0.05 * torch.randn_like(p))
    changed = student_gradients(trainer, batch)
    assert any(not torch.equal(changed[k], reference[k]) for k in reference)


def test_teachers_must_be_trained_on_their_own_half(recipe, dual):
    cfg = config("distillmd", "defense.teachers_dir=''")
    swapped = DistillTrainer(cfg, recipe / "exp" / "swapped", recipe / "data", recipe / "dump",
                             [dual[0] / "teacher2", dual[0] / "teacher1"], device="cpu", progress_bar=False)
    with pytest.raises(HoldttsError, match="trained on 'half2', not on 'half1'"):
        swapped.setup()
    trainer = distill_trainer(recipe, dual[0])
    record = trainer.extra_checkpoint_state()["distillation_teachers"]
    trainer.load_extra_checkpoint_state({"distillation_teachers": record})
    with pytest.raises(HoldttsError, match="mix two targets"):
        trainer.load_extra_checkpoint_state({"distillation_teachers": [{**record[0], "step": 99}, record[1]]})
    # teachers trained again to the same step and split are other teachers: their checkpoints differ
    assert [r["sha256"] for r in record] == [file_sha256(t.checkpoint) for t in trainer.teachers]
    with pytest.raises(HoldttsError, match="mix two targets"):
        trainer.load_extra_checkpoint_state({"distillation_teachers": [record[0], {**record[1], "sha256": "0" * 64}]})
    # a record from before the checksum was kept resumes on step and split
    trainer.load_extra_checkpoint_state({"distillation_teachers": [
        {k: v for k, v in r.items() if k != "sha256"} for r in record]})


@pytest.mark.parametrize("teachers", ["shared", "own"])
def test_distillmd_trains_a_student_that_loads_as_an_ordinary_model(recipe, dual, teachers):
    """With DualMD's teachers (defense.teachers_dir), or its own trained first into <exp-dir>/teacher{1,2}."""
    exp = recipe / "exp" / f"distillmd_{teachers}"
    teachers_dir = dual[0] if teachers == "shared" else ""
    cfg = config("distillmd", f"defense.teachers_dir='{teachers_dir}'")
    info = DistillMDTraining(cfg, exp, recipe / "data", recipe / "dump", device="cpu", progress_bar=False).run()
    assert info["finished"] and info["kind"] == "distillmd"
    assert json.loads((exp / "system.json").read_text()) == {k: v for k, v in info.items() if k != "finished"}
    parts = info["components"]
    assert set(parts) == {"teacher1", "teacher2", "student"} and parts["student"]["train_split"] == "members"
    assert info["parameters"] == sum(p["parameters"] for p in parts.values())
    assert info["deployed_parameters"] == parts["student"]["parameters"]
    assert (exp / parts["teacher1"]["path"]).resolve() == ((dual[0] if teachers_dir else exp) / "teacher1").resolve()
    assert [parts[f"teacher{k}"]["train_split"] for k in (1, 2)] == ["half1", "half2"]
    student = load_model(exp)
    assert type(student) is GradTTS and student.checkpoint_state["train_split"] == "members"
    assert student.checkpoint_state["num_train_utts"] == 6
    assert load_checkpoint(exp)["distillation_teachers"][0]["train_split"] == "half1"


# --------------------------------------------------------------------------- the black-box attack


def test_distances_ignore_timing_and_mcd_ignores_level():
    rng = np.random.default_rng(0)
    mel = rng.normal(0, 3, (80, 40))
    stretched = np.repeat(mel, 2, axis=1)  # every frame twice: a slower rendering of the same thing
    assert mcd_dtw(stretched, mel).mcd == 0 and logmel_dtw_distance(stretched, mel) == 0
    assert mcd_dtw(mel + 0.5, mel).mcd < 1e-9  # a gain change lives in c0 only
    assert logmel_dtw_distance(mel + 0.5, mel) == pytest.approx(0.5, abs=1e-12)


class MemorisingTTS(GradTTS):
    """Reproduces the recording of every text it was trained on, and something else for the rest."""

    def __init__(self, cfg, n_vocab, store, members):
        super().__init__(cfg, n_vocab)
        self.memory = {tuple(store.tokens(u).tolist()): store.mel(u) for u in members}
        self.rng = np.random.default_rng(1)

    def synthesize(self, tokens, token_lengths, steps=None, sampler=None, temperature=None, length_scale=None,
                   generator=None):
        key = tuple(tokens[0, : int(token_lengths[0])].tolist())
        mel = self.memory.get(key)
        if mel is None:
            mel = self.rng.normal(-5, 2, (80, 3 * int(token_lengths[0])))
        return torch.from_numpy(mel).float()[None], torch.tensor([mel.shape[1]])


def test_black_box_attack_finds_a_memorising_model(recipe):
    store = FeatureStore(recipe / "dump")
    target = AttackTarget.from_splits(recipe / "data", "members")
    cfg = config()
    model = MemorisingTTS(cfg, store.symbols.n_vocab, store, target.members).eval()
    rows, _ = run_attacks(model, store, target, ["synth_distance"], batch_size=4)
    scores = {r["utt_id"]: r["score"] for r in rows}
    assert all(scores[u] == 0 for u in target.members)
    assert all(scores[u] < -1 for u in target.nonmembers)
    assert compute_metrics(rows, bootstrap_samples=10)["attacks"]["synth_distance"]["by_t"]["-"]["auroc"] == 1.0


class DivergingTTS(MemorisingTTS):
    """MemorisingTTS whose sampler diverges on the members' texts: their syntheses are all NaN."""

    def synthesize(self, tokens, token_lengths, **kwargs):
        mels, frames = super().synthesize(tokens, token_lengths, **kwargs)
        if tuple(tokens[0, : int(token_lengths[0])].tolist()) in self.memory:
            mels = torch.full_like(mels, float("nan"))
        return mels, frames


def test_black_box_attack_scores_a_diverged_synthesis_as_silence(recipe, caplog):
    store = FeatureStore(recipe / "dump")
    target = AttackTarget.from_splits(recipe / "data", "members")
    model = DivergingTTS(config(), store.symbols.n_vocab, store, target.members).eval()
    with caplog.at_level("WARNING", logger="holdtts.privacy.blackbox"):
        rows, info = run_attacks(model, store, target, ["synth_distance"], batch_size=4)
    warned = sorted(r.args[0] for r in caplog.records if "NaN or infinite" in r.getMessage())
    params = {"synth_distance": {"distance": "logmel"}}  # levels count here: only the log floor gives these
    logmel_rows, _ = run_attacks(model, store, target, ["synth_distance"], batch_size=4, params=params)
    scores = {r["utt_id"]: r["score"] for r in rows}
    logmel_scores = {r["utt_id"]: r["score"] for r in logmel_rows}
    assert all(np.isfinite(list(scores.values())))
    for utt in target.members:  # the distance of silence (the log floor, as long as the recording) to it
        reference = store.mel(utt)
        silence = np.full_like(reference, np.log(1e-5))
        assert scores[utt] == pytest.approx(-mcd_dtw(silence, reference).mcd, rel=1e-6)
        assert logmel_scores[utt] == pytest.approx(-logmel_dtw_distance(silence, reference), rel=1e-6)
    assert warned == sorted(target.members)
    assert info["notes"] == {"diverged_syntheses": {"synth_distance": sorted(target.members)}}  # for attack.json
    compute_metrics(rows, bootstrap_samples=10)  # the statistics take the rows as they are
    with pytest.raises(ValueError, match="silence_nonfinite"):  # not librosa's DTW error
        mcd_dtw(np.full_like(reference, np.nan), reference)


def test_synthesis_makes_a_diverged_item_silence_and_records_it(recipe, tmp_path, caplog):
    from holdtts.synthesis import synthesize_long_texts, synthesize_texts, write_outputs
    from holdtts.vocoder import GriffinLimVocoder

    model = tiny_model(recipe, 0)
    model.symbols, model.config, model.checkpoint = FeatureStore(recipe / "dump").symbols, model.cfg, "untrained"
    vocoder = GriffinLimVocoder(model.cfg.features, n_iter=2)
    texts, ids = ["Item twelve, and more.", "Item one."], ["b", "a"]  # synthesized shortest first
    clean = synthesize_texts(model, texts, ids, vocoder, steps=2)
    real_synthesize = model.synthesize

    def diverging(tokens, lengths, **kwargs):  # the longer text's sampler diverges
        mels, frames = real_synthesize(tokens, lengths, **kwargs)
        mels[int(torch.argmax(lengths))] = float("nan")
        return mels, frames

    model.synthesize = diverging
    with caplog.at_level("WARNING", logger="holdtts.synthesis"):
        result = synthesize_texts(model, texts, ids, vocoder, steps=2)
    assert result.nonfinite == ["b"] and clean.nonfinite == []
    assert any("synthesis of b held NaN" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(result.mels[1], clean.mels[1])  # the other item as before
    assert np.all(result.mels[0] == np.float32(np.log(1e-5))) and np.isfinite(result.wavs[0]).all()
    # a long text is synthesized in chunks ("x.1.0", "x.1.1", ...): one diverged chunk names the whole text
    long_text = " ".join(["Item one is here."] * 30)
    chunked = synthesize_long_texts(model, [long_text, "Item one."], ["x.1", "a"], vocoder, steps=2)
    assert chunked.nonfinite == ["x.1"] and np.isfinite(chunked.mels[0]).all()
    write_outputs(result, texts, tmp_path / "out", model.cfg.features.sample_rate)
    assert json.loads((tmp_path / "out" / "synthesis.json").read_text())["nonfinite_utts"] == ["b"]


def test_synthesize_command_warns_of_a_diverged_synthesis(dual, tmp_path, capsys):
    """`holdtts synthesize` says on stderr which outputs are silence because the sampler diverged."""
    real_synthesize = DualGradTTS.synthesize

    def diverging(self, tokens, lengths, **kwargs):
        mels, frames = real_synthesize(self, tokens, lengths, **kwargs)
        return torch.full_like(mels, float("inf")), frames

    out = tmp_path / "syn"
    with mock.patch.object(DualGradTTS, "synthesize", diverging):
        main(["synthesize", "--model", str(dual[0]), "--text", "Item two.", "--text", "Item one.", "--out-dir",
              str(out), "--device", "cpu", "--steps", "2"])
    stderr = capsys.readouterr().err
    assert "warning: 2 synthesis(es) diverged" in stderr and "utt00001, utt00002" in stderr
    assert json.loads((out / "synthesis.json").read_text())["nonfinite_utts"] == ["utt00001", "utt00002"]
    assert np.all(np.load(out / "utt00001.npy") == np.float32(np.log(1e-5)))


def test_black_box_scores_do_not_depend_on_batching(recipe, dual):
    model = load_model(dual[0])
    store = FeatureStore(recipe / "dump")
    target = AttackTarget.from_splits(recipe / "data", "half1", max_utts=2)
    params = {"synth_distance": {"steps": 2, "distance": "logmel"}}
    alone, _ = run_attacks(model, store, target, ["synth_distance"], batch_size=1, params=params)
    together, _ = run_attacks(model, store, target, ["synth_distance"], batch_size=4, params=params)
    assert alone == together and len({r["score"] for r in alone}) == len(alone)
