"""The "espeak" recogniser: a small character CTC acoustic model of eSpeak NG's speech, for the mini corpus.

pocketsphinx's acoustic model, trained on human speech, mishears eSpeak NG even with an oracle vocabulary
(docs/quality.md). This recogniser is trained on eSpeak NG speech of the mini corpus's sentence generator,
drawn from its own seed (holdtts.quality.espeak_train: never any corpus's texts), so it hears the corpus's
voice; it is meaningless on other speech (LJSpeech, a human voice) and rewards audio that sounds like
eSpeak NG, which on this corpus is what a good model should produce.

- Features: the project's log-mel (holdtts.data.mel, 22050 Hz, 80 bands, 86 frames/s) of the clip
  resampled to 22050 Hz, normalised per utterance and band (mean and variance), so a level or channel
  change (a vocoder) shifts nothing.
- Model (EspeakCTC): two 1-D convolutions (the second with stride 2: 43 frames/s, about twice the
  corpus's 18 characters/s) and a bidirectional GRU, then a linear layer to TOKENS: the CTC blank, the
  word separator "|", the apostrophe and a-z (what asr.normalize_text leaves once numbers are spelled out).
- Decoding (DECODERS): "greedy" CTC (collapse repeats, drop blanks); "nearest-word": each greedy word
  outside the mini corpus's vocabulary (the words of its domain model, holdtts.quality.domain_lm) replaced
  by the vocabulary word nearest in edit distance; "beam": flashlight's lexicon-constrained beam search
  (torchaudio's ctc_decoder, package flashlight-text) over that vocabulary with the domain model's
  class-based 3-gram as the language model. The build picks the method and the LM weight on the
  recogniser's own held-out utterances (espeak_train.tune_decoder); `EspeakRecognizer.describe()` says what
  runs, and is part of the recogniser's cache key.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from holdtts.errors import HoldttsError

FORMAT_VERSION = 1  # of model.pt
SAMPLE_RATE = 22050  # the features' rate: the mini corpus's own, so its recordings are never resampled
BLANK, SEPARATOR = "<b>", "|"
TOKENS = (BLANK, SEPARATOR, "'", *"abcdefghijklmnopqrstuvwxyz")
_INDEX = {t: i for i, t in enumerate(TOKENS)}
DECODERS = ("greedy", "nearest-word", "beam")  # from least to most informed
# Beam search settings (flashlight's; the LM scores are natural logs). The LM weight is chosen at build time.
BEAM = {"beam_size": 64, "beam_threshold": 50.0, "word_score": 0.0, "sil_score": 0.0}
DEFAULT_LM_WEIGHT = 1.0


# ------------------------------------------------------------------------------------------ text

def encode_text(normalized: str) -> list[int]:
    """Token ids of a normalised text (asr.normalize_text): every word followed by the separator, as the
    beam search's lexicon spells words, so the last word ends like the others. Characters outside TOKENS
    (digits, which the cleaners spell out) are an error."""
    unknown = sorted({c for c in normalized if c != " " and c not in _INDEX})
    if unknown:
        raise HoldttsError(f"text {normalized!r} holds characters the recogniser cannot spell: {unknown}")
    return [_INDEX[c] for word in normalized.split() for c in (*word, SEPARATOR)]


def greedy_decode(log_probs: torch.Tensor) -> str:
    """Best path of [frames, tokens] scores: collapse repeated tokens, drop blanks, separators to spaces."""
    best = torch.as_tensor(log_probs).argmax(dim=-1).tolist()
    out, previous = [], None
    for index in best:
        if index != previous and index != _INDEX[BLANK]:
            out.append(" " if index == _INDEX[SEPARATOR] else TOKENS[index])
        previous = index
    return " ".join("".join(out).split())


def correct_words(text: str, vocabulary) -> str:
    """Each word of `text` outside `vocabulary` replaced by the vocabulary word nearest in Levenshtein
    distance (ties: the first in sorted order); the fallback when no beam search is available."""
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    known = set(vocabulary)
    choices = sorted(known)
    words = []
    for word in text.split():
        if word not in known and choices:
            word = process.extractOne(word, choices, scorer=Levenshtein.distance)[0]
        words.append(word)
    return " ".join(words)


# -------------------------------------------------------------------------------------- features

def features(wav: np.ndarray, sample_rate: int) -> torch.Tensor:
    """[frames, 80] normalised log-mels of a clip at any rate (see the module docstring)."""
    from holdtts.config import FeaturesConfig
    from holdtts.data.mel import mel_spectrogram
    from holdtts.quality.audio import resample

    cfg = FeaturesConfig()
    assert cfg.sample_rate == SAMPLE_RATE
    wav = np.array(resample(wav, sample_rate, SAMPLE_RATE))  # a writable copy for torch
    with torch.no_grad():
        mel = mel_spectrogram(torch.from_numpy(wav), cfg)
    return normalize_features(mel.T)


def normalize_features(mel: torch.Tensor) -> torch.Tensor:
    """Per-band mean and variance normalisation over the utterance's frames ([frames, bands])."""
    mel = mel.float()
    return (mel - mel.mean(dim=0)) / (mel.std(dim=0, unbiased=False) + 1e-3)


