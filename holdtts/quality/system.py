"""Quality of a trained system: synthesize the test sentences, vocode the real recordings' mels the same
way, and score the pairs (holdtts.quality.evaluate)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from holdtts.data.dataset import FeatureStore, load_split
from holdtts.data.speakers import read_utt2spk
from holdtts.data.tables import read_table
from holdtts.errors import HoldttsError
from holdtts.quality.evaluate import DEFAULT_METRICS, evaluate_pairs, write_rows_tsv, write_summary_json
from holdtts.synthesis import MEAN_VOICE, synthesize_texts, write_outputs
from holdtts.utils.fileio import atomic_path, ensure_dir, refuse_overwrite


def is_mini_corpus(data_dir: str | Path) -> bool:
    """Whether the data directory was prepared from a holdtts mini corpus (its corpus.json says so)."""
    import json

    try:
        splits = json.loads((Path(data_dir) / "splits.json").read_text())
        corpus = json.loads((Path(splits["corpus_dir"]) / "corpus.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(corpus, dict) and corpus.get("generator") == "holdtts.data.minicorpus"


MINI_ONLY_METRICS = ("wer_domain", "wer_espeak")  # recognisers of the mini corpus's own speech


def default_metrics(data_dir: str | Path) -> list[str]:
    """Every metric; the two recognisers of the mini corpus's own speech (wer_domain, wer_espeak) only where
    the speech says the mini corpus's sentences. wer_espeak's recogniser trains once on first use (about half
    an hour on 2 cores; then cached): on real recordings of a fresh mini corpus it reads 3.3% WER against
    pocketsphinx's 87% (docs/quality.md)."""
    names = list(DEFAULT_METRICS)
    if is_mini_corpus(data_dir):
        names[names.index("wer") + 1:names.index("wer") + 1] = list(MINI_ONLY_METRICS)
    return names


def resolve_metrics(spec: str, data_dir: str | Path) -> list[str]:
    """`--metrics`: comma-separated names, where `auto` stands for default_metrics(data_dir) and `-name`
    drops a name (`auto,-wer_espeak`: the defaults without the recogniser that trains on first use). Dropping
    a mini-corpus-only metric that `auto` did not bring (other data) is no error: the recipe's mini default
    `auto,-wer,-wer_domain` then still works on a corpus not recognised as mini."""
    names: list[str] = []
    automatic = False
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token.startswith("-"):
            if token[1:] not in names:
                if automatic and token[1:] in MINI_ONLY_METRICS:
                    continue
                raise HoldttsError(f"--metrics {spec!r}: {token[1:]!r} is not among the metrics before it")
            names.remove(token[1:])
        else:
            automatic = automatic or token == "auto"
            names += [n for n in (default_metrics(data_dir) if token == "auto" else [token]) if n not in names]
    return names


@torch.no_grad()
def vocode_reference(store: FeatureStore, utts: list[str], vocoder, out_dir: Path, sample_rate: int,
                     batch_size: int = 8) -> dict[str, Path]:
    """Copy-synthesis of the real recordings: their mels through the vocoder the system uses, so both
    sides of every comparison went through the same vocoder."""
    ensure_dir(out_dir)
    device = next(iter(vocoder.buffers()), torch.zeros(0)).device
    paths = {}
    for start in range(0, len(utts), batch_size):
        chunk = utts[start:start + batch_size]
        mels = [store.mel(u) for u in chunk]
        frames = torch.tensor([m.shape[1] for m in mels])
        batch = torch.zeros(len(mels), mels[0].shape[0], int(frames.max()))
        for i, m in enumerate(mels):
            batch[i, :, : m.shape[1]] = torch.from_numpy(m)
        batch = batch.to(device)
        audio = vocoder(batch, frames) if getattr(vocoder, "supports_lengths", False) else vocoder(batch)
        hop = len(audio[0]) // batch.shape[-1]
        for i, utt in enumerate(chunk):
            wav = audio[i, : int(frames[i]) * hop].float().cpu().numpy()
            path = out_dir / f"{utt}.wav"
            with atomic_path(path, suffix=".wav") as tmp:
                sf.write(tmp, np.clip(wav, -1, 1), sample_rate, subtype="PCM_16")
            paths[utt] = path
    return paths


