"""DNSMOS (Reddy et al. 2022): a non-intrusive MOS estimate, from the ONNX models speechmos ships.

Per clip: SIG (speech quality), BAK (background noise), OVRL (overall), on the P.835 scale after
Microsoft's polynomial calibration, and the P.808 MOS. This is Microsoft's reference procedure
(dnsmos_local.py) as packaged by speechmos: 16 kHz float input in [-1, 1]; clips shorter than the
model's 9.01 s window are tiled (repeated) up to it; longer clips are scored over 9.01 s windows with
a 1 s hop and the window scores averaged. Tiling means a very short clip is scored as a repetition of
itself: keep that in mind for sub-second outputs.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from holdtts.errors import HoldttsError
from holdtts.quality.audio import MODEL_SAMPLE_RATE, resample

DNSMOS_KEYS = ("sig", "bak", "ovrl", "p808")

_MODELS: dict[tuple, object] = {}
_LOCK = threading.Lock()


def onnx_providers(device: str) -> list:
    import onnxruntime

    if device.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        index = int(device.split(":")[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    # A CPU-only onnxruntime wheel scores on the CPU whatever the device; the scores are the same.
    return ["CPUExecutionProvider"]


def _model(device: str, personalized: bool):
    """speechmos's DNSMOS scorer with sessions on the requested execution provider, loaded once."""
    import onnxruntime
    import speechmos.dnsmos as speechmos_dnsmos
    import torch

    providers = onnx_providers(device)
    key = (repr(providers), personalized)
    with _LOCK:
        if key in _MODELS:
            return _MODELS[key]
        root = Path(speechmos_dnsmos.__file__).resolve().parent
        primary = root / ("pdnsmos_models" if personalized else "dnsmos_models") / "sig_bak_ovr.onnx"
        p808 = root / "dnsmos_models" / "model_v8.onnx"
        for path in (primary, p808):
            if not path.is_file():
                raise HoldttsError(f"{path}: DNSMOS model missing; reinstall the speechmos wheel")

        options = onnxruntime.SessionOptions()
        # One thread budget per process: onnxruntime's own pool would fight torch's for the same cores.
        options.intra_op_num_threads = torch.get_num_threads()

        class Scorer(speechmos_dnsmos.DNSMOS):
            # speechmos builds its sessions without `providers`, which GPU builds of onnxruntime reject.
            def __init__(self) -> None:
                self.primary_model_path = str(primary)
                self.onnx_sess = onnxruntime.InferenceSession(str(primary), options, providers=providers)
                self.p808_onnx_sess = onnxruntime.InferenceSession(str(p808), options, providers=providers)

        _MODELS[key] = Scorer()
        return _MODELS[key]


def dnsmos_scores(wav: np.ndarray, sample_rate: int = MODEL_SAMPLE_RATE, device: str = "cpu",
           personalized: bool = False) -> dict[str, float]:
    """DNSMOS scores of one clip: {"sig", "bak", "ovrl", "p808"} (each about 1 to 5, higher is better).

    wav: mono float samples at `sample_rate` (resampled to 16 kHz here; clipped to [-1, 1], as a 16-bit
    file would be). personalized: the personalised-DNSMOS primary model (penalises interfering talkers).
    """
    wav = resample(np.asarray(wav, dtype=np.float32), sample_rate, MODEL_SAMPLE_RATE)
    if wav.ndim != 1 or len(wav) == 0:
        raise ValueError(f"expected a non-empty mono clip, got shape {wav.shape}")
    scores = _model(device, personalized)(np.clip(wav, -1.0, 1.0), MODEL_SAMPLE_RATE, personalized)
    return {key: float(scores[f"{key}_mos"]) for key in DNSMOS_KEYS}
