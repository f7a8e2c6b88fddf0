"""HiFi-GAN: the published checkpoint format against an independent re-implementation of the official
generator, batched = one-by-one, the losses' closed forms, training (one step, resume), `vocode`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

import holdtts
from holdtts.config import FeaturesConfig, config_from_dict
from holdtts.data.mel import mel_filterbank
from holdtts.errors import CheckpointError, ConfigError, HoldttsError, InputError
from holdtts.utils.checkpoint import list_checkpoints, load_checkpoint
from holdtts.vocoder import load_vocoder
from holdtts.vocoder.hifigan import (
    GENERATOR_PRESETS,
    DiscriminatorConfig,
    GeneratorConfig,
    HifiGanDiscriminator,
    HifiGanGenerator,
    check_generator_config,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    loss_mel_features,
)

CONF = Path(__file__).resolve().parents[1] / "egs" / "ljspeech" / "conf"
SR = 22050
TINY = {
    "1": {"resblock": "1", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
          "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 7],
          "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]]},
    "2": {"resblock": "2", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
          "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 5],
          "resblock_dilation_sizes": [[1, 2], [2, 6]]},
}
TINY_DISCRIMINATOR = DiscriminatorConfig(period_channels=(4, 8, 16, 32, 32),
                                         scale_channels=(8, 8, 16, 16, 32, 32, 32),
                                         scale_groups=(1, 2, 4, 4, 4, 4, 1))


# --------------------------------------------------------------------------- the official generator


class WNConv(nn.Module):
    """A conv with old-style weight norm parameters (weight_g, weight_v): w = g v / ||v|| over dims 1..."""

    def __init__(self, c_in, c_out, kernel, stride=1, padding=0, dilation=1, transposed=False, gen=None):
        super().__init__()
        shape = (c_in, c_out, kernel) if transposed else (c_out, c_in, kernel)
        self.weight_g = nn.Parameter(torch.rand(shape[0], 1, 1, generator=gen) * 0.2 + 0.7)
        self.weight_v = nn.Parameter(torch.randn(shape, generator=gen))
        self.bias = nn.Parameter(torch.randn(c_out, generator=gen) * 0.05)
        self.stride, self.padding, self.dilation, self.transposed = stride, padding, dilation, transposed

    def forward(self, x):
        norm = self.weight_v.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
        w = self.weight_g * self.weight_v / norm
        if self.transposed:
            return F.conv_transpose1d(x, w, self.bias, self.stride, self.padding)
        return F.conv1d(x, w, self.bias, self.stride, self.padding, self.dilation)


class ReferenceResBlock(nn.Module):
    def __init__(self, kind, ch, k, dilations, gen):
        super().__init__()
        self.kind = kind
        pad = lambda d: (k * d - d) // 2  # noqa: E731
        if kind == "1":
            self.convs1 = nn.ModuleList([WNConv(ch, ch, k, padding=pad(d), dilation=d, gen=gen)
                                         for d in dilations])
            self.convs2 = nn.ModuleList([WNConv(ch, ch, k, padding=pad(1), gen=gen) for _ in dilations])
        else:
            self.convs = nn.ModuleList([WNConv(ch, ch, k, padding=pad(d), dilation=d, gen=gen)
                                        for d in dilations])

    def forward(self, x):
        if self.kind == "1":
            for c1, c2 in zip(self.convs1, self.convs2):
                xt = c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1))
                x = xt + x
        else:
            for c in self.convs:
                x = c(F.leaky_relu(x, 0.1)) + x
        return x


class ReferenceGenerator(nn.Module):
    """jik876/hifi-gan models.Generator's forward, written from the paper and the published code's layout."""

    def __init__(self, h, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        ch = h["upsample_initial_channel"]
        self.num_kernels = len(h["resblock_kernel_sizes"])
        self.conv_pre = WNConv(80, ch, 7, padding=3, gen=gen)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"])):
            self.ups.append(WNConv(ch // 2**i, ch // 2 ** (i + 1), k, stride=u, padding=(k - u) // 2,
                                   transposed=True, gen=gen))
            for k_r, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"]):
                self.resblocks.append(ReferenceResBlock(h["resblock"], ch // 2 ** (i + 1), k_r, d, gen))
        self.conv_post = WNConv(ch // 2 ** len(self.ups), 1, 7, padding=3, gen=gen)

    def forward(self, x):
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            xs = None
            for j in range(self.num_kernels):
                r = self.resblocks[i * self.num_kernels + j](x)
                xs = r if xs is None else xs + r
            x = xs / self.num_kernels
        x = F.leaky_relu(x)  # the official generator's last activation has PyTorch's default slope, 0.01
        return torch.tanh(self.conv_post(x))


def official_config(h: dict) -> dict:
    """A config.json as published (architecture, mel settings and the training keys)."""
    return {**h, "num_gpus": 0, "batch_size": 16, "learning_rate": 0.0002, "adam_b1": 0.8, "adam_b2": 0.99,
            "lr_decay": 0.999, "seed": 1234, "segment_size": 8192, "num_mels": 80, "num_freq": 1025,
            "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 22050, "fmin": 0, "fmax": 8000,
            "fmax_for_loss": None, "num_workers": 4,
            "dist_config": {"dist_backend": "nccl", "dist_url": "tcp://localhost:54321", "world_size": 1}}


def write_official(folder: Path, kind: str = "1", legacy: bool = True, name: str = "generator_v1"):
    """A published-style checkpoint: {"generator": state_dict} (legacy torch format by default, as the
    official files were written by torch 1.4) and config.json beside it. Returns (path, reference)."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = ReferenceGenerator(TINY[kind]).eval()
    path = folder / name
    torch.save({"generator": reference.state_dict()}, path, _use_new_zipfile_serialization=not legacy)
    (folder / "config.json").write_text(json.dumps(official_config(TINY[kind]), indent=4))
    return path, reference


