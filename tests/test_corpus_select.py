"""Sentence selection for the everyday-words supplement (asr corpus select-text)."""

from __future__ import annotations

import json
import sys
import types
from collections import Counter
from pathlib import Path

import pytest

from asr.corpus.select import heard_counts, select_sentences, word_targets, write_selection


def test_targets_scale_with_frequency_and_are_clamped() -> None:
    targets = word_targets(
        {"the": 0.05, "tomorrow": 1e-4, "zebra": 1e-7}, total_words=100_000, floor=20, scale=2, cap=500
    )
    assert targets == {"the": 500.0, "tomorrow": 20.0, "zebra": 20.0}
    assert word_targets({"tomorrow": 1e-3}, 100_000, 20, 2, 500) == {"tomorrow": 200.0}


def test_selection_prefers_unheard_words_and_stops_when_nothing_helps() -> None:
    candidates = [
        "the the the the",  # only a word heard enough
        "see you tomorrow",  # two under-heard words
        "see you",  # its words are covered once the sentence above is chosen
        "unknown words only here",  # no target words at all
    ]
    heard = {"the": 100, "see": 0, "you": 0, "tomorrow": 0}
    targets = {"the": 50.0, "see": 1.0, "you": 1.0, "tomorrow": 1.0}
    chosen = select_sentences(candidates, heard, targets, n=10)
    assert chosen == ["see you tomorrow"]


def test_selection_counts_repeats_and_honours_n_and_exclude() -> None:
    candidates = ["see you tomorrow", "see you later", "later"]
    targets = {"see": 2.0, "you": 2.0, "tomorrow": 2.0, "later": 2.0}
    # One pick, heard once: "see"/"you" still lack one hearing each, so "see you later" (2/7) beats "later" (1/5).
    assert select_sentences(candidates, {}, targets, n=2) == ["see you tomorrow", "see you later"]
    # Spoken twice per pick, the first sentence fills "see" and "you": "later" alone is now the better buy.
    assert select_sentences(candidates, {}, targets, n=2, repeats=2) == ["see you tomorrow", "later"]
    assert select_sentences(candidates, {}, targets, n=1, exclude=["see you tomorrow"]) == ["see you later"]


def test_weights_favour_frequent_words() -> None:
    candidates = ["rare word", "common word"]
    targets = {"rare": 1.0, "common": 1.0}
    assert select_sentences(candidates, {}, targets, n=1, weights={"rare": 1.0, "common": 3.0}) == [
        "common word"
    ]


def test_write_selection_uses_train_text_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = tmp_path / "corpus" / "text"
    pool.mkdir(parents=True)
    (pool / "train.txt").write_text("see you tomorrow\nthe cat sat\nthe end of the day\n")
    (pool / "dev.txt").write_text("see you tomorrow morning\n")
    (pool / "test.txt").write_text("we will meet again tomorrow\n")
    manifest = tmp_path / "train.jsonl"
    manifest.write_text(
        json.dumps({"audio_filepath": "a.wav", "duration": 1.0, "text": "the cat sat"}) + "\n"
    )
    fake = types.ModuleType("wordfreq")
    freqs = {"the": 0.05, "see": 1e-3, "you": 1e-2, "tomorrow": 1e-4, "morning": 1e-4}
    monkeypatch.setattr(fake, "get_frequency_dict", lambda lang: freqs, raising=False)
    monkeypatch.setitem(sys.modules, "wordfreq", fake)
    out = tmp_path / "common"
    report = write_selection(
        pool / "train.txt", [manifest], out, n=5, min_zipf=3.0, floor=2, scale=1.0, cap=10, repeats=1.0
    )
    chosen = (out / "text" / "train.txt").read_text().splitlines()
    assert chosen[0] == "see you tomorrow"
    assert set(chosen) <= {"see you tomorrow", "the cat sat", "the end of the day"}
    # "morning" is only in dev text: not a target (not in the pool), never chosen.
    assert report["target_words"] == 4
    assert (out / "text" / "dev.txt").read_text() == (pool / "dev.txt").read_text()
    assert (out / "text" / "test.txt").read_text() == (pool / "test.txt").read_text()
    assert json.loads((out / "text" / "selection.json").read_text())["chosen"] == len(chosen)


def test_heard_counts(tmp_path: Path) -> None:
    m = tmp_path / "m.jsonl"
    m.write_text('{"text": "a b a"}\n\n{"text": "b c"}\n')
    assert heard_counts([m]) == Counter({"a": 2, "b": 2, "c": 1})
