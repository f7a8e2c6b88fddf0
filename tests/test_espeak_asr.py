"""The eSpeak recogniser (wer_espeak): model shapes and CTC loss, greedy decoding, the lexicon correction,
the beam search with the domain model's scorer, training on a few eSpeak NG clips, the cache, and the
metric's way through evaluate. Models here are tiny: nothing is trained at full scale."""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import soundfile
import torch

from holdtts.errors import HoldttsError
from holdtts.quality import asr, domain_lm, espeak_asr, espeak_train
from holdtts.quality.espeak_asr import TOKENS, EspeakCTC, ModelConfig

TINY = ModelConfig(channels=32, hidden=32, layers=1, dropout=0.0)
SENTENCES = ["the cat sat", "a dog ran", "the dog sat", "a cat ran", "the cat ran", "a dog sat"]


def _speak(text: str, rate: int = 170) -> np.ndarray:
    from holdtts.data.espeak import EspeakSynthesizer

    return EspeakSynthesizer("en-us").synthesize(text, rate_wpm=rate).astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def tiny_speech() -> espeak_train.Speech:
    feats = [espeak_asr.features(_speak(t, 160 + 10 * i), 22050).to(torch.float16) for i, t in enumerate(SENTENCES)]
    return espeak_train.Speech(feats, list(SENTENCES))


def _scores(path: str) -> torch.Tensor:
    """[frames, tokens] log-probabilities that put 0.9 on each listed token ('-' is the blank)."""
    index = {**{t: i for i, t in enumerate(TOKENS)}, "-": 0, " ": 1}
    probs = torch.full((len(path), len(TOKENS)), 0.1 / (len(TOKENS) - 1))
    for frame, token in enumerate(path):
        probs[frame, index[token]] = 0.9
    return probs.log()


def test_model_shapes_ctc_loss_and_size():
    torch.manual_seed(0)
    model = EspeakCTC(TINY)
    lengths = torch.tensor([50, 41, 30])
    feats = torch.randn(3, 50, 80)
    log_probs, out_lengths = model(feats, lengths)
    assert log_probs.shape == (3, 25, len(TOKENS)) and out_lengths.tolist() == [25, 21, 15]
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 25), atol=1e-5)
    targets = [espeak_asr.encode_text(t) for t in ("cat", "a dog", "it's")]
    loss = torch.nn.CTCLoss(blank=0)(log_probs.transpose(0, 1), torch.tensor(sum(targets, [])), out_lengths,
                                     torch.tensor([len(t) for t in targets]))
    loss.backward()
    assert math.isfinite(loss.item()) and model.out.weight.grad.abs().sum() > 0
    full = sum(p.numel() for p in EspeakCTC().parameters())
    assert 1_000_000 <= full <= 3_000_000  # the default size: 1.1M


def test_text_encoding_and_greedy_decoding():
    assert espeak_asr.encode_text(" a cat's  hat") == [TOKENS.index(c) for c in "a|cat's|hat|"]
    with pytest.raises(HoldttsError, match="cannot spell"):
        espeak_asr.encode_text("route 66")
    # repeats collapse, blanks separate a doubled letter, separators become single spaces
    assert espeak_asr.greedy_decode(_scores("--cc-aa-tt-  --t-oo-o--  ")) == "cat too"
    assert espeak_asr.greedy_decode(_scores("-----")) == ""


def test_lexicon_correction_picks_the_nearest_vocabulary_word():
    vocabulary = ["cat", "coat", "dog", "house", "the"]
    assert espeak_asr.correct_words("teh cat dgo hous", vocabulary) == "the cat dog house"
    assert espeak_asr.correct_words("", vocabulary) == ""


def _tiny_domain(tmp_path):
    """A domain model of the real format: a class 3-gram over [nouns] and plain template words."""
    sentences = [s.split() for s in ("the [nouns] sat", "a [nouns] ran", "the [nouns] ran", "the [nouns] sat")]
    (tmp_path / "domain.arpa").write_text(domain_lm.estimate_arpa(sentences))
    (tmp_path / "domain.classdef").write_text("LMCLASS [nouns]\ncat 0.75\ncot 0.25\nEND [nouns]\n")
    return domain_lm.DomainModel(tmp_path).scorer()


