"""The neural modules: text encoder and duration predictor, alignment search, score U-Net."""
from __future__ import annotations

from holdtts.models.alignment import durations_to_path, monotonic_alignment_search
from holdtts.models.layers import sequence_mask
from holdtts.models.text_encoder import TextEncoder
from holdtts.models.unet import ScoreUNet, fix_len_compatibility

__all__ = [
    "ScoreUNet",
    "TextEncoder",
    "durations_to_path",
    "fix_len_compatibility",
    "monotonic_alignment_search",
    "sequence_mask",
]
