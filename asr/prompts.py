"""Enrollment prompts: training-text sentences that cover common words and every letter.

The prompts a person reads to enroll (``asr enroll --mic``, the web page) ship as
``asr/prompts.txt``, one normalised sentence a line, best first: any prefix of the list
covers as many common words (and, early on, all 26 letters) as the greedy choice could.

Only sentences of the corpus *train* split are candidates, so no prompt is ever a dev or
test sentence: the split is the corpus builder's own deterministic hash
(:func:`asr.corpus.build.split_sentences`, seed 1234). The file is regenerated with::

    python -m asr.prompts            # needs the corpus text packages (make corpus-deps)

Candidates come from the WordNet usage examples and the fortunes (everyday prose); the
KJV and the Jargon File are left out (archaic or technical, and the KJV's lines carry
verse references).
"""

from __future__ import annotations

import argparse
import heapq
import logging
import math
import string
from collections.abc import Mapping, Sequence
from pathlib import Path

from asr.constants import CORPUS_SEED

log = logging.getLogger(__name__)

PROMPTS_FILE = Path(__file__).with_name("prompts.txt")
PROMPT_SOURCES = ("wordnet", "fortunes")
MIN_WORDS, MAX_WORDS = 5, 16
COMMON_WORDS = 3000  # the most frequent English words a prompt list should cover
LETTER_WEIGHT = 2.0  # worth of a letter that no earlier prompt has
SPEAKING_CHARS_PER_SECOND = 13.0  # read speech, characters (spaces included) per second
PAUSE_SECONDS = 1.0  # silence around each take


def estimated_seconds(prompt: str) -> float:
    """Rough length of one read take of ``prompt`` (for "minutes so far" and plans)."""
    return len(prompt) / SPEAKING_CHARS_PER_SECOND + PAUSE_SECONDS


def select_prompts(
    candidates: Sequence[str],
    word_weights: Mapping[str, float],
    n: int,
) -> list[str]:
    """Greedy: each next prompt brings the most not-yet-covered weight per spoken character.

    A prompt's gain is the summed weight of its words that no chosen prompt has said yet,
    plus :data:`LETTER_WEIGHT` per letter not yet said; it is divided by its length in
    characters plus 40 (a fixed cost per take, so short prompts do not always win).
    Ties go to the earlier candidate, so the result is deterministic.
    """
    if n < 0:
        raise ValueError(f"expected n >= 0, got {n}")
    said_words: set[str] = set()
    said_letters: set[str] = set()
    chosen: list[str] = []
    remaining = list(dict.fromkeys(candidates))

    def gain(sentence: str) -> float:
        words = set(sentence.split())
        value = sum(word_weights.get(w, 0.0) for w in words - said_words)
        value += LETTER_WEIGHT * len(set(sentence) & set(string.ascii_lowercase) - said_letters)
        return value / (len(sentence) + 40)

    # Lazy greedy: a gain only falls as more is said, so a stale heap entry is an upper bound.
    heap = [(-gain(s), i) for i, s in enumerate(remaining)]
    heapq.heapify(heap)
    while heap and len(chosen) < n:
        _, i = heapq.heappop(heap)
        fresh = gain(remaining[i])
        if fresh <= 0:
            continue
        if heap and -fresh > heap[0][0]:  # stale: re-queue with its current gain
            heapq.heappush(heap, (-fresh, i))
            continue
        sentence = remaining[i]
        chosen.append(sentence)
        said_words.update(sentence.split())
        said_letters.update(set(sentence) & set(string.ascii_lowercase))
    return chosen


def common_word_weights(top: int = COMMON_WORDS) -> dict[str, float]:
    """Weight of each of the ``top`` most frequent English words: its Zipf value minus 2
    (wordfreq; frequent words weigh more)."""
    import wordfreq

    words = [w for w in wordfreq.top_n_list("en", top * 2) if w.isalpha() or "'" in w][:top]
    return {w: max(0.5, wordfreq.zipf_frequency(w, "en") - 2.0) for w in words}


def train_candidates(seed: int = CORPUS_SEED) -> list[str]:
    """Train-split sentences of :data:`PROMPT_SOURCES` with MIN_WORDS..MAX_WORDS words."""
    from asr.corpus.build import split_sentences
    from asr.corpus.text_sources import collect_sentences

    per_source = collect_sentences()
    everything = [s for sentences in per_source.values() for s in sentences]
    train = set(split_sentences(everything, seed)["train"])
    return [
        s
        for source in PROMPT_SOURCES
        for s in per_source.get(source, [])
        if s in train and MIN_WORDS <= len(s.split()) <= MAX_WORDS and _readable(s)
    ]


def _readable(sentence: str) -> bool:
    """No spelt-out letters ("m i c k e y"): single-letter words other than "a" and "i"."""
    return all(len(w) > 1 or w in ("a", "i") for w in sentence.split())


def build_prompts(out: str | Path = PROMPTS_FILE, n: int = 400, seed: int = CORPUS_SEED) -> list[str]:
    """Choose ``n`` prompts from the train text and write them to ``out``, one a line."""
    candidates = train_candidates(seed)
    if not candidates:
        raise ValueError("expected train-split sentences, got none (install the corpus text packages)")
    prompts = select_prompts(candidates, common_word_weights(), n)
    Path(out).write_text("\n".join(prompts) + "\n", encoding="utf-8")
    minutes = sum(estimated_seconds(p) for p in prompts) / 60
    log.info("wrote %d prompts (about %.0f min of reading) to %s", len(prompts), minutes, out)
    return prompts


def enrollment_prompts(n: int | None = None) -> list[str]:
    """The shipped prompts, best first (all of them, or the first ``n``)."""
    if n is not None and n < 0:
        raise ValueError(f"expected n >= 0 or None, got {n}")
    prompts = [p for p in PROMPTS_FILE.read_text(encoding="utf-8").splitlines() if p.strip()]
    return prompts if n is None else prompts[:n]


def prompts_for_minutes(minutes: float, prompts: Sequence[str] | None = None) -> int:
    """How many of ``prompts`` (default: the shipped ones) take about ``minutes`` to read."""
    if not (minutes > 0 and math.isfinite(minutes)):
        raise ValueError(f"expected minutes > 0, got {minutes}")
    prompts = enrollment_prompts() if prompts is None else prompts
    total = 0.0
    for count, prompt in enumerate(prompts, 1):
        total += estimated_seconds(prompt)
        if total >= minutes * 60:
            return count
    return len(prompts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate asr/prompts.txt from the train text.")
    parser.add_argument("--out", default=str(PROMPTS_FILE))
    parser.add_argument("--n", type=int, default=400)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build_prompts(args.out, args.n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
