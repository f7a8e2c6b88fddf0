"""The mini corpus's domain recogniser: its back-off 3-gram is a proper distribution, its placeholder text
holds no corpus words, and eSpeak NG's pronunciations map onto pocketsphinx's phone set."""
from __future__ import annotations

import itertools

import pytest

from holdtts.quality import domain_lm

# pocketsphinx en-us's phones (CMUdict's 39, no stress)
ARPABET = set("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V "
              "W Y Z ZH".split())


def _parse_arpa(text: str) -> tuple[dict, dict]:
    prob, backoff, order = {}, {}, 0
    for line in text.splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1])
            continue
        parts = line.split("\t")
        if order and len(parts) >= 2:
            gram = tuple(parts[1].split())
            prob[gram] = 10 ** float(parts[0])
            if len(parts) == 3:
                backoff[gram] = 10 ** float(parts[2])
    return prob, backoff


def _p(prob, backoff, history: tuple, word: str) -> float:
    gram = (*history, word)
    if gram in prob:
        return prob[gram]
    if not history:
        return 0.0
    return backoff.get(history, 1.0) * _p(prob, backoff, history[1:], word)


def test_every_context_of_the_backoff_model_sums_to_one():
    sentences = [s.split() for s in ("the cat sat", "the dog sat down", "a cat ran", "the cat ran down",
                                     "a dog sat", "the dog ran")]
    prob, backoff = _parse_arpa(domain_lm.estimate_arpa(sentences))
    vocab = sorted({w for s in sentences for w in s} | {"</s>"})
    histories = {()} | {tuple(g) for g in itertools.chain.from_iterable(
        [(["<s>", *s, "</s>"][i:i + k]) for i in range(len(s) + 2 - k)] for s in sentences for k in (1, 2))
        if "</s>" not in g}
    for history in histories:
        total = sum(_p(prob, backoff, history, w) for w in vocab)
        assert total == pytest.approx(1.0, abs=1e-4), history
    # a seen trigram keeps most of its count; an unseen one backs off to a smaller probability
    assert _p(prob, backoff, ("the", "cat"), "sat") > _p(prob, backoff, ("the", "cat"), "down")


def test_placeholder_text_names_classes_never_content_words():
    classes = {"nouns": ["abbey", "zebra"], "adjectives": ["able", "zany"], "adverbs": ["ably", "zanily"],
               "participles": ["abated", "zoned"], "gerunds": ["abating", "zoning"], "names": ["adams", "zorn"]}
    sentences = domain_lm.placeholder_sentences(classes, n=200, seed=3)
    words = {w for s in sentences for w in s}
    assert {domain_lm.class_tag(name) for name in classes} <= words
    assert not words & {w for ws in classes.values() for w in ws}


@pytest.mark.parametrize("word, expected", [("fifty", "F IH F T IY"), ("kirkland", "K ER K L AH N D"),
                                            ("celebration", "S EH L AH B R EY SH AH N")])
def test_espeak_pronunciations_in_arpabet(word, expected):
    assert domain_lm.espeak_arpabet(word) == expected


def test_espeak_pronunciations_use_only_pocketsphinx_phones():
    from holdtts.data.sentences import load_vocabulary

    vocabulary = load_vocabulary()
    words = [w.lower() for name in domain_lm.CLASSES for w in getattr(vocabulary, name)[::97]]
    mapped = {w: domain_lm.espeak_arpabet(w) for w in words}
    assert sum(v is None for v in mapped.values()) <= 0.02 * len(words), "too many unmapped eSpeak symbols"
    for word, pron in mapped.items():
        if pron is not None:
            assert set(pron.split()) <= ARPABET, (word, pron)
