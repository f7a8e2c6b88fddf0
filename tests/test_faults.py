"""Fault injection (issue 14): kills at random moments, concurrent runs, bad files, remade splits.

Each test names the failure of the issue it reproduces. Kills use os.fork of this (already imported)
process, so a killed tiny training costs a second, not an interpreter start.
"""
from __future__ import annotations

import ast
import io
import json
import logging
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from holdtts.cli import main
from holdtts.errors import CheckpointError, ExperimentLockedError, MembershipMismatchError
from holdtts.training.lock import ExperimentLock
from holdtts.training.loop import TrainingLoop, exit_status
from holdtts.training.trainer import Trainer
from holdtts.utils import checkpoint as checkpoint_module
from holdtts.utils.checkpoint import list_checkpoints, load_checkpoint

from tiny import CONF_DIR, TINY_OVERRIDES, tiny_config

REPO = Path(__file__).resolve().parents[1]
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def train(root, exp, *overrides, data=None):
    cfg = tiny_config("vp", *overrides)
    return Trainer(cfg, exp, data or root / "data", root / "dump", device="cpu", progress_bar=False).run()


def run_cli(capsys, *args) -> tuple[int, str, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def train_args(root, exp, *overrides):
    args = ["train", "--config", CONF_DIR / "vp.yaml", "--exp-dir", exp, "--data-dir", root / "data",
            "--dump-dir", root / "dump", "--device", "cpu", "--no-progress"]
    for o in (*TINY_OVERRIDES, *overrides):
        args += ["--set", o]
    return args


def weights(exp) -> dict:
    state = load_checkpoint(exp)
    out = {f"model.{k}": v for k, v in state["model"].items()}
    out.update({f"ema.{k}": v for k, v in state["ema"].items()})
    for index, entry in state["optimizer"]["state"].items():
        out.update({f"adam.{index}.{k}": v for k, v in entry.items() if torch.is_tensor(v)})
    return out


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs"


# --------------------------------------------------------------------------- fault injection


def _child(work, kill_at: tuple[str, int] | None) -> None:
    """Train in a forked child; with kill_at = (point, n), SIGKILL itself at the n-th time it reaches point:
    'checkpoint' half-way through writing a checkpoint's temporary file, 'log' half-way through a line of
    train_log.jsonl, 'step' right after an optimizer step (before the step counter moves)."""
    seen = {"checkpoint": 0, "log": 0, "step": 0}

    def reached(point: str) -> bool:
        seen[point] += 1
        return kill_at is not None and kill_at == (point, seen[point])

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    real_save, real_log, real_step = torch.save, TrainingLoop.log_scalars, Trainer.train_step

    def save(obj, f, *args, **kwargs):
        if not reached("checkpoint"):
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer)
        with open(f, "wb") as out:
            out.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        die()

    def log_scalars(self, scalars):
        if reached("log"):
            with open(self.exp_dir / "train_log.jsonl", "a") as out:
                out.write(json.dumps({"step": self.state.step, **scalars})[:25])
            die()
        return real_log(self, scalars)

    def train_step(self, batch):
        out = real_step(self, batch)
        if reached("step"):
            die()
        return out

    checkpoint_module.torch.save = save
    TrainingLoop.log_scalars = log_scalars
    Trainer.train_step = train_step
    train(*work)


