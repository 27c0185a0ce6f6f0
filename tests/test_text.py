"""Tests for asr.text: number words, normalisation, vocabulary, greedy CTC."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.text import (
    BLANK,
    LABELS,
    Vocabulary,
    clean_sentence,
    ctc_collapse,
    greedy_decode,
    greedy_decode_with_frames,
    join_split_compounds,
    normalize_text,
    number_to_words,
    ordinal_to_words,
)

ALPHABET = set(LABELS) - {LABELS[BLANK]}


def one_hot(ids: list[int], vocab_size: int = len(LABELS)) -> np.ndarray:
    """(T, V) log-probabilities whose argmax follows ``ids``."""
    scores = np.full((len(ids), vocab_size), -10.0, dtype=np.float32)
    scores[np.arange(len(ids)), ids] = 0.0
    return scores


# ---------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,words",
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (99, "ninety nine"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (1999, "one thousand nine hundred ninety nine"),
        (1_000_000, "one million"),
        (2_000_017, "two million seventeen"),
        (-42, "minus forty two"),
        (
            10**15 - 1,
            "nine hundred ninety nine trillion nine hundred ninety nine billion nine hundred "
            "ninety nine million nine hundred ninety nine thousand nine hundred ninety nine",
        ),
        (10**15, "one quadrillion"),
    ],
)
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


def test_number_to_words_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="expected an integer"):
        number_to_words(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected abs"):
        number_to_words(10**40)


@pytest.mark.parametrize(
    "n,words",
    [
        ("1st", "first"),
        ("2nd", "second"),
        ("3rd", "third"),
        ("4th", "fourth"),
        ("12th", "twelfth"),
        ("20th", "twentieth"),
        ("22nd", "twenty second"),
        ("100th", "one hundredth"),
        (1000, "one thousandth"),
        (59, "fifty ninth"),
    ],
)
def test_ordinal_to_words(n: int | str, words: str) -> None:
    assert ordinal_to_words(n) == words


def test_ordinal_to_words_rejects_text() -> None:
    with pytest.raises(ValueError, match="expected an ordinal"):
        ordinal_to_words("first")


# ---------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,normalized",
    [
        ("Hello, World!", "hello world"),
        ("In 1984 it rained.", "in nineteen eighty four it rained"),
        ("by 2025", "by twenty twenty five"),
        ("the year 1900", "the year nineteen hundred"),
        ("in 1905", "in nineteen oh five"),
        ("in 2005", "in two thousand five"),
        ("in 2000", "in two thousand"),
        ("the 1990s", "the nineteen nineties"),
        ("1,000 people", "one thousand people"),
        ("12,345,678", "twelve million three hundred forty five thousand six hundred seventy eight"),
        ("1000 people", "one thousand people"),
        ("3.5 kg", "three point five kg"),
        ("50% off", "fifty percent off"),
        ("salt & pepper", "salt and pepper"),
        ("the 1st, 2nd, 3rd and 4th", "the first second third and fourth"),
        ("on the 22nd", "on the twenty second"),
        ("it's -5 outside", "it's minus five outside"),
        ("007", "zero zero seven"),
        ("mp3", "mp three"),
        ("'hello' she said", "hello she said"),
        ("don't stop at o'clock", "don't stop at o'clock"),
        ("the dogs' bowls", "the dogs' bowls"),
        ("say 'dogs' twice", "say dogs twice"),
        ("it’s curly", "it's curly"),
        ("well-known and/or", "well known and or"),
        ("Café Ñandú naïve Straße Ærø", "cafe nandu naive strasse aero"),
        ("  lots   of\tspace\n", "lots of space"),
        ("?!...", ""),
    ],
)
def test_normalize_text(raw: str, normalized: str) -> None:
    assert normalize_text(raw) == normalized


def test_normalize_text_rejects_non_str() -> None:
    with pytest.raises(ValueError, match="expected str"):
        normalize_text(None)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_normalize_text_alphabet_and_idempotence(text: str) -> None:
    once = normalize_text(text)
    assert set(once) <= ALPHABET
    assert once == once.strip() and "  " not in once
    assert normalize_text(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789.,%&-' abcst/", max_size=40))
def test_normalize_text_numeric_soup(text: str) -> None:
    once = normalize_text(text)
    assert set(once) <= ALPHABET
    assert normalize_text(once) == once


def test_clean_sentence() -> None:
    assert clean_sentence("Hello there, world!") == "hello there world"
    assert clean_sentence("Too short") is None
    assert clean_sentence("...") is None
    assert clean_sentence("one two", min_words=2) == "one two"
    assert clean_sentence(" ".join(["word"] * 26)) is None
    assert clean_sentence(" ".join(["word"] * 25)) == " ".join(["word"] * 25)
    assert clean_sentence("I have 3 cats", max_words=4) == "i have three cats"
    assert clean_sentence("I have 21 cats", max_words=4) is None  # counted after expansion
    with pytest.raises(ValueError, match="min_words"):
        clean_sentence("a b c", min_words=5, max_words=2)


# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------


def test_vocabulary_basics() -> None:
    vocab = Vocabulary()
    assert len(vocab) == 29 and vocab.blank == BLANK == 0
    assert vocab.labels[1] == " " and vocab.labels[2] == "'"
    text = "don't panic"
    ids = vocab.encode(text)
    assert BLANK not in ids
    assert vocab.decode(ids) == text
    assert vocab.decode([BLANK, *ids, BLANK]) == text


def test_vocabulary_encode_rejects_unknown_characters() -> None:
    vocab = Vocabulary()
    with pytest.raises(ValueError, match="'H'"):
        vocab.encode("Hello")
    with pytest.raises(ValueError, match="'_'"):
        vocab.encode("a_b")
    with pytest.raises(ValueError, match="expected ids"):
        vocab.decode([len(vocab)])


def test_vocabulary_serialisation_and_pyctcdecode_labels() -> None:
    vocab = Vocabulary()
    labels = vocab.pyctcdecode_labels()
    assert labels[0] == "" and labels[1] == " " and labels[3:] == list("abcdefghijklmnopqrstuvwxyz")
    restored = Vocabulary.from_list(vocab.to_list())
    assert restored == vocab
    assert vocab.to_list() == list(LABELS)
    with pytest.raises(ValueError, match="unique"):
        Vocabulary(("_", "a", "a"))
    with pytest.raises(ValueError, match="single-character"):
        Vocabulary(("_", "ab"))


# ---------------------------------------------------------------------------
# CTC
# ---------------------------------------------------------------------------


def ids_of(spec: str) -> list[int]:
    """ "h h _ e" -> ids, with "_" the blank."""
    return [LABELS.index(c) for c in spec.split(" ")]


def test_ctc_collapse_classic_cases() -> None:
    vocab = Vocabulary()
    assert vocab.decode(ctc_collapse(ids_of("h h _ e _ l l _ l o"))) == "hello"
    assert vocab.decode(ctc_collapse(ids_of("h e l l o"))) == "helo"
    assert ctc_collapse([]) == []
    assert ctc_collapse([BLANK, BLANK]) == []
    assert ctc_collapse([5, 5, 9, 9], blank=9) == [5]


def test_greedy_decode_one_hot_numpy_and_torch() -> None:
    space = LABELS.index(" ")
    frames = ids_of("h h _ i _ _") + [space, space] + ids_of("_ y o o u _")
    scores = one_hot(frames)
    assert greedy_decode(scores) == "hi you"
    assert greedy_decode(torch.from_numpy(scores)) == "hi you"
    assert greedy_decode(torch.from_numpy(scores).to(torch.bfloat16)) == "hi you"
    assert greedy_decode(one_hot([space, space, BLANK, space])) == ""


def test_greedy_decode_validates_shape() -> None:
    with pytest.raises(ValueError, match=r"\(T, V\)"):
        greedy_decode(np.zeros((2, 3, len(LABELS))))
    with pytest.raises(ValueError, match="29 classes"):
        greedy_decode(np.zeros((4, 10)))


def test_greedy_decode_with_frames() -> None:
    frames = ids_of("_ h h _ e _ l l _ l o o")
    got = greedy_decode_with_frames(one_hot(frames))
    assert [(LABELS[i], t) for i, t in got] == [("h", 1), ("e", 4), ("l", 6), ("l", 9), ("o", 10)]
    assert greedy_decode_with_frames(torch.from_numpy(one_hot(frames))) == got


@pytest.mark.parametrize(
    ("text", "joined"),
    [
        ("we will meet again to morrow", "we will meet again tomorrow"),
        ("for to day is a sabbath", "for today is a sabbath"),
        ("from day to day", "from day to day"),
        ("any thing or every thing every where", "anything or everything everywhere"),
        ("go to daylight and into day to morrows", "go to daylight and into day to morrows"),
        ("every one of them", "every one of them"),
    ],
)
def test_join_split_compounds(text: str, joined: str) -> None:
    assert join_split_compounds(text) == joined


def test_lm_text_joins_split_compounds(tmp_path) -> None:
    from asr.lm import read_sentences

    path = tmp_path / "train.txt"
    path.write_text("We will meet again to-morrow.\nDid you see any thing?\n", encoding="utf-8")
    assert read_sentences([path]) == ["we will meet again tomorrow", "did you see anything"]
