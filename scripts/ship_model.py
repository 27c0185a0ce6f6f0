#!/usr/bin/env python3
"""Ship a trained checkpoint: evaluate it, copy it to models/NAME/ and write its model card.

    .venv/bin/python scripts/ship_model.py --run data/runs/streaming --name streaming \
        --test data/corpus/test.jsonl --smoke data/smoke/manifest.jsonl \
        --command "asr train --kind streaming ..."

The card's numbers are measured here (greedy, no LM) with `asr.evaluate`, the same code
that `asr eval` runs, so the two always agree.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from asr.checkpoint import MODELS_DIR, load_model
from asr.evaluate import evaluate_manifest, grouped_scores
from asr.fusion import FUSION_FILE


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


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
    parser.add_argument("--note", default="", help="extra text for the card's status section")
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
    training = loaded.meta["training"]
    config = loaded.model.config
    size_mb = dest.stat().st_size / 2**20
    (dest_dir / "metrics.json").write_text(json.dumps(results, indent=1))

    data = training.get("data", {})
    lines = [
        f"# Model card: `{args.name}` ({'BiLSTM, offline' if config.bidirectional else 'uni-LSTM, streaming'})",
        "",
        "## Architecture",
        f"- 80-dim log-mel, 3 frames stacked into 30 ms steps, Linear({config.n_mels * config.stack}->"
        f"{config.proj_dim}) + LayerNorm + ReLU",
        f"- {config.layers} x {'Bi' if config.bidirectional else ''}LSTM({config.hidden}"
        f"{' per direction' if config.bidirectional else ''}), CTC head over {config.vocab_size} symbols (blank = 0)",
        f"- {loaded.model.num_parameters() / 1e6:.2f} M parameters; file {size_mb:.1f} MB (fp16 weights)",
        "",
        "## Training",
        f"- Data: {data.get('hours')} h, {data.get('utterances')} utterances, {data.get('voices')} voices, "
        f"{data.get('speakers')} speakers; hours per engine: {data.get('hours_per_engine')}",
        f"- Steps: {training.get('steps')} ({training.get('epochs')} epochs); wall time "
        f"{training.get('wall_seconds', 0) / 3600:.2f} h on {training.get('hardware')} "
        f"x {training.get('processes')} process(es); git {training.get('git_commit')}",
        f"- Best dev (held-out voices, greedy): {loaded.meta['metrics']}",
        "",
        "Reproduce:",
        "",
        "```sh",
        "make corpus   # asr corpus build --hours 50 --out data/corpus (seed 1234), then five supplements:",
        "              # asr corpus build --hours 3 --engines piper=1 --dev-utts 0 --test-utts 0 --out data/corpus-piper",
        "              # asr corpus build --hours 5 --engines mbrola-x=1 --dev-utts 0 --test-utts 0 --out data/corpus-mbrola-x",
        "              # asr corpus build --hours 5 --engines rhvoice=0.7 pico=0.3 --dev-utts 0 --test-utts 0 --out data/corpus-rhvoice-pico",
        "              # asr corpus build --hours 1.5 --engines festival-x=1 --dev-utts 0 --test-utts 0 --out data/corpus-festival-x",
        "              # asr corpus select-text --heard data/corpus/train.jsonl data/corpus-{piper,mbrola-x,rhvoice-pico,festival-x}/train.jsonl --out data/corpus-common",
        "              # asr corpus build --hours 10 --dev-utts 0 --test-utts 0 --out data/corpus-common \\",
        "              #   --engines espeak=0.25 mbrola=0.25 flite=0.2 festival=0.1 mbrola-x=0.1 rhvoice=0.1",
        args.command or "(command not recorded)",
        "```",
        "",
        "## Results (greedy CTC, no language model)",
        "",
        "| set | utterances | WER | CER | RTF (1 thread, batched) |",
        "|---|---|---|---|---|",
    ]
    names = {
        "test": "synthetic test split, held-out voices + sentences",
        "smoke": "real-speech smoke set",
        "piper": "Piper neural voice (seen in training), held-out test sentences, clean",
        "pico": "SVOX Pico en-GB (held-out voice), held-out test sentences, clean",
    }
    for key, r in results.items():
        lines.append(
            f"| {names[key]} (`{Path(r['manifest']).name}`) | {r['utterances']} | {_pct(r['wer'])} | "
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
    lines.append("")
    if args.note:
        lines += ["## Status", "", args.note, ""]
    (dest_dir / "MODEL_CARD.md").write_text("\n".join(lines))
    print("\n".join(lines))
    if FUSION_FILE.is_file():
        print(
            f"\n{FUSION_FILE} was tuned for the previous checkpoints: re-tune two-pass fusion with\n"
            "  .venv/bin/asr fusion tune --manifest data/corpus/dev.jsonl\n"
            "(tests/test_shipped_models.py fails until it matches the shipped pair)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
