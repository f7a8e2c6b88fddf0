"""Intelligibility: word error rate of pocketsphinx's English recogniser against the input text.

Recognition: pocketsphinx 5 with the US English acoustic model, the en-us 3-gram language model and
CMUdict that its wheel ships, default search settings, 16 kHz 16-bit input. Each clip is decoded on its
own in batch mode (full_utt, batch CMN over the whole clip) from a reset feature state, so a hypothesis
does not depend on which clips were decoded before it.

Scoring: both sides are normalised the same way (the project's `english_cleaners`: ASCII, lowercase,
numbers and abbreviations spelled out; then everything but letters, digits and in-word apostrophes
becomes a word break), and jiwer counts substitutions, deletions and insertions of a minimal word
alignment. The corpus WER is total errors over total reference words, not the mean of per-utterance rates.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from holdtts.errors import HoldttsError
from holdtts.quality.audio import MODEL_SAMPLE_RATE, resample, to_int16_pcm

_NON_WORD = re.compile(r"[^a-z0-9']+")

_DECODER = None
_DECODER_LOCK = threading.Lock()


def normalize_text(text: str) -> str:
    """Lowercase words separated by single spaces, numbers spelled out, punctuation removed."""
    from holdtts.data.text import english_cleaners  # imported late: inflect is slow to import

    cleaned = english_cleaners(text).lower()
    words = (word.strip("'") for word in _NON_WORD.split(cleaned))
    return " ".join(word for word in words if word)


def _decoder():
    global _DECODER
    if _DECODER is None:
        import pocketsphinx

        model = Path(pocketsphinx.get_model_path())
        for path in (model / "en-us" / "en-us", model / "en-us" / "en-us.lm.bin",
                     model / "en-us" / "cmudict-en-us.dict"):
            if not path.exists():
                raise HoldttsError(f"{path}: pocketsphinx's English model is missing; reinstall the "
                                   "pocketsphinx wheel")
        _DECODER = pocketsphinx.Decoder(
            hmm=str(model / "en-us" / "en-us"), lm=str(model / "en-us" / "en-us.lm.bin"),
            dict=str(model / "en-us" / "cmudict-en-us.dict"), samprate=MODEL_SAMPLE_RATE, loglevel="FATAL")
    return _DECODER


def recognize(wav: np.ndarray, sample_rate: int = MODEL_SAMPLE_RATE) -> str:
    """pocketsphinx's best hypothesis for one clip (words separated by spaces; '' when none)."""
    pcm = to_int16_pcm(resample(wav, sample_rate, MODEL_SAMPLE_RATE))
    with _DECODER_LOCK:
        decoder = _decoder()
        # Fresh feature state (noise estimate, CMN) per clip: otherwise a hypothesis depends on the
        # clips decoded before it.
        decoder.reinit_feat()
        decoder.start_utt()
        decoder.process_raw(pcm, no_search=False, full_utt=True)
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

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def reference_words(self) -> int:
        return len(self.reference.split())

    @property
    def wer(self) -> float:
        return self.errors / self.reference_words

    def as_dict(self) -> dict:
        return {**asdict(self), "errors": self.errors, "reference_words": self.reference_words}


def word_errors(reference_text: str, hypothesis_text: str) -> WordErrors:
    """Normalise both texts and count word errors with jiwer (a reference must keep at least one word)."""
    import jiwer

    reference = normalize_text(reference_text)
    hypothesis = normalize_text(hypothesis_text)
    if not reference:
        raise ValueError(f"reference text {reference_text!r} has no words after normalisation")
    out = jiwer.process_words(reference, hypothesis)
    return WordErrors(reference, hypothesis, substitutions=out.substitutions, deletions=out.deletions,
                      insertions=out.insertions)


def corpus_wer(items: Iterable[WordErrors]) -> dict:
    """Corpus WER = total errors / total reference words, with the counts it comes from."""
    items = list(items)
    if not items:
        raise ValueError("no utterances to score")
    errors = sum(item.errors for item in items)
    words = sum(item.reference_words for item in items)
    return {"wer": errors / words, "errors": errors, "words": words, "utterances": len(items),
            "substitutions": sum(item.substitutions for item in items),
            "deletions": sum(item.deletions for item in items),
            "insertions": sum(item.insertions for item in items)}
