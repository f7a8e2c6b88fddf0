"""Intelligibility: word and character error rates of pocketsphinx's English recogniser against the input text.

Two recognisers, both pocketsphinx 5 with the US English acoustic model its wheel ships, 16 kHz 16-bit
input, each clip decoded on its own in batch mode (full_utt, batch CMN over the whole clip) from a reset
feature state, so a hypothesis does not depend on which clips were decoded before it:

- "generic": the en-us 3-gram language model and CMUdict of the wheel, default search settings. The one
  that transfers to human speech such as LJSpeech; on eSpeak NG speech it gets most words wrong.
- "domain": for the mini corpus only. The class-based 3-gram of the sentence generator's templates
  (holdtts.quality.domain_lm: never built from any corpus's texts), a 125 Hz frame rate instead of 100
  (eSpeak NG's phones are often shorter than the acoustic model's 3-state, 30 ms minimum at 100 Hz),
  16 Gaussians scored per frame instead of 4 and a 1.1 frequency warp. Meaningless on other text.

A third, "espeak", is not pocketsphinx: a character CTC model trained on eSpeak NG speech of the mini
corpus's generator (holdtts.quality.espeak_asr), fed at 22050 Hz (`input_rate`). It is built on first use
(minutes; holdtts.quality.espeak_train), or read from the folder $HOLDTTS_ESPEAK_ASR names.

Before pocketsphinx decodes, a seeded noise of one 16-bit step is added: eSpeak NG's digital silence otherwise gives
log(0) energies that skew the acoustic features.

Scoring: both sides are normalised the same way (the project's `english_cleaners`: ASCII, lowercase,
numbers and abbreviations spelled out; then everything but letters, digits and in-word apostrophes
becomes a word break), and jiwer counts substitutions, deletions and insertions of a minimal word
alignment, and of a minimal character alignment for the character error rate (spaces count as
characters). Corpus rates are total errors over total reference words (characters), not means of
per-utterance rates.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from holdtts.errors import HoldttsError
from holdtts.quality import bootstrap
from holdtts.quality.audio import MODEL_SAMPLE_RATE, noise_floor, resample, to_int16_pcm
from holdtts.utils.fileio import file_sha256

_NON_WORD = re.compile(r"[^a-z0-9']+")

RECOGNIZERS = ("generic", "domain", "espeak")
ESPEAK_MODEL_ENV = "HOLDTTS_ESPEAK_ASR"  # a built eSpeak recogniser's folder, instead of the default build
# The domain recogniser's search settings (see the module docstring); part of its cache key.
DOMAIN_SETTINGS = {"frate": 125, "topn": 16, "warp_type": "inverse_linear", "warp_params": "1.1"}

_DECODERS: dict[object, object] = {}
_DECODER_LOCK = threading.Lock()


def normalize_text(text: str) -> str:
    """Lowercase words separated by single spaces, numbers spelled out, punctuation removed."""
    from holdtts.data.text import english_cleaners  # imported late: inflect is slow to import

    cleaned = english_cleaners(text).lower()
    words = (word.strip("'") for word in _NON_WORD.split(cleaned))
    return " ".join(word for word in words if word)


def _acoustic_model():
    import pocketsphinx

    model = Path(pocketsphinx.get_model_path())
    for path in (model / "en-us" / "en-us", model / "en-us" / "en-us.lm.bin",
                 model / "en-us" / "cmudict-en-us.dict"):
        if not path.exists():
            raise HoldttsError(f"{path}: pocketsphinx's English model is missing; reinstall the "
                               "pocketsphinx wheel")
    return model / "en-us"


def input_rate(recognizer: str) -> int:
    """The sampling rate a recogniser takes its audio at (recognize resamples to it anyway)."""
    if recognizer == "espeak":
        from holdtts.quality.espeak_asr import SAMPLE_RATE

        return SAMPLE_RATE
    return MODEL_SAMPLE_RATE


def espeak_model_folder(build: bool = True) -> Path:
    """The eSpeak recogniser's folder: $HOLDTTS_ESPEAK_ASR, else the default build in the cache (built now
    when missing and `build`)."""
    from holdtts.quality import espeak_train

    if os.environ.get(ESPEAK_MODEL_ENV):
        folder = Path(os.environ[ESPEAK_MODEL_ENV])
        espeak_train.read_info(folder)  # an error naming the folder when nothing is built there
        return folder
    return espeak_train.build_recognizer() if build else espeak_train.default_folder()


def recognizer_key(recognizer: str) -> str:
    """A name for a recogniser's configuration (for caches): changes when its model or settings do."""
    if recognizer == "generic":
        return "asr"  # the key earlier releases cached the generic hypotheses under
    from holdtts.quality.domain_lm import model_fingerprint

    if recognizer == "espeak":
        from holdtts.quality import espeak_train

        folder = espeak_model_folder()
        model = espeak_train.read_info(folder)["fingerprint"]
        decoder = hashlib.sha256(_decoder("espeak").describe().encode()).hexdigest()[:8]
        # the weights too: a build on another machine (other CPU kernels) may differ under the same fingerprint
        return f"asr_espeak_{model}_{weights_sha256(folder)[:8]}_{model_fingerprint()}_{decoder}"
    settings = ",".join(f"{k}={v}" for k, v in sorted(DOMAIN_SETTINGS.items()))
    return f"asr_domain_{model_fingerprint()}_{hashlib.sha256(settings.encode()).hexdigest()[:8]}"