def synthesis_voices(model, utts: list[str], utt2spk: dict[str, str] | None) -> list[str] | None:
    """The voice each test sentence is synthesized in by a multi-speaker model: its speaker's own where the
    model has that speaker, else the mean voice (an unseen speaker of the speaker protocol). None for a
    single-speaker model."""
    if getattr(model, "n_speakers", 1) == 1:
        return None
    if utt2spk is None:
        raise HoldttsError("a multi-speaker model needs the test utterances' speakers: the data directory has "
                           "no utt2spk")
    missing = [u for u in utts if u not in utt2spk]
    if missing:
        raise HoldttsError(f"utt2spk: {len(missing)} test utterance(s) have no speaker, e.g. '{missing[0]}'")
    known = set(model.speaker_ids or [])
    return [utt2spk[u] if utt2spk[u] in known else MEAN_VOICE for u in utts]


def evaluate_system(model, vocoder, data_dir: str | Path, dump_dir: str | Path, out_dir: str | Path,
                    split: str = "test", max_utts: int | None = None, metrics=DEFAULT_METRICS, steps: int | None = None,
                    sampler: str | None = None, temperature: float | None = None, seed: int = 1234,
                    batch_size: int = 16, device: str = "cpu", overwrite: bool = False,
                    cache_dir: str | Path | None = None) -> dict:
    """Write <out_dir>/generated/*.wav, reference/*.wav, quality.tsv and quality.json; return the summary."""
    out_dir = Path(out_dir)
    refuse_overwrite(out_dir / "quality.json", overwrite, "quality results")
    utts = load_split(data_dir, split)
    if max_utts is not None:
        utts = utts[:max_utts]
    texts = read_table(Path(data_dir) / split / "text")
    store = FeatureStore(dump_dir)
    store.check_utts(utts, Path(data_dir) / split)
    sample_rate = model.config.features.sample_rate
    utt2spk = read_utt2spk(data_dir)
    voices = synthesis_voices(model, utts, utt2spk)
    started = time.perf_counter()
    result = synthesize_texts(model, [texts[u] for u in utts], utts, vocoder, steps=steps, sampler=sampler,
                              temperature=temperature, batch_size=batch_size, seed=seed,
                              **({} if voices is None else {"speaker": voices}))
    syn = model.config.synthesis
    meta = {"model": str(model.checkpoint), "step": model.step, "sampler": sampler or syn.sampler,
            "steps": steps or syn.steps, "temperature": syn.temperature if temperature is None else temperature,
            "seed": seed, "vocoder": getattr(vocoder, "name", str(vocoder))}
    if voices is not None:
        meta["speaker_condition"] = {"own": sum(v != MEAN_VOICE for v in voices),
                                     "mean voice (speaker not in the model)": sum(v == MEAN_VOICE for v in voices)}
    write_outputs(result, [texts[u] for u in utts], out_dir / "generated", sample_rate, overwrite=True, meta=meta)
    synthesized = time.perf_counter()
    references = vocode_reference(store, utts, vocoder, out_dir / "reference", sample_rate)
    pairs = {u: (out_dir / "generated" / f"{u}.wav", references[u]) for u in utts}
    speakers = None if utt2spk is None else {u: utt2spk[u] for u in utts}
    rows, summary = evaluate_pairs(pairs, texts, device=device, metrics=metrics, cache_dir=cache_dir,
                                   speakers=speakers)
    # wall seconds of each part, for the study's wall-time table (cached scores make a rerun's scoring faster)
    timing = {"synthesis_seconds": synthesized - started,
              "references_and_scoring_seconds": time.perf_counter() - synthesized}
    # syntheses that held NaN/inf were scored as the silence they were made (holdtts.data.mel.silence_nonfinite)
    summary.update({"split": split, "decoder_rtf": result.rtf, "nonfinite_syntheses": len(result.nonfinite),
                    "timing": {k: round(v, 3) for k, v in timing.items()},
                    "reference": "real mels through the same vocoder",
                    **{k: v for k, v in meta.items() if k != "model"}, "model": meta["model"]})
    write_rows_tsv(out_dir / "quality.tsv", rows, overwrite=True)
    write_summary_json(out_dir / "quality.json", summary, overwrite=True)
    return summary