# ----------------------------------------------------------------------------------------- model

@dataclass(frozen=True)
class ModelConfig:
    n_mels: int = 80
    channels: int = 192
    hidden: int = 160
    layers: int = 2
    dropout: float = 0.1


class EspeakCTC(nn.Module):
    """Conv front end (time stride 2) + bidirectional GRU + linear: log-probabilities over TOKENS. The
    default size has 1.1M parameters; one training pass over an utterance of the mini corpus (5 s) took
    about 0.2 CPU seconds on one thread."""

    stride = 2

    def __init__(self, cfg: ModelConfig = ModelConfig()):
        super().__init__()
        self.cfg = cfg
        self.front = nn.Sequential(
            nn.Conv1d(cfg.n_mels, cfg.channels, 5, padding=2), nn.GELU(),
            nn.Conv1d(cfg.channels, cfg.channels, 5, stride=self.stride, padding=2), nn.GELU())
        self.rnn = nn.GRU(cfg.channels, cfg.hidden, num_layers=cfg.layers, batch_first=True, bidirectional=True,
                          dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(2 * cfg.hidden, len(TOKENS))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return (lengths - 1) // self.stride + 1  # kernel 5, padding 2, stride 2

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats [batch, frames, n_mels] (zero-padded), lengths [batch] -> (log-probs [batch, frames', tokens],
        their lengths)."""
        x = self.front(feats.transpose(1, 2)).transpose(1, 2)
        out_lengths = self.output_lengths(lengths)
        packed = nn.utils.rnn.pack_padded_sequence(x, out_lengths.cpu(), batch_first=True, enforce_sorted=False)
        y, _ = self.rnn(packed)
        y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
        return self.out(self.dropout(y)).log_softmax(dim=-1), out_lengths


def save_model(model: EspeakCTC, path: Path) -> None:
    torch.save({"format": FORMAT_VERSION, "tokens": list(TOKENS), "config": asdict(model.cfg),
                "state_dict": model.state_dict()}, path)


def load_model(path: str | Path) -> EspeakCTC:
    """The model saved by save_model (weights only: no code is unpickled), in eval mode on the CPU."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("format") != FORMAT_VERSION or tuple(blob.get("tokens", ())) != TOKENS:
        raise HoldttsError(f"{path}: not an eSpeak recogniser of this release (format {blob.get('format')}); "
                           "rebuild it with `holdtts build-recognizer --recognizer espeak`")
    model = EspeakCTC(ModelConfig(**blob["config"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval()


# -------------------------------------------------------------------------------------- decoding

def have_beam_search() -> bool:
    try:
        from torchaudio.models.decoder import ctc_decoder  # noqa: F401  (needs flashlight-text)
    except (ImportError, RuntimeError):
        return False
    return True


def _beam_decoder(scorer, lm_weight: float):
    """torchaudio's flashlight lexicon decoder with the domain model as a Python language model."""
    from torchaudio.models.decoder import CTCDecoderLM, CTCDecoderLMState, ctc_decoder

    words = [w for w in scorer.words if all(c in _INDEX for c in w)]

    class DomainLM(CTCDecoderLM):
        # A state is the last order-1 LM tokens; equal histories share one state object, so the beam
        # merges hypotheses that the 3-gram cannot tell apart.
        def __init__(self):
            super().__init__()
            self.root, self.states, self.history = None, {}, {}

        def _state(self, history: tuple) -> CTCDecoderLMState:
            history = history[max(0, len(history) - scorer.order + 1):]
            if history not in self.states:
                state = self.root.child(len(self.states))
                self.states[history], self.history[state] = state, history
            return self.states[history]

        def start(self, start_with_nothing: bool):
            self.root, self.states, self.history = CTCDecoderLMState(), {}, {}
            return self._state(("<s>",))

        def score(self, state, usr_token_idx: int):
            history = self.history[state]
            if usr_token_idx >= len(words):  # the unknown word (never expanded: unk_score is -inf)
                return state, -math.inf
            best, best_token = -math.inf, None
            for token, in_class in scorer.tokens[words[usr_token_idx]]:
                value = scorer.token_logprob(history, token) + in_class
                if value > best:
                    best, best_token = value, token
            return self._state((*history, best_token)), best

        def finish(self, state):
            return state, scorer.token_logprob(self.history[state], "</s>")

    with tempfile.TemporaryDirectory() as tmp:
        lexicon, lm_dict = Path(tmp) / "lexicon.txt", Path(tmp) / "words.txt"
        lexicon.write_text("".join(f"{w} {' '.join(w)} {SEPARATOR}\n" for w in words), encoding="utf-8")
        # LM index = position in `words`; the unknown word (which torchaudio adds to the lexicon) last
        lm_dict.write_text("".join(f"{w}\n" for w in [*words, "<unk>"]), encoding="utf-8")
        decoder = ctc_decoder(lexicon=str(lexicon), tokens=list(TOKENS), lm=DomainLM(), lm_dict=str(lm_dict),
                              blank_token=BLANK, sil_token=SEPARATOR, unk_word="<unk>", lm_weight=lm_weight,
                              **BEAM)
    return decoder


class EspeakRecognizer:
    """A trained model and its decoder: transcribe(wav, sample_rate) -> normalised words."""

    def __init__(self, model: EspeakCTC, scorer=None, method: str | None = None,
                 lm_weight: float = DEFAULT_LM_WEIGHT):
        """scorer: the domain model's ClassBackoffLM (vocabulary and 3-gram; None: greedy only). method: one
        of DECODERS (None: the most informed one available here; "beam" falls back to "nearest-word" where
        flashlight-text is missing)."""
        self.model, self.scorer, self.lm_weight = model, scorer, lm_weight
        self.available = ("greedy",) + ("nearest-word",) * (scorer is not None) + (
            "beam",) * (scorer is not None and have_beam_search())
        if method is not None and method not in DECODERS:
            raise HoldttsError(f"unknown decoding method {method!r}; known: {', '.join(DECODERS)}")
        self.method = self.available[-1] if method is None else (
            method if method in self.available else self.available[-1])
        self._beams: dict[float, object] = {}

    def describe(self) -> str:
        """What transcribe runs (for quality.json and the cache key)."""
        if self.method == "beam":
            settings = ",".join(f"{k}={v:g}" for k, v in sorted({**BEAM, "lm_weight": self.lm_weight}.items()))
            return f"beam: lexicon beam search with the domain class 3-gram ({settings})"
        return {"greedy": "greedy: best path, no vocabulary",
                "nearest-word": "nearest-word: greedy, out-of-vocabulary words replaced by the nearest "
                                "domain-model word"}[self.method]

    @torch.no_grad()
    def log_probs(self, wav: np.ndarray, sample_rate: int) -> torch.Tensor:
        """[frames, tokens] log-probabilities of a clip at any rate."""
        feats = features(wav, sample_rate)
        log_probs, _ = self.model(feats[None], torch.tensor([feats.shape[0]]))
        return log_probs[0]

    def decode(self, log_probs: torch.Tensor, method: str | None = None, lm_weight: float | None = None) -> str:
        """[frames, tokens] -> words, by `method` (default: this recogniser's) and LM weight (beam only)."""
        method = method or self.method
        if method not in self.available:
            raise HoldttsError(f"decoding method {method!r} is not available here; available: {self.available}")
        if method == "beam":
            weight = self.lm_weight if lm_weight is None else lm_weight
            if weight not in self._beams:
                self._beams[weight] = _beam_decoder(self.scorer, weight)
            hypotheses = self._beams[weight](log_probs[None].contiguous().float())[0]
            return " ".join(hypotheses[0].words) if hypotheses else ""
        text = greedy_decode(log_probs)
        return correct_words(text, self.scorer.words) if method == "nearest-word" else text

    def transcribe(self, wav: np.ndarray, sample_rate: int) -> str:
        return self.decode(self.log_probs(wav, sample_rate))


def load_recognizer(folder: str | Path) -> EspeakRecognizer:
    """A built recogniser (holdtts.quality.espeak_train) with the decoding its build chose, and the mini
    corpus's domain model as its vocabulary and language model (built on first use, about 30 s)."""
    from holdtts.quality.domain_lm import build_domain_model
    from holdtts.quality.espeak_train import MODEL, read_info

    chosen = read_info(folder).get("decoder") or {}
    return EspeakRecognizer(load_model(Path(folder) / MODEL), build_domain_model().scorer(), chosen.get("method"),
                            chosen.get("lm_weight", DEFAULT_LM_WEIGHT))
