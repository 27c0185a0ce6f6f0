"""Word and character error rates: edit distance over reference units.

WER = (substitutions + deletions + insertions) / reference words, summed over a set
(the standard corpus-level definition, not a mean of per-utterance rates).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences (unit costs)."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


@dataclass
class ErrorCounts:
    """Accumulated edit counts over a test set."""

    word_errors: int = 0
    words: int = 0
    char_errors: int = 0
    chars: int = 0
    utterances: int = 0

    def add(self, ref: str, hyp: str) -> None:
        ref_words, hyp_words = ref.split(), hyp.split()
        self.word_errors += edit_distance(ref_words, hyp_words)
        self.words += len(ref_words)
        ref_chars, hyp_chars = " ".join(ref_words), " ".join(hyp_words)
        self.char_errors += edit_distance(ref_chars, hyp_chars)
        self.chars += len(ref_chars)
        self.utterances += 1

    @property
    def wer(self) -> float:
        return self.word_errors / max(self.words, 1)

    @property
    def cer(self) -> float:
        return self.char_errors / max(self.chars, 1)

    def summary(self) -> dict[str, float]:
        """``{"wer", "cer", "utterances", "words"}``, as the reports store it."""
        return {"wer": self.wer, "cer": self.cer, "utterances": self.utterances, "words": self.words}


def error_rates(pairs: Iterable[tuple[str, str]]) -> ErrorCounts:
    """Counts for (reference, hypothesis) pairs."""
    counts = ErrorCounts()
    for ref, hyp in pairs:
        counts.add(ref, hyp)
    return counts


def error_rates_by(triples: Iterable[tuple[str, str, str]]) -> dict[str, ErrorCounts]:
    """Counts per group for (group, reference, hypothesis) triples, groups in first-seen order."""
    groups: dict[str, ErrorCounts] = {}
    for group, ref, hyp in triples:
        groups.setdefault(group, ErrorCounts()).add(ref, hyp)
    return groups


def wer(ref: str, hyp: str) -> float:
    return error_rates([(ref, hyp)]).wer


def cer(ref: str, hyp: str) -> float:
    return error_rates([(ref, hyp)]).cer
