import pytest

from holdtts.config import SystemConfig, config_from_dict, config_to_dict, load_config, parse_override
from holdtts.errors import ConfigError

CONF = __import__("pathlib").Path(__file__).resolve().parents[1] / "egs" / "ljspeech" / "conf"


def test_defaults_are_grad_tts_sizes():
    cfg = SystemConfig()
    enc = cfg.encoder
    assert (enc.n_channels, enc.n_layers, enc.n_heads, enc.window_size) == (192, 6, 2, 4)
    assert cfg.encoder.duration_filter_channels == 256
    assert (cfg.decoder.dim, tuple(cfg.decoder.dim_mults)) == (64, (1, 2, 4))
    assert cfg.data.segment_frames == 172


OVERLAYS = {"tiny", "mini_membership"}  # layered on a system's config, not systems themselves
SYSTEM_CONFS = sorted(p.stem for p in CONF.glob("*.yaml")
                      if p.stem not in OVERLAYS and not p.stem.startswith("vocoder"))


def test_every_core_system_has_a_config():
    assert {"vp", "hold2", "hold3", "hold4", "dualmd", "distillmd", "vp_dp", "hold3_dp"} <= set(SYSTEM_CONFS)


@pytest.mark.parametrize("name", SYSTEM_CONFS)
def test_recipe_configs_load_alone_and_with_tiny(name):
    cfg = load_config(CONF / f"{name}.yaml")
    assert cfg.name == name
    tiny = load_config([CONF / f"{name}.yaml", CONF / "tiny.yaml"])
    assert tiny.name == name and tiny.process == cfg.process
    assert tiny.encoder.n_channels < cfg.encoder.n_channels


def test_unknown_key_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntrain:\n  batch_size: 4\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.path == str(path) and err.value.line == 4
    assert "train.learning_rate" in str(err.value) and "lr" in str(err.value)


