"""The test-size system: the same code as the published sizes, small enough to train in seconds on the CPU."""
from __future__ import annotations

from pathlib import Path

TINY_OVERRIDES = (
    "encoder.n_channels=16", "encoder.filter_channels=32", "encoder.n_layers=1",
    "encoder.duration_filter_channels=16", "decoder.dim=8", "decoder.dim_mults=[1, 2]",
    "decoder.attention_heads=1", "decoder.attention_head_dim=8",
    "data.segment_frames=32", "train.batch_size=4", "train.log_every=1", "train.valid_every=0",
    "train.sample_every=0", "train.checkpoint_every=2", "train.precision=fp32", "train.max_epochs=0",
    "synthesis.steps=4",
)
CONF_DIR = Path(__file__).resolve().parents[1] / "egs" / "ljspeech" / "conf"


def tiny_config(system: str = "vp", *overrides: str):
    from holdtts.config import load_config

    return load_config(CONF_DIR / f"{system}.yaml", [*TINY_OVERRIDES, *overrides])


