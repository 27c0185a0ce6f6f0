"""scripts/ship_model.py keeps a model card's hand-written text and rewrites its generated blocks."""

from __future__ import annotations

import pytest

from asr.checkpoint import MODELS_DIR, load_model
from tests.helpers import load_script

ship_model = load_script("ship_model")


@pytest.mark.parametrize("name", ["streaming", "offline"])
def test_architecture_block_matches_the_shipped_model(name: str) -> None:
    path = MODELS_DIR / name / "model.pt"
    card = (MODELS_DIR / name / "MODEL_CARD.md").read_text(encoding="utf-8")
    lines = ship_model.architecture_lines(load_model(path), path.stat().st_size / 2**20)
    begin, end = ship_model.block_markers("architecture")
    assert begin + "\n" + "\n".join(lines) + "\n" + end in card


def test_replace_block_keeps_the_text_around_it() -> None:
    card = (MODELS_DIR / "offline" / "MODEL_CARD.md").read_text(encoding="utf-8")
    new = ship_model.replace_block(card, "greedy", ["| a | b |"])
    begin, end = ship_model.block_markers("greedy")
    assert f"{begin}\n| a | b |\n{end}" in new
    assert new.split(begin)[0] == card.split(begin)[0]
    assert new.split(end)[1] == card.split(end)[1]
    assert ship_model.replace_block(new, "greedy", ["| c |"]).count(begin) == 1


def test_replace_block_without_markers_is_an_error() -> None:
    with pytest.raises(ValueError, match="generated:greedy"):
        ship_model.replace_block("# card\n", "greedy", ["x"])


def test_new_card_has_the_shipped_layout() -> None:
    loaded = load_model(MODELS_DIR / "streaming" / "model.pt")
    card = ship_model.new_card("streaming", loaded, "asr train --kind streaming", "Heard no human voice.")
    for block in ("architecture", "greedy"):
        card = ship_model.replace_block(card, block, [f"{block} lines"])
    headings = [line for line in card.splitlines() if line.startswith("## ")]
    assert headings == ["## Architecture", "## Data and training", "## Reproduce", "## Metrics", "## Limits"]
    assert "asr train --kind streaming" in card and "Heard no human voice." in card
    assert "architecture lines" in card and "greedy lines" in card
