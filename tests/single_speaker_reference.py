"""A tiny single-speaker model's fingerprint, to hold the multi-speaker code to "n_speakers 1 changes nothing".

tests/data/single_speaker_reference.json was written by running this file with the holdtts of before speakers
existed on the path (`PYTHONPATH=<old checkout> python tests/single_speaker_reference.py`):
tests/test_multispeaker_model.py compares today's models with it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

N_VOCAB = 40
SYSTEMS = ("vp", "hold3")
REFERENCE = Path(__file__).parent / "data" / "single_speaker_reference.json"


def synthetic_batch(batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    token_lengths = torch.tensor([12, 9, 7, 10][:batch])
    tokens = torch.randint(1, N_VOCAB, (batch, 12), generator=g) * (torch.arange(12) < token_lengths[:, None])
    mel_lengths = torch.tensor([50, 40, 33, 45][:batch])
    mels = torch.randn(batch, 80, 50, generator=g) * (torch.arange(50) < mel_lengths[:, None, None])
    crop_starts = torch.tensor([3, 0, 1, 5][:batch])
    return tokens, token_lengths, mels, mel_lengths, crop_starts


def fingerprint(system: str) -> dict:
    """State_dict keys and per-tensor sums of the tiny model at seed 0, its loss terms (dropout on, seed 5)
    and a 3-step synthesis."""
    from holdtts.models.tts import GradTTS

    from tiny import tiny_config

    torch.manual_seed(0)
    model = GradTTS(tiny_config(system), N_VOCAB)
    inputs = synthetic_batch()
    torch.manual_seed(5)
    terms = model.train()(*inputs)
    model.eval()
    with torch.no_grad():
        mels, lengths = model.synthesize(inputs[0], inputs[1], steps=3, generator=torch.Generator().manual_seed(3))
    return {"keys": list(model.state_dict()),
            "sums": [float(v.double().sum()) for v in model.state_dict().values()],
            "terms": {k: v.detach().double().tolist() for k, v in terms.items()},
            "mels_sum": float(mels.double().sum()), "mels_abs_sum": float(mels.double().abs().sum()),
            "lengths": lengths.tolist()}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    torch.set_num_threads(1)
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps({system: fingerprint(system) for system in SYSTEMS}, indent=1) + "\n")
    print(f"wrote {REFERENCE}")
