"""One streaming recognition session: PCM chunks in, partial and final results out.

The session's state is explicit and in three parts, so that a server can batch the
model step across many sessions (see ``asr.server.batcher``):

- :attr:`StreamingSession.frontend` (:class:`asr.frontend.FrontEnd`): resampler,
  streaming log-mel and the frames short of a model step;
- :attr:`StreamingSession.state`: the LSTM's ``(h, c)``, carried from step to step;
- :attr:`StreamingSession.endpointer` (:class:`asr.endpoint.Endpointer`): where the
  current utterance stands with respect to its end.

A chunk goes through three calls:

1. :meth:`StreamingSession.push_audio` returns the normalised frames that are ready for
   the model (a multiple of the 3-frame stack);
2. a step function ``(frames, state) -> (log_probs, state)``: :meth:`StreamingSession.run_model`
   for one stream alone, or a batcher's for many streams;
3. :meth:`StreamingSession.consume` takes the log-probs and the new state and returns
   results: partials while an utterance is open, a final at each endpoint.

:meth:`StreamingSession.accept_audio` does all three with a direct model call.

Endpointing (per-session :class:`EndpointConfig`, rules in :mod:`asr.endpoint`): an
utterance ends after a run of blank steps (trailing silence), at the maximum utterance
length, or when the caller forces it; an initial-silence timeout ends a stream in which
nobody speaks. At each endpoint the final comes from beam search + LM over the streaming
model's log-probs (mode ``stream``) or over the BiLSTM's log-probs of the buffered utterance
(``two-pass``), fused with the utterance's streaming log-probs when a tuned
:class:`asr.fusion.Fusion` is given. Memory per session is bounded by the maximum utterance length.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch

from asr.constants import MODES, SAMPLE_RATE, Mode, step_seconds
from asr.decoding import DecoderProtocol, Hypothesis, UtteranceSearch
from asr.endpoint import Boundary, EndpointConfig, Endpointer
from asr.features import Normalizer
from asr.frontend import FrontEnd
from asr.fusion import Fusion
from asr.inference import batch_log_probs, stream_step
from asr.model import CTCModel, LSTMState

log = logging.getLogger(__name__)

__all__ = [
    "MODES",
    "EndpointConfig",
    "EventType",
    "Result",
    "SessionConfig",
    "StreamingSession",
    "results_text",
]


@dataclass(frozen=True)
class SessionConfig:
    """Per-stream settings."""

    mode: str = Mode.STREAM
    sample_rate: int = SAMPLE_RATE
    interim_results: bool = True
    partial_decoder: str = "greedy"  # or "beam"
    n_best: int = 1
    hotwords: tuple[str, ...] = ()
    hotword_weight: float | None = None
    single_utterance: bool = False
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"expected mode in {MODES}, got {self.mode!r}")
        if self.partial_decoder not in ("greedy", "beam"):
            raise ValueError(f"expected partial_decoder 'greedy' or 'beam', got {self.partial_decoder!r}")
        if not 1 <= self.n_best <= 32:
            raise ValueError(f"expected n_best in 1..32, got {self.n_best}")
        if self.hotword_weight is not None and not math.isfinite(self.hotword_weight):
            raise ValueError(f"expected a finite hotword_weight, got {self.hotword_weight}")


class EventType(StrEnum):
    SPEECH_START = "speech_start"
    SPEECH_END = "speech_end"
    INITIAL_SILENCE_TIMEOUT = "initial_silence_timeout"


@dataclass(frozen=True)
class Result:
    """A partial or final result; times are seconds from the start of the stream."""

    is_final: bool
    alternatives: tuple[Hypothesis, ...]
    utterance_index: int
    start: float
    end: float
    stability: float = 1.0
    events: tuple[EventType, ...] = ()

    @property
    def text(self) -> str:
        return self.alternatives[0].text if self.alternatives else ""


@dataclass
class _Utterance:
    """Decoding state of the open utterance (its endpoint state is the session's Endpointer)."""

    start_step: int  # global step index of the first step of this utterance
    search: UtteranceSearch | None = None  # beam search of the streaming log-probs, fed as they come
    frames: list[torch.Tensor] = field(default_factory=list)  # normalised frames (two-pass)
    log_probs: list[np.ndarray] = field(default_factory=list)  # streaming log-probs (two-pass fusion)
    steps: int = 0
    last_token: int = 0
    text: str = ""  # greedy partial so far
    char_steps: list[int] = field(default_factory=list)  # local step of each emitted char


class StreamingSession:
    """Recognition state of one stream. Not thread-safe; one per stream."""

    def __init__(
        self,
        model: CTCModel,
        normalizer: Normalizer,
        decoder: DecoderProtocol,
        config: SessionConfig = SessionConfig(),
        offline_model: CTCModel | None = None,
        offline_normalizer: Normalizer | None = None,
        eager_search: bool = False,
        fusion: Fusion | None = None,
    ) -> None:
        """``eager_search``: beam-search the streaming log-probs as each chunk arrives, so a
        final only scores the utterance's end (in-process use). A server leaves it off: its
        event loop must not search, so the search is lazy (or in a decode worker).

        ``fusion``: two-pass finals search the BiLSTM's log-probs fused with this
        session's streaming ones (:mod:`asr.fusion`); None: the BiLSTM's alone."""
        if model.config.bidirectional:
            raise ValueError("expected a unidirectional (streaming) model for the session")
        if config.mode == Mode.TWO_PASS and offline_model is None:
            raise ValueError("expected an offline model for two-pass mode")
        self.model = model
        self.normalizer = normalizer
        self.decoder = decoder
        self.config = config
        self.offline_model = offline_model
        self.offline_normalizer = offline_normalizer or normalizer
        self.fusion = fusion if config.mode == Mode.TWO_PASS else None
        self.stack = model.config.stack
        self.frontend = FrontEnd(config.sample_rate, normalizer, self.stack)
        features = self.frontend.features
        self.step_seconds = step_seconds(features.hop_length, features.sample_rate, self.stack)
        self.state: LSTMState | None = None  # the LSTM's (h, c) after the last consumed step
        self.endpointer = Endpointer(config.endpoint, self.step_seconds)
        self.utterance_index = 0
        # The streaming log-probs need a beam search for stream-mode finals and beam partials;
        # two-pass finals search the BiLSTM's log-probs of the whole utterance instead.
        self._eager_search = eager_search
        self._search_stream = config.mode == Mode.STREAM or (
            config.interim_results and config.partial_decoder == "beam"
        )
        self._utt = self._new_utterance(0)
        self.finished = False
        self._last_partial = ""
        self._vocab_labels = decoder.vocab.labels
        self._blank = decoder.vocab.blank

    @property
    def step(self) -> int:
        """Model steps consumed in the whole stream."""
        return self.endpointer.steps

    # ----------------------------------------------------------- model input
    def push_audio(self, audio: np.ndarray) -> torch.Tensor:
        """Accept samples at the session's rate; return normalised frames ready for the model.

        Returns:
            ``(T, n_mels)`` with ``T`` a multiple of the stack (possibly 0).
        """
        self._check_open()
        return self.frontend.push_audio(audio)

    def take_audio(self, audio: np.ndarray) -> np.ndarray:
        """First half of :meth:`push_audio` (:meth:`asr.frontend.FrontEnd.take_audio`): the
        16 kHz samples whose log-mel frames are complete, for a server that computes the
        log-mel of many streams at once and hands it to :attr:`frontend`."""
        self._check_open()
        return self.frontend.take_audio(audio)

    def flush_audio(self) -> torch.Tensor:
        """End of audio: drain the resampler; leftover frames short of a stack are dropped."""
        return self.frontend.flush_audio()

    def _check_open(self) -> None:
        if self.finished:
            raise RuntimeError("session already finished")

    # ---------------------------------------------------------- model output
    def run_model(self, frames: torch.Tensor) -> tuple[np.ndarray, LSTMState | None]:
        """The step function of this one stream: ``(frames, state) -> (log_probs, state)``
        from :attr:`state`, which stays as it is until :meth:`consume` takes the new one
        (a batcher computes the same for many sessions at once)."""
        return stream_step(self.model, frames, self.state)

    def consume(self, frames: torch.Tensor, log_probs: np.ndarray, state: LSTMState | None) -> list[Result]:
        """Advance the session with the model's output for ``frames``; return new results.

        Args:
            frames: what :meth:`push_audio` (or the front end) returned.
            log_probs: the step function's ``(len(frames) / stack, V)`` output for them.
            state: the LSTM state the step function returned; the session keeps it.
        """
        self.state = state
        results = self._advance(frames, log_probs) if len(log_probs) and not self.finished else []
        partial = self._partial_result()
        if partial is not None:
            results.append(partial)
        return results

    def may_decode(self, steps: int) -> bool:
        """Whether :meth:`consume` of ``steps`` new model steps may run a slow decode.

        Slow means a beam search or the offline model: at an endpoint, at the maximum
        utterance length, at the initial-silence timeout (:meth:`Endpointer.may_end_within`),
        or for every beam partial. When this is False, ``consume`` only advances greedy
        state (tens of microseconds), so a server can call it on its event loop instead of
        a worker thread. It errs towards True; it never changes what ``consume`` returns.
        """
        if self.finished:
            return False
        if self.config.interim_results and self.config.partial_decoder == "beam":
            return True
        return self.endpointer.may_end_within(steps)

    def _advance(self, frames: torch.Tensor, log_probs: np.ndarray) -> list[Result]:
        results: list[Result] = []
        utt = self._utt
        ep = self.endpointer
        start = 0
        for j, token in enumerate(log_probs.argmax(-1).tolist()):
            local = ep.utterance_steps
            started = ep.speech_started
            boundary = ep.observe(token != self._blank)
            if token != self._blank:
                if not started:
                    results.append(self._event(EventType.SPEECH_START, ep.steps - 1))
                if token != utt.last_token:
                    ch = self._vocab_labels[token]
                    if not (ch == " " and (not utt.text or utt.text.endswith(" "))):
                        utt.text += ch
                        utt.char_steps.append(local)
            utt.last_token = token
            if boundary is Boundary.INITIAL_SILENCE_TIMEOUT:
                self._append(utt, frames, log_probs, start, j + 1)
                self.finished = True
                results.append(self._event(EventType.INITIAL_SILENCE_TIMEOUT, ep.steps))
                return results
            if boundary is Boundary.UTTERANCE_END:
                self._append(utt, frames, log_probs, start, j + 1)
                results.extend(self._finalize())
                utt = self._utt
                start = j + 1
                if self.finished:
                    return results
        self._append(utt, frames, log_probs, start, len(log_probs))
        return results

    def _append(self, utt: _Utterance, frames: torch.Tensor, log_probs: np.ndarray, a: int, b: int) -> None:
        if b <= a:
            return
        if utt.search is not None:
            utt.search.extend(log_probs[a:b])
        if self.config.mode == Mode.TWO_PASS:
            utt.frames.append(frames[a * self.stack : b * self.stack])
            if self.fusion is not None:
                utt.log_probs.append(log_probs[a:b])
        utt.steps += b - a

    # -------------------------------------------------------------- results
    def _event(self, event: EventType, step: int) -> Result:
        t = round(step * self.step_seconds, 3)
        return Result(False, (), self.utterance_index, t, t, events=(event,))

    def _new_utterance(self, start_step: int) -> _Utterance:
        search = None
        if self._search_stream:
            c = self.config
            search = self.decoder.search(c.hotwords, c.hotword_weight, c.n_best, eager=self._eager_search)
        return _Utterance(start_step=start_step, search=search)

    def _partial_result(self) -> Result | None:
        if not self.config.interim_results or self.finished:
            return None
        utt = self._utt
        offset = utt.start_step * self.step_seconds
        if self.config.partial_decoder == "beam":
            assert utt.search is not None
            hyp = utt.search.result(offset)[0]
        else:
            text = utt.text.strip()
            hyp = Hypothesis(text=text)
        if not hyp.text or hyp.text == self._last_partial:
            return None
        self._last_partial = hyp.text
        # Stability: share of characters emitted more than the endpoint window ago.
        window = self.endpointer.endpoint_steps
        settled = sum(1 for s in utt.char_steps if utt.steps - s > window)
        stability = round(settled / max(1, len(utt.char_steps)), 3)
        return Result(
            is_final=False,
            alternatives=(hyp,),
            utterance_index=self.utterance_index,
            start=round(offset, 3),
            end=round((utt.start_step + utt.steps) * self.step_seconds, 3),
            stability=stability,
        )

    def _final_hypotheses(self) -> list[Hypothesis]:
        utt = self._utt
        offset = utt.start_step * self.step_seconds
        if self.config.mode == Mode.TWO_PASS and utt.frames and self.offline_model is not None:
            frames = torch.cat(utt.frames)
            # The offline model has its own normaliser: undo ours, apply its own.
            if self.offline_normalizer is not self.normalizer:
                frames = self.offline_normalizer(frames * self.normalizer.std + self.normalizer.mean)
            lp = batch_log_probs(self.offline_model, [frames])[0].numpy()
            if self.fusion is not None:
                lp = self.fusion(lp, np.concatenate(utt.log_probs))
            return self.decoder.beam(
                lp, self.config.hotwords, self.config.hotword_weight, self.config.n_best, offset
            )
        if utt.search is not None:
            return utt.search.result(offset)
        return [Hypothesis(text="", confidence=1.0)]

    def _finalize(self) -> list[Result]:
        """Close the current utterance: final result (if it held speech) and reset."""
        utt = self._utt
        results: list[Result] = []
        if self.endpointer.speech_started:
            hyps = self._final_hypotheses()
            start = utt.start_step * self.step_seconds
            end = (utt.start_step + utt.steps) * self.step_seconds
            results.append(
                Result(
                    is_final=True,
                    alternatives=tuple(hyps),
                    utterance_index=self.utterance_index,
                    start=round(start, 3),
                    end=round(end, 3),
                    stability=1.0,
                    events=(EventType.SPEECH_END,),
                )
            )
            self.utterance_index += 1
            if self.config.single_utterance:
                self.finished = True
        self.endpointer.next_utterance()
        if utt.search is not None:
            utt.search.close()
        self._utt = self._new_utterance(self.step) if not self.finished else _Utterance(self.step)
        self._last_partial = ""
        # The LSTM state runs on across utterances: resetting it mid-chunk would make
        # results depend on how the audio was chunked.
        return results

    # ------------------------------------------------------------ public API
    def accept_audio(self, audio: np.ndarray) -> list[Result]:
        """Push samples (float32 at the session rate) and run the model for this session."""
        frames = self.push_audio(audio)
        return self.consume(frames, *self.run_model(frames))

    def force_endpoint(self) -> list[Result]:
        """End the current utterance now (its final comes back, if it held speech)."""
        if self.finished:
            return []
        return self._finalize()

    def finish(self) -> list[Result]:
        """End of stream: process what is buffered and close the last utterance."""
        if self.finished:
            return []
        frames = self.flush_audio()
        results = self.consume(frames, *self.run_model(frames)) if len(frames) else []
        if not self.finished:
            results.extend(self._finalize())
        self.finished = True
        return results

    def close(self) -> None:
        """Release what the session holds outside itself: a decode worker's open search.

        Safe to call at any time, more than once; a dropped session is released too.
        """
        self.finished = True
        if self._utt.search is not None:
            self._utt.search.close()


def results_text(results: Sequence[Result]) -> str:
    """Concatenated final transcripts (for tests and simple callers)."""
    return " ".join(r.text for r in results if r.is_final and r.text)
