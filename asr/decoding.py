"""From CTC log-probs to text: greedy and beam search with a KenLM n-gram (pyctcdecode).

Both paths give :class:`Hypothesis` objects with word start/end times (from frame
offsets; one model step is 30 ms) and confidences:

* word confidence: the mean, over the word's frames, of the best symbol's posterior;
* utterance confidence: the mean word confidence (1.0 for an empty hypothesis with
  confident blanks, i.e. the mean blank posterior).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from asr.text import BLANK, LABELS, Vocabulary

log = logging.getLogger(__name__)

STEP_SECONDS = 0.03  # 3 stacked 10 ms frames


@dataclass(frozen=True)
class DecoderOptions:
    """Beam-search settings; alpha/beta defaults are replaced by the tuned values in models/lm."""

    beam_width: int = 32
    alpha: float = 0.5  # LM weight
    beta: float = 1.0  # word insertion bonus
    beam_prune_logp: float = -10.0
    token_min_logp: float = -5.0
    hotword_weight: float = 10.0


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds
    end: float
    confidence: float


@dataclass(frozen=True)
class Hypothesis:
    text: str
    words: tuple[Word, ...] = field(default_factory=tuple)
    confidence: float = 0.0
    score: float = 0.0  # decoder's combined log score (greedy: acoustic log-prob of the path)


def _word_confidence(probs_max: np.ndarray, start: int, end: int) -> float:
    span = probs_max[start : max(end, start + 1)]
    return float(span.mean()) if len(span) else 0.0


def _utterance_confidence(words: Sequence[Word], probs_max: np.ndarray) -> float:
    if words:
        return float(np.mean([w.confidence for w in words]))
    return float(probs_max.mean()) if len(probs_max) else 1.0


def compress_blank_frames(
    log_probs: np.ndarray, token_min_logp: float, blank: int = BLANK
) -> tuple[np.ndarray, np.ndarray, float]:
    """Drop the frames a CTC beam search cannot act on, without changing its result.

    pyctcdecode extends its beams, at each frame, only with the symbols whose log-prob is
    at least ``token_min_logp`` (and the frame's best symbol). At a frame where that
    leaves blank alone, every beam just takes the blank: the first such frame of a run
    changes the beams (a repeated character may follow it), and the rest of the run
    maps the beams onto themselves, adding the same blank log-prob to every score.
    Dropping those repeats leaves the beams, their ranking and pruning unchanged.

    Returns:
        ``(kept log-probs, original index of each kept frame, summed log-prob of the
        dropped frames)``; add the last to a beam's score to get the uncompressed score.
    """
    lp = np.asarray(log_probs, dtype=np.float32)
    if len(lp) < 2:
        return lp, np.arange(len(lp)), 0.0
    others = np.delete(lp, blank, axis=1).max(axis=1)
    blank_only = (others < token_min_logp) & (lp.argmax(axis=1) == blank)
    drop = blank_only.copy()
    drop[1:] &= blank_only[:-1]  # keep the first frame of every blank-only run
    drop[0] = False
    keep = np.flatnonzero(~drop)
    return lp[keep], keep, float(lp[drop, blank].sum())


def _uncompress(index: np.ndarray, start: int, end: int) -> tuple[int, int]:
    """A word's ``[start, end)`` frames after :func:`compress_blank_frames`, in original frames."""
    if start < 0 or start >= len(index):  # no frames (pyctcdecode marks these -1)
        return start, end
    last = min(max(end - 1, start), len(index) - 1)
    return int(index[start]), int(index[last]) + 1


def words_from_frames(
    chars: Sequence[tuple[str, int, int]],
    probs_max: np.ndarray,
    time_offset: float = 0.0,
    step_seconds: float = STEP_SECONDS,
) -> tuple[Word, ...]:
    """Group (char, first frame, last frame) emissions into words with times and confidences."""
    words: list[Word] = []
    current: list[tuple[str, int, int]] = []

    def flush() -> None:
        if not current:
            return
        start, last = current[0][1], current[-1][2]
        words.append(
            Word(
                word="".join(c for c, _, _ in current),
                start=round(time_offset + start * step_seconds, 3),
                end=round(time_offset + (last + 1) * step_seconds, 3),
                confidence=round(_word_confidence(probs_max, start, last + 1), 4),
            )
        )
        current.clear()

    for item in chars:
        if item[0] == " ":
            flush()
        else:
            current.append(item)
    flush()
    return tuple(words)


class Decoder:
    """Greedy and LM beam-search decoding for one vocabulary (and optionally one LM)."""

    def __init__(
        self,
        vocab: Vocabulary | None = None,
        lm_path: str | os.PathLike[str] | None = None,
        unigrams: Sequence[str] | None = None,
        options: DecoderOptions = DecoderOptions(),
    ) -> None:
        self.vocab = vocab or Vocabulary(LABELS)
        self.options = options
        self.lm_path = Path(lm_path) if lm_path else None
        self._unigrams = list(unigrams) if unigrams is not None else None
        self._beam = self._build(options)

    def _build(self, options: DecoderOptions):  # type: ignore[no-untyped-def]
        from pyctcdecode import build_ctcdecoder

        return build_ctcdecoder(
            self.vocab.pyctcdecode_labels(),
            kenlm_model_path=str(self.lm_path) if self.lm_path else None,
            unigrams=self._unigrams,
            alpha=options.alpha,
            beta=options.beta,
        )

    def spec(self) -> dict[str, Any]:
        """What :meth:`from_spec` needs to build an equal decoder (e.g. in a worker process)."""
        return {
            "labels": list(self.vocab.labels),
            "lm_path": str(self.lm_path) if self.lm_path else None,
            "unigrams": self._unigrams,
            "options": asdict(self.options),
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Decoder:
        return cls(
            Vocabulary(spec["labels"]), spec["lm_path"], spec["unigrams"], DecoderOptions(**spec["options"])
        )

    @property
    def has_lm(self) -> bool:
        return self.lm_path is not None

    def with_options(self, **changes: float) -> Decoder:
        """Same decoder with other settings; alpha/beta are reset in place (no LM reload)."""
        options = replace(self.options, **changes)
        clone = object.__new__(Decoder)
        clone.vocab, clone.options, clone.lm_path, clone._unigrams = (
            self.vocab,
            options,
            self.lm_path,
            self._unigrams,
        )
        clone._beam = self._beam
        if ("alpha" in changes or "beta" in changes) and self.has_lm:
            clone._beam = self._build(options)
        return clone

    def greedy(self, log_probs: np.ndarray, time_offset: float = 0.0) -> Hypothesis:
        """Best path: argmax per step, merge repeats, drop blanks."""
        lp = np.asarray(log_probs, dtype=np.float32)
        probs_max = np.exp(lp.max(-1)) if len(lp) else np.zeros(0, np.float32)
        # Runs of the best symbol: (token, first frame, last frame); blanks and repeats collapse.
        chars: list[tuple[str, int, int]] = []
        previous = -1
        for t, token in enumerate(lp.argmax(-1).tolist() if len(lp) else []):
            if token == previous and chars and token != self.vocab.blank:
                chars[-1] = (chars[-1][0], chars[-1][1], t)
            elif token != previous and token != self.vocab.blank:
                ch = self.vocab.labels[token]
                if not (ch == " " and (not chars or chars[-1][0] == " ")):
                    chars.append((ch, t, t))
            previous = token
        while chars and chars[-1][0] == " ":
            chars.pop()
        words = words_from_frames(chars, probs_max, time_offset)
        score = float(lp.max(-1).sum()) if len(lp) else 0.0
        return Hypothesis(
            text=" ".join(w.word for w in words),
            words=words,
            confidence=round(_utterance_confidence(words, probs_max), 4),
            score=score,
        )

    def beam(
        self,
        log_probs: np.ndarray,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float | None = None,
        n_best: int = 1,
        time_offset: float = 0.0,
    ) -> list[Hypothesis]:
        """Beam search with the LM (if any) and optional hotwords; best first."""
        lp = np.asarray(log_probs, dtype=np.float32)
        if len(lp) == 0:
            return [Hypothesis(text="", confidence=1.0)]
        probs_max = np.exp(lp.max(-1))
        kept, index, dropped_score = compress_blank_frames(lp, self.options.token_min_logp, self.vocab.blank)
        # Map compressed frame numbers back; one past the end stays one past the end.
        index = np.append(index, len(lp))
        beams = self._beam.decode_beams(
            kept,
            beam_width=max(self.options.beam_width, n_best),
            beam_prune_logp=self.options.beam_prune_logp,
            token_min_logp=self.options.token_min_logp,
            hotwords=[h for h in (hotwords or []) if h.strip()] or None,
            hotword_weight=self.options.hotword_weight if hotword_weight is None else hotword_weight,
        )
        results = []
        for text, _lm_state, word_frames, _logit_score, combined in beams[:n_best]:
            word_frames = [(w, _uncompress(index, s, e)) for w, (s, e) in word_frames]
            words = tuple(
                Word(
                    word=w,
                    start=round(time_offset + s * STEP_SECONDS, 3),
                    end=round(time_offset + max(e, s + 1) * STEP_SECONDS, 3),
                    confidence=round(_word_confidence(probs_max, s, e), 4),
                )
                for w, (s, e) in word_frames
            )
            results.append(
                Hypothesis(
                    text=" ".join(text.split()),
                    words=words,
                    confidence=round(_utterance_confidence(words, probs_max), 4),
                    score=float(combined) + dropped_score,
                )
            )
        return results or [Hypothesis(text="", confidence=1.0)]


def blank_run(log_probs: np.ndarray, blank: int = BLANK) -> int:
    """Number of trailing steps whose best symbol is blank (for endpointing)."""
    if len(log_probs) == 0:
        return 0
    is_blank = np.asarray(log_probs).argmax(-1) == blank
    nonblank = np.flatnonzero(~is_blank)
    return len(is_blank) if len(nonblank) == 0 else len(is_blank) - 1 - int(nonblank[-1])


_POOL_DECODER: Decoder | None = None


def _pool_init(spec: dict[str, Any]) -> None:
    global _POOL_DECODER
    _POOL_DECODER = Decoder.from_spec(spec)


def _pool_beam(args: tuple[Any, ...]) -> list[Hypothesis]:
    assert _POOL_DECODER is not None, "decoder worker not initialised"
    return _POOL_DECODER.beam(*args)


class PooledDecoder:
    """A :class:`Decoder` whose beam searches run in worker processes.

    pyctcdecode is pure Python, so in a server its beam searches (one per final) hold
    the GIL that the event loop needs for every message. Here they run in ``workers``
    spawned processes, each with its own copy of the decoder and LM; the calling
    thread blocks on the result with the GIL released. Greedy decoding stays in the
    calling process. Same interface as :class:`Decoder` for what sessions use.
    """

    def __init__(self, decoder: Decoder, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if workers < 1:
            raise ValueError(f"expected workers >= 1, got {workers}")
        self.local = decoder
        self.vocab = decoder.vocab
        self.options = decoder.options
        self.lm_path = decoder.lm_path
        self.workers = workers
        self._pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_pool_init,
            initargs=(decoder.spec(),),
        )
        # Start every worker now (LM loading takes seconds), not on the first final.
        for future in [self._pool.submit(_pool_beam, (np.zeros((1, len(self.vocab.labels)), np.float32),))
                       for _ in range(workers)]:  # fmt: skip
            future.result()

    @property
    def has_lm(self) -> bool:
        return self.local.has_lm

    def spec(self) -> dict[str, Any]:
        return self.local.spec()

    def greedy(self, log_probs: np.ndarray, time_offset: float = 0.0) -> Hypothesis:
        return self.local.greedy(log_probs, time_offset)

    def beam(
        self,
        log_probs: np.ndarray,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float | None = None,
        n_best: int = 1,
        time_offset: float = 0.0,
    ) -> list[Hypothesis]:
        args = (
            np.asarray(log_probs, dtype=np.float32),
            tuple(hotwords or ()),
            hotword_weight,
            n_best,
            time_offset,
        )
        return self._pool.submit(_pool_beam, args).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