def test_domain_scorer_is_the_class_model(tmp_path):
    scorer = _tiny_domain(tmp_path)
    assert scorer.words == ["a", "cat", "cot", "ran", "sat", "the"]
    assert dict(scorer.tokens["cat"]) == {"[nouns]": pytest.approx(math.log(0.75))}
    tokens = ["a", "the", "[nouns]", "sat", "ran", "</s>"]
    for history in [("<s>",), ("<s>", "the"), ("the", "[nouns]"), ("a", "[nouns]")]:
        total = sum(math.exp(scorer.token_logprob(history, t)) for t in tokens)
        assert total == pytest.approx(1.0, abs=1e-4), history
    assert scorer.token_logprob(("<s>",), "the") > scorer.token_logprob(("<s>",), "a")
    assert scorer.token_logprob(("<s>",), "dog") == -math.inf


@pytest.mark.skipif(not espeak_asr.have_beam_search(), reason="flashlight-text is not installed")
def test_beam_search_keeps_to_the_lexicon_and_uses_the_language_model(tmp_path):
    recognizer = espeak_asr.EspeakRecognizer(EspeakCTC(TINY), _tiny_domain(tmp_path))
    assert recognizer.method == "beam" and recognizer.describe().startswith("beam")
    assert recognizer.decode(_scores("-tthe- -caa-t- -sa-t--")) == "the cat sat"
    # "c?t" with the vowel unclear between a and o: the class model (cat 0.75, cot 0.25) decides
    scores = _scores("the cat sat ").exp()
    scores[5, TOKENS.index("a")] = scores[5, TOKENS.index("o")] = 0.45  # frame 5: the vowel of "cat"
    assert recognizer.decode(scores.log()) == "the cat sat"
    # a word outside the lexicon cannot come out: "dog" is heard, a vocabulary word is written
    assert recognizer.decode(_scores("the dog sat ")).split()[1] in {"cat", "cot"}
    assert recognizer.decode(_scores("the dog sat "), "greedy") == "the dog sat"


def test_training_lowers_the_loss_on_a_few_clips(tiny_speech):
    cfg = espeak_train.TrainConfig(num_utts=6, epochs=12, batch_size=3, lr=5e-3, warmup_steps=2, model=TINY,
                                   seed=3)
    model, history = espeak_train.train_model(tiny_speech, cfg, valid=tiny_speech)
    assert len(history) == 12 and history[-1]["steps"] == 24
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert set(history[-1]["valid_greedy"]) == {"cer", "wer", "utterances"}
    again, _ = espeak_train.train_model(tiny_speech, cfg)  # seeded: the same weights
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_batches_cover_every_utterance_once():
    lengths = [5, 3, 9, 1, 7, 2, 8]
    batches = espeak_train.make_batches(lengths, 3, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(7)) and max(map(len, batches)) == 3