def test_type_errors_and_duplicates(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  batch_size: many\n")
    with pytest.raises(ConfigError, match="integer") as err:
        load_config(path)
    assert err.value.line == 2
    path.write_text("train:\n  lr: 1\n  lr: 2\n")
    with pytest.raises(ConfigError, match="duplicate") as err:
        load_config(path)
    assert err.value.line == 3


def test_overrides_and_round_trip(tmp_path):
    cfg = load_config(CONF / "hold3.yaml", ["train.max_steps=7", "decoder.dim_mults=[1, 2]"])
    assert cfg.train.max_steps == 7 and cfg.decoder.dim_mults == (1, 2)
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="override 'train.nope=1'"):
        load_config(None, ["train.nope=1"])
    with pytest.raises(ConfigError):
        parse_override("no_equals_sign")


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=0", "'train.batch_size' must be >= 1, got 0"),
    ("train.batch_size=-1", "'train.batch_size' must be >= 1, got -1"),
    ("train.max_steps=-5", "'train.max_steps' must be >= 0"),
    ("train.lr=0", "'train.lr' must be > 0"),
    ("train.log_every=0", "'train.log_every' must be >= 1"),
    ("train.keep_last=0", "'train.keep_last' must be >= 1"),
    ("train.betas=[0.9, 1.5]", "'train.betas' must be in [0, 1)"),
    ("train.ema_decay=1.5", "'train.ema_decay' must be in [0, 1]"),
    ("encoder.p_dropout=1.0", "'encoder.p_dropout' must be in [0, 1)"),
    ("synthesis.steps=0", "'synthesis.steps' must be >= 1"),
    ("dp.delta=1.5", "'dp.delta' must be in (0, 1)"),
    ("decoder.dim_mults=[1, 0]", "'decoder.dim_mults' must be >= 1"),
])
def test_numeric_values_are_range_checked(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(CONF / "vp.yaml", [override])
    assert message in str(err.value)


def test_out_of_range_value_in_a_file_names_its_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: 0.001\n  batch_size: 0\n")
    with pytest.raises(ConfigError, match="batch_size") as err:
        load_config(path)
    assert err.value.path == str(path) and err.value.line == 3
    assert load_config(None, ["dp.delta=null", "dp.target_epsilon=null"]).dp.delta is None  # unset is fine


def test_vocoder_config_is_range_checked():
    from holdtts.training.vocoder import load_vocoder_config

    with pytest.raises(ConfigError, match="'train.batch_size' must be >= 1"):
        load_vocoder_config(CONF / "vocoder_v1.yaml", ["train.batch_size=0"])
    with pytest.raises(ConfigError, match="'data.peak_normalize' must be in"):
        load_vocoder_config(CONF / "vocoder_v1.yaml", ["data.peak_normalize=2"])


@pytest.mark.parametrize("command", ["train", "train-vocoder"])
def test_a_bad_value_on_the_command_line_writes_nothing(tmp_path, capsys, command):
    from holdtts.cli import main

    exp = tmp_path / "exp"
    conf = "vp.yaml" if command == "train" else "vocoder_v1.yaml"
    with pytest.raises(SystemExit) as exit_:
        main([command, "--config", str(CONF / conf), "--exp-dir", str(exp), "--data-dir", str(tmp_path / "data"),
              "--set", "train.batch_size=0", "--set", "train.max_steps=5"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "'train.batch_size' must be >= 1, got 0" in err and "Traceback" not in err
    assert not exp.exists()  # no config.yaml, no TensorBoard files


def test_print_config_and_value_show_the_layered_config_and_write_nothing(tmp_path, capsys):
    """`holdtts train --print-config`: the config the files and --set values make, as YAML that loads back to
    the same config; `--print-value KEY` one value as it is (the recipe reads a DistillMD student's teachers
    with it); no --exp-dir needed."""
    import yaml

    from holdtts.cli import main

    files = [CONF / "distillmd.yaml", CONF / "tiny.yaml"]
    main(["train", *[x for f in files for x in ("--config", str(f))], "--set", "defense.teachers_dir=t/x",
          "--print-config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = config_to_dict(load_config(files, ["defense.teachers_dir=t/x"]))
    assert printed == expected and printed["defense"]["teachers_dir"] == "t/x"
    for key, shown in (("defense.teachers_dir", "my dir/é"), ("train.lr", "0.005"), ("decoder.dim_mults", "[1, 2]")):
        main(["train", "--config", str(CONF / "distillmd.yaml"), "--config", str(CONF / "tiny.yaml"),
              "--set", "defense.teachers_dir=my dir/é", "--set", "train.lr=0.005", "--print-value", key])
        assert capsys.readouterr().out == shown + "\n"  # as it is: no quoting, folding or escaping
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", str(CONF / "vp.yaml"), "--print-value", "defense.nosuch"])
    assert exit_.value.code == 2 and "no config key 'defense.nosuch'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", str(CONF / "vp.yaml")])
    assert exit_.value.code == 2 and "Missing option '--exp-dir'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("system", ["vp", "hold3"])
def test_the_demo_trains_exactly_the_calibrated_setting(system):
    """conf/mini_membership.yaml is the study's frozen overlay at the step count the demo's vp-only
    calibration chose (docs/demo_calibration/chosen.json, local/demo_calibration.py); nothing else differs."""
    import json

    root = CONF.parents[2]
    chosen = json.loads((root / "docs" / "demo_calibration" / "chosen.json").read_text())
    demo = load_config([CONF / f"{system}.yaml", CONF / "tiny.yaml", CONF / "mini_membership.yaml"])
    calibrated = load_config([CONF / f"{system}.yaml", CONF / "tiny.yaml", root / "docs" / "study" / "frozen.yaml"],
                             overrides=["train.max_epochs=0", f"train.max_steps={chosen['steps']}",
                                        "train.checkpoint_every=100", "train.sample_every=0"])
    assert config_to_dict(demo) == config_to_dict(calibrated)
    if system == "vp":  # and the configs the calibration runs wrote, whatever the files above become
        compared = 0
        for run in sorted((root / "docs" / "demo_calibration").glob("vp_seed*/config.yaml")):
            written = config_to_dict(load_config(run))
            if written["train"]["max_steps"] != chosen["steps"]:
                continue  # seed 5001 ran on to 800 steps
            assert written["train"].pop("seed") == int(run.parent.name.removeprefix("vp_seed"))
            ours = config_to_dict(demo)
            del ours["train"]["seed"], ours["train"]["keep_last"], written["train"]["keep_last"]
            assert written == ours, run
            compared += 1
        assert compared == 2  # seeds 5002 and 5003
