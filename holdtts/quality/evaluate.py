"""Evaluate synthesized audio against the real recordings of the same sentences.

`evaluate_pairs` reads each (generated, reference) pair once and returns per-utterance rows and a
set-level summary; `write_rows_tsv` and `write_summary_json` save them atomically. Metrics (any subset):

- fd_speaker: Frechet distance between Resemblyzer embeddings of the two sets (n = utterances), plus the
  per-utterance cosine similarity of the generated and real embeddings (spk_cosine); beside it the
  unbiased kernel distance on the same embeddings (kid_speaker, holdtts.quality.kid).
- fd_logmel: Frechet distance between the log-mel frame distributions (n = frames), its fit against n
  (FD_inf, slope), and kid_logmel on the same frames.
- dnsmos: DNSMOS SIG/BAK/OVRL/P808 per utterance, for the generated and the real clips.
- wer: the generic pocketsphinx recogniser's hypotheses, word and character errors, for the generated and
  the real clips, against the text.
- wer_domain: the same with the mini corpus's domain recogniser (holdtts.quality.asr; mini corpus only).
- wer_espeak: the same with the eSpeak recogniser (holdtts.quality.espeak_asr; mini corpus only), plus how
  many scored sentences it heard verbatim in training (expected 0).
- mcd: mel-cepstral distortion with DTW, generated against real.

Set-level metrics (Frechet and kernel distances) compare the generated set with the paired real
recordings, or with `reference_set` when one is given (e.g. other real recordings: the reference row).

Metrics that score a clip on its own (DNSMOS, WER) are also reported for the real recordings, so a
model's numbers can be read beside what the real audio reaches with the same tools.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from holdtts.errors import HoldttsError, InputError
from holdtts.quality import asr, bootstrap, dnsmos, frechet, kid, mcd
from holdtts.quality.audio import MODEL_SAMPLE_RATE, Clip, log_mel
from holdtts.utils.fileio import atomic_open, refuse_overwrite, strict_json, write_json_atomic

METRICS = ("fd_speaker", "fd_logmel", "dnsmos", "wer", "wer_domain", "wer_espeak", "mcd")
DEFAULT_METRICS = ("fd_speaker", "fd_logmel", "dnsmos", "wer", "mcd")  # wer_domain, wer_espeak: mini corpus only
_RECOGNIZERS = {"wer": "generic", "wer_domain": "domain", "wer_espeak": "espeak"}


def _check_metrics(metrics: Iterable[str]) -> tuple[str, ...]:
    metrics = tuple(dict.fromkeys(metrics))
    unknown = [name for name in metrics if name not in METRICS]
    if unknown:
        raise HoldttsError(f"unknown quality metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    if not metrics:
        raise HoldttsError("no quality metric selected")
    return metrics


def _mean(values: list[float]) -> float:
    return float(np.mean(values))


def _frechet_summary(result, vs_n: dict | None) -> dict:
    return {"value": result.value, "n_generated": result.n_a, "n_reference": result.n_b, "unit": result.unit,
            "dim": result.dim, "eps": result.eps,
            "vs_n": vs_n if vs_n is not None else {"fd_inf": None, "reason": (
                "too few utterances (< 8 a set) or no more samples than dimensions: FD(n) is not in its 1/n "
                "regime; compare values only at equal n")}}


def _kid_summary(result: kid.KidResult) -> dict:
    return {"value": result.value, "interval": None if result.low is None else [result.low, result.high],
            "n_generated": result.n_a, "n_reference": result.n_b, "utterances_generated": result.groups_a,
            "utterances_reference": result.groups_b, "unit": result.unit, "dim": result.dim,
            "subsets": result.subsets, "subset": "half the utterances of each set",
            "subset_max_samples": result.subset_max_samples, "kernel": result.kernel}


def _on_clip(utt: str, clip: Clip, compute):
    """compute(clip), with a clip the metric cannot score reported as bad input naming the file."""
    try:
        return compute(clip)
    except ValueError as err:
        raise InputError(f"utterance {utt}: {err}", clip.path) from err


class ClipCache:
    """Per-clip results of the slow metrics (speaker embedding, DNSMOS, recognition), keyed by the sha256
    of the audio samples and the metric, so the same real recordings scored for several systems are
    computed once. `None` caches nothing."""

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = None if folder is None else Path(folder)

    def get(self, clip: Clip, metric: str, compute):
        """compute(clip), or its stored result for a clip with the same samples."""
        if self.folder is None:
            return compute(clip)
        digest = hashlib.sha256(np.ascontiguousarray(clip.wav).tobytes()).hexdigest()
        path = self.folder / metric / f"{digest}_{clip.sample_rate}.json"
        if path.exists():
            value = json.loads(path.read_text())
            return np.asarray(value, dtype=np.float32) if metric == "speaker" else value
        value = compute(clip)
        stored = value.tolist() if isinstance(value, np.ndarray) else value
        write_json_atomic(path, stored)
        return value


def evaluate_pairs(pairs: Mapping[str, tuple[str | os.PathLike, str | os.PathLike]], texts: Mapping[str, str],
                   device: str = "cpu", metrics: Sequence[str] = DEFAULT_METRICS,
                   cache_dir: str | os.PathLike | None = None,
                   reference_set: Sequence[str | os.PathLike] | None = None,
                   speakers: Mapping[str, str] | None = None) -> tuple[list[dict], dict]:
    """Score generated audio against the real recordings of the same sentences.

    pairs: utt_id -> (generated wav path, reference wav path); any sampling rate, mono or not.
    texts: utt_id -> the input text (needed for the WER metrics only).
    device: where Resemblyzer, DNSMOS (when onnxruntime has CUDA) and the mels run.
    cache_dir: where per-clip results of the slow metrics are kept (see ClipCache); None: no cache.
    reference_set: other real recordings for the set-level metrics (Frechet and kernel distances) to
        compare the generated set with, instead of the paired references.
    speakers: utt_id -> speaker (multi-speaker data): with fd_speaker, each row gets `spk_cosine_speaker`, the
        cosine of the generated clip's embedding with the centroid of its speaker's reference clips, and the
        summary `speaker_similarity`, per speaker and overall (`speaker_similarity_summary`).
    Returns (rows, summary): one dict per utterance, sorted by utt_id, and the set-level values.
    """
    cache = ClipCache(cache_dir)
    metrics = _check_metrics(metrics)
    if not pairs:
        raise HoldttsError("no utterances to evaluate")
    ids = sorted(pairs)
    set_level = "fd_speaker" in metrics or "fd_logmel" in metrics
    if set_level and (len(ids) < 2 or (reference_set is not None and len(reference_set) < 2)):
        raise HoldttsError("Frechet distances need at least 2 utterances per set; drop fd_speaker and "
                           "fd_logmel to score a single utterance")
    wer_metrics = [m for m in _RECOGNIZERS if m in metrics]
    if wer_metrics:
        missing = [utt for utt in ids if utt not in texts]
        if missing:
            raise InputError(f"no text for {len(missing)} utterance(s) to score WER, e.g. {missing[0]}")

    rows: list[dict] = []
    paired_embeddings: dict[str, dict[str, np.ndarray]] = {}
    if speakers is not None:
        missing = [utt for utt in ids if utt not in speakers]
        if missing:
            raise InputError(f"no speaker for {len(missing)} utterance(s), e.g. {missing[0]}")
    speaker: dict[str, list] = {"generated": [], "reference": []}
    mel_frames: dict[str, list] = {"generated": [], "reference": []}
    word_errors = {(m, side): [] for m in wer_metrics for side in ("generated", "reference")}
    # once, not per utterance: the eSpeak key reads the recogniser's info and hashes its weights
    recognizer_keys = {metric: asr.recognizer_key(_RECOGNIZERS[metric]) for metric in wer_metrics}

    def embed(utt: str, clip: Clip, generated: bool = False) -> np.ndarray:
        def compute(x: Clip) -> np.ndarray:
            return frechet.speaker_embedding(x.at(MODEL_SAMPLE_RATE), device=device, silent_ok=generated)

        if generated and not np.any(clip.wav):  # a system's digital silence is scored (noise floor), not cached
            return _on_clip(utt, clip, compute)
        return _on_clip(utt, clip, lambda c: cache.get(c, "speaker", compute))

    def mel_of(utt: str, clip: Clip) -> np.ndarray:
        return _on_clip(utt, clip, lambda c: log_mel(c.wav, c.sample_rate, device))

    for utt in ids:
        generated_path, reference_path = pairs[utt]
        clips = {"generated": Clip(generated_path), "reference": Clip(reference_path)}
        row: dict = {"utt_id": utt, "generated": str(generated_path), "reference": str(reference_path),
                     "generated_seconds": clips["generated"].seconds,
                     "reference_seconds": clips["reference"].seconds}

        if speakers is not None:
            row["speaker"] = speakers[utt]
        if "fd_speaker" in metrics:
            embeddings = {side: embed(utt, clip, side == "generated") for side, clip in clips.items()}
            row["spk_cosine"] = float(embeddings["generated"] @ embeddings["reference"])
            paired_embeddings[utt] = embeddings
            speaker["generated"].append(embeddings["generated"])
            if reference_set is None:
                speaker["reference"].append(embeddings["reference"])

        if "fd_logmel" in metrics or "mcd" in metrics:
            mels = {side: mel_of(utt, clip) for side, clip in clips.items()}
            if "fd_logmel" in metrics:
                mel_frames["generated"].append(mels["generated"].T.astype(np.float32))
                if reference_set is None:
                    mel_frames["reference"].append(mels["reference"].T.astype(np.float32))
            if "mcd" in metrics:
                result = mcd.mcd_dtw(mels["generated"], mels["reference"])
                row["mcd"] = result.mcd
                row["mcd_path_frames"] = result.path_length

        if "dnsmos" in metrics:
            for side, prefix in (("generated", "dnsmos"), ("reference", "ref_dnsmos")):
                scores = cache.get(clips[side], "dnsmos", lambda x: dnsmos.dnsmos_scores(
                    x.at(MODEL_SAMPLE_RATE), device=device))
                row.update({f"{prefix}_{key}": value for key, value in scores.items()})

        for metric in wer_metrics:
            recognizer, key = _RECOGNIZERS[metric], recognizer_keys[metric]
            for side, prefix in (("generated", metric), ("reference", f"ref_{metric}")):
                hypothesis = cache.get(clips[side], key, lambda x, r=recognizer: asr.recognize(
                    x.at(asr.input_rate(r)), asr.input_rate(r), recognizer=r))
                try:
                    scored = asr.word_errors(texts[utt], hypothesis)
                except ValueError as err:
                    raise InputError(f"utterance {utt}: {err}") from err
                word_errors[(metric, side)].append(scored)
                if side == "generated":
                    row["text"] = scored.reference
                    row["wer_ref_words"] = scored.reference_words
                    row["wer_ref_chars"] = scored.reference_chars
                row[f"{prefix}_hyp"] = scored.hypothesis
                row[f"{prefix}_errors"] = scored.errors
                row[f"{prefix}_sub"] = scored.substitutions
                row[f"{prefix}_del"] = scored.deletions
                row[f"{prefix}_ins"] = scored.insertions
                row[f"{prefix}_char_errors"] = scored.char_errors
        rows.append(row)

    if reference_set is not None and set_level:
        for index, path in enumerate(reference_set):
            clip, name = Clip(path), f"reference set #{index}"
            if "fd_speaker" in metrics:
                speaker["reference"].append(embed(name, clip))
            if "fd_logmel" in metrics:
                mel_frames["reference"].append(mel_of(name, clip).T.astype(np.float32))

    summary: dict = {"n_utterances": len(ids), "metrics": list(metrics), "device": device}
    if reference_set is not None:
        summary["reference_set"] = {"n_utterances": len(reference_set),
                                    "what": "other real recordings (set-level metrics only)"}
    if "fd_speaker" in metrics:
        generated, reference = np.stack(speaker["generated"]), np.stack(speaker["reference"])
        result = frechet.frechet_speaker(generated, reference)
        summary["fd_speaker"] = {**_frechet_summary(result, kid.frechet_vs_n(generated, reference)),
                                 "mean_spk_cosine": _mean([r["spk_cosine"] for r in rows])}
        summary["kid_speaker"] = _kid_summary(kid.kernel_distance(generated, reference, unit="utterances"))
        if speakers is not None:
            summary["speaker_similarity"] = speaker_similarity_summary(rows, paired_embeddings)
    if "fd_logmel" in metrics:
        generated, reference = mel_frames["generated"], mel_frames["reference"]
        result = frechet.frechet_distance(np.concatenate(generated), np.concatenate(reference), unit="frames")
        summary["fd_logmel"] = _frechet_summary(result, kid.frechet_vs_n(generated, reference))
        summary["kid_logmel"] = _kid_summary(kid.kernel_distance(generated, reference, unit="frames"))
    if "dnsmos" in metrics:
        summary["dnsmos"] = {
            side: {key: _mean([r[f"{prefix}_{key}"] for r in rows]) for key in dnsmos.DNSMOS_KEYS}
            for side, prefix in (("generated", "dnsmos"), ("reference", "ref_dnsmos"))}
    for metric in wer_metrics:
        summary[metric] = {side: asr.corpus_wer(word_errors[(metric, side)]) for side in ("generated", "reference")}
        summary[metric]["recognizer"] = _RECOGNIZERS[metric]
        summary[metric].update(asr.recognizer_facts(_RECOGNIZERS[metric], [texts[u] for u in ids]))
    if "mcd" in metrics:
        values = [r["mcd"] for r in rows]
        summary["mcd"] = {"mean": _mean(values), "std": float(np.std(values)), "n": len(values),
                          "coefficients": mcd.MCD_COEFFICIENTS, "alignment": "dtw"}
    return rows, summary


def speaker_similarity_summary(rows: list[dict], embeddings: Mapping[str, Mapping[str, np.ndarray]]) -> dict:
    """Speaker similarity of the synthesis to each speaker's real recordings: per row, the cosine of the
    generated embedding with the (L2-normalised) centroid of the speaker's reference embeddings
    (`spk_cosine_speaker`, set on the rows); per speaker its mean and the mean paired cosine; overall the
    mean over utterances and the mean over speakers (every speaker weighted alike)."""
    for group in _by_speaker(rows).values():
        centroid = np.mean([embeddings[r["utt_id"]]["reference"] for r in group], axis=0)
        centroid = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
        for r in group:
            r["spk_cosine_speaker"] = float(embeddings[r["utt_id"]]["generated"] @ centroid)
    return {
        **speaker_similarity_means(rows),
        "definition": "cosine of the generated clip's Resemblyzer embedding with the normalised centroid of its "
                      "speaker's reference clips (the real recordings of the evaluated split, vocoded alike)",
    }


def _by_speaker(rows: Sequence[Mapping]) -> dict[str, list]:
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(row["speaker"], []).append(row)
    return dict(sorted(groups.items()))


def speaker_similarity_means(rows: Sequence[Mapping]) -> dict:
    """The per-speaker and overall means of speaker_similarity_summary, from rows holding `speaker`,
    `spk_cosine` and `spk_cosine_speaker` (numbers; holdtts verify recomputes them from quality.tsv)."""
    per_speaker = {name: {"n": len(group), "mean_cosine_to_speaker": _mean([r["spk_cosine_speaker"] for r in group]),
                          "mean_pair_cosine": _mean([r["spk_cosine"] for r in group])}
                   for name, group in _by_speaker(rows).items()}
    return {"per_speaker": per_speaker, "mean_cosine_to_speaker": _mean([r["spk_cosine_speaker"] for r in rows]),
            "speaker_mean_cosine_to_speaker": _mean([v["mean_cosine_to_speaker"] for v in per_speaker.values()]),
            "num_speakers": len(per_speaker)}


def _tsv_field(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else repr(float(value))
    return " ".join(str(value).split())  # tabs and newlines would break the table


def write_rows_tsv(path: str | os.PathLike, rows: Sequence[Mapping], overwrite: bool = False) -> None:
    """Per-utterance rows as a TSV table with a header (columns in first-seen order), written atomically."""
    refuse_overwrite(path, overwrite, "quality table")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_open(path, "w") as f:
        f.write("\t".join(columns) + "\n")
        for row in rows:
            f.write("\t".join(_tsv_field(row.get(column)) for column in columns) + "\n")


def read_rows_tsv(path: str | os.PathLike) -> list[dict[str, str]]:
    """write_rows_tsv's table back as rows of raw text (a hypothesis may read "nan": parse where used)."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().splitlines()
    if not lines or "utt_id" not in lines[0].split("\t"):
        raise InputError("a quality table needs a header with 'utt_id'", path, 1)
    header = lines[0].split("\t")
    rows = []
    for line_number, line in enumerate(lines[1:], 2):
        cells = line.split("\t")
        if len(cells) != len(header):
            raise InputError(f"expected {len(header)} tab-separated fields, got {len(cells)}", path, line_number)
        rows.append(dict(zip(header, cells)))
    return rows


def error_rate_intervals(rows: Sequence[Mapping], metric: str, side: str = "generated") -> dict:
    """The WER and CER intervals that corpus_wer put in the summary, recomputed from the per-utterance rows
    (as evaluate_pairs returns them or read_rows_tsv reads them back). metric: wer, wer_domain or
    wer_espeak; side: generated or reference."""
    prefix = metric if side == "generated" else f"ref_{metric}"

    def pairs(errors: str, total: str) -> list[tuple[float, float]]:
        return [(float(row[errors]), float(row[total])) for row in rows]

    return {"wer_interval": bootstrap.interval(pairs(f"{prefix}_errors", "wer_ref_words")),
            "cer_interval": bootstrap.interval(pairs(f"{prefix}_char_errors", "wer_ref_chars"))}


def write_summary_json(path: str | os.PathLike, summary: Mapping, overwrite: bool = False) -> None:
    """The set-level summary as JSON, written atomically."""
    refuse_overwrite(path, overwrite, "quality summary")
    write_json_atomic(path, strict_json(summary))
