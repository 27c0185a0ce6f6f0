"""From CTC log-probs to text: greedy and beam search with a KenLM n-gram (pyctcdecode).

Both paths give :class:`Hypothesis` objects with word start/end times (from frame
offsets; a model step is :attr:`DecoderOptions.step_seconds`, 30 ms for the shipped
models) and confidences:

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
from typing import Any, Protocol

import numpy as np

from asr.beam import BlankFrameSkipper, IncrementalBeamSearch
from asr.constants import step_seconds
from asr.text import BLANK, LABELS, Vocabulary

log = logging.getLogger(__name__)
# pyctcdecode logs its alphabet's style at INFO each time a decoder is built; nothing to act on.
logging.getLogger("pyctcdecode.alphabet").setLevel(logging.WARNING)

# Seconds per model step of the default features and model (3 stacked 10 ms frames); a
# decoder's own is DecoderOptions.step_seconds, which Recognizer sets from its models.
STEP_SECONDS = step_seconds()
# Beam width of offline-mode finals (whole files: `asr transcribe`, Recognizer.transcribe).
# Live finals keep DecoderOptions.beam_width (32), whose cost a final's latency and the
# server's capacity pay. Chosen on the dev split (480 utterances, fused BiLSTM, tuned LM):
# WER 26.54 / 26.12 / 26.08 / 26.02% and CER 12.97 / 12.71 / 12.57 / 12.47% at
# widths 32 / 64 / 128 / 256, the search costing about twice as much per doubling.
OFFLINE_BEAM_WIDTH = 128


@dataclass(frozen=True)
class DecoderOptions:
    """Beam-search settings; alpha/beta defaults are replaced by the tuned values in models/lm."""

    beam_width: int = 32
    alpha: float = 0.5  # LM weight
    beta: float = 1.0  # word insertion bonus
    beam_prune_logp: float = -10.0
    token_min_logp: float = -5.0
    hotword_weight: float = 10.0
    step_seconds: float = STEP_SECONDS  # audio per model step, for word times


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

    def with_options(self, **changes: Any) -> Decoder:
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
        words = words_from_frames(chars, probs_max, time_offset, self.options.step_seconds)
        score = float(lp.max(-1).sum()) if len(lp) else 0.0
        return Hypothesis(
            text=" ".join(w.word for w in words),
            words=words,
            confidence=round(_utterance_confidence(words, probs_max), 4),
            score=score,
        )

    def search(
        self,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float | None = None,
        n_best: int = 1,
        eager: bool = False,
    ) -> LocalSearch:
        """A beam search for one utterance, fed with :meth:`UtteranceSearch.extend` as its
        log-probs arrive.

        Args:
            eager: search each extend at once (so a final only scores the sentence end);
                by default frames are buffered and searched when a result is asked for,
                which keeps ``extend`` cheap for a caller on an event loop.
        """
        return LocalSearch(self, hotwords, hotword_weight, n_best, eager)

    def beam(
        self,
        log_probs: np.ndarray,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float | None = None,
        n_best: int = 1,
        time_offset: float = 0.0,
    ) -> list[Hypothesis]:
        """Beam search with the LM (if any) and optional hotwords; best first."""
        search = self.search(hotwords, hotword_weight, n_best)
        search.extend(log_probs)
        return search.result(time_offset)

    def incremental(
        self, hotwords: Sequence[str] | None, hotword_weight: float | None, n_best: int
    ) -> IncrementalBeamSearch:
        """The bare incremental search over pyctcdecode's LM and scorers (see asr.beam)."""
        o = self.options
        return IncrementalBeamSearch(
            self._beam,
            beam_width=max(o.beam_width, n_best),
            beam_prune_logp=o.beam_prune_logp,
            token_min_logp=o.token_min_logp,
            hotwords=hotwords,
            hotword_weight=o.hotword_weight if hotword_weight is None else hotword_weight,
        )


class UtteranceSearch:
    """One utterance's beam search, fed as the model's log-probs arrive.

    In this process (:class:`LocalSearch`) or kept open in a decode worker
    (:class:`asr.decode_pool.RemoteSearch`).
    """

    def extend(self, log_probs: np.ndarray) -> None:
        """The next ``(n, V)`` log-probs of the utterance."""
        raise NotImplementedError

    def result(self, time_offset: float = 0.0) -> list[Hypothesis]:
        """The n best hypotheses so far, best first (the search may go on after this)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the search (a worker's copy of it); no results after this."""


