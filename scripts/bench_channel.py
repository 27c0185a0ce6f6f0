#!/usr/bin/env python3
"""How much a microphone's frequency response costs each model: greedy WER/CER under random EQ.

    .venv/bin/python scripts/bench_channel.py --models streaming offline \
        --manifest data/corpus/test.jsonl --limit 150

Each utterance's log-mel gets a random smooth EQ curve (``asr.data.ChannelEQ``: a tilt and
bows, the k-th cosine up to ``DB / k`` dB), the same curve for every model and a fixed
seed per utterance, at each strength in ``--db`` (0 = the audio as it is). Models trained
with ``asr train --channel-eq`` should lose less as the strength grows. Greedy decoding,
no LM, one thread. Writes ``reports/channel_eq.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import torch

from asr.audio import load_audio
from asr.checkpoint import load_model
from asr.data import ChannelEQ
from asr.decoding import Decoder
from asr.features import log_mel
from asr.manifest import read_manifest
from asr.metrics import error_rates
from asr.text import normalize_text

ROOT = Path(__file__).resolve().parents[1]


def evaluate(model: str, entries: list[dict[str, Any]], strengths: list[float]) -> list[dict[str, Any]]:
    """Greedy WER/CER of ``model`` (a name, a path, or ``LABEL=PATH``) over ``entries`` at each EQ strength."""
    model, _, path = model.rpartition("=") if "=" in model else (model, "", model)
    loaded = load_model(path)
    decoder = Decoder()
    pairs: dict[float, list[tuple[str, str]]] = {db: [] for db in strengths}
    for i, e in enumerate(entries):
        feats = log_mel(load_audio(e["audio_filepath"]), loaded.features)
        ref = normalize_text(str(e["text"]))
        for db in strengths:
            x = feats if db == 0 else ChannelEQ(db)(feats, torch.Generator().manual_seed(i))
            lp = loaded.log_probs(x)
            pairs[db].append((ref, decoder.greedy(lp).text))
        print(f"\r{model}: {i + 1}/{len(entries)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    rows = []
    for db in strengths:
        counts = error_rates(pairs[db])
        rows.append({"model": model, "eq_db": db, "wer": round(counts.wer, 4), "cer": round(counts.cer, 4)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="+", default=["streaming", "offline"], help="model names, paths, or LABEL=PATH"
    )
    parser.add_argument("--manifest", default="data/corpus/test.jsonl", help="held-out manifest")
    parser.add_argument("--limit", type=int, default=150, help="utterances (after a seeded shuffle)")
    parser.add_argument("--db", nargs="+", type=float, default=[0.0, 6.0, 10.0], help="EQ strengths")
    parser.add_argument("--out", default="reports/channel_eq", help="report path prefix")
    args = parser.parse_args()
    torch.set_num_threads(1)
    entries = read_manifest(args.manifest)
    random.Random(0).shuffle(entries)
    entries = entries[: args.limit]
    strengths = sorted(set(args.db) | {0.0})
    rows = [row for model in args.models for row in evaluate(model, entries, strengths)]
    meta = {"manifest": args.manifest, "utterances": len(entries), "decoding": "greedy, no LM"}
    out = ROOT / args.out if not Path(args.out).is_absolute() else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({**meta, "results": rows}, indent=1) + "\n")
    lines = [
        "# Greedy WER / CER under a random channel EQ",
        "",
        f"`scripts/bench_channel.py`: {len(entries)} utterances of `{args.manifest}` (seeded shuffle), "
        "greedy, no LM. Each utterance's log-mel gets one random smooth EQ curve "
        "(`asr.data.ChannelEQ`), the same for every model.",
        "",
        "| model | " + " | ".join(f"EQ {db:g} dB" for db in strengths) + " |",
        "|---|" + "---|" * len(strengths),
    ]
    for model in (m.rpartition("=")[0] if "=" in m else m for m in args.models):
        cells = [f"{100 * r['wer']:.1f} / {100 * r['cer']:.1f}" for r in rows if r["model"] == model]
        lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
