"""Tests for the ``asr`` command line: every subcommand has a working ``--help``; eval's breakdowns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asr.cli import main
from tests.helpers import write_tiny_checkpoints, write_tiny_manifest


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


def test_eval_breaks_errors_down_by_voice_and_condition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_tiny_manifest(tmp_path / "data", n=6)
    streaming, _ = write_tiny_checkpoints(tmp_path, seed=3, blank_share=0.6)
    base = ["eval", "--manifest", str(manifest), "--model", str(streaming), "--threads", "1", "--json"]
    assert main(base) == 0
    whole = json.loads(capsys.readouterr().out)
    for by, groups in (
        ("voice", {"espeak (all variants)": 4, "flite:awb": 2}),
        ("condition", {"clean": 3, "augmented": 3}),
    ):
        assert main([*base, "--by", by]) == 0
        report = json.loads(capsys.readouterr().out)
        per_group = report["by"][by]
        assert {g: s["utterances"] for g, s in per_group.items()} == groups
        assert sum(s["words"] * s["wer"] for s in per_group.values()) == pytest.approx(
            whole["wer"] * sum(s["words"] for s in per_group.values())
        )
    assert main(base[:-1] + ["--by", "voice"]) == 0  # the table form
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["voice", "utts", "words", "WER", "CER"]
    assert "flite:awb" in out and "6 utterances (0 failed)" in out


def test_bad_input_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing manifest is a user error: one line naming the command, no traceback."""
    assert main(["eval", "--manifest", str(tmp_path / "none.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("asr eval: error: expected a manifest file") and "Traceback" not in err
    assert main(["fusion", "tune", "--manifest", str(tmp_path / "none.jsonl"), "--lm", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("asr fusion tune: error: expected a manifest file")
    with pytest.raises(ValueError, match="expected a manifest file"):  # -v: the traceback
        main(["-v", "eval", "--manifest", str(tmp_path / "none.jsonl")])
