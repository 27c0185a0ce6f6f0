"""Whole-file offline recognition, batched across files.

The streaming path (:class:`asr.streaming.StreamingSession`) runs the uni-LSTM to find
endpoints and only then the BiLSTM. For files that fit in memory that first pass is
wasted work, so batch transcription does this instead:

1. log-mel of each whole file, normalised for the offline model;
2. one padded BiLSTM forward for a batch of files (exact per-file lengths);
3. segments where the BiLSTM's own best path has a blank run as long as the endpoint's
   trailing silence (and at the maximum utterance length), each padded a little;
4. beam search + LM per segment, in decode worker processes when ``jobs > 1``
   (:class:`asr.decode_pool.PooledDecoder`: pyctcdecode is pure Python, so threads would
   not help); the main process meanwhile runs the next batch through the model. The
   workers are plain ``python -c`` children, so a script that uses this at its top level
   needs no ``if __name__ == "__main__":`` guard.

Results have the same shape as a streaming session's finals, with global times.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from asr.constants import step_seconds
from asr.decode_pool import PooledDecoder
from asr.decoding import DecoderProtocol, Hypothesis
from asr.features import FeatureConfig, Normalizer, log_mel
from asr.fusion import Fusion
from asr.inference import BATCH_FRAMES, sorted_log_probs
from asr.model import CTCModel
from asr.streaming import EventType, Result, SessionConfig

log = logging.getLogger(__name__)

PAD_STEPS = 5  # steps (150 ms) of context kept either side of a segment's speech


def speech_segments(
    log_probs: np.ndarray, blank: int, gap_steps: int, max_steps: int, pad_steps: int = PAD_STEPS
) -> list[tuple[int, int]]:
    """``[start, end)`` step ranges of speech in a CTC output.

    A segment ends where the best path holds ``gap_steps`` or more blank steps in a row,
    or once it is ``max_steps`` long. Each is widened by ``pad_steps`` either side without
    overlapping its neighbours. No non-blank step: no segments.
    """
    if len(log_probs) == 0:
        return []
    speech = np.flatnonzero(np.asarray(log_probs).argmax(-1) != blank)
    if len(speech) == 0:
        return []
    cores: list[tuple[int, int]] = []
    start = previous = int(speech[0])
    for t in speech[1:].tolist():
        if t - previous - 1 >= gap_steps or t - start >= max_steps:
            cores.append((start, previous + 1))
            start = t
        previous = t
    cores.append((start, previous + 1))
    total = len(log_probs)
    segments: list[tuple[int, int]] = []
    for i, (a, b) in enumerate(cores):
        lo = max(a - pad_steps, segments[-1][1] if segments else 0)
        hi = min(b + pad_steps, cores[i + 1][0] if i + 1 < len(cores) else total)
        segments.append((lo, hi))
    return segments


class _Done:
    """A finished value with the Future interface (the in-process path)."""

    def __init__(self, value: list[Hypothesis]) -> None:
        self._value = value

    def result(self) -> list[Hypothesis]:
        return self._value


@dataclass
class OfflineBatchRecognizer:
    """Batched BiLSTM + beam search over whole arrays (see the module docstring).

    Args:
        model, normalizer: the offline (bidirectional) model and its normaliser.
        decoder: beam search + LM.
        jobs: beam-search worker processes (1: decode in this process).
        streaming, streaming_normalizer, fusion: with all three, each file's BiLSTM
            log-probs are fused with the streaming model's whole-file ones
            (:mod:`asr.fusion`), as two-pass finals are; the segments come from the fused ones.
    """

    model: CTCModel
    normalizer: Normalizer
    decoder: DecoderProtocol
    jobs: int = 1
    streaming: CTCModel | None = None
    streaming_normalizer: Normalizer | None = None
    fusion: Fusion | None = None

    def __post_init__(self) -> None:
        self._pool: PooledDecoder | None = None
        if self.jobs > 1:
            self._pool = PooledDecoder(self.decoder, self.jobs)

    @property
    def step_seconds(self) -> float:
        """Seconds of audio per model step (:meth:`log_probs` computes the default log-mel)."""
        features = FeatureConfig()
        return step_seconds(features.hop_length, features.sample_rate, self.model.config.stack)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> OfflineBatchRecognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self, lp: np.ndarray, config: SessionConfig, offset: float) -> Future[Any] | _Done:
        if self._pool is None:
            return _Done(self.decoder.beam(lp, config.hotwords, config.hotword_weight, config.n_best, offset))
        return self._pool.beam_async(lp, config.hotwords, config.hotword_weight, config.n_best, offset)

    def log_probs(self, audios: Sequence[np.ndarray]) -> list[np.ndarray]:
        """BiLSTM log-probs ``(T', V)`` per 16 kHz array (fused, with a fusion), batched by length."""
        mels = [log_mel(a) for a in audios]
        lps = sorted_log_probs(self.model, [self.normalizer(m) for m in mels], BATCH_FRAMES)
        if self.fusion is not None and self.streaming is not None and self.streaming_normalizer is not None:
            # The streaming model's whole-file log-probs (batched the same way: same lengths).
            unis = sorted_log_probs(
                self.streaming, [self.streaming_normalizer(m) for m in mels], BATCH_FRAMES
            )
            return [self.fusion(b.numpy(), u.numpy()) for b, u in zip(lps, unis, strict=True)]
        return [lp.numpy() for lp in lps]

    def submit(self, audios: Sequence[np.ndarray], config: SessionConfig = SessionConfig()) -> list[Any]:
        """Run the model now and queue the beam searches; :meth:`collect` gives the finals.

        Between the two calls the caller can run the model on the next batch while the
        workers decode this one.
        """
        blank = self.decoder.vocab.blank
        step = self.step_seconds
        gap = max(1, round(config.endpoint.trailing_silence_ms / 1000 / step))
        longest = max(1, round(config.endpoint.max_utterance_ms / 1000 / step))
        pending: list[Any] = []
        for lp in self.log_probs(audios):
            segments = speech_segments(lp, blank, gap, longest)
            if config.single_utterance:
                segments = segments[:1]
            pending.append(
                [(a * step, b * step, self._submit(lp[a:b], config, a * step)) for a, b in segments]
            )
        return pending

    @staticmethod
    def collect(pending: list[Any]) -> list[list[Result]]:
        """Finals per array of a :meth:`submit` call, in order."""
        results: list[list[Result]] = []
        for jobs in pending:
            results.append(
                [
                    Result(
                        is_final=True,
                        alternatives=tuple(future.result()),
                        utterance_index=index,
                        start=round(start, 3),
                        end=round(end, 3),
                        stability=1.0,
                        events=(EventType.SPEECH_END,),
                    )
                    for index, (start, end, future) in enumerate(jobs)
                ]
            )
        return results

    def transcribe(
        self, audios: Sequence[np.ndarray], config: SessionConfig = SessionConfig()
    ) -> list[list[Result]]:
        """Finals per 16 kHz mono float32 array, in order."""
        return self.collect(self.submit(audios, config))
