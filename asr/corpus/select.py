"""Choose training sentences that fill gaps in everyday vocabulary.

The text pool (fortunes, the KJV, WordNet glosses, the Jargon File) is skewed: words
like "tomorrow", "dad" or "okay" are rare in it while "thee" is common. Sentences are
drawn uniformly, so the corpus inherits the skew. This module picks, from the *train*
split only, the sentences that bring the most under-heard common words, where
"common" comes from an outside frequency list (wordfreq, built from subtitles, web
text and books) and "heard" counts the words of the manifests already trained on.

A word's target count grows with its frequency and is at least ``floor``; the
deficit is what is still missing. Greedy selection, with lazy re-scoring, takes the
sentence whose summed relative deficits per spoken word are largest, then counts its
words as heard ``repeats`` times. Dev and test text are never candidates.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def heard_counts(manifests: Iterable[str | Path]) -> Counter[str]:
    """Word counts over the transcripts of JSONL manifests."""
    counts: Counter[str] = Counter()
    for manifest in manifests:
        with open(manifest, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    counts.update(json.loads(line)["text"].split())
    return counts


def word_targets(
    frequency: Mapping[str, float], total_words: int, floor: int, scale: float, cap: int
) -> dict[str, float]:
    """Wanted hearings per word: ``scale`` x its share of ``total_words``, clamped to [floor, cap]."""
    return {w: float(min(cap, max(floor, scale * f * total_words))) for w, f in frequency.items()}


def select_sentences(
    candidates: Sequence[str],
    heard: Mapping[str, int],
    targets: Mapping[str, float],
    n: int,
    repeats: float = 1.0,
    exclude: Iterable[str] = (),
    weights: Mapping[str, float] | None = None,
) -> list[str]:
    """Up to ``n`` candidates, most gap-filling first; stops early when no sentence helps.

    A sentence's score is the sum over its distinct target words of
    ``weight * min(1, deficit / target)`` (weight 1 unless given; `write_selection` weighs
    more frequent words more), divided by its length plus 4 (the cost of speaking it,
    with a fixed cost per utterance so that 3-word sentences are not always preferred).
    """
    weight = weights or {}
    counts: defaultdict[str, float] = defaultdict(
        float, {w: float(c) for w, c in heard.items() if w in targets}
    )
    skip = set(exclude)

    def score(sentence: str) -> float:
        words = sentence.split()
        gain = sum(
            weight.get(w, 1.0) * min(1.0, (targets[w] - counts[w]) / targets[w])
            for w in set(words)
            if w in targets and counts[w] < targets[w]
        )
        return gain / (len(words) + 4)

    heap = [(-score(s), i) for i, s in enumerate(candidates) if s not in skip]
    heapq.heapify(heap)
    chosen: list[str] = []
    while heap and len(chosen) < n:
        neg, i = heapq.heappop(heap)
        fresh = score(candidates[i])
        if fresh <= 0:
            break
        if heap and fresh < -heap[0][0]:  # stale: re-queue with its current score
            heapq.heappush(heap, (-fresh, i))
            continue
        chosen.append(candidates[i])
        for w in set(candidates[i].split()):
            if w in targets:
                counts[w] += repeats * candidates[i].split().count(w)
    return chosen


def write_selection(
    pool_text: Path,
    manifests: Sequence[str | Path],
    out: Path,
    n: int,
    min_zipf: float,
    floor: int,
    scale: float,
    cap: int,
    repeats: float,
    exclude: Iterable[str] = (),
) -> dict[str, object]:
    """Write OUT/text/{train,dev,test}.txt for ``asr corpus build --out OUT`` to reuse.

    train.txt holds the chosen sentences; dev.txt and test.txt are copied from the pool
    folder unchanged, so the split files of the supplement say exactly what the main
    corpus says about held-out text.
    """
    try:
        from wordfreq import get_frequency_dict
    except ImportError as exc:  # corpus-build-time only; not a runtime dependency
        raise SystemExit(
            "asr corpus select-text needs wordfreq: pip install wordfreq (make corpus-deps)"
        ) from exc
    pool_dir = pool_text.parent
    candidates = pool_text.read_text(encoding="utf-8").splitlines()
    pool_words = {w for s in candidates for w in s.split()}
    threshold = 10 ** (min_zipf - 9)  # zipf = log10(frequency per billion words)
    frequency = {w: f for w, f in get_frequency_dict("en").items() if f >= threshold and w in pool_words}
    heard = heard_counts(manifests)
    targets = word_targets(frequency, sum(heard.values()), floor, scale, cap)
    # Everyday words first: weight 1 at min_zipf, +1 per tenfold frequency.
    weights = {w: 1.0 + math.log10(f / threshold) for w, f in frequency.items()}
    chosen = select_sentences(candidates, heard, targets, n, repeats, exclude, weights)
    text_dir = out / "text"
    text_dir.mkdir(parents=True, exist_ok=True)
    (text_dir / "train.txt").write_text("\n".join(chosen) + "\n", encoding="utf-8")
    for split in ("dev", "test"):
        (text_dir / f"{split}.txt").write_text((pool_dir / f"{split}.txt").read_text(encoding="utf-8"))
    before = sum(1 for w, t in targets.items() if heard.get(w, 0) >= t)
    spoken = Counter(w for s in chosen for w in s.split())
    after = sum(1 for w, t in targets.items() if heard.get(w, 0) + repeats * spoken[w] >= t)
    report = {
        "pool_sentences": len(candidates),
        "chosen": len(chosen),
        "chosen_words": sum(len(s.split()) for s in chosen),
        "target_words": len(targets),
        "targets_met_before": before,
        "targets_met_after": after,
        "settings": {"min_zipf": min_zipf, "floor": floor, "scale": scale, "cap": cap, "repeats": repeats},
        "heard_from": [str(m) for m in manifests],
    }
    (text_dir / "selection.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    log.info("chose %d of %d sentences", len(chosen), len(candidates))
    return report