def random_mels(batch=2, frames=24, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 80, frames, generator=gen) * 2 - 5


# --------------------------------------------------------------------------- architecture and numerics


@pytest.mark.parametrize("version,millions", [("v1", 13.92), ("v2", 0.92), ("v3", 1.46)])
def test_generator_sizes_match_the_paper(version, millions):
    generator = HifiGanGenerator(GENERATOR_PRESETS[version]).remove_weight_norm()
    assert abs(sum(p.numel() for p in generator.parameters()) / 1e6 - millions) < 0.01
    assert generator.hop_length == 256
    assert generator(torch.zeros(1, 80, 3)).shape == (1, 1, 3 * 256)


@pytest.mark.parametrize("kind", ["1", "2"])
@pytest.mark.parametrize("legacy", [True, False], ids=["legacy-format", "zip-format"])
def test_official_checkpoint_gives_the_official_waveform(tmp_path, kind, legacy):
    path, reference = write_official(tmp_path / "hifigan", kind, legacy)
    vocoder = load_vocoder(str(path))
    mels = random_mels()
    with torch.no_grad():
        expected = reference(mels).squeeze(1)
    got = vocoder(mels)
    assert got.shape == (2, 24 * 256) and vocoder.sample_rate == SR
    # neither vanishing nor saturated by tanh, so the comparison means something
    assert float(expected.std()) > 0.05 and float((expected.abs() > 0.99).float().mean()) < 0.01
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(vocoder(mels[0]), expected[0], atol=1e-5, rtol=0)  # [n_mels, T] input
    torch.testing.assert_close(load_vocoder(str(path.parent))(mels), expected, atol=1e-5, rtol=0)  # folder
    # weight norm is folded away for inference, as the official remove_weight_norm()
    assert not any("parametrizations" in k for k in vocoder.state_dict())


def test_official_weights_with_weight_norm_already_folded(tmp_path):
    path, reference = write_official(tmp_path / "folded")
    folded = {}
    for key, value in reference.state_dict().items():
        if key.endswith(".weight_v"):
            g = reference.state_dict()[key[: -1] + "g"]
            folded[key[: -len("_v")]] = g * value / value.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
        elif not key.endswith(".weight_g"):
            folded[key] = value
    torch.save({"generator": folded}, path)
    mels = random_mels(1, 9)
    torch.testing.assert_close(load_vocoder(str(path))(mels), reference(mels).squeeze(1).detach(),
                               atol=1e-5, rtol=0)


