"""scripts/readme_table.py: the README's trade-off table comes from the bench report."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parent.parent


def _mode(wer: float, cer: float, *, greedy: bool = True, latency: bool = True) -> dict:
    scores = {"wer": wer, "cer": cer, "utterances": 3, "words": 10}
    return {
        "test": {"greedy": dict(scores) if greedy else None, "lm": dict(scores)},
        "smoke": {"lm": {"wer": 0.5, "cer": 0.25}},
        "pico": {"lm": {"wer": 0.6, "cer": 0.3}},
        "latency": {"first_partial_s": {"mean": 0.2604}, "final_after_audio_s": {"mean": -0.015}}
        if latency
        else {},
        "rtf": {"1": 0.0412, "2": 0.03},
        "size_mb": 6.81,
    }


def _report(peer: bool) -> dict:
    modes = {"streaming": _mode(0.629, 0.2646), "offline": _mode(0.5337, 0.2068, latency=False)}
    if peer:
        modes["pocketsphinx"] = _mode(0.712, 0.486, greedy=False, latency=False)
    return {"modes": modes}


def test_rows_format_each_mode() -> None:
    table = load_script("readme_table")
    rows = table.rows(_report(peer=True))
    assert (
        rows[0]
        == "| streaming (uni-LSTM) | 62.9 / 26.5 | 62.9 / 26.5 | 50.0 | 60.0 / 30.0 | 260 ms | -15 ms | 0.041 | 6.8 MB |"
    )
    assert rows[1].startswith(
        "| offline (BiLSTM, whole utterance) | 53.4 / 20.7 | 53.4 / 20.7 | 50.0 | 60.0 / 30.0 | — | — |"
    )
    assert rows[2].startswith("| PocketSphinx en-us (peer) | — | 71.2 / 48.6 † |")


def test_write_replaces_the_block_and_keeps_an_old_peer_row(tmp_path: Path) -> None:
    table = load_script("readme_table")
    readme = tmp_path / "README.md"
    old_peer = (
        "| PocketSphinx en-us (peer) | — | 70.0 / 40.0 † | 23.9 | 48.8 / 28.7 | — | — | 0.529 | 6.3 MB |"
    )
    older_peer = (
        "| PocketSphinx en-us (peer) | — | 70.0 / 40.0 † | 23.9 | — | — | 0.529 | 6.3 MB |"  # no Pico column
    )
    readme.write_text(
        f"intro\n{table.START}\n| mode |\n| stale row |\n{old_peer}\n{older_peer}\n{table.END}\nafter\n"
    )
    report = tmp_path / "tradeoff.json"
    report.write_text(json.dumps(_report(peer=False)))
    assert table.main(["--report", str(report), "--write", str(readme)]) == 0
    text = readme.read_text()
    assert "stale row" not in text and "| streaming (uni-LSTM) | 62.9 / 26.5 |" in text
    assert old_peer in text  # a --no-peer report keeps the README's earlier peer row
    assert older_peer not in text  # unless it has other columns than the table
    assert text.startswith("intro\n") and text.endswith("\nafter\n")
    # with a peer in the report, its fresh row replaces the old one
    report.write_text(json.dumps(_report(peer=True)))
    assert table.main(["--report", str(report), "--write", str(readme)]) == 0
    assert old_peer not in readme.read_text() and "71.2 / 48.6 †" in readme.read_text()


def test_write_without_markers_fails_and_leaves_the_file(tmp_path: Path) -> None:
    table = load_script("readme_table")
    readme = tmp_path / "README.md"
    readme.write_text("no table here\n")
    report = tmp_path / "tradeoff.json"
    report.write_text(json.dumps(_report(peer=False)))
    assert table.main(["--report", str(report), "--write", str(readme)]) == 1
    assert readme.read_text() == "no table here\n"


def test_the_readme_has_the_markers() -> None:
    text = (ROOT / "README.md").read_text()
    table = load_script("readme_table")
    assert text.count(table.START) == 1 and text.count(table.END) == 1