class DecoderProtocol(Protocol):
    """What recognisers and sessions need of a decoder.

    :class:`Decoder` runs every search in this process; :class:`asr.decode_pool.PooledDecoder`
    runs the beam searches in worker processes.
    """

    vocab: Vocabulary
    options: DecoderOptions
    lm_path: Path | None

    @property
    def has_lm(self) -> bool: ...

    def spec(self) -> dict[str, Any]:
        """What :meth:`Decoder.from_spec` needs to build an equal decoder (e.g. in a worker)."""
        ...

    def with_options(self, **changes: Any) -> DecoderProtocol:
        """A decoder with other :class:`DecoderOptions` values."""
        ...

    def greedy(self, log_probs: np.ndarray, time_offset: float = 0.0) -> Hypothesis:
        """Best path: argmax per step, merge repeats, drop blanks."""
        ...

    def search(
        self,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float | None = None,
        n_best: int = 1,
        eager: bool = False,
    ) -> UtteranceSearch:
        """A beam search for one utterance, fed as its log-probs arrive."""
        ...

    def beam(
        self,
        log_probs: np.ndarray,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float | None = None,
        n_best: int = 1,
        time_offset: float = 0.0,
    ) -> list[Hypothesis]:
        """Beam search with the LM (if any) and optional hotwords; best first."""
        ...


def check_log_probs(log_probs: np.ndarray, vocab_size: int) -> np.ndarray:
    """``log_probs`` as float32 ``(n, vocab_size)``, or a ValueError."""
    lp = np.asarray(log_probs, dtype=np.float32)
    if lp.ndim != 2 or lp.shape[1] != vocab_size:
        raise ValueError(f"expected (n, {vocab_size}) log-probs, got {lp.shape}")
    return lp


class LocalSearch(UtteranceSearch):
    """:class:`UtteranceSearch` in this process.

    Repeated blank-only frames are dropped (:class:`asr.beam.BlankFrameSkipper`) before
    the search; word confidences use every frame, dropped or not. Lazy (the default)
    buffers the log-probs until a result is asked for, so ``extend`` is a list append;
    eager searches them at once, so a final only has to score the sentence end.
    """

    def __init__(
        self,
        decoder: Decoder,
        hotwords: Sequence[str] | None,
        hotword_weight: float | None,
        n_best: int,
        eager: bool,
    ) -> None:
        self.n_best = n_best
        self._vocab_size = len(decoder.vocab.labels)
        self._skipper = BlankFrameSkipper(decoder.options.token_min_logp, decoder.vocab.blank)
        self._step = decoder.options.step_seconds
        self._probs_max: list[np.ndarray] = []  # (n,) best-symbol posterior per frame, per chunk
        self._search = decoder.incremental(hotwords, hotword_weight, n_best)
        self._eager = eager
        self._pending: list[np.ndarray] = []

    def extend(self, log_probs: np.ndarray) -> None:
        lp = check_log_probs(log_probs, self._vocab_size)
        if len(lp) == 0:
            return
        if self._eager:
            self._feed(lp)
        else:
            self._pending.append(lp)

    def _feed(self, lp: np.ndarray) -> None:
        self._probs_max.append(np.exp(lp.max(-1)))
        kept, index = self._skipper(lp)
        if len(kept):
            self._search.extend(kept, index)

    @property
    def pending_frames(self) -> int:
        """Buffered frames not searched yet."""
        return sum(len(lp) for lp in self._pending)

    def advance(self) -> None:
        """Search the buffered log-probs now (a lazy search's background work)."""
        if self._pending:
            lp = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
            self._pending = []
            self._feed(lp)

    def result(self, time_offset: float = 0.0) -> list[Hypothesis]:
        self.advance()
        if self._skipper.frames == 0:
            return [Hypothesis(text="", confidence=1.0)]
        probs_max = np.concatenate(self._probs_max)
        if len(self._probs_max) > 1:
            self._probs_max = [probs_max]
        results = []
        for text, word_frames, _logit_score, combined in self._search.result()[: self.n_best]:
            words = tuple(
                Word(
                    word=w,
                    start=round(time_offset + s * self._step, 3),
                    end=round(time_offset + max(e, s + 1) * self._step, 3),
                    confidence=round(_word_confidence(probs_max, s, e), 4),
                )
                for w, (s, e) in word_frames
            )
            results.append(
                Hypothesis(
                    text=" ".join(text.split()),
                    words=words,
                    confidence=round(_utterance_confidence(words, probs_max), 4),
                    score=float(combined) + self._skipper.dropped_score,
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
