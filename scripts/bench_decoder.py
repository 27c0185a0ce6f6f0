#!/usr/bin/env python3
"""Cost and accuracy of the finals' beam search under different settings.

    .venv/bin/python scripts/bench_decoder.py --manifest data/corpus/test.jsonl --limit 200

Runs both shipped models once over the first ``--limit`` utterances of the manifest
(after a fixed shuffle), keeps their log-probs, then decodes them with beam search + LM
under each setting (beam width, token floor ``token_min_logp``, beam pruning
``beam_prune_logp``) and reports WER, CER and CPU milliseconds per utterance (process
time, one thread). These are the settings `asr serve --beam-width/--token-min-logp`
changes for finals. Writes ``reports/decoder_bench.{json,md}``. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.api import load_decoder
from asr.audio import load_audio
from asr.checkpoint import MODELS_DIR, load_model
from asr.manifest import read_manifest
from asr.metrics import error_rates

ROOT = Path(__file__).resolve().parents[1]
# (beam width, token_min_logp, beam_prune_logp); the first is the default.
SETTINGS = [(32, -5.0, -10.0), (32, -4.0, -10.0), (32, -3.0, -10.0), (16, -5.0, -10.0), (16, -3.0, -10.0),
            (8, -3.0, -10.0)]  # fmt: skip


def log_probs(model_name: str, entries: list[dict[str, Any]]) -> list[np.ndarray]:
    loaded = load_model(model_name)
    return [loaded.log_probs(load_audio(e["audio_filepath"])) for e in entries]  # resolved by read_manifest


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", default="data/corpus/test.jsonl", help="held-out test manifest")
    parser.add_argument("--limit", type=int, default=200, help="utterances (after a seeded shuffle)")
    parser.add_argument("--out", default="reports/decoder_bench", help="report path prefix")
    parser.add_argument(
        "--settings",
        nargs="+",
        metavar="WIDTH:FLOOR:PRUNE",
        help="settings to compare instead of the built-in list, e.g. 16:-3:-10 8:-3:-10",
    )
    parser.add_argument("--models", nargs="+", default=["streaming", "offline"], help="shipped models")
    args = parser.parse_args()
    settings = SETTINGS
    if args.settings:
        try:
            settings = [(int(w), float(f), float(p)) for w, f, p in (s.split(":") for s in args.settings)]
        except ValueError:
            parser.error("expected --settings as WIDTH:FLOOR:PRUNE, e.g. 16:-3:-10")
    torch.set_num_threads(1)
    manifest = Path(args.manifest)
    entries = read_manifest(manifest)
    random.Random(0).shuffle(entries)
    entries = entries[: args.limit]
    refs = [e["text"] for e in entries]
    audio_s = sum(float(e.get("duration") or 0) for e in entries)
    decoder = load_decoder(MODELS_DIR / "lm")
    rows = []
    for model in args.models:
        lps = log_probs(model, entries)
        for width, floor, prune in settings:
            d = decoder.with_options(beam_width=width, token_min_logp=floor, beam_prune_logp=prune)
            started = time.process_time()
            hyps = [d.beam(lp)[0].text for lp in lps]
            cpu = time.process_time() - started
            e = error_rates(zip(refs, hyps, strict=True))
            rows.append({
                "model": model, "beam_width": width, "token_min_logp": floor, "beam_prune_logp": prune,
                "wer": round(100 * e.word_errors / e.words, 2), "cer": round(100 * e.char_errors / e.chars, 2),
                "ms_per_utterance": round(1000 * cpu / len(lps), 1), "rtf": round(cpu / audio_s, 4),
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    report = {"manifest": str(manifest), "utterances": len(entries), "audio_seconds": round(audio_s, 1),
              "lm": {"alpha": decoder.options.alpha, "beta": decoder.options.beta}, "rows": rows}  # fmt: skip
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        "# Beam search settings: cost and accuracy of finals",
        "",
        f"`scripts/bench_decoder.py`: {len(entries)} utterances ({audio_s / 60:.1f} min) of `{manifest}` "
        f"(seeded shuffle), beam search + LM (alpha {decoder.options.alpha}, beta {decoder.options.beta}), "
        "CPU time of one thread per utterance. The first row of each model is the default.",
        "",
        "| model | beam width | token_min_logp | beam_prune_logp | WER % | CER % | ms / utterance | RTF |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['beam_width']} | {r['token_min_logp']:g} | {r['beam_prune_logp']:g} "
        f"| {r['wer']} | {r['cer']} "
        f"| {r['ms_per_utterance']} | {r['rtf']} |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