def test_official_config_elsewhere(tmp_path):
    path, reference = write_official(tmp_path / "a")
    moved = tmp_path / "b" / "my_config.json"
    moved.parent.mkdir()
    (tmp_path / "a" / "config.json").rename(moved)
    with pytest.raises(CheckpointError, match="config.json"):
        load_vocoder(str(path))
    vocoder = load_vocoder(str(path), config=str(moved))
    mels = random_mels(1, 9)
    torch.testing.assert_close(vocoder(mels), reference(mels).squeeze(1).detach(), atol=1e-5, rtol=0)


def test_official_checkpoint_errors_name_the_file(tmp_path):
    path, _ = write_official(tmp_path / "ok")
    data = path.read_bytes()
    for cut in (0, 40, len(data) // 2, len(data) - 10):
        truncated = tmp_path / f"cut{cut}" / "generator_v1"
        truncated.parent.mkdir()
        truncated.write_bytes(data[:cut])
        (truncated.parent / "config.json").write_text((tmp_path / "ok" / "config.json").read_text())
        with pytest.raises(CheckpointError, match="cannot read") as err:
            load_vocoder(str(truncated))
        assert str(truncated) in str(err.value)

    discriminators = tmp_path / "do" / "do_02500000"
    discriminators.parent.mkdir()
    torch.save({"mpd": {}, "msd": {}, "steps": 1}, discriminators)
    with pytest.raises(CheckpointError, match="no 'generator'") as err:
        load_vocoder(str(discriminators))
    assert str(discriminators) in str(err.value)

    config = official_config(TINY["1"])
    for change, message in [({"upsample_initial_channel": 64}, "do not match"),
                            ({"resblock": "2"}, "do not match"),
                            ({"sampling_rate": 16000}, "sampling_rate"),
                            ({"fmax": None}, "fmax"),
                            ({"upsample_rates": [8, 8, 2]}, "multiply to")]:
        (tmp_path / "ok" / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(CheckpointError, match=message) as err:
            load_vocoder(str(path))
        assert str(tmp_path / "ok") in str(err.value)
    (tmp_path / "ok" / "config.json").write_text("{\n  \"resblock\": \"1\",,\n}")
    with pytest.raises(CheckpointError, match="config.json:2: not valid JSON"):
        load_vocoder(str(path))

    tts = tmp_path / "tts.pt"
    torch.save({"format": "holdtts-tts-1", "model": {}}, tts)
    with pytest.raises(CheckpointError, match="not a vocoder"):
        load_vocoder(str(tts))
    with pytest.raises(InputError, match="unknown vocoder"):
        load_vocoder(str(tmp_path / "missing"))


def test_padded_batch_vocodes_exactly_as_each_clip_alone():
    torch.manual_seed(0)
    generator = HifiGanGenerator(GeneratorConfig(**TINY["1"])).eval()
    lengths = [12, 20, 7]
    mels = random_mels(3, 20, seed=3)
    padded = mels.clone()
    for i, n in enumerate(lengths):
        padded[i, :, n:] = 100.0  # junk past the end must not leak in
    with torch.no_grad():
        batched = generator(padded, torch.tensor(lengths))
        for i, n in enumerate(lengths):
            alone = generator(mels[i:i + 1, :, :n])
            torch.testing.assert_close(batched[i:i + 1, :, : n * 256], alone, atol=1e-5, rtol=0)
            assert not batched[i, :, n * 256:].any()


def test_generator_config_checks():
    with pytest.raises(ConfigError, match="multiply to 128"):
        check_generator_config(GeneratorConfig(upsample_rates=(8, 8, 2), upsample_kernel_sizes=(16, 16, 4)))
    with pytest.raises(ConfigError, match="even number"):
        check_generator_config(GeneratorConfig(upsample_kernel_sizes=(16, 16, 4, 5)))
    with pytest.raises(ConfigError, match="resblock"):
        check_generator_config(GeneratorConfig(resblock="3"))


def test_init_std_applies_the_intended_init():
    torch.manual_seed(0)
    generator = HifiGanGenerator(GeneratorConfig(**TINY["1"], init_std=0.01))
    with torch.no_grad():
        assert abs(float(generator.ups[0].weight.std()) - 0.01) < 1e-3
        assert abs(float(generator.resblocks[0].convs1[0].weight.std()) - 0.01) < 1e-3


# --------------------------------------------------------------------------- discriminators and losses


def test_losses_closed_forms():
    real = [torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0]])]
    fake = [torch.tensor([[0.5, -1.0]]), torch.tensor([[1.0]])]
    # E(1 - r)^2 + E g^2 per discriminator: (0 + 1)/2 + (0.25 + 1)/2, then 1 + 1
    assert float(discriminator_loss(real, fake)) == pytest.approx(0.5 + 0.625 + 1 + 1)
    # E(1 - g)^2: (0.25 + 4)/2 + 0
    assert float(generator_adversarial_loss(fake)) == pytest.approx(2.125)
    fmaps_r = [[torch.ones(2, 3), torch.zeros(4)], [torch.full((5,), 2.0)]]
    fmaps_g = [[torch.zeros(2, 3), torch.ones(4)], [torch.full((5,), -1.0)]]
    assert float(feature_matching_loss(fmaps_r, fmaps_g)) == pytest.approx(1 + 1 + 3)


