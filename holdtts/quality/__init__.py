"""Audio-quality metrics: Frechet distances (Resemblyzer embeddings, log-mel frames), DNSMOS,
WER (pocketsphinx; on the mini corpus also the eSpeak recogniser) and mel-cepstral distortion with DTW;
`evaluate_pairs` runs them over a test set.

Everything runs offline from the models the wheels ship (resemblyzer, speechmos, pocketsphinx), or that
holdtts builds itself into its cache (the mini corpus's domain model and eSpeak recogniser); models are
loaded once per process and cached.
"""
from __future__ import annotations

from holdtts.quality.asr import corpus_wer, normalize_text, recognize, word_errors
from holdtts.quality.dnsmos import dnsmos_scores
from holdtts.quality.evaluate import METRICS, evaluate_pairs, write_rows_tsv, write_summary_json
from holdtts.quality.frechet import (
    FrechetResult,
    frechet_distance,
    frechet_distance_from_stats,
    frechet_logmel,
    frechet_speaker,
    speaker_embedding,
)
from holdtts.quality.mcd import mcd_dtw, mcd_from_waveforms, mel_cepstrum

__all__ = [
    "METRICS", "FrechetResult", "corpus_wer", "dnsmos_scores", "evaluate_pairs", "frechet_distance",
    "frechet_distance_from_stats", "frechet_logmel", "frechet_speaker", "mcd_dtw", "mcd_from_waveforms",
    "mel_cepstrum", "normalize_text", "recognize", "speaker_embedding", "word_errors", "write_rows_tsv",
    "write_summary_json",
]