@pytest.fixture
def tiny_build(tmp_path, monkeypatch, tiny_speech):
    """build_recognizer at a tiny size into a fresh cache, with the speech synthesis replaced by the six
    clips above (the real synthesis is test_synthesized_speech_...) and the domain model by _tiny_domain."""
    monkeypatch.setenv("HOLDTTS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "domain").mkdir()
    scorer = _tiny_domain(tmp_path / "domain")
    monkeypatch.setattr(domain_lm, "build_domain_model", lambda: type("Stub", (), {"scorer": lambda self: scorer})())
    calls = []

    def fake_speech(cfg, work_dir, nj):
        calls.append(cfg)
        return tiny_speech, espeak_train.Speech(tiny_speech.feats[:1], tiny_speech.texts[:1])

    monkeypatch.setattr(espeak_train, "synthesize_speech", fake_speech)
    cfg = espeak_train.TrainConfig(num_utts=6, epochs=1, batch_size=3, warmup_steps=1, model=TINY)
    return cfg, calls


def test_build_is_cached_by_fingerprint(tiny_build, tmp_path):
    cfg, calls = tiny_build
    folder = espeak_train.build_recognizer(cfg=cfg, threads=1)
    assert folder == tmp_path / "cache" / "espeak_asr" / espeak_train.fingerprint(cfg)
    info = espeak_train.read_info(folder)
    assert info["train_utterances"] == 6 and info["train_cpu_s"] >= 0 and len(calls) == 1
    # the decoding method was chosen on the held-out utterance, every available method tried
    assert {"greedy", "nearest-word"} <= set(info["decoder"]["valid_wer"])
    assert info["decoder"]["method"] in espeak_asr.DECODERS
    assert (folder / "train_text.txt").read_text().splitlines() == sorted(set(SENTENCES))
    model = espeak_asr.load_model(folder / "model.pt")  # weights_only load
    assert model.cfg == TINY
    assert espeak_train.build_recognizer(cfg=cfg) == folder and len(calls) == 1  # reused
    other = espeak_train.scaled(cfg, epochs=2)
    assert espeak_train.fingerprint(other) != espeak_train.fingerprint(cfg)
    assert espeak_train.build_recognizer(cfg=other) != folder and len(calls) == 2  # rebuilt
    with pytest.raises(HoldttsError, match="other settings"):
        espeak_train.build_recognizer(folder, other)
    # no temporary leftovers; each build's lock file stays (empty: unlinking a lock file races its waiters)
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".") and p.suffix != ".lock"] == []
    overlap = espeak_train.training_overlap(folder, ["the cat sat", "the cat sat down"])
    assert overlap == {"scored_sentences": 2, "verbatim_in_training_text": 1}


def test_two_processes_that_need_the_recogniser_build_it_once(tiny_build, monkeypatch):
    """The second caller waits on the build lock and then finds it built; every build trains on
    BUILD_THREADS threads whatever torch's own setting (the study's jobs run single-threaded)."""
    import threading

    cfg, calls = tiny_build
    threads_seen = []
    train = espeak_train.train_model
    started, release = threading.Event(), threading.Event()

    def slow_train(*args, **kwargs):
        threads_seen.append(torch.get_num_threads())
        started.set()
        release.wait(10)
        return train(*args, **kwargs)

    monkeypatch.setattr(espeak_train, "train_model", slow_train)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folders = []
        first = threading.Thread(target=lambda: folders.append(espeak_train.build_recognizer(cfg=cfg)))
        first.start()
        assert started.wait(120)
        second = threading.Thread(target=lambda: folders.append(espeak_train.build_recognizer(cfg=cfg)))
        second.start()
        second.join(0.5)
        assert second.is_alive()  # waiting on the lock, not building a second copy
        release.set()
        first.join(120)
        second.join(120)
    finally:
        torch.set_num_threads(previous)
    assert len(folders) == 2 and folders[0] == folders[1] and len(calls) == 1
    assert threads_seen == [espeak_train.BUILD_THREADS]
    assert espeak_train.read_info(folders[0])["torch_threads"] == espeak_train.BUILD_THREADS