def weights_sha256(folder: Path) -> str:
    """The eSpeak recogniser's weights file checksum. Its fingerprint names the inputs of the build; the
    build is deterministic for a thread count on one machine, not across CPUs, so models scored on
    different machines are comparable only where this matches (or their reference rows agree)."""
    from holdtts.quality import espeak_train

    return file_sha256(Path(folder) / espeak_train.MODEL)


def recognizer_facts(recognizer: str, references: list[str]) -> dict:
    """What quality.json records about a recogniser beside its error rates. For "espeak": its model, its
    decoder, and how many of the scored sentences (`references`, raw texts) it heard verbatim in training."""
    if recognizer != "espeak":
        return {}
    from holdtts.quality import espeak_train

    folder = espeak_model_folder()
    info = espeak_train.read_info(folder)
    return {"model": str(folder), "model_fingerprint": info["fingerprint"], "weights_sha256": weights_sha256(folder),
            "train_utterances": info["train_utterances"], "decoder": _decoder("espeak").describe(),
            "training_overlap": espeak_train.training_overlap(folder, [normalize_text(t) for t in references])}


def _decoder(recognizer: str):
    if recognizer not in RECOGNIZERS:
        raise HoldttsError(f"unknown recogniser {recognizer!r}; known: {', '.join(RECOGNIZERS)}")
    if recognizer == "espeak":  # one per model folder ($HOLDTTS_ESPEAK_ASR may change)
        folder = espeak_model_folder()
        if folder not in _DECODERS:
            from holdtts.quality.espeak_asr import load_recognizer

            _DECODERS[folder] = load_recognizer(folder)
        return _DECODERS[folder]
    if recognizer not in _DECODERS:
        import pocketsphinx

        model = _acoustic_model()
        if recognizer == "generic":
            _DECODERS[recognizer] = pocketsphinx.Decoder(
                hmm=str(model / "en-us"), lm=str(model / "en-us.lm.bin"), dict=str(model / "cmudict-en-us.dict"),
                samprate=MODEL_SAMPLE_RATE, loglevel="FATAL")
        else:
            from holdtts.quality.domain_lm import build_domain_model

            domain = build_domain_model()
            _DECODERS[recognizer] = pocketsphinx.Decoder(
                hmm=str(model / "en-us"), lmctl=str(domain.lmctl), lmname="domain", dict=str(domain.dictionary),
                samprate=MODEL_SAMPLE_RATE, loglevel="FATAL", **DOMAIN_SETTINGS)
    return _DECODERS[recognizer]