def test_loss_mel_is_the_official_fmax_none_filterbank():
    """The official loss mel is librosa's filter with fmax=None, i.e. sample_rate / 2 = 11025 Hz."""
    loss_features = loss_mel_features(FeaturesConfig(), None)
    assert loss_features.f_max == 11025.0 and loss_features.n_mels == 80
    reference = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=80, fmin=0.0, fmax=None)
    np.testing.assert_allclose(mel_filterbank(loss_features), reference, atol=1e-6)
    assert loss_mel_features(FeaturesConfig(), 8000).f_max == 8000.0


def test_discriminator_scores_real_and_fake_as_separate_calls():
    torch.manual_seed(0)
    disc = HifiGanDiscriminator(TINY_DISCRIMINATOR).eval()  # eval: spectral norm's power iteration frozen
    y, y_hat = torch.randn(2, 1, 1000), torch.randn(2, 1, 1000)
    real_scores, fake_scores, real_fmaps, fake_fmaps = disc(y, y_hat)
    assert len(real_scores) == 5 + 3 and len(real_fmaps[0]) == 6 and len(real_fmaps[-1]) == 8
    alone_scores = disc.mpd(y_hat)[0] + disc.msd(y_hat)[0]
    for a, b in zip(fake_scores, alone_scores):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    period = disc.mpd.discriminators[1]  # period 3: 1000 samples reflect-padded to 1002 = 334 x 3
    assert period(y)[1][0].shape == (2, 4, 112, 3)


# --------------------------------------------------------------------------- training


def speechlike(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    f0 = 110 + 40 * rng.random() + 25 * np.sin(2 * np.pi * 2.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6)) + 0.01 * rng.standard_normal(n)
    return (0.5 * y).astype(np.float32)


SPLITS = {"members": [f"LJ001-{i:04d}" for i in range(1, 7)], "nonmembers": ["LJ002-0001", "LJ002-0002"],
          "valid": ["LJ003-0001", "LJ003-0002"], "test": ["LJ002-0001"]}


def make_data_dir(root: Path) -> Path:
    """data/<split>/wav.scp (sorted, absolute paths) over short 22050 Hz 16-bit wavs."""
    wavs = root / "wavs"
    wavs.mkdir(parents=True)
    lengths = {u: 2600 + 700 * i for i, u in enumerate(sorted({u for us in SPLITS.values() for u in us}))}
    lengths["LJ001-0003"] = 1500  # shorter than a segment: zero-padded
    for i, (utt, n) in enumerate(sorted(lengths.items())):
        sf.write(wavs / f"{utt}.wav", speechlike(n, i), SR, subtype="PCM_16")
    data = root / "data"
    for split, utts in SPLITS.items():
        (data / split).mkdir(parents=True)
        (data / split / "wav.scp").write_text("".join(f"{u} {wavs / u}.wav\n" for u in sorted(utts)))
    return data


