#!/usr/bin/env python3
"""Word recall by how often the word was heard in training: does rarer-in-training mean missed?

    .venv/bin/python scripts/word_recall.py --models shipped=models/offline/model.pt new=data/runs/offline/x.pt \
        --manifest data/corpus/test.jsonl --heard data/corpus/train.jsonl data/corpus-piper/train.jsonl ... \
        --added data/corpus-common/train.jsonl

Greedy decoding, no LM, per model. A reference word counts as recalled as often as it
also occurs in the hypothesis of the same utterance (bag of words, so a recalled word may
sit in the wrong place; WER is the strict measure). Words are grouped by their hearings in
the ``--heard`` manifests (the training set before a supplement); ``--added`` manifests (a
supplement) make one more group: words whose hearings it at least doubled. Writes
``reports/word_recall.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch

from asr.corpus.select import heard_counts
from asr.evaluate import evaluate_manifest

ROOT = Path(__file__).resolve().parents[1]
BANDS = [(0, 9), (10, 29), (30, 99), (100, 999), (1000, None)]


def band_name(lo: int, hi: int | None) -> str:
    return f"heard {lo}+" if hi is None else f"heard {lo}-{hi}"


def recall_by_group(
    rows: list[dict[str, str]], heard: Counter[str], added: Counter[str]
) -> dict[str, dict[str, float]]:
    """Reference tokens and recalled tokens per hearing band and for the supplement-boosted words."""
    totals: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for row in rows:
        ref, hyp = Counter(row["ref"].split()), Counter(row["hyp"].split())
        for word, n in ref.items():
            got = min(n, hyp[word])
            h = heard[word]
            groups = [band_name(lo, hi) for lo, hi in BANDS if h >= lo and (hi is None or h <= hi)]
            if added and added[word] >= max(1, h):
                groups.append("at least doubled by --added")
            for g in groups + ["all"]:
                totals[g] += n
                hits[g] += got
    return {g: {"tokens": totals[g], "recall": round(hits[g] / totals[g], 4)} for g in totals}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", required=True, help="LABEL=PATH or a model name")
    parser.add_argument("--manifest", default="data/corpus/test.jsonl")
    parser.add_argument("--heard", nargs="+", required=True, help="training manifests before the supplement")
    parser.add_argument("--added", nargs="*", default=[], help="supplement manifests")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "reports" / "word_recall"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    heard = heard_counts(args.heard)
    added = heard_counts(args.added) if args.added else Counter()
    results = {}
    for spec in args.models:
        label, _, path = spec.rpartition("=") if "=" in spec else (spec, "", spec)
        result, rows = evaluate_manifest(path, args.manifest, limit=args.limit)
        results[label] = {
            "wer": round(result.wer, 4),
            "cer": round(result.cer, 4),
            **recall_by_group(rows, heard, added),
        }
        print(label, json.dumps(results[label]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "manifest": args.manifest,
        "limit": args.limit,
        "heard": args.heard,
        "added": args.added,
        "models": results,
    }
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    order = [band_name(lo, hi) for lo, hi in BANDS] + ["at least doubled by --added", "all"]
    groups = [g for g in order if any(g in r for r in results.values())]
    lines = [
        f"# Word recall by training hearings ({args.manifest}, greedy, no LM)",
        "",
        "Bag-of-words recall per reference token; see scripts/word_recall.py.",
        "",
        "| group | tokens | " + " | ".join(results) + " |",
        "|---|---|" + "---|" * len(results),
    ]
    for g in groups:
        tokens = next(r[g]["tokens"] for r in results.values() if g in r)
        cells = [f"{100 * r[g]['recall']:.1f}%" if g in r else "" for r in results.values()]
        lines.append(f"| {g} | {tokens} | " + " | ".join(cells) + " |")
    lines.append(
        "| WER / CER | | "
        + " | ".join(f"{100 * r['wer']:.1f} / {100 * r['cer']:.1f}" for r in results.values())
        + " |"
    )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