def _with_noise_floor(pcm16: np.ndarray) -> np.ndarray:
    # One 16-bit step of seeded noise: fixed for a given clip, so hypotheses are reproducible.
    return np.clip(pcm16.astype(np.int32) + noise_floor(len(pcm16)), -32768, 32767).astype("<i2")


def recognize(wav: np.ndarray, sample_rate: int = MODEL_SAMPLE_RATE, recognizer: str = "generic") -> str:
    """The recogniser's best hypothesis for one clip (words separated by spaces; '' when none)."""
    if recognizer == "espeak":
        with _DECODER_LOCK:
            return _decoder(recognizer).transcribe(wav, sample_rate)
    pcm = np.frombuffer(to_int16_pcm(resample(wav, sample_rate, MODEL_SAMPLE_RATE)), dtype="<i2")
    if recognizer != "generic":
        pcm = _with_noise_floor(pcm)
    with _DECODER_LOCK:
        decoder = _decoder(recognizer)
        # Fresh feature state (noise estimate, CMN) per clip: otherwise a hypothesis depends on the
        # clips decoded before it.
        decoder.reinit_feat()
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


@dataclass(frozen=True)
class WordErrors:
    """Word errors of one hypothesis against one reference, both normalised."""

    reference: str
    hypothesis: str
    substitutions: int
    deletions: int
    insertions: int
    char_errors: int = 0  # character edits (substitutions + deletions + insertions), spaces included

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def reference_chars(self) -> int:
        return len(self.reference)

    @property
    def cer(self) -> float:
        return self.char_errors / self.reference_chars

    @property
    def reference_words(self) -> int:
        return len(self.reference.split())

    @property
    def wer(self) -> float:
        return self.errors / self.reference_words

    def as_dict(self) -> dict:
        return {**asdict(self), "errors": self.errors, "reference_words": self.reference_words,
                "reference_chars": self.reference_chars}


def word_errors(reference_text: str, hypothesis_text: str) -> WordErrors:
    """Normalise both texts and count word errors with jiwer (a reference must keep at least one word)."""
    import jiwer

    reference = normalize_text(reference_text)
    hypothesis = normalize_text(hypothesis_text)
    if not reference:
        raise ValueError(f"reference text {reference_text!r} has no words after normalisation")
    out = jiwer.process_words(reference, hypothesis)
    chars = jiwer.process_characters(reference, hypothesis)
    return WordErrors(reference, hypothesis, substitutions=out.substitutions, deletions=out.deletions,
                      insertions=out.insertions,
                      char_errors=chars.substitutions + chars.deletions + chars.insertions)


def corpus_wer(items: Iterable[WordErrors]) -> dict:
    """Corpus WER = total errors / total reference words (CER likewise over characters), with the counts
    they come from and a percentile bootstrap interval over utterances for each (quality.bootstrap;
    null below 2 utterances)."""
    items = list(items)
    if not items:
        raise ValueError("no utterances to score")
    errors = sum(item.errors for item in items)
    words = sum(item.reference_words for item in items)
    char_errors = sum(item.char_errors for item in items)
    chars = sum(item.reference_chars for item in items)
    return {"wer": errors / words, "errors": errors, "words": words, "utterances": len(items),
            "cer": char_errors / chars, "char_errors": char_errors, "chars": chars,
            "substitutions": sum(item.substitutions for item in items),
            "deletions": sum(item.deletions for item in items),
            "insertions": sum(item.insertions for item in items),
            "wer_interval": bootstrap.interval([(item.errors, item.reference_words) for item in items]),
            "cer_interval": bootstrap.interval([(item.char_errors, item.reference_chars) for item in items]),
            "interval": {"level": bootstrap.LEVEL, "samples": bootstrap.SAMPLES, "seed": bootstrap.SEED,
                         "unit": "utterances"}}