def tiny_overrides(max_steps: int) -> list[str]:
    return [f"train.max_steps={max_steps}", "data.segment_size=2048", "train.batch_size=2",
            "train.checkpoint_every=2", "train.valid_every=2", "train.sample_every=4", "train.log_every=1",
            "data.valid_clips=2", "data.sample_clips=1"]


def train_cli(data: Path, exp: Path, max_steps: int, split: str = "members"):
    from holdtts.commands.train_vocoder import command

    args = ["--config", str(CONF / "vocoder_v1.yaml"), "--config", str(CONF / "vocoder_tiny.yaml"),
            "--exp-dir", str(exp), "--data-dir", str(data), "--split", split, "--device", "cpu",
            "--no-progress"]
    for text in tiny_overrides(max_steps):
        args += ["--set", text]
    return CliRunner().invoke(command, args)


def test_one_training_step_updates_both_networks(tmp_path):
    from holdtts.training.vocoder import VocoderTrainer, load_vocoder_config

    data = make_data_dir(tmp_path)
    cfg = load_vocoder_config([CONF / "vocoder_v1.yaml", CONF / "vocoder_tiny.yaml"], tiny_overrides(1))
    trainer = VocoderTrainer(cfg, tmp_path / "exp", data, device="cpu", progress_bar=False)
    trainer.setup()
    before_g = [p.detach().clone() for p in trainer.generator.parameters()]
    before_d = [p.detach().clone() for p in trainer.discriminator.parameters()]
    audio = next(iter(trainer.batches.iterate(0)))
    assert audio.shape == (2, 2048) and float(audio.abs().max()) <= 0.95 + 1e-6
    scalars = trainer.train_step(audio)
    assert set(scalars) >= {"loss_d", "loss_g", "loss_g_adv", "loss_fm", "loss_mel"}
    assert all(np.isfinite(v) for v in scalars.values())
    assert scalars["loss_g"] == pytest.approx(scalars["loss_g_adv"] + 2 * scalars["loss_fm"]
                                              + 45 * scalars["loss_mel"], rel=1e-5)
    for before, module in ((before_g, trainer.generator), (before_d, trainer.discriminator)):
        changed = [not torch.equal(a, b) for a, b in zip(before, module.parameters())]
        assert sum(changed) / len(changed) > 0.9