def test_wer_espeak_goes_through_evaluate(tiny_build, tmp_path, monkeypatch):
    from holdtts.quality import sanity
    from holdtts.quality.evaluate import evaluate_pairs

    cfg, _ = tiny_build
    folder = espeak_train.build_recognizer(tmp_path / "model", cfg)
    monkeypatch.setenv(asr.ESPEAK_MODEL_ENV, str(folder))
    pairs, texts = {}, {"u1": "The cat sat.", "u2": "A dog ran home."}
    for utt, text in texts.items():
        soundfile.write(tmp_path / f"{utt}.wav", _speak(text), 22050, subtype="PCM_16")
        pairs[utt] = (tmp_path / f"{utt}.wav", tmp_path / f"{utt}.wav")
    rows, summary = evaluate_pairs(pairs, texts, metrics=("wer_espeak",), cache_dir=tmp_path / "clips")
    result = summary["wer_espeak"]
    assert result["recognizer"] == "espeak" and result["model_fingerprint"] == espeak_train.fingerprint(cfg)
    assert result["training_overlap"] == {"scored_sentences": 2, "verbatim_in_training_text": 1}
    assert result["generated"]["words"] == 7 and 0 <= result["generated"]["cer"]
    assert result["generated"] == result["reference"]
    assert {"wer_espeak_hyp", "ref_wer_espeak_errors", "wer_espeak_char_errors"} <= set(rows[0])
    weights = hashlib.sha256((folder / "model.pt").read_bytes()).hexdigest()
    assert result["weights_sha256"] == weights
    key = asr.recognizer_key("espeak")
    assert key.startswith(f"asr_espeak_{espeak_train.fingerprint(cfg)}_{weights[:8]}_")
    assert (tmp_path / "clips" / key).is_dir()
    noisy = json.loads(json.dumps(summary))
    noisy["wer_espeak"]["generated"].update(wer=2.0, cer=2.0)
    table = sanity.sanity_table({"real": summary, "noisy": noisy})
    assert {"wer_espeak", "cer_espeak"} <= set(table["metrics"])


def test_auto_metrics_on_a_mini_corpus_include_its_recognisers(tmp_path):
    from holdtts.errors import HoldttsError
    from holdtts.quality.evaluate import METRICS
    from holdtts.quality.system import default_metrics, resolve_metrics

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "corpus.json").write_text(json.dumps({"generator": "holdtts.data.minicorpus"}))
    (tmp_path / "splits.json").write_text(json.dumps({"corpus_dir": str(tmp_path / "corpus")}))
    names = default_metrics(tmp_path)
    assert names.index("wer") < names.index("wer_domain") < names.index("wer_espeak") < names.index("mcd")
    assert set(names) == set(METRICS)
    elsewhere = default_metrics(tmp_path / "elsewhere")  # not a mini corpus: neither recogniser applies
    assert "wer_espeak" not in elsewhere and "wer_domain" not in elsewhere
    assert resolve_metrics("auto,-wer_espeak", tmp_path) == [n for n in names if n != "wer_espeak"]
    assert resolve_metrics("mcd, wer_espeak,mcd", tmp_path) == ["mcd", "wer_espeak"]
    with pytest.raises(HoldttsError, match="'wer_espeak' is not among"):
        resolve_metrics("mcd,-wer_espeak", tmp_path)
    # the recipe's mini default: the eSpeak recogniser alone; on other data it drops what auto did not bring
    assert resolve_metrics("auto,-wer,-wer_domain", tmp_path) == ["fd_speaker", "fd_logmel", "dnsmos", "wer_espeak",
                                                                  "mcd"]
    assert resolve_metrics("auto,-wer,-wer_domain", tmp_path / "elsewhere") == ["fd_speaker", "fd_logmel", "dnsmos",
                                                                                 "mcd"]
    assert resolve_metrics("auto,wer", tmp_path) == names
    with pytest.raises(HoldttsError, match="'wer' is not among"):
        resolve_metrics("auto,-wer,-wer", tmp_path / "elsewhere")  # only the mini-only metrics are let go


def test_synthesized_speech_comes_from_mini_corpora_of_its_own_seeds(tmp_path):
    cfg = espeak_train.TrainConfig(num_utts=4, speaker_share=0.5, valid_utts=0, model=TINY)
    train, valid = espeak_train.synthesize_speech(cfg, tmp_path, nj=1)
    assert len(train.texts) == 4 and valid.texts == []
    corpora = {p.parent.name: json.loads(p.read_text()) for p in tmp_path.glob("*/corpus.json")}
    assert {c["seed"] for c in corpora.values()} == {espeak_train.TRAIN_SEED, espeak_train.TRAIN_SEED + 1}
    assert corpora["speakers"]["num_speakers"] == 2
    assert all(f.shape[1] == 80 and f.dtype == torch.float16 for f in train.feats)
    assert all(t == asr.normalize_text(t) for t in train.texts)
