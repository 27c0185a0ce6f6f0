"""Tests for the ``asr`` command line: every subcommand has a working ``--help``."""

from __future__ import annotations

import pytest

from asr.cli import main


def run_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def test_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_help(["--help"], capsys)
    assert out.startswith("usage: asr")
    assert "Streaming speech recognition" in out
    for command in ("corpus", "train", "eval"):
        assert command in out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["corpus", "--help"], ["build"]),
        (["corpus", "build", "--help"], ["Synthesise", "--hours", "--out", "--jobs", "resumes"]),
        (["train", "--help"], ["CTC training", "--kind", "--train", "--out", "--steps"]),
        (["eval", "--help"], ["WER", "--manifest", "--model"]),
    ],
)
def test_subcommand_help(argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    out = run_help(argv, capsys)
    assert out.startswith("usage: asr " + " ".join(argv[:-1]))
    # A description paragraph follows the usage block.
    paragraphs = [p for p in out.split("\n\n") if p.strip()]
    assert len(paragraphs) >= 3
    flat = " ".join(out.split())
    for word in words:
        assert word in flat


def test_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "usage: asr" in capsys.readouterr().err


def test_train_requires_its_manifests(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", "x"])
    assert exc.value.code == 2
    assert "--train" in capsys.readouterr().err
