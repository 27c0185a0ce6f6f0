#!/usr/bin/env python3
"""Ship a trained checkpoint: evaluate it, copy it to models/NAME/ and update its model card.

    .venv/bin/python scripts/ship_model.py --run data/runs/streaming --name streaming \
        --test data/corpus/test.jsonl --smoke data/smoke/manifest.jsonl \
        --command "asr train --kind streaming ..."

The card's architecture and greedy-metrics blocks (between ``<!-- generated:NAME -->``
markers) are rewritten; the hand-written text around them is kept. A model folder with no
card gets one in the same layout. The card's numbers are measured here (greedy, no LM) with
`asr.evaluate`, the same code that `asr eval` runs, so the two always agree.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from asr.checkpoint import MODELS_DIR, LoadedModel, load_model
from asr.evaluate import evaluate_manifest, grouped_scores
from asr.fusion import FUSION_FILE


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


SET_NAMES = {
    "test": "synthetic test split, held-out voices + sentences",
    "smoke": "real-speech smoke set",
    "piper": "Piper neural voice (seen in training), held-out test sentences, clean",
    "pico": "SVOX Pico en-GB (held-out voice), held-out test sentences, clean",
}
INTRO = {
    "streaming": (
        "uni-LSTM, for live recognition",
        "A unidirectional LSTM CTC model: it sees only the past, so it can emit text while audio\n"
        "arrives. It gives the partials and endpoints of every mode, and the finals of `stream` mode.",
    ),
    "offline": (
        "BiLSTM, for whole utterances",
        "A bidirectional LSTM CTC model: it sees the whole utterance, so it is more accurate but can\n"
        "only answer once the utterance is over. It gives the finals of the `offline` and `two-pass`\n"
        "modes and of `asr transcribe`.",
    ),
}


def architecture_lines(loaded: LoadedModel, size_mb: float) -> list[str]:
    config = loaded.model.config
    bi = config.bidirectional
    return [
        f"- {config.n_mels}-dim log-mel (25 ms windows, 10 ms hop), {config.stack} frames stacked into "
        f"{10 * config.stack} ms steps,",
        f"  Linear({config.n_mels * config.stack}->{config.proj_dim}) + LayerNorm + ReLU",
        f"- {config.layers} x {'Bi' if bi else ''}LSTM({config.hidden}{' per direction' if bi else ''}), "
        f"CTC head over {config.vocab_size} symbols (blank = 0)",
        f"- {loaded.model.num_parameters() / 1e6:.2f} M parameters; file {size_mb:.1f} MB (fp16 weights)",
    ]


def greedy_lines(results: dict[str, dict[str, Any]], test_rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "Greedy CTC, no language model (`scripts/ship_model.py`, the same code as `asr eval`;",
        "`metrics.json` beside this card):",
        "",
        "| set | utterances | WER | CER | RTF (1 thread, batched) |",
        "|---|---|---|---|---|",
    ]
    for key, r in results.items():
        lines.append(
            f"| {SET_NAMES[key]} (`{Path(r['manifest']).name}`) | {r['utterances']} | {_pct(r['wer'])} | "
            f"{_pct(r['cer'])} | {r['rtf']:.4f} |"
        )
    lines += [
        "",
        "Test split voices: flite rms, festival ked, mbrola us3/de4/pl1 and 10% of espeak-ng variants "
        "(never trained on). Half the test utterances are augmented like training data.",
        "",
        "Test split by voice (espeak-ng variants pooled) and by condition (`asr eval --by voice|condition`):",
        "",
        "| group | utterances | WER | CER |",
        "|---|---|---|---|",
    ]
    for by in ("voice", "condition"):
        for group, g in grouped_scores(test_rows, by).items():
            lines.append(f"| {group} | {g['utterances']} | {_pct(g['wer'])} | {_pct(g['cer'])} |")
    return lines


def block_markers(name: str) -> tuple[str, str]:
    return f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"


def replace_block(card: str, name: str, lines: list[str]) -> str:
    """``card`` with the text between its ``generated:NAME`` markers replaced by ``lines``; the
    hand-written text around them is kept byte for byte."""
    begin, end = block_markers(name)
    head, found, rest = card.partition(begin + "\n")
    _, found_end, tail = rest.partition(end)
    if not found or not found_end:
        raise ValueError(f"the model card has no {begin} ... {end} block")
    return head + begin + "\n" + "\n".join(lines) + "\n" + end + tail


def new_card(name: str, loaded: LoadedModel, command: str, note: str) -> str:
    """A card in the shipped layout for a model folder that has none; ``replace_block`` fills
    the generated blocks."""
    subtitle, intro = INTRO[name]
    data = loaded.meta["training"].get("data", {})
    training = loaded.meta["training"]
    sections = [
        f"# Model card: `{name}` ({subtitle})",
        "",
        intro,
        "",
        "## Architecture",
        "",
        *block_markers("architecture"),
        "",
        "## Data and training",
        "",
        f"- {data.get('hours')} h, {data.get('utterances')} utterances, {data.get('voices')} voices, "
        f"{data.get('speakers')} speakers; hours per engine: {data.get('hours_per_engine')}",
        f"- {training.get('steps')} steps ({training.get('epochs')} epochs), "
        f"{training.get('wall_seconds', 0) / 3600:.1f} h on {training.get('hardware')}",
        f"- Best dev (held-out voices, greedy): {loaded.meta['metrics']}",
        "",
        "## Reproduce",
        "",
        "```sh",
        "make corpus   # data/corpus and the training-only supplements, then make eval-sets",
        command or "(command not recorded)",
        "```",
        "",
        "[docs/training.md](../../docs/training.md) describes the corpus and the options.",
        "",
        "## Metrics",
        "",
        "With beam search and the LM: `asr bench` ([reports/tradeoff.md](../../reports/tradeoff.md)).",
        "",
        *block_markers("greedy"),
        "",
    ]
    if note:
        sections += ["## Limits", "", note, ""]
    return "\n".join(sections)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True, help="training run folder (uses RUN/best.pt)")
    parser.add_argument(
        "--checkpoint", help="ship this checkpoint instead of RUN/best.pt (e.g. an 'asr average' output)"
    )
    parser.add_argument("--name", required=True, choices=["streaming", "offline"], help="shipped model name")
    parser.add_argument("--test", required=True, help="held-out-voice test manifest")
    parser.add_argument("--smoke", help="real-speech smoke-set manifest")
    parser.add_argument(
        "--piper",
        help="Piper-voice set (scripts/piper_eval_set.py): held-out sentences, a voice seen in training",
    )
    parser.add_argument(
        "--pico",
        help="SVOX Pico en-GB set (scripts/piper_eval_set.py --voice pico:en-GB): held-out sentences and voice",
    )
    parser.add_argument("--command", default="", help="the exact training command, for the card")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the RTF figure")
    parser.add_argument("--note", default="", help="the limits section of a card written from scratch")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    src = Path(args.checkpoint) if args.checkpoint else Path(args.run) / "best.pt"
    dest_dir = MODELS_DIR / args.name
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / "model.pt"
    shutil.copyfile(src, dest)
    loaded = load_model(dest)
    test, test_rows = evaluate_manifest(loaded, args.test, progress=True)
    results = {"test": test.to_dict()}
    if args.smoke:
        results["smoke"] = evaluate_manifest(loaded, args.smoke)[0].to_dict()
    if args.piper:
        results["piper"] = evaluate_manifest(loaded, args.piper)[0].to_dict()
    if args.pico:
        results["pico"] = evaluate_manifest(loaded, args.pico)[0].to_dict()
    (dest_dir / "metrics.json").write_text(json.dumps(results, indent=1))

    card_path = dest_dir / "MODEL_CARD.md"
    blocks = {
        "architecture": architecture_lines(loaded, dest.stat().st_size / 2**20),
        "greedy": greedy_lines(results, test_rows),
    }
    if card_path.is_file():
        card = card_path.read_text(encoding="utf-8")
    else:
        card = new_card(args.name, loaded, args.command, args.note)
    for block, lines in blocks.items():
        card = replace_block(card, block, lines)
    card_path.write_text(card, encoding="utf-8")
    print(card)
    if FUSION_FILE.is_file():
        print(
            f"\n{FUSION_FILE} was tuned for the previous checkpoints: re-tune two-pass fusion with\n"
            "  .venv/bin/asr fusion tune --manifest data/corpus/dev.jsonl\n"
            "(tests/test_shipped_models.py fails until it matches the shipped pair)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