def test_train_vocoder_resumes_exactly(tmp_path):
    data = make_data_dir(tmp_path)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    result = train_cli(data, straight, 4)
    assert result.exit_code == 0, result.output
    assert train_cli(data, interrupted, 2).exit_code == 0
    assert [s for s, _ in list_checkpoints(interrupted)] == [2]
    result = train_cli(data, interrupted, 4)
    assert result.exit_code == 0, result.output
    assert [s for s, _ in list_checkpoints(interrupted)] == [2, 4]

    a, b = load_checkpoint(straight), load_checkpoint(interrupted)
    assert a["progress"]["step"] == b["progress"]["step"] == 4
    assert a["progress"]["epoch"] == b["progress"]["epoch"] == 1  # 6 clips / batch 2 = 3 steps per epoch
    assert a["sched_g"]["last_epoch"] == 1 and b["train_split"] == "members"
    for key in ("generator", "discriminator"):
        for name, tensor in a[key].items():
            assert torch.equal(b[key][name], tensor), name  # bitwise: batches, crops, RNG, optimizers
    summary = json.loads((interrupted / "train_summary.json").read_text())
    assert summary["finished"] and summary["step"] == 4
    log = [json.loads(line) for line in (interrupted / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "train/loss_g" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in log if "valid/mel_l1" in r] == [2, 4]
    assert list((interrupted / "tensorboard").iterdir())

    # An experiment directory is a vocoder: its latest checkpoint's generator, weight norm folded.
    vocoder = load_vocoder(str(interrupted))
    generator = HifiGanGenerator(config_from_dict(b["config"]["generator"], schema=GeneratorConfig))
    generator.load_state_dict(b["generator"])
    mels = random_mels(1, 10)
    torch.testing.assert_close(vocoder(mels), generator.eval()(mels).squeeze(1).detach(), atol=1e-5, rtol=0)

    # A different config is refused on resume.
    from holdtts.commands.train_vocoder import command

    result = CliRunner().invoke(command, ["--config", str(CONF / "vocoder_v1.yaml"), "--config",
                                          str(CONF / "vocoder_tiny.yaml"), "--exp-dir", str(interrupted),
                                          "--data-dir", str(data), "--device", "cpu",
                                          "--set", "train.lr=1e-3"])
    assert isinstance(result.exception, ConfigError) and "train.lr" in str(result.exception)


@pytest.mark.parametrize("split", ["nonmembers", "test"])
def test_refuses_to_train_on_unseen_splits(tmp_path, split):
    data = make_data_dir(tmp_path)
    result = train_cli(data, tmp_path / "exp", 1, split=split)
    assert isinstance(result.exception, HoldttsError) and "refusing" in str(result.exception)
    assert not (tmp_path / "exp").exists()


def test_refuses_a_split_that_overlaps_the_nonmembers(tmp_path):
    data = make_data_dir(tmp_path)
    (data / "everything").mkdir()
    (data / "everything" / "wav.scp").write_text((data / "members" / "wav.scp").read_text()
                                                 + (data / "nonmembers" / "wav.scp").read_text())
    result = train_cli(data, tmp_path / "exp", 1, split="everything")
    assert isinstance(result.exception, HoldttsError)
    assert "nonmembers" in str(result.exception) and "LJ002-0001" in str(result.exception)


# --------------------------------------------------------------------------- holdtts vocode


def write_mels(folder: Path, lengths=(4000, 9000, 6000)) -> list[torch.Tensor]:
    folder.mkdir(parents=True)
    mels = []
    for i, n in enumerate(lengths):
        mel = holdtts.mel_spectrogram(torch.from_numpy(speechlike(n, i)))
        np.save(folder / f"utt{i}.npy", mel.numpy().astype(np.float32))
        mels.append(mel)
    return mels


def vocode_cli(*args):
    from holdtts.commands.vocode import command

    return CliRunner().invoke(command, [str(a) for a in args])


def test_vocode_directory(tmp_path):
    path, reference = write_official(tmp_path / "hifigan", "2")
    mels = write_mels(tmp_path / "mels")
    out = tmp_path / "wavs"
    result = vocode_cli("--vocoder", path, "--mels", tmp_path / "mels", "--out-dir", out, "--device", "cpu",
                        "--batch-size", "2")
    assert result.exit_code == 0, result.output
    for i, mel in enumerate(mels):
        wav, rate = sf.read(out / f"utt{i}.wav", dtype="int16")
        assert rate == SR and sf.info(out / f"utt{i}.wav").subtype == "PCM_16"
        with torch.no_grad():
            expected = reference(mel.unsqueeze(0))[0, 0].numpy()
        assert wav.shape == (mel.shape[-1] * 256,)
        np.testing.assert_allclose(wav / 32768.0, expected, atol=2.0 / 32768)  # batched == alone, to 1 LSB
    summary = json.loads((out / "vocode.json").read_text())
    assert summary["num_files"] == 3 and summary["vocoder"].startswith("hifigan:")

    result = vocode_cli("--vocoder", path, "--mels", tmp_path / "mels", "--out-dir", out, "--device", "cpu")
    assert isinstance(result.exception, HoldttsError) and "--overwrite" in str(result.exception)
    result = vocode_cli("--vocoder", path, "--mels", tmp_path / "mels", "--out-dir", out, "--device", "cpu",
                        "--batch-size", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "vocode.json").read_text())["batch_size"] == 1
    result = vocode_cli("--vocoder", "griffin-lim", "--mels", tmp_path / "mels", "--out-dir", out,
                        "--device", "cpu", "--overwrite")
    assert result.exit_code == 0, result.output
    assert sf.info(out / "utt1.wav").frames == mels[1].shape[-1] * 256
    assert json.loads((out / "vocode.json").read_text())["vocoder"] == "griffin-lim"


