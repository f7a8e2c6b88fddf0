"""A domain language model for recognising the mini corpus: the shape of its sentence generator.

pocketsphinx's generic English 3-gram gets most words of eSpeak NG's speech wrong, largely because the
mini corpus's sentences are improbable English (rare CMUdict words in a fixed set of templates). This
model knows the templates and nothing about any particular sentence:

- The grammar of holdtts.data.sentences is run with a placeholder vocabulary (one token per word class:
  nouns, adjectives, adverbs, participles, gerunds, surnames) for NUM_SENTENCES sentences from its own
  seed (DOMAIN_SEED). A class-based 3-gram is estimated on the normalised placeholder text, so it learns
  the function words, numbers, months, titles and where each class of content word goes.
- Each class tag expands to every word of that class in the generator's vocabulary (CMUdict words
  sorted by suffix), each equally likely, as the generator draws them.

It never sees a corpus's texts: it is the same for every mini corpus of a CMUdict release, and the
sentences it scores (non-member test sentences) are not in it. What it assumes: the speech says
sentences of this generator; on other text (LJSpeech) it is meaningless, and the generic model's WER is
the one to read. The a/an choice (which depends on the next word's first letter) is kept in the
placeholder text by a vowel- and a consonant-initial placeholder per class, in the vocabulary's
proportions.

Files (written atomically into one folder): domain.arpa, domain.classdef, domain.lmctl, domain.dict and
domain.json (provenance and sizes). The 3-gram uses absolute discounting with Katz-style back-off.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from holdtts.errors import HoldttsError

DOMAIN_SEED = 130613  # the placeholder text's own seed; no corpus is built from it
NUM_SENTENCES = 12000
DISCOUNT = 0.7  # absolute discount per seen n-gram
ORDER = 3
FORMAT_VERSION = 5  # 5: eSpeak NG's pronunciations (instead of CMUdict's beyond ESPEAK_MIN_LETTERS letters)
ESPEAK_MIN_LETTERS = 3
CLASSES = ("nouns", "adjectives", "adverbs", "participles", "gerunds", "names")
# Words the project's cleaners write that CMUdict lacks (ARPAbet without stress).
EXTRA_PRONUNCIATIONS = {"misess": ["M IH S IH Z"]}

_PLACEHOLDER = re.compile(r"^[aq]zz([a-z]+)zz$")


def _placeholder(name: str, vowel: bool) -> str:
    # Lowercase letters only, so the cleaners leave it alone; "a..." for vowel-initial words (the
    # grammar writes "an" before those).
    return ("a" if vowel else "q") + "zz" + name + "zz"


def class_tag(name: str) -> str:
    return f"[{name}]"


@dataclass(frozen=True)
class DomainModel:
    """Paths of a built domain model."""

    folder: Path

    @property
    def lmctl(self) -> Path:
        return self.folder / "domain.lmctl"

    @property
    def dictionary(self) -> Path:
        return self.folder / "domain.dict"

    @property
    def info(self) -> dict:
        return json.loads((self.folder / "domain.json").read_text())

    def scorer(self) -> ClassBackoffLM:
        return ClassBackoffLM.read(self.folder / "domain.arpa", self.folder / "domain.classdef")


class ClassBackoffLM:
    """The domain model as a word scorer for other decoders (the eSpeak recogniser's beam search), read
    from its ARPA and class files: ln p(word | history) = ln p(token | token history) + ln p(word | token),
    where a word's token is its class tag, or the word itself for a template word. Natural logs."""

    def __init__(self, logprob: dict[tuple, float], backoff: dict[tuple, float],
                 classes: dict[str, dict[str, float]]):
        self.logprob, self.backoff = logprob, backoff  # natural logs, keyed by n-gram tuples
        self.order = max(len(g) for g in logprob)
        # word -> [(LM token, ln p(word | token))]: a class member through its tag, a template word itself
        self.tokens: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for tag, members in classes.items():
            for word, p in members.items():
                self.tokens[word].append((tag, math.log(p)))
        for (token,) in (g for g in logprob if len(g) == 1):
            if token not in classes and token not in ("<s>", "</s>", "<unk>"):
                self.tokens[token].append((token, 0.0))
        self._cache: dict[tuple, float] = {}

    @classmethod
    def read(cls, arpa: Path, classdef: Path) -> ClassBackoffLM:
        logprob, backoff, order = {}, {}, 0
        ln10 = math.log(10.0)
        for line in Path(arpa).read_text(encoding="utf-8").splitlines():
            if line.startswith("\\") and line.endswith("-grams:"):
                order = int(line[1:line.index("-")])
                continue
            parts = line.split("\t")
            if order and len(parts) >= 2:
                gram = tuple(parts[1].split())
                logprob[gram] = float(parts[0]) * ln10
                if len(parts) == 3:
                    backoff[gram] = float(parts[2]) * ln10
        classes: dict[str, dict[str, float]] = {}
        current = None
        for line in Path(classdef).read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "LMCLASS":
                current = classes.setdefault(parts[1], {})
            elif len(parts) == 2 and parts[0] == "END":
                current = None
            elif len(parts) == 2 and current is not None:
                current[parts[0]] = float(parts[1])
        return cls(logprob, backoff, classes)

    @property
    def words(self) -> list[str]:
        return sorted(self.tokens)

    def token_logprob(self, history: tuple[str, ...], token: str) -> float:
        """ln p(token | history) under the back-off model (history: earlier tokens, <s> first)."""
        history = history[len(history) - self.order + 1:] if self.order > 1 else ()
        key = (*history, token)
        if key not in self._cache:
            value, h = 0.0, history
            while (*h, token) not in self.logprob:
                if not h:
                    value = -math.inf  # not in the model's vocabulary
                    break
                value += self.backoff.get(h, 0.0)
                h = h[1:]
            else:
                value += self.logprob[(*h, token)]
            self._cache[key] = value
        return self._cache[key]


def _vocabulary_classes() -> dict[str, list[str]]:
    from holdtts.data.sentences import load_vocabulary

    vocabulary = load_vocabulary()
    return {name: sorted({w.lower() for w in getattr(vocabulary, name)}) for name in CLASSES}


def placeholder_sentences(classes: dict[str, list[str]], n: int = NUM_SENTENCES,
                          seed: int = DOMAIN_SEED) -> list[list[str]]:
    """The generator's sentences with each content word replaced by its class tag, normalised, as word
    lists."""
    from holdtts.data.sentences import Vocabulary, generate_sentences
    from holdtts.quality.asr import normalize_text

    placeholders = {}
    for name, words in classes.items():
        vowels = sum(w[0] in "aeiou" for w in words)
        placeholders[name] = (_placeholder(name, True),) * vowels + (_placeholder(name, False),) * (
            len(words) - vowels)
    sentences = generate_sentences(n, seed, vocabulary=Vocabulary(**placeholders))
    out = []
    for text in sentences:
        words = normalize_text(text).split()
        out.append([class_tag(m.group(1)) if (m := _PLACEHOLDER.match(w)) else w for w in words])
    return out


def estimate_arpa(sentences: list[list[str]], order: int = ORDER, discount: float = DISCOUNT) -> str:
    """ARPA text of a back-off n-gram: absolute discounting of every seen n-gram, the freed mass given
    to the (n-1)-gram distribution of the unseen words (Katz-style back-off weights, so each context's
    distribution sums to 1). Unigrams: discounted counts plus the freed mass spread evenly."""
    counts: list[Counter] = [Counter() for _ in range(order + 1)]  # counts[k][ngram of length k]
    for words in sentences:
        tokens = ["<s>", *words, "</s>"]
        for k in range(1, order + 1):
            for i in range(1 if k == 1 else 0, len(tokens) - k + 1):  # <s> is never predicted
                counts[k][tuple(tokens[i:i + k])] += 1
    vocab = sorted({g[0] for g in counts[1]} | {"<s>"})
    # unigram probabilities
    total = sum(counts[1].values())
    seen = [w for w in vocab if w != "<s>"]
    freed = discount * len(seen) / total
    prob: dict[tuple, float] = {}
    for w in seen:
        prob[(w,)] = (counts[1][(w,)] - discount) / total + freed / len(seen)
    # higher orders: discounted probabilities of the seen n-grams, grouped by context
    followers: list[dict[tuple, list[tuple]]] = [defaultdict(list) for _ in range(order + 1)]
    context_count: list[Counter] = [Counter() for _ in range(order + 1)]
    for k in range(2, order + 1):
        for gram, c in counts[k].items():
            followers[k][gram[:-1]].append(gram)
            context_count[k][gram[:-1]] += c
        for gram, c in counts[k].items():
            prob[gram] = (c - discount) / context_count[k][gram[:-1]]

    def lower(gram: tuple) -> float:
        """p(w | shorter context) under the back-off model."""
        if len(gram) == 1:
            return prob[gram]
        if gram in prob:
            return prob[gram]
        return backoff.get(gram[:-1], 1.0) * lower(gram[1:])

    backoff: dict[tuple, float] = {}
    for k in range(2, order + 1):  # contexts of length k - 1 get a weight; shorter ones first
        for context, grams in followers[k].items():
            left = discount * len(grams) / context_count[k][context]
            covered = sum(lower(g[1:]) for g in grams)
            backoff[context] = left / max(1.0 - covered, 1e-12)

    lines = ["\\data\\"]
    by_order = [[g for g in prob if len(g) == k] for k in range(order + 1)]
    by_order[1] = [("<s>",)] + by_order[1]
    for k in range(1, order + 1):
        lines.append(f"ngram {k}={len(by_order[k])}")
    for k in range(1, order + 1):
        lines += ["", f"\\{k}-grams:"]
        for gram in sorted(by_order[k]):
            p = -99.0 if gram == ("<s>",) else math.log10(prob[gram])
            entry = f"{p:.6f}\t{' '.join(gram)}"
            if k < order and gram != ("</s>",):
                entry += f"\t{math.log10(backoff[gram]) if gram in backoff else 0.0:.6f}"
            lines.append(entry)
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def _pronunciations(words: set[str]) -> dict[str, list[str]]:
    """ARPAbet pronunciations: pocketsphinx's own dictionary first, then CMUdict (stress removed), then
    EXTRA_PRONUNCIATIONS; then eSpeak NG's own (see below)."""
    import pocketsphinx

    from holdtts.data.text.frontend import pronouncing_dictionary

    found: dict[str, list[str]] = defaultdict(list)
    path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                word = parts[0].split("(")[0]
                if word in words:
                    found[word].append(" ".join(parts[1:]))
    cmu = pronouncing_dictionary()
    for word in words - set(found):
        if word in cmu:
            found[word] = [" ".join(re.sub(r"\d", "", p) for p in pron) for pron in cmu[word]]
        elif word in EXTRA_PRONUNCIATIONS:
            found[word] = list(EXTRA_PRONUNCIATIONS[word])
    # The speaker is eSpeak NG, so its own pronunciation is used: instead of CMUdict's for words of more
    # than ESPEAK_MIN_LETTERS letters (it differs in reduced vowels and in rare words' spelling-to-sound),
    # as one more alternative for short ones (eSpeak transcribes a word alone in its stressed form: "a" as
    # EY). Chosen on 16 member utterances of a study corpus (docs/quality.md): domain WER 52.0% with
    # CMUdict alone, 42.9% with this rule.
    for word, prons in found.items():
        spoken = espeak_arpabet(word)
        if spoken and len(word) > ESPEAK_MIN_LETTERS:
            found[word] = [spoken]
        elif spoken and spoken not in prons:
            found[word] = [*prons, spoken]
    return dict(found)


# eSpeak NG's en-us IPA -> pocketsphinx's ARPAbet (no stress). Longest match first; stress, length and
# syllable marks are dropped. Syllabic consonants get the schwa the CMU dictionary writes for them.
_IPA_TO_ARPABET = {
    "aɪ": "AY", "aʊ": "AW", "eɪ": "EY", "oʊ": "OW", "ɔɪ": "OY", "tʃ": "CH", "dʒ": "JH",
    "ɑ": "AA", "ɒ": "AA", "æ": "AE", "a": "AE", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɚ": "ER", "ɜ": "ER",
    "ɛ": "EH", "e": "EH", "ɪ": "IH", "ᵻ": "IH", "i": "IY", "ʊ": "UH", "u": "UW", "ɔ": "AO", "o": "OW",
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G", "g": "G", "f": "F", "v": "V", "θ": "TH",
    "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "x": "HH", "m": "M", "n": "N",
    "ŋ": "NG", "l": "L", "ɹ": "R", "r": "R", "w": "W", "j": "Y", "ɾ": "T",
    "l̩": "AH L", "n̩": "AH N", "m̩": "AH M",
}
_IPA_KEYS = sorted(_IPA_TO_ARPABET, key=len, reverse=True)
_IPA_SKIP = set("ˈˌːˑ.‿͡ʔ-")


def espeak_arpabet(word: str) -> str | None:
    """The ARPAbet of eSpeak NG's own pronunciation of `word` (the mini corpus's speaker), or None when
    its transcription holds a symbol the table does not map."""
    from holdtts.data.espeak import phonemize_ipa

    ipa = phonemize_ipa(word).replace(" ", "")
    phones, i = [], 0
    while i < len(ipa):
        if ipa[i] in _IPA_SKIP:
            i += 1
            continue
        match = next((k for k in _IPA_KEYS if ipa.startswith(k, i)), None)
        if match is None:
            return None
        phones.append(_IPA_TO_ARPABET[match])
        i += len(match)
    return " ".join(phones) or None


def model_fingerprint() -> str:
    """What the model depends on: this module's settings, the CMUdict and pocketsphinx releases, the
    generator's source."""
    from holdtts.data import sentences
    from holdtts.data.espeak import espeak_version

    parts = [str(FORMAT_VERSION), str(DOMAIN_SEED), str(NUM_SENTENCES), str(DISCOUNT), str(ORDER),
             importlib.metadata.version("cmudict"), importlib.metadata.version("pocketsphinx"), espeak_version(),
             repr(sorted(_IPA_TO_ARPABET.items())), str(ESPEAK_MIN_LETTERS),
             Path(sentences.__file__).read_text(encoding="utf-8"), repr(sorted(EXTRA_PRONUNCIATIONS.items()))]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def default_cache_root() -> Path:
    from holdtts.utils.fileio import user_cache_dir

    return user_cache_dir("domain_lm")


def build_domain_model(folder: str | os.PathLike | None = None) -> DomainModel:
    """Build the mini corpus's domain model into `folder` (default: a per-version folder under
    $HOLDTTS_CACHE or ~/.cache/holdtts), or return it when it is already there. Takes about 20 s."""
    folder = Path(folder) if folder is not None else default_cache_root() / model_fingerprint()
    if (folder / "domain.json").is_file():
        return DomainModel(folder)
    classes = _vocabulary_classes()
    sentences = placeholder_sentences(classes)
    plain_words = {w for words in sentences for w in words if not w.startswith("[")}
    # A class member that is also a template word stays a plain word (one LM id per word).
    classes = {name: [w for w in words if w not in plain_words] for name, words in classes.items()}
    pronunciations = _pronunciations(plain_words | {w for ws in classes.values() for w in ws})
    unspeakable = sorted(plain_words - set(pronunciations))
    if unspeakable:
        raise HoldttsError(f"domain language model: no pronunciation for template word(s) {unspeakable[:5]}; "
                           "add them to EXTRA_PRONUNCIATIONS")
    classes = {name: [w for w in words if w in pronunciations] for name, words in classes.items()}
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write_model(folder, sentences, classes, plain_words, pronunciations)
    except HoldttsError:
        if (folder / "domain.json").is_file():  # another process built it meanwhile
            return DomainModel(folder)
        raise
    return DomainModel(folder)


def _write_model(folder: Path, sentences, classes, plain_words, pronunciations) -> None:
    from holdtts.utils.fileio import atomic_dir

    arpa = estimate_arpa(sentences)
    with atomic_dir(folder) as tmp:
        (tmp / "domain.arpa").write_text(arpa, encoding="utf-8")
        with open(tmp / "domain.classdef", "w", encoding="utf-8") as f:
            for name, words in classes.items():
                f.write(f"LMCLASS {class_tag(name)}\n")
                f.writelines(f"{w} {1.0 / len(words):.8g}\n" for w in words)
                f.write(f"END {class_tag(name)}\n\n")
        tags = " ".join(class_tag(name) for name in classes)
        # Relative paths: pocketsphinx prepends the lmctl file's folder.
        (tmp / "domain.lmctl").write_text(f"{{ domain.classdef }}\ndomain.arpa domain {{ {tags} }}\n")
        with open(tmp / "domain.dict", "w", encoding="utf-8") as f:
            for word in sorted(pronunciations):
                for i, pron in enumerate(pronunciations[word]):
                    f.write(f"{word if i == 0 else f'{word}({i + 1})'} {pron}\n")
        (tmp / "domain.json").write_text(json.dumps({
            "what": "class-based 3-gram of holdtts.data.sentences' templates (content words as classes)",
            "seed": DOMAIN_SEED, "sentences": NUM_SENTENCES, "order": ORDER, "discount": DISCOUNT,
            "template_words": len(plain_words), "class_sizes": {n: len(w) for n, w in classes.items()},
            "dictionary_words": len(pronunciations), "fingerprint": folder.name,
            "cmudict": importlib.metadata.version("cmudict"),
            "pocketsphinx": importlib.metadata.version("pocketsphinx")}, indent=1))
