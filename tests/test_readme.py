"""The README's Python examples run as written, and the links in the user documentation resolve.

Each ```python block runs in its own interpreter, in README order, in one temporary folder:
files a block writes (the first one synthesises ``hello.wav`` with espeak-ng) are there for
the next, variables are not, so every block also works when pasted alone after the first.
The blocks use the shipped models in ``models/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_README_LINES = 200
BLOCK_TIMEOUT_S = 300

_FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def python_blocks(markdown: str) -> list[str]:
    """The bodies of the ```python fenced blocks, in order."""
    return [m.group(1) for m in _FENCE.finditer(markdown)]


def relative_links(markdown: str) -> list[str]:
    """Link targets that point into the repository (no URL scheme, no pure #anchor), anchors cut."""
    targets = []
    for target in _LINK.findall(markdown):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_python_blocks_are_found() -> None:
    text = "intro\n```python\nprint(1)\n```\n```sh\nls\n```\n```python\nx = 2\nprint(x)\n```\n"
    assert python_blocks(text) == ["print(1)\n", "x = 2\nprint(x)\n"]


def test_relative_links_skip_urls_and_anchors() -> None:
    text = "[a](docs/x.md) [b](https://example.org) [c](#top) ![d](reports/p.png) [e](docs/y.md#part)"
    assert relative_links(text) == ["docs/x.md", "reports/p.png", "docs/y.md"]


def test_readme_is_short() -> None:
    lines = README.read_text().count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines, expected at most {MAX_README_LINES}"


@pytest.mark.parametrize(
    "doc",
    [README, *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "models").glob("*/MODEL_CARD.md"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_links_point_to_files_that_exist(doc: Path) -> None:
    missing = [t for t in relative_links(doc.read_text()) if not (doc.parent / t).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} links to missing files: {missing}"


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, subprocess.CompletedProcess]]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make setup installs it); the examples synthesise their audio")
    blocks = python_blocks(README.read_text())
    assert blocks, "README.md has no ```python block"
    folder = tmp_path_factory.mktemp("readme")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    runs = []
    for block in blocks:
        run = subprocess.run(
            [sys.executable, "-c", block],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
        runs.append((block, run))
    return runs


def _where(block: str, run: subprocess.CompletedProcess) -> str:
    return f"README block starting {block.splitlines()[0]!r}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"


def test_every_python_block_runs(example_runs: list[tuple[str, subprocess.CompletedProcess]]) -> None:
    for block, run in example_runs:
        assert run.returncode == 0, _where(block, run)
        assert run.stdout.strip(), "printed nothing: " + _where(block, run)


def test_streaming_blocks_print_a_final_with_text(
    example_runs: list[tuple[str, subprocess.CompletedProcess]],
) -> None:
    streaming = [(b, r) for b, r in example_runs if "FINAL" in b]
    assert streaming, "expected README examples that print FINAL results"
    for block, run in streaming:
        finals = [line.split(None, 1)[1:] for line in run.stdout.splitlines() if line.startswith("FINAL")]
        assert any(f and f[0].strip() for f in finals), "no final with text: " + _where(block, run)


def test_transcribe_block_prints_a_transcript(
    example_runs: list[tuple[str, subprocess.CompletedProcess]],
) -> None:
    block, run = example_runs[0]
    assert "transcribe(" in block, "the first README example is expected to transcribe a file"
    first_line = run.stdout.splitlines()[0]
    assert re.search(r"[a-z]{2}", first_line), "no transcript: " + _where(block, run)