class RecordingVocoder(nn.Module):
    """A vocoder without per-item lengths (like Griffin-Lim): it must only get batches of equal lengths."""

    name, sample_rate, n_mels = "recording", SR, 80

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, mels):
        self.calls.append(tuple(mels.shape))
        return mels.mean(1).repeat_interleave(256, dim=-1)


def test_vocode_without_lengths_batches_equal_lengths_only(tmp_path):
    from holdtts.commands.vocode import vocode_files

    folder = tmp_path / "mels"
    folder.mkdir()
    for i, frames in enumerate([15, 35, 23, 15]):
        np.save(folder / f"u{i}.npy", np.full((80, frames), -float(i), dtype=np.float32))
    vocoder = RecordingVocoder()
    summary = vocode_files(vocoder, sorted(folder.glob("*.npy")), tmp_path / "out", "cpu", batch_size=8)
    assert sorted(vocoder.calls) == [(1, 80, 23), (1, 80, 35), (2, 80, 15)]
    assert summary["num_files"] == 4 and summary["audio_seconds"] == pytest.approx(88 * 256 / SR, abs=1e-3)
    wav, _ = sf.read(tmp_path / "out" / "u1.wav")
    assert wav.shape == (35 * 256,) and np.allclose(wav, -1.0, atol=1e-4)


@pytest.mark.parametrize("bad,message", [
    (np.zeros((80, 10), dtype=np.float64), "float32"),
    (np.zeros((10, 80), dtype=np.float32), r"shape \[80, frames\]"),
    (np.zeros((1, 80, 10), dtype=np.float32), r"shape \[80, frames\]"),
    (np.full((80, 10), np.nan, dtype=np.float32), "NaN"),
    (None, "cannot read"),
])
def test_vocode_rejects_bad_mels(tmp_path, bad, message):
    folder = tmp_path / "mels"
    write_mels(folder, (3000,))
    target = folder / "bad.npy"
    if bad is None:
        np.save(target, np.zeros((80, 50), dtype=np.float32))
        target.write_bytes(target.read_bytes()[:100])
    else:
        np.save(target, bad)
    result = vocode_cli("--vocoder", "griffin-lim", "--mels", folder, "--out-dir", tmp_path / "out",
                        "--device", "cpu")
    assert isinstance(result.exception, InputError)
    assert str(target) in str(result.exception)
    assert re.search(message, str(result.exception))
    assert not (tmp_path / "out" / "utt0.wav").exists()  # everything is checked before anything is written


def test_auto_vocoder_is_the_recipes_hifigan_when_trained(tmp_path):
    from holdtts.utils.checkpoint import checkpoint_name
    from holdtts.vocoder import resolve_vocoder

    model_ckpt = tmp_path / "exp" / "hold3" / "checkpoints" / checkpoint_name(10)
    teacher_ckpt = tmp_path / "exp" / "dualmd" / "teacher1" / "checkpoints" / checkpoint_name(10)
    for path in (model_ckpt, teacher_ckpt):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
    assert resolve_vocoder("auto", model_ckpt) == "griffin-lim"
    assert resolve_vocoder("exp/other", model_ckpt) == "exp/other"
    vocoder = tmp_path / "exp" / "vocoder" / "checkpoints" / checkpoint_name(5)
    vocoder.parent.mkdir(parents=True)
    vocoder.write_bytes(b"")
    assert resolve_vocoder("auto", model_ckpt) == str(tmp_path / "exp" / "vocoder")
    assert resolve_vocoder("auto", tmp_path / "exp" / "dualmd") == str(tmp_path / "exp" / "vocoder")
    assert resolve_vocoder("auto", teacher_ckpt) == str(tmp_path / "exp" / "vocoder")