def _run_forked(work, kill_at=None, kill_after: float | None = None) -> int | None:
    """Run `_child` in a forked process; returns the signal that ended it (None for a normal exit)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            logging.disable(logging.CRITICAL)
            _child(work, kill_at)
        except BaseException:  # noqa: BLE001 - report any failure as the exit status
            code = 3
        finally:
            os._exit(code)
    status = None
    if kill_after is not None:
        deadline = time.monotonic() + kill_after
        while time.monotonic() < deadline:
            done, polled = os.waitpid(pid, os.WNOHANG)
            if done:  # the child ended before the deadline and is already reaped: keep its status
                status = polled
                break
            time.sleep(0.01)
        else:
            os.kill(pid, signal.SIGKILL)
    if status is None:
        _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status)
    assert os.WEXITSTATUS(status) == 0, f"the training child failed (exit {os.WEXITSTATUS(status)})"
    return None


@needs_fork
def test_killed_at_random_moments_resumes_to_the_uninterrupted_result(mini_recipe, tmp_path):
    """Several SIGKILLs (one half-way through a checkpoint write, one half-way through a log line, others at
    random steps and random times), each run resumed: the final weights, optimizer state and log equal an
    uninterrupted run's, and nothing of the kills is left behind."""
    steps = 8
    overrides = (f"train.max_steps={steps}", "train.checkpoint_every=2", "train.keep_last=2")
    reference = tmp_path / "reference"
    train(mini_recipe, reference, *overrides)

    seed = int(os.environ.get("HOLDTTS_FAULT_SEED", "14"))
    rng = np.random.default_rng(seed)
    plan = [("checkpoint", 2), ("log", int(rng.integers(1, 5))), ("time", float(rng.uniform(0.3, 2.5))),
            ("step", int(rng.integers(1, 4))), ("checkpoint", 1), ("time", float(rng.uniform(0.3, 2.5)))]
    killed = tmp_path / "killed"
    work = (mini_recipe, killed, *overrides)
    outcomes = []
    for point, when in plan:
        if point == "time":
            outcomes.append(_run_forked(work, kill_after=when))
        else:
            outcomes.append(_run_forked(work, kill_at=(point, when)))
    assert outcomes[0] == signal.SIGKILL, f"plan {plan} (seed {seed}): the checkpoint-write kill did not happen"
    assert _run_forked(work) is None  # the last run finishes
    context = f"plan {plan}, outcomes {outcomes} (seed {seed})"

    assert_same_weights(weights(reference), weights(killed))
    summary = json.loads((killed / "train_summary.json").read_text())
    assert summary["finished"] and summary["step"] == steps, context
    logged = [json.loads(line) for line in (killed / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == list(range(1, steps + 1)), context
    assert list_checkpoints(killed)[-1][0] == steps, context
    leftovers = [p.name for folder in (killed, killed / "checkpoints") for p in folder.iterdir()
                 if ".tmp" in p.name]
    assert not leftovers, context
    assert (killed / ".lock").read_text() == ""  # released by the clean exit
    ExperimentLock(killed).acquire().release()


# --------------------------------------------------------------------------- 1. exit status of a stopped run


def _signal_at_step(monkeypatch, step: int, *signums: int):
    real = Trainer.train_step

    def train_step(self, batch):
        out = real(self, batch)
        if self.state.step + 1 == step:
            for signum in signums:
                os.kill(os.getpid(), signum)
        return out

    monkeypatch.setattr(Trainer, "train_step", train_step)


def test_ctrl_c_saves_then_exits_130_without_a_summary(mini_recipe, tmp_path, monkeypatch, capsys):
    exp = tmp_path / "vp"
    _signal_at_step(monkeypatch, 3, signal.SIGINT)
    code, out, err = run_cli(capsys, *train_args(mini_recipe, exp, "train.max_steps=20"))
    assert code == 130, err
    summary = json.loads(out)
    assert summary["finished"] is False and summary["interrupted_by"] == "SIGINT" and summary["step"] == 3
    assert [s for s, _ in list_checkpoints(exp)][-1] == 3  # saved before exiting
    assert not (exp / "train_summary.json").exists()
    assert "resume" in err


def test_a_second_signal_stops_at_once_with_its_status(mini_recipe, tmp_path, monkeypatch, capsys):
    exp = tmp_path / "vp"
    _signal_at_step(monkeypatch, 3, signal.SIGTERM, signal.SIGTERM)
    code, _, err = run_cli(capsys, *train_args(mini_recipe, exp, "train.max_steps=20"))
    assert code == 143, err
    assert not (exp / "train_summary.json").exists()
    assert (exp / ".lock").read_text() == ""  # released on the way out


def _vocoder_args(data, exp, max_steps):
    from test_vocoder import CONF, tiny_overrides

    args = ["train-vocoder", "--config", CONF / "vocoder_v1.yaml", "--config", CONF / "vocoder_tiny.yaml",
            "--exp-dir", exp, "--data-dir", data, "--device", "cpu", "--no-progress"]
    for text in tiny_overrides(max_steps):
        args += ["--set", text]
    return args


def test_train_vocoder_stopped_exits_143_and_records_its_members(tmp_path, monkeypatch, capsys):
    from test_vocoder import make_data_dir

    from holdtts.data.dataset import load_split
    from holdtts.data.splits import member_checksum
    from holdtts.training.vocoder import VocoderTrainer

    data = make_data_dir(tmp_path)
    real = VocoderTrainer.train_step

    def train_step(self, audio):
        out = real(self, audio)
        if self.state.step == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(VocoderTrainer, "train_step", train_step)
    exp = tmp_path / "vocoder"
    code, out, err = run_cli(capsys, *_vocoder_args(data, exp, 6))
    assert code == 143, err
    assert json.loads(out)["interrupted_by"] == "SIGTERM" and not (exp / "train_summary.json").exists()
    state = load_checkpoint(exp)
    assert state["progress"]["step"] == 1
    assert state["members_sha256"] == member_checksum(load_split(data, "members"))
    # the same directory with a member list changed since: refused
    scp = data / "members" / "wav.scp"
    scp.write_text("".join(scp.read_text().splitlines(keepends=True)[1:]))
    code, _, err = run_cli(capsys, *_vocoder_args(data, exp, 6))
    assert code == 1 and "member" in err


def test_train_vocoder_refuses_a_cut_wav(tmp_path, capsys):
    from test_vocoder import make_data_dir

    data = make_data_dir(tmp_path)
    wav = tmp_path / "wavs" / "LJ001-0002.wav"
    wav.write_bytes(wav.read_bytes()[:-2000])
    code, _, err = run_cli(capsys, *_vocoder_args(data, tmp_path / "vocoder", 2))
    assert code == 1 and "truncated wav" in err and "LJ001-0002" in err and "members/wav.scp:2" in err


def test_exit_status_of_summaries():
    assert exit_status({"finished": True}) == 0
    assert exit_status({"finished": False, "interrupted_by": "SIGTERM"}) == 143
    assert exit_status({"finished": False, "teachers": [{"finished": True}, {"interrupted_by": "SIGINT"}]}) == 130
    assert exit_status({"finished": False}) == 1


# --------------------------------------------------------------------------- 2. member lists


@pytest.fixture
def remade_data(mini_recipe, tmp_path):
    """The mini corpus's splits made again with another member count (the features stay valid)."""
    from holdtts.data.splits import prepare_data_dir

    data = tmp_path / "remade"
    prepare_data_dir(mini_recipe / "corpus", data, seed=7, num_valid=2, num_members=8)
    return data


def test_checkpoints_and_summary_record_the_member_list(mini_recipe, tmp_path):
    from holdtts.data.dataset import load_split
    from holdtts.data.splits import load_splits_meta, member_checksum

    exp = tmp_path / "vp"
    summary = train(mini_recipe, exp, "train.max_steps=2")
    expected = member_checksum(load_split(mini_recipe / "data", "members"))
    assert summary["members_sha256"] == expected
    assert json.loads((exp / "train_summary.json").read_text())["members_sha256"] == expected
    assert load_checkpoint(exp)["members_sha256"] == expected
    assert load_splits_meta(mini_recipe / "data")["checksums"]["members"] == expected


def test_resume_onto_remade_splits_is_refused(mini_recipe, tmp_path, remade_data):
    exp = tmp_path / "vp"
    train(mini_recipe, exp, "train.max_steps=2")
    with pytest.raises(MembershipMismatchError, match="another member list"):
        train(mini_recipe, exp, "train.max_steps=4", data=remade_data)


def test_old_checkpoint_without_the_checksum_resumes_with_a_warning(mini_recipe, tmp_path, caplog):
    exp = tmp_path / "vp"
    train(mini_recipe, exp, "train.max_steps=2")
    path = list_checkpoints(exp)[-1][1]
    state = load_checkpoint(path)
    del state["members_sha256"]
    torch.save(state, path)
    with caplog.at_level(logging.WARNING):
        assert train(mini_recipe, exp, "train.max_steps=4")["step"] == 4
    assert "without the member list's checksum" in caplog.text


def test_attack_refuses_a_model_of_other_splits(mini_recipe, tmp_path, remade_data, capsys):
    from holdtts.commands.attack import check_member_list
    from holdtts.models.loading import load_model

    exp = tmp_path / "vp"
    train(mini_recipe, exp, "train.max_steps=2")
    model = load_model(exp)
    check_member_list(model, mini_recipe / "data")  # its own splits: fine
    with pytest.raises(MembershipMismatchError, match="remade"):
        check_member_list(model, remade_data)
    code, _, err = run_cli(capsys, "attack", "--model", exp, "--out-dir", tmp_path / "attack", "--data-dir",
                           remade_data, "--dump-dir", mini_recipe / "dump", "--attack", "loss", "--device", "cpu")
    assert code == 1 and "another member list" in err and not (tmp_path / "attack" / "metrics.json").exists()
    # a checkpoint from before the checksum: a warning, not a refusal
    path = list_checkpoints(exp)[-1][1]
    state = load_checkpoint(path)
    del state["members_sha256"]
    torch.save(state, path)
    check_member_list(load_model(exp), remade_data)
    assert "older checkpoint" in capsys.readouterr().err


# --------------------------------------------------------------------------- 3. the experiment lock


def test_a_second_run_fails_at_once_naming_the_holder(mini_recipe, tmp_path):
    exp = tmp_path / "vp"
    exp.mkdir()
    with ExperimentLock(exp):
        with pytest.raises(ExperimentLockedError, match=f"PID {os.getpid()}"):
            train(mini_recipe, exp, "train.max_steps=2")
        assert not (exp / "config.yaml").exists() and not (exp / "checkpoints").exists()
    assert train(mini_recipe, exp, "train.max_steps=2")["finished"]


@needs_fork
def test_lock_of_another_process_then_its_stale_lock(mini_recipe, tmp_path, caplog):
    exp = tmp_path / "vp"
    exp.mkdir()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child holds the lock until killed
        try:
            ExperimentLock(exp).acquire()
            os.write(ready_w, b"1")
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"1"
        with pytest.raises(ExperimentLockedError, match=f"PID {pid}"):
            train(mini_recipe, exp, "train.max_steps=2")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert (exp / ".lock").read_text().split()[0] == str(pid)  # what a killed holder leaves
    with caplog.at_level(logging.WARNING):
        assert train(mini_recipe, exp, "train.max_steps=2")["finished"]
    assert f"stale lock of PID {pid}" in caplog.text


# --------------------------------------------------------------------------- 4. corrupt checkpoints


@pytest.mark.parametrize("prefix", [b"", b"\x80\x02", b"PK\x03\x04", b"\x80\x02\x8a\x0a"])
def test_random_bytes_are_a_named_checkpoint_error(tmp_path, prefix):
    from holdtts.models.loading import load_model

    for seed in range(8):
        path = tmp_path / f"random{seed}.pt"
        path.write_bytes(prefix + np.random.default_rng(seed).bytes(4096))
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        assert str(path) in str(err.value)
        with pytest.raises(CheckpointError):
            load_model(path)


def test_random_bytes_checkpoint_on_resume(mini_recipe, tmp_path, capsys):
    exp = tmp_path / "vp"
    (exp / "checkpoints").mkdir(parents=True)
    (exp / "checkpoints" / "step-000000002.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    code, _, err = run_cli(capsys, *train_args(mini_recipe, exp, "train.max_steps=4"))
    assert code == 1 and "step-000000002.pt" in err and "Traceback" not in err


# --------------------------------------------------------------------------- 7. a partial last log line


def test_partial_last_log_line_is_cut_on_resume(mini_recipe, tmp_path, caplog):
    exp = tmp_path / "vp"
    train(mini_recipe, exp, "train.max_steps=4", "train.checkpoint_every=4")
    with open(exp / "train_log.jsonl", "a") as f:
        f.write('{"step": 5, "train/lo')  # a kill in the middle of an append
    with caplog.at_level(logging.WARNING):
        train(mini_recipe, exp, "train.max_steps=6")
    assert "incomplete line" in caplog.text
    logged = [json.loads(line) for line in (exp / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5, 6]


def test_log_of_a_run_killed_before_its_first_checkpoint_is_restarted(mini_recipe, tmp_path):
    exp = tmp_path / "vp"
    exp.mkdir()
    (exp / "train_log.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n{"step": 2, "train/loss": 1.0}\n')
    train(mini_recipe, exp, "train.max_steps=2")
    logged = [json.loads(line) for line in (exp / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2]


# --------------------------------------------------------------------------- 8. temporary files, fsync


def test_stale_temp_files_are_swept_at_start(mini_recipe, tmp_path, caplog):
    import tempfile

    exp = tmp_path / "vp"
    train(mini_recipe, exp, "train.max_steps=2")
    folder = exp / "checkpoints"
    fd, partial = tempfile.mkstemp(prefix=".step-000000004.pt.", suffix=".tmp.pt", dir=folder)
    os.write(fd, b"half a checkpoint")
    os.close(fd)
    fd, summary_tmp = tempfile.mkstemp(prefix=".train_summary.json.", suffix=".tmp", dir=exp)
    os.close(fd)
    (exp / ".keep.me").write_text("not ours")
    with caplog.at_level(logging.WARNING):
        train(mini_recipe, exp, "train.max_steps=4")
    assert not Path(partial).exists() and not Path(summary_tmp).exists()
    assert (exp / ".keep.me").exists()
    assert "temporary file(s) of interrupted writes" in caplog.text


def test_checkpoint_file_and_folder_are_fsynced_around_the_rename(tmp_path, monkeypatch):
    import stat

    from holdtts.utils.checkpoint import save_checkpoint

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        return real_fsync(fd)

    def replace(a, b):
        events.append("rename")
        return real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_checkpoint({"format": "x", "w": torch.zeros(3)}, tmp_path, 1, keep_last=1)
    assert events == ["fsync file", "rename", "fsync dir"]


# --------------------------------------------------------------------------- 9. long texts


class _FakeModel:
    """What synthesize_long_texts reads of a model: its features config."""

    def __init__(self):
        from holdtts.config import SystemConfig

        self.config = SystemConfig()


def test_long_text_is_split_into_batched_chunks_and_joined(monkeypatch):
    from holdtts import synthesis
    from holdtts.synthesis import MAX_SENTENCE_CHARS, SynthesisResult, synthesize_long_texts

    calls = []

    def fake(model, texts, ids, vocoder, batch_size=16, **kwargs):
        calls.append((list(texts), list(ids)))
        mels = [np.zeros((80, len(t)), np.float32) for t in texts]
        wavs = [np.ones(len(t) * 256, np.float32) for t in texts]
        return SynthesisResult(list(ids), mels, wavs, 1.0, 0.5, sum(w.size for w in wavs) / 22050)

    monkeypatch.setattr(synthesis, "synthesize_texts", fake)
    sentence = "The quick brown fox jumps over the lazy dog, again and again. "
    long_text = sentence * 80  # about 5,000 characters
    result = synthesize_long_texts(_FakeModel(), [long_text, "Short one."], ["a", "b"], vocoder=None)
    (texts, ids), = calls  # one call: every chunk of every text in the same batches
    assert all(len(t) <= MAX_SENTENCE_CHARS for t in texts) and len(texts) > 10
    assert " ".join(t for t, i in zip(texts, ids) if i.startswith("a.")) == long_text.strip()
    pause = round(0.2 * 22050 / 256)
    chunks = [t for t, i in zip(texts, ids) if i.startswith("a.")]
    assert result.utt_ids == ["a", "b"]
    assert result.mels[0].shape[1] == sum(map(len, chunks)) + pause * (len(chunks) - 1)
    assert result.wavs[0].size == result.mels[0].shape[1] * 256
    assert result.mels[1].shape[1] == len("Short one.")
    calls.clear()
    synthesize_long_texts(_FakeModel(), ["Short one.", "Two. Sentences."], ["x", "y"], vocoder=None)
    assert calls == [(["Short one.", "Two. Sentences."], ["x", "y"])]  # within the limit: unchanged


def test_a_sentence_over_the_limit_is_a_clear_error(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    code, _, err = run_cli(capsys, "synthesize", "--model", model, "--out-dir", tmp_path / "out",
                           "--text", "word " * 100 + "and more words without a stop " * 10)
    assert code == 1 and "limit is 400 per sentence" in err and "--text" in err


def test_long_text_end_to_end(mini_recipe, tmp_path, monkeypatch, capsys):
    """A 1,100-character --text through the CLI: the decoder only ever sees chunks within the limit, and one
    wav comes out (a silent stand-in vocoder keeps it fast)."""
    import holdtts.vocoder
    from holdtts.models.tts import GradTTS

    class Silent(torch.nn.Module):
        name = "silent"

        def forward(self, mels):
            return torch.zeros(mels.shape[0], mels.shape[-1] * 256)

    exp = tmp_path / "vp"
    train(mini_recipe, exp, "train.max_steps=1")
    longest = []
    real = GradTTS.synthesize

    def synthesize(self, tokens, lengths, *args, **kwargs):
        longest.append(int(lengths.max()))
        return real(self, tokens, lengths, *args, **kwargs)

    monkeypatch.setattr(GradTTS, "synthesize", synthesize)
    monkeypatch.setattr(holdtts.vocoder, "load_vocoder", lambda spec, device=None: Silent())
    text = "Printing, in the only sense with which we are at present concerned, differs. " * 14
    code, _, err = run_cli(capsys, "synthesize", "--model", exp, "--out-dir", tmp_path / "out", "--text", text,
                           "--steps", "2", "--vocoder", "griffin-lim", "--device", "cpu", "--batch-size", "2")
    assert code == 0, err
    assert (tmp_path / "out" / "utt00001.wav").exists() and len(longest) == 2  # 3 chunks, batches of 2
    assert max(longest) <= 2 * 400 + 1  # tokens of a chunk of at most 400 characters, blank interspersed


# --------------------------------------------------------------------------- the import circle


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_trainer_and_dp_do_not_import_each_other():
    trainer = _imports(REPO / "holdtts" / "training" / "trainer.py")
    assert not {"holdtts.training.dp", "holdtts.training.factory"} & trainer
    assert "holdtts.training.factory" not in _imports(REPO / "holdtts" / "training" / "dp.py")
    from holdtts.training.factory import make_trainer

    assert type(make_trainer(tiny_config(), "x", "d", "f")) is Trainer


def test_lock_file_is_left_empty_by_a_finished_run(mini_recipe, tmp_path):
    exp = tmp_path / "vp"
    train(mini_recipe, exp, "train.max_steps=1")
    assert (exp / ".lock").exists() and (exp / ".lock").read_text() == ""
    shutil.rmtree(exp)
