"""Time each audio-quality metric per utterance, on the CPU and (when present) the GPU.

The utterances are the mini corpus's kind: generated sentences spoken by eSpeak NG at 22050 Hz; the
"generated" side is the same audio with noise added at 20 dB SNR, so every metric does its real work.
Model loading is timed apart (once per process) and warm-up calls are excluded. Prints one row per
(metric, device): mean seconds per clip (single-clip metrics) or per pair (MCD, the end-to-end
evaluate_pairs), and the real-time factor (compute seconds per second of audio); the Frechet distances
themselves are timed once per set, at the set's n.

    python bench/bench_quality.py [--utterances 8] [--device cpu|cuda|all]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

from holdtts.data.espeak import SAMPLE_RATE, EspeakSynthesizer
from holdtts.data.sentences import generate_sentences
from holdtts.quality import asr, dnsmos, frechet, mcd
from holdtts.quality.audio import MODEL_SAMPLE_RATE, log_mel, resample
from holdtts.quality.evaluate import evaluate_pairs


def make_pairs(n: int, seed: int = 0) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    synthesizer = EspeakSynthesizer("en-us")
    texts = generate_sentences(n, seed)
    references, generated = [], []
    for i, text in enumerate(texts):
        wav = synthesizer.synthesize(text, rate_wpm=150 + 10 * (i % 4), pitch=40 + 5 * (i % 5))
        wav = wav.astype(np.float32) / 32768.0
        noise = rng.standard_normal(len(wav)) * np.sqrt(np.mean(wav.astype(np.float64) ** 2) / 100.0)
        references.append(wav)
        generated.append(np.clip(wav + noise, -1, 1).astype(np.float32))
    return texts, references, generated


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def bench_device(device: str, texts, references, generated, rows: list[tuple]) -> None:
    n = len(references)
    seconds = sum(len(w) for w in references) / SAMPLE_RATE

    def row(metric: str, taken: float, per: str, note: str = "") -> None:
        per_item = taken / n if per in ("clip", "pair") else taken
        rtf = taken / seconds if per in ("clip", "pair") else None
        rows.append((metric, device, per_item, per, rtf, note))

    clips16 = [resample(w, SAMPLE_RATE, MODEL_SAMPLE_RATE) for w in references]
    generated16 = [resample(w, SAMPLE_RATE, MODEL_SAMPLE_RATE) for w in generated]

    load, _ = timed(lambda: frechet.voice_encoder(device), device)
    frechet.speaker_embedding(clips16[0], device=device)  # warm-up
    taken, embeddings = timed(lambda: [frechet.speaker_embedding(w, device=device) for w in clips16], device)
    row("Resemblyzer embedding", taken, "clip", f"model load {load:.2f} s")
    gen_embeddings = [frechet.speaker_embedding(w, device=device) for w in generated16]
    taken, result = timed(lambda: frechet.frechet_speaker(gen_embeddings, embeddings), device)
    row("Frechet distance, speaker", taken, "set", f"n {result.n_a} utterances, dim {result.dim}")

    log_mel(references[0], SAMPLE_RATE, device)  # warm-up
    taken, mels = timed(lambda: [log_mel(w, SAMPLE_RATE, device) for w in references], device)
    row("log-mel (22050 Hz)", taken, "clip")
    gen_mels = [log_mel(w, SAMPLE_RATE, device) for w in generated]
    taken, result = timed(lambda: frechet.frechet_logmel(gen_mels, mels), device)
    row("Frechet distance, log-mel", taken, "set", f"n {result.n_a} frames, dim {result.dim}")

    taken, _ = timed(lambda: [mcd.mcd_dtw(g, r) for g, r in zip(gen_mels, mels)], device)
    row("MCD with DTW (mels given)", taken, "pair", "CPU (librosa DTW)")

    load, _ = timed(lambda: dnsmos.dnsmos_scores(clips16[0], device=device), device)
    taken, _ = timed(lambda: [dnsmos.dnsmos_scores(w, device=device) for w in clips16], device)
    provider = dnsmos.onnx_providers(device)[0]
    provider = provider[0] if isinstance(provider, tuple) else provider
    row("DNSMOS", taken, "clip", f"{provider}; first call {load:.2f} s")

    if device == "cpu":  # pocketsphinx has no GPU path
        load, _ = timed(lambda: asr.recognize(clips16[0]), device)
        taken, hypotheses = timed(lambda: [asr.recognize(w) for w in clips16], device)
        row("pocketsphinx decoding", taken, "clip", f"first call {load:.2f} s")
        taken, _ = timed(lambda: [asr.word_errors(t, h) for t, h in zip(texts, hypotheses)], device)
        row("WER scoring (jiwer)", taken, "clip", "text normalisation included")

    with tempfile.TemporaryDirectory() as tmp:
        pairs = {}
        for i, (gen, ref) in enumerate(zip(generated, references)):
            pairs[f"utt{i:03d}"] = (Path(tmp) / f"gen{i}.wav", Path(tmp) / f"ref{i}.wav")
            soundfile.write(pairs[f"utt{i:03d}"][0], gen, SAMPLE_RATE, subtype="PCM_16")
            soundfile.write(pairs[f"utt{i:03d}"][1], ref, SAMPLE_RATE, subtype="PCM_16")
        utt_texts = {utt: texts[i] for i, utt in enumerate(pairs)}
        taken, _ = timed(lambda: evaluate_pairs(pairs, utt_texts, device=device), device)
    row("evaluate_pairs, all metrics", taken, "pair", "both clips scored; RTF over the reference audio")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=8)
    parser.add_argument("--device", default="all", help="cpu, cuda[:i], or all (cpu and cuda when present)")
    args = parser.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]

    texts, references, generated = make_pairs(args.utterances)
    seconds = sum(len(w) for w in references) / SAMPLE_RATE
    print(f"{len(references)} utterances, {seconds:.1f} s of reference audio "
          f"({seconds / len(references):.2f} s each); torch threads {torch.get_num_threads()}")
    rows: list[tuple] = []
    for device in devices:
        bench_device(device, texts, references, generated, rows)

    header = f"{'metric':<30} {'device':<7} {'seconds':>9} {'per':<5} {'RTF':>8}  note"
    print(header)
    print("-" * len(header))
    for metric, device, seconds_taken, per, rtf, note in rows:
        rtf_text = f"{rtf:8.4f}" if rtf is not None else f"{'-':>8}"
        print(f"{metric:<30} {device:<7} {seconds_taken:9.4f} {per:<5} {rtf_text}  {note}")


if __name__ == "__main__":
    main()
