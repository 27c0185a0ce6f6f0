"""Tests for asr.corpus.text_sources: cleaning, sentence splitting and the Debian text packages."""

from __future__ import annotations

from pathlib import Path

from asr.corpus.text_sources import clean_unique, fortune_texts, wordnet_texts
from asr.corpus.text_sources import split_sentences as split_text


def test_clean_unique_keeps_prose_and_dedups() -> None:
    raw = [
        "Hello there, my friend!",
        "hello there my friend",  # same after cleaning
        "HELLO THERE MY FRIEND.",
        "def f(x): return x[0] + 1;",  # code
        "x = y + z * 2 == 3 && k++",  # code
        r"  /\_/\  ( o.o )  > ^ <",  # ASCII art
        "|---|---|---|",  # table rule
        "Too short.",
        " ".join(["word"] * 26),  # too long
        " ".join(["long"] * 25),  # just fits
        "It costs 5 dollars today.",
        "",
    ]
    kept = clean_unique(raw)
    assert kept == ["hello there my friend", " ".join(["long"] * 25), "it costs five dollars today"]
    for sentence in kept:
        assert 3 <= len(sentence.split()) <= 25


def test_split_running_text() -> None:
    paragraph = (
        "The sun rose over the hills.  Birds sang in the trees!\n"
        "Did anyone hear them?   Nobody did; everyone slept: soundly and long.\tThe end"
    )
    assert split_text(paragraph) == [
        "The sun rose over the hills.",
        "Birds sang in the trees!",
        "Did anyone hear them?",
        "Nobody did;",
        "everyone slept:",
        "soundly and long.",
        "The end",
    ]
    assert split_text("   \n ") == []


def test_fortune_texts(tmp_path: Path) -> None:
    (tmp_path / "wisdom").write_text(
        "A fool and his money are soon parted.  Keep yours close.\n"
        "\t\t-- Old Proverb\n"
        "%\n"
        "Never put off until tomorrow\n"
        "what you can do today.\n"
        "%\n",
        encoding="utf-8",
    )
    (tmp_path / "wisdom.dat").write_bytes(b"\x00\x01binary index")
    (tmp_path / "ascii-art").write_text("Skipped art file.\n%\n", encoding="utf-8")
    (tmp_path / "subdir").mkdir()
    texts = list(fortune_texts(root=tmp_path))
    assert texts == [
        "A fool and his money are soon parted.",
        "Keep yours close.",
        "Never put off until tomorrow what you can do today.",
    ]
    assert list(fortune_texts(root=tmp_path / "missing")) == []


def test_wordnet_texts(tmp_path: Path) -> None:
    (tmp_path / "data.noun").write_text(
        "  1 This software and database is being provided to you, the LICENSEE, by\n"
        '  2 Princeton University "AS IS" | under the following license.\n'
        "02084071 05 n 01 dog 0 001 @ 02083346 n 0000 | a dog; "
        '"the dog barked loudly at night"  \n'
        "02084072 05 n 01 cat 0 000 | a cat; "
        '"the cat sat"; "cats purr"\n'
        "02084073 05 n 01 rock 0 000 | a stone with no example\n",
        encoding="utf-8",
    )
    texts = list(wordnet_texts(root=tmp_path))
    assert texts == ["the dog barked loudly at night", "the cat sat", "cats purr"]
    assert clean_unique(texts) == ["the dog barked loudly at night", "the cat sat"]
    assert list(wordnet_texts(root=tmp_path / "missing")) == []
