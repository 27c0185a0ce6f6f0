"""Tests for asr.metrics: edit distance, corpus-level WER and CER."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.metrics import ErrorCounts, cer, edit_distance, error_rates, error_rates_by, wer


@pytest.mark.parametrize(
    ("ref", "hyp", "distance"),
    [
        ([], [], 0),
        ([], ["a", "b"], 2),  # insertions only
        (["a", "b", "c"], [], 3),  # deletions only
        (["a", "b", "c"], ["a", "x", "c"], 1),  # substitution
        (["a", "b", "c"], ["a", "b", "x", "c"], 1),  # insertion
        (["a", "b", "c"], ["a", "c"], 1),  # deletion
        (["a", "b"], ["b", "a"], 2),  # a swap is two edits
        (list("kitten"), list("sitting"), 3),
        ("flaw", "lawn", 2),  # plain strings are character sequences
    ],
)
def test_edit_distance_known_cases(ref: list[str], hyp: list[str], distance: int) -> None:
    assert edit_distance(ref, hyp) == distance
    assert edit_distance(hyp, ref) == distance


@cache
def _naive(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    if not a or not b:
        return len(a) + len(b)
    return min(_naive(a[1:], b) + 1, _naive(a, b[1:]) + 1, _naive(a[1:], b[1:]) + (a[0] != b[0]))


@settings(max_examples=200, deadline=None)
@given(
    ref=st.lists(st.sampled_from("abcd"), max_size=7),
    hyp=st.lists(st.sampled_from("abcd"), max_size=7),
)
def test_edit_distance_matches_recursive_definition(ref: list[str], hyp: list[str]) -> None:
    d = edit_distance(ref, hyp)
    assert d == _naive(tuple(ref), tuple(hyp))
    assert abs(len(ref) - len(hyp)) <= d <= max(len(ref), len(hyp))


def test_wer_is_corpus_level_not_mean_of_utterances() -> None:
    pairs = [
        # 6 reference words: "sat"->"sit" (S) and the second "the" dropped (D) = 2 errors.
        ("the cat sat on the mat", "the cat sit on mat"),
        # 2 reference words: "big" and "again" inserted (I) = 2 errors.
        ("hello world", "hello big world again"),
    ]
    counts = error_rates(pairs)
    assert (counts.word_errors, counts.words, counts.utterances) == (4, 8, 2)
    assert counts.wer == pytest.approx(4 / 8)
    mean_of_utterances = (wer(*pairs[0]) + wer(*pairs[1])) / 2
    assert mean_of_utterances == pytest.approx((2 / 6 + 2 / 2) / 2)
    assert counts.wer != pytest.approx(mean_of_utterances)


def test_single_utterance_wer() -> None:
    assert wer("a b c d", "a b c d") == 0.0
    assert wer("a b c d", "a x c d") == pytest.approx(0.25)
    assert wer("a b c d", "a c d") == pytest.approx(0.25)
    assert wer("a b c d", "") == pytest.approx(1.0)


def test_wer_can_exceed_one() -> None:
    assert wer("yes", "no no no no") == pytest.approx(4.0)  # 1 S + 3 I over 1 word
    assert wer("a", "a b c d") == pytest.approx(3.0)


def test_wer_ignores_extra_whitespace() -> None:
    assert wer("  the   cat ", "the cat") == 0.0


def test_cer_counts_characters_including_spaces() -> None:
    assert cer("abc", "abd") == pytest.approx(1 / 3)
    assert cer("abc", "abc") == 0.0
    # "a b" is three characters; the hypothesis drops the space.
    assert cer("a b", "ab") == pytest.approx(1 / 3)
    counts = error_rates([("hello", "helo"), ("ok", "okay")])
    assert (counts.char_errors, counts.chars) == (3, 7)
    assert counts.cer == pytest.approx(3 / 7)


def test_empty_reference_counts_insertions() -> None:
    counts = error_rates([("", "")])
    assert (counts.word_errors, counts.words, counts.wer, counts.cer) == (0, 0, 0.0, 0.0)
    counts = error_rates([("", "extra words"), ("one two", "one two")])
    assert (counts.word_errors, counts.words) == (2, 2)
    assert counts.wer == pytest.approx(1.0)


def test_error_counts_accumulate() -> None:
    counts = ErrorCounts()
    counts.add("a b", "a b")
    counts.add("c d", "c")
    assert (counts.word_errors, counts.words, counts.utterances) == (1, 4, 2)
    assert counts.wer == pytest.approx(0.25)


def test_error_rates_by_group_keeps_corpus_level_counts() -> None:
    groups = error_rates_by([("a", "x y", "x y"), ("b", "p q r", "p"), ("a", "z", "w")])
    assert list(groups) == ["a", "b"]  # first-seen order
    assert (groups["a"].word_errors, groups["a"].words, groups["a"].utterances) == (1, 3, 2)
    assert groups["b"].wer == pytest.approx(2 / 3)
    assert groups["a"].summary() == {"wer": 1 / 3, "cer": groups["a"].cer, "utterances": 2, "words": 3}
