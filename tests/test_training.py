"""The training loop: checkpoints, exact resume (also after kill -9), signals, config checks, DDP."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from holdtts.errors import ConfigError
from holdtts.training.trainer import Trainer
from holdtts.utils.checkpoint import list_checkpoints, load_checkpoint

from tiny import CONF_DIR, TINY_OVERRIDES, tiny_config

REPO = Path(__file__).resolve().parents[1]


def train(root, exp, system="vp", *overrides):
    cfg = tiny_config(system, *overrides)
    return Trainer(cfg, exp, root / "data", root / "dump", device="cpu", progress_bar=False).run()


def final_state(exp):
    return load_checkpoint(exp)


def assert_same_weights(a, b):
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"


def test_training_writes_checkpoints_logs_and_summary(mini_recipe, tmp_path):
    exp = tmp_path / "hold3"
    summary = train(mini_recipe, exp, "hold3", "train.max_steps=6", "train.keep_last=2")
    assert summary["finished"] and summary["step"] == 6
    assert [s for s, _ in list_checkpoints(exp)] == [4, 6]  # every 2 steps, the newest 2 kept
    state = load_checkpoint(exp)
    assert state["progress"]["step"] == 6 and state["train_split"] == "members"
    assert state["process"]["kind"] == "hold" and state["process"]["order"] == 3
    assert state["symbols"] and state["config"]["name"] == "hold3"
    assert json.loads((exp / "train_summary.json").read_text())["step"] == 6
    logged = [json.loads(line) for line in (exp / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "train/loss" in r] == [1, 2, 3, 4, 5, 6]
    assert all(k in logged[-1] for k in ("train/loss_diffusion", "train/loss_prior", "train/loss_duration",
                                          "train/grad_norm", "train/lr", "train/utts_per_sec"))
    assert list((exp / "tensorboard").glob("events.out.tfevents.*"))
    assert (exp / "config.yaml").read_text().startswith("name: hold3")


def test_resume_is_exact(mini_recipe, tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(mini_recipe, whole, "vp", "train.max_steps=8")
    first = train(mini_recipe, split, "vp", "train.max_steps=5")
    assert first["step"] == 5
    second = train(mini_recipe, split, "vp", "train.max_steps=8")  # a longer limit is a legal change
    assert second["step"] == 8 and second["epoch"] == train_epochs(whole)
    assert_same_weights(final_state(whole), final_state(split))
    a, b = final_state(whole)["optimizer"], final_state(split)["optimizer"]
    assert all(torch.equal(a["state"][k]["exp_avg"], b["state"][k]["exp_avg"]) for k in a["state"])


def train_epochs(exp):
    return json.loads((exp / "train_summary.json").read_text())["epoch"]


def test_resume_refuses_a_different_config(mini_recipe, tmp_path):
    exp = tmp_path / "vp"
    train(mini_recipe, exp, "vp", "train.max_steps=2")
    with pytest.raises(ConfigError, match="train.lr"):
        train(mini_recipe, exp, "vp", "train.max_steps=4", "train.lr=0.5")


def test_step_or_epoch_limit_is_required(mini_recipe, tmp_path):
    with pytest.raises(ConfigError, match="max_steps"):
        train(mini_recipe, tmp_path / "x", "vp", "train.max_steps=0")


def _cli(exp, root, *extra):
    args = [sys.executable, "-m", "holdtts.cli", "train", "--config", str(CONF_DIR / "vp.yaml"),
            "--exp-dir", str(exp), "--data-dir", str(root / "data"), "--dump-dir", str(root / "dump"),
            "--device", "cpu", "--no-progress"]
    for o in TINY_OVERRIDES:
        args += ["--set", o]
    for o in extra:
        args += ["--set", o]
    return args


def _wait_for_checkpoint(exp, step, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(s >= step for s, _ in list_checkpoints(exp)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def test_killed_run_resumes_to_the_same_result(mini_recipe, tmp_path):
    """SIGKILL after a checkpoint: at most one checkpoint interval is lost and the resumed run ends exactly
    where an uninterrupted run does."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(killed, mini_recipe, "train.max_steps=200"), env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_checkpoint(killed, 4, proc)
    proc.kill()
    proc.wait()
    steps = [s for s, _ in list_checkpoints(killed)]
    assert steps and steps[-1] >= 4
    done = subprocess.run(_cli(killed, mini_recipe, "train.max_steps=10"), env=env, cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    whole = tmp_path / "whole"
    ref = subprocess.run(_cli(whole, mini_recipe, "train.max_steps=10"), env=env, cwd=REPO,
                         capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    assert json.loads(done.stdout)["step"] == json.loads(ref.stdout)["step"] == 10
    assert_same_weights(final_state(whole), final_state(killed))


def test_sigterm_saves_a_checkpoint_before_stopping(mini_recipe, tmp_path):
    exp = tmp_path / "term"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cli(exp, mini_recipe, "train.max_steps=1000", "train.checkpoint_every=1000"),
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    log = exp / "train_log.jsonl"
    while not (log.exists() and len(log.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.time() < deadline, "training did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err  # not 0: a script or the recipe must not take it for finished
    summary = json.loads(out)
    assert not summary["finished"] and summary["step"] >= 3 and summary["interrupted_by"] == "SIGTERM"
    assert [s for s, _ in list_checkpoints(exp)] == [summary["step"]]
    assert not (exp / "train_summary.json").exists()


def test_ddp_on_two_cpu_processes(mini_recipe, tmp_path):
    exp = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = _cli(exp, mini_recipe, "train.max_steps=4", "train.batch_size=2")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args[1:]]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((exp / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 4
    state = load_checkpoint(exp)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    # two ranks of batch 2 see 4 utterances a step
    assert state["progress"]["utts"] == 16


def test_attacks_during_training_log_held_out_auroc(mini_recipe, tmp_path):
    """train.attack_every_epochs logs each attack's held-out AUROC and the headline's permutation p, which
    the report draws as AUROC by epoch."""
    from holdtts.report.collect import read_training_aurocs

    exp = tmp_path / "vp"
    train(mini_recipe, exp, "vp", "train.max_steps=0", "train.max_epochs=2", "train.attack_every_epochs=1",
          "train.attack=loss,prior")
    logged = [json.loads(line) for line in (exp / "train_log.jsonl").read_text().splitlines()]
    attacks = [r for r in logged if "attack/headline/auroc" in r]
    assert [r["epoch"] for r in attacks] == [1, 2]
    for r in attacks:
        assert 0 <= r["attack/headline/auroc"] <= 1 and 0 < r["attack/headline/p_value"] <= 1
        assert {"attack/loss/auroc", "attack/prior/auroc"} <= set(r)
    assert set(read_training_aurocs(exp / "train_log.jsonl")) == {"headline", "loss", "prior"}


def test_attacks_during_training_do_not_change_training(mini_recipe, tmp_path):
    """An in-training attack draws its own random numbers (its own generator, the model in eval mode, EMA
    untouched), so a run attacked every epoch ends with the same weights as one never attacked: AUROC by
    epoch curves describe the very model that the final attack measures."""
    plain, attacked = tmp_path / "plain", tmp_path / "attacked"
    common = ("train.max_steps=0", "train.max_epochs=3", "train.attack=loss,pia,duration,prior")
    train(mini_recipe, plain, "vp", *common, "train.attack_every_epochs=0")
    train(mini_recipe, attacked, "vp", *common, "train.attack_every_epochs=1")
    logged = [json.loads(line) for line in (attacked / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in logged if "attack/headline/auroc" in r] == [1, 2, 3]
    assert all(r["time/attack_seconds"] > 0 for r in logged if "attack/headline/auroc" in r)  # what they cost
    assert_same_weights(final_state(plain), final_state(attacked))
    a, b = final_state(plain)["optimizer"], final_state(attacked)["optimizer"]
    assert all(torch.equal(a["state"][k]["exp_avg"], b["state"][k]["exp_avg"]) for k in a["state"])


def test_an_in_training_attack_with_non_finite_scores_stops_training_as_diverged(mini_recipe, tmp_path, monkeypatch):
    """A model whose outputs overflow on some inputs (its loss finite on most steps) is diverged: the
    in-training attack says so in words, naming the epoch, instead of failing inside the metrics."""
    from holdtts.errors import HoldttsError
    from holdtts.privacy import runner

    real = runner.run_attacks

    def overflowing(*args, **kwargs):
        rows, info = real(*args, **kwargs)
        rows[0] = {**rows[0], "score": float("nan")}
        return rows, info

    monkeypatch.setattr(runner, "run_attacks", overflowing)
    with pytest.raises(HoldttsError, match=r"training diverged: at epoch 1 \(step \d+\) the in-training attack's "
                                           r"scores are non-finite for 1 of \d+ rows \(loss at t="):
        train(mini_recipe, tmp_path / "a", "vp", "train.max_steps=0", "train.max_epochs=2", "train.attack=loss",
              "train.attack_every_epochs=1")


class _Faulty(Trainer):
    """A Trainer whose steps in `nan_loss` have a NaN loss and whose steps in `inf_grad` a finite loss with an
    infinite gradient (state.step counts the steps done before this one)."""

    nan_loss: set = set()
    inf_grad: set = set()

    def step_losses(self, batch):
        terms = super().step_losses(batch)
        if self.state.step in self.nan_loss:
            terms["diffusion"] = terms["diffusion"] * float("nan")
        if self.state.step in self.inf_grad:
            total = next(p for p in self.model.parameters() if p.requires_grad).sum()
            total.register_hook(lambda g: g * float("inf"))
            terms["diffusion"] = terms["diffusion"] + (total - total.detach())  # adds 0; its gradient is inf
        return terms


def test_non_finite_steps_are_skipped_without_touching_the_weights(mini_recipe, tmp_path, caplog):
    """A NaN loss, and a finite loss with an infinite gradient (which clipping would turn into NaN weights),
    are both skipped: the weights stay finite; MAX_BAD_STEPS of them in a row stop training with an error."""
    from holdtts.errors import HoldttsError

    faulty = type("Faulty", (_Faulty,), {"nan_loss": {2}, "inf_grad": {3}})
    summary = faulty(tiny_config("vp", "train.max_steps=6"), tmp_path / "a", mini_recipe / "data",
                     mini_recipe / "dump", device="cpu", progress_bar=False).run()
    assert summary["finished"] and summary["skipped_steps"] == 2
    assert json.loads((tmp_path / "a" / "train_summary.json").read_text())["skipped_steps"] == 2
    assert "non-finite loss (nan)" in caplog.text and "non-finite gradient norm (inf)" in caplog.text
    state = final_state(tmp_path / "a")
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    logged = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "train/loss" in r] == [1, 2, 5, 6]  # steps 3 and 4 skipped

    always = type("Always", (_Faulty,), {"inf_grad": set(range(100))})
    with pytest.raises(HoldttsError, match="10 consecutive non-finite steps"):
        always(tiny_config("vp", "train.max_steps=20"), tmp_path / "b", mini_recipe / "data",
               mini_recipe / "dump", device="cpu", progress_bar=False).run()


def test_a_diverged_tensorboard_sample_is_drawn_as_silence(mini_recipe, tmp_path, caplog, monkeypatch, recwarn):
    """The TensorBoard sample follows the one rule for a diverged synthesis (holdtts.data.mel.silence_nonfinite):
    its mel and Griffin-Lim audio are silence, not NaN, and the log says so."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from holdtts.models.tts import GradTTS

    real = GradTTS.synthesize

    def diverging(self, tokens, lengths, **kwargs):
        mels, frames = real(self, tokens, lengths, **kwargs)
        return mels * float("nan"), frames

    monkeypatch.setattr(GradTTS, "synthesize", diverging)
    exp = tmp_path / "vp"
    train(mini_recipe, exp, "vp", "train.max_steps=2", "train.sample_every=2")
    assert "the TensorBoard sample at step 2 diverged" in caplog.text
    events = EventAccumulator(str(exp / "tensorboard"), size_guidance={"audio": 0, "images": 0}).Reload()
    assert events.Tags()["images"] == ["samples/mel"]
    (clip,) = events.Audio("samples/audio_griffin_lim")
    assert not [w for w in recwarn if "invalid value" in str(w.message)]  # NaN audio was cast to int16
    audio, _ = soundfile.read(io.BytesIO(clip.encoded_audio_string))
    assert len(audio) > 0 and np.abs(audio).max() < 0.01  # Griffin-Lim of the log floor: near silence


def test_a_checkpoint_without_the_skipped_step_counters_resumes(mini_recipe, tmp_path):
    """Checkpoints written before holdtts counted skipped steps resume, counting from 0."""
    from holdtts.utils.checkpoint import latest_checkpoint

    exp = tmp_path / "vp"
    train(mini_recipe, exp, "vp", "train.max_steps=2")
    path = latest_checkpoint(exp)
    state = torch.load(path, weights_only=True)
    for key in ("skipped_steps", "nonfinite_utt_gradients"):
        del state["progress"][key]
    torch.save(state, path)
    summary = train(mini_recipe, exp, "vp", "train.max_steps=4")
    assert summary["step"] == 4 and summary["skipped_steps"] == 0
