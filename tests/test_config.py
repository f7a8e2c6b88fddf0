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


SYSTEM_CONFS = sorted(p.stem for p in CONF.glob("*.yaml") if p.stem != "tiny" and not p.stem.startswith("vocoder"))


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
