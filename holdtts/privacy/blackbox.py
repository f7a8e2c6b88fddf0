"""A black-box membership-inference attack on generated speech: the attacker's view of a deployed TTS.

`synth_distance` (no t): for each target utterance, synthesize its text with the system under attack and
score minus the distance between the synthesis and the real recording's log-mel. A system that
memorised a member reproduces its recording (spectral detail, prosody, durations) more closely than it
renders an unseen utterance. It needs only `model.synthesize`, so it attacks a GradTTS, DualMD's
two-teacher pipeline (`DualGradTTS`) and a DistillMD student alike.

Distances (`--param synth_distance.distance=...`), both on whole utterances aligned by DTW
(librosa.sequence.dtw, steps (1,1), (1,0), (0,1)), since the synthesis follows the predicted durations:
- "mcd" (default): mel-cepstral distortion as in holdtts.quality.mcd: cepstra 1..24 of the log-mel, c0
  (the level) excluded, in dB, averaged over the path;
- "logmel": the RMS log-mel difference of each aligned frame pair (levels included), averaged over the path.

Synthesis uses the model's own settings (config.synthesis: sampler, steps, temperature) unless the
params `steps`, `sampler` or `temperature` are given. Each utterance is synthesized alone from a generator
seeded by (seed, utterance, attack): the U-Net's GroupNorm statistics span padded frames, so batching would
make a score depend on its batch-mates. A synthesis whose sampler diverged (NaN or infinite values) is
measured as the silence `holdtts.data.mel.silence_nonfinite` makes of those values, the same rule the quality
evaluation applies, so the attack scores every system and every utterance; attack.json lists those
utterances (notes.diverged_syntheses).
"""
from __future__ import annotations

import logging
import zlib

import numpy as np
import torch

from holdtts.data.mel import silence_nonfinite
from holdtts.errors import ConfigError
from holdtts.privacy.attacks import AttackInputs, NoiseSource, register_attack
from holdtts.quality.mcd import check_finite, mcd_dtw

log = logging.getLogger(__name__)


def logmel_dtw_distance(generated: np.ndarray, reference: np.ndarray) -> float:
    """Mean over a DTW path of the RMS difference of aligned log-mel frames [n_mels, frames]."""
    import librosa

    if generated.shape[1] == 0 or reference.shape[1] == 0:
        raise ValueError("cannot align an empty spectrogram")
    check_finite(generated, reference)
    _, path = librosa.sequence.dtw(X=generated, Y=reference, metric="euclidean")
    diff = generated[:, path[:, 0]] - reference[:, path[:, 1]]
    return float(np.sqrt(np.mean(np.square(diff), axis=0)).mean())


DISTANCES = {
    "mcd": lambda generated, reference: mcd_dtw(generated, reference).mcd,
    "logmel": logmel_dtw_distance,
}


def utterance_generator(noise: NoiseSource, utt: str, device: torch.device) -> torch.Generator:
    """A generator seeded by (seed, utterance, attack and t), NoiseSource's keying."""
    key = zlib.crc32(f"{noise.seed}|{utt}|{noise.context}".encode())
    return torch.Generator(device=device).manual_seed(key)


@register_attack("synth_distance", white_box=False, steps=None, sampler=None, temperature=None, distance="mcd")
def synth_distance(model, inputs: AttackInputs, t, noise: NoiseSource, steps=None, sampler=None, temperature=None,
                   distance="mcd"):
    """Black box: minus the DTW-aligned distance (MCD) between the synthesis of the text and the real mel."""
    if distance not in DISTANCES:
        raise ConfigError(f"unknown synth_distance distance {distance!r} (known: {', '.join(DISTANCES)})")
    measure = DISTANCES[distance]
    device = inputs.tokens.device
    scores, diverged = [], []
    for i, utt in enumerate(inputs.utt_ids):
        length = inputs.token_lengths[i:i + 1]
        extra = {} if inputs.speakers is None else {"speakers": inputs.speakers[i:i + 1]}
        mels, frames = model.synthesize(inputs.tokens[i:i + 1, : int(length)], length, steps=steps, sampler=sampler,
                                        temperature=temperature, generator=utterance_generator(noise, utt, device),
                                        **extra)
        mels, failed = silence_nonfinite(mels, frames)
        if bool(failed[0]):
            diverged.append(utt)
            log.warning("synth_distance: the synthesis of %s held NaN or infinite values (the sampler diverged); "
                        "scored as the silence they are made (holdtts.data.mel.silence_nonfinite)", utt)
        generated = mels[0, :, : int(frames[0])].float().cpu().numpy()
        reference = inputs.mels[i, :, : int(inputs.mel_lengths[i])].float().cpu().numpy()
        scores.append(-measure(generated, reference))
    return torch.tensor(scores, dtype=torch.float64), ({"diverged_syntheses": diverged} if diverged else {})
