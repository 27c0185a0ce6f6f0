"""The repository speaks of the product, not of how it was made: no tracked text file or file
name narrates the development history (which work period did what). Git holds that history.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 2_000_000  # larger files are data (a word list, a model), not prose

# Phrases that date a text by the work that produced it (case-insensitive).
NARRATION = [
    re.compile(p, re.I)
    for p in (
        r"\bsessions?[ -]\d+",  # a numbered work period, also "sessions 20-21" and "session-22 models"
        r"\bs\d{1,2}\b",  # its short form, as in file names and labels
        r"\bwork periods?\b",
        r"\b(?:this|last|next|previous|that) round\b",
        r"\bwe tried\b",
        r"\btried and dropped\b",
    )
]
# The same for file names: "-s22-", "_s9.", "session7/".
NAME_NARRATION = re.compile(r"(?:^|[/_.-])(?:s\d{1,2}|sessions?[_-]?\d+)(?=[/_.-]|$)", re.I)


def narration(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of every line that narrates the development history."""
    return [
        (n, line.strip())
        for n, line in enumerate(text.splitlines(), 1)
        if any(p.search(line) for p in NARRATION)
    ]


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name]


def _text(path: Path) -> str | None:
    """The file's text, or None for a binary, missing or very large file."""
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        data = path.read_bytes()
    except OSError:  # listed by git but deleted in the working tree
        return None
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def test_narration_is_found() -> None:
    period = "sess" + "ion"  # spelled apart so that this file passes its own test
    text = "\n".join(
        [
            f"# chosen in {period} 22 on dev",
            f"the {period}-21 models",
            "the s" + "22 defaults",
            "held out: this is fine",
            "a StreamingSession per stream; this session's final",
            "mb-us3 and de4 voices, 16 kHz, CER 5%",
        ]
    )
    assert [n for n, _ in narration(text)] == [1, 2, 3]


def test_narrating_file_names_are_found() -> None:
    bad = ["reports/capacity-s" + "22-defaults.md", "data/average-s" + "19-eq.pt", "notes/sess" + "ion7/x.md"]
    good = ["reports/capacity-200ms.md", "tests/data/samples/sample1-rms.wav", "asr/v1/asr_pb2.py", "scripts/gen-proto.sh"]
    assert [name for name in bad + good if NAME_NARRATION.search(name)] == bad


@pytest.fixture(scope="module")
def files() -> list[str]:
    try:
        return tracked_files()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files cannot be listed")


def test_no_file_name_narrates_the_history(files: list[str]) -> None:
    bad = [name for name in files if NAME_NARRATION.search(name)]
    assert not bad, "file names that narrate the development history: " + ", ".join(bad)


def test_no_text_file_narrates_the_history(files: list[str]) -> None:
    own = Path(__file__).resolve().relative_to(ROOT).as_posix()
    found = []
    for name in files:
        if name == own:
            continue
        text = _text(ROOT / name)
        if text is None:
            continue
        found += [f"{name}:{n}: {line[:160]}" for n, line in narration(text)]
    assert not found, "text that narrates the development history (git keeps it):\n" + "\n".join(found)
