"""The recognition engine one server process shares between its transports.

The gRPC servicer (:mod:`asr.server.servicer`) and the Vosk WebSocket endpoint
(:mod:`asr.server.ws`) both open their streams here, so they share one recognizer,
one cross-stream batcher, one set of limits and one set of metrics::

    engine.admit()                      # stream cap and draining; counts the stream
    try:
        stream = await engine.open_stream(session_config, profile=None)
        results = await stream.accept(samples)   # batched log-mel + LSTM step, then decode
        results += await stream.finish()
    finally:
        stream.close()
        engine.release()
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import numpy as np
from asr.server.batcher import StreamBatcher
from asr.server.metrics import Metrics

from asr.api import Recognizer
from asr.decode_pool import PooledDecoder
from asr.streaming import Result, SessionConfig, StreamingSession

if TYPE_CHECKING:
    from asr.server.profiles import LoadedProfile, ProfileCache

log = logging.getLogger(__name__)


class RequestError(ValueError):
    """Bad client input or a refused stream, with the status it maps to.

    The gRPC servicer aborts with ``code``; the WebSocket endpoint sends the message as
    ``{"error": ...}`` and closes with the matching WebSocket close code.
    """

    def __init__(self, message: str, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Limits:
    """Per-stream limits every transport enforces."""

    max_streams: int = 256
    max_stream_seconds: float = 3600.0
    idle_timeout_s: float = 30.0
    max_message_bytes: int = 4 * 2**20


class Stream:
    """One open recognition stream: its session and the batcher that steps its model."""

    def __init__(
        self,
        engine: Engine,
        session: StreamingSession,
        batcher: StreamBatcher,
        profile: LoadedProfile | None = None,
    ) -> None:
        self.engine = engine
        self.session = session
        self.batcher = batcher
        self.profile = profile  # the speaker profile it runs on (None: the base models)
        self.sample_rate = session.config.sample_rate
        self.audio_seconds = 0.0

    @property
    def finished(self) -> bool:
        return self.session.finished

    @property
    def seconds_left(self) -> float:
        """Audio this stream may still send before the maximum stream duration."""
        return self.engine.limits.max_stream_seconds - self.audio_seconds

    async def accept(self, samples: np.ndarray, received: float | None = None) -> list[Result]:
        """Recognise the next samples (float32 at the session's rate).

        Args:
            samples: the decoded audio of one client message.
            received: ``time.perf_counter()`` when the message arrived (default: now); the
                compute time and the latency metrics count from there.

        Raises:
            RequestError: OUT_OF_RANGE once the stream passes the maximum duration.
        """
        received = time.perf_counter() if received is None else received
        self.audio_seconds += len(samples) / self.sample_rate
        limit = self.engine.limits.max_stream_seconds
        if self.audio_seconds > limit:
            raise RequestError(f"stream longer than the {limit:g} s maximum", grpc.StatusCode.OUT_OF_RANGE)
        session = self.session
        # Log-mel and LSTM step both run batched across streams.
        audio16 = session.take_audio(samples)
        frames, log_probs, state = await self.batcher.step_audio(session.frontend, audio16, session.state)
        if session.may_decode(len(log_probs)):  # a final (beam search) may be due
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(None, session.consume, frames, log_probs, state)
        else:  # greedy bookkeeping only: a thread hop would cost more than the call
            results = session.consume(frames, log_probs, state)
        self.engine.metrics.audio(len(samples) / self.sample_rate, time.perf_counter() - received)
        self.observe(results, received)
        return results

    async def force_endpoint(self) -> list[Result]:
        """Close the open utterance now; its final comes back if it held speech."""
        started = time.perf_counter()
        results = await asyncio.get_running_loop().run_in_executor(None, self.session.force_endpoint)
        self.observe(results, started)
        return results

    async def finish(self) -> list[Result]:
        """End of audio: the last final, if an utterance was open."""
        if self.session.finished:
            return []
        started = time.perf_counter()
        results = await asyncio.get_running_loop().run_in_executor(None, self.session.finish)
        self.observe(results, started)
        return results

    def observe(self, results: list[Result], since: float) -> None:
        """Record the latency of the partials and finals in ``results``."""
        ms = 1000 * (time.perf_counter() - since)
        metrics = self.engine.metrics
        for r in results:
            if r.alternatives:
                (metrics.final if r.is_final else metrics.partial)(ms)

    def close(self) -> None:
        """Release the session at once (also on cancel: a decode worker may hold its search)."""
        self.session.close()
        self.engine.release_profile(self.profile)
        self.profile = None


class Engine:
    """The recognizer, batcher, limits and metrics of one server process."""

    def __init__(
        self,
        recognizer: Recognizer,
        batcher: StreamBatcher,
        metrics: Metrics,
        limits: Limits,
        profiles: ProfileCache | None = None,
    ) -> None:
        """``profiles``: the speaker profiles requests may name (None: none; naming one is refused)."""
        if limits.max_streams < 1:
            raise ValueError(f"expected max_streams >= 1, got {limits.max_streams}")
        if limits.max_message_bytes < 1024:
            raise ValueError(f"expected max_message_bytes >= 1024, got {limits.max_message_bytes}")
        self.recognizer = recognizer
        self.batcher = batcher
        self.metrics = metrics
        self.limits = limits
        self.profiles = profiles
        self.draining = False

    @property
    def offline_available(self) -> bool:
        return self.recognizer.offline is not None

    def admit(self) -> None:
        """Count a new stream, or refuse it (UNAVAILABLE while draining, RESOURCE_EXHAUSTED at the cap).

        No await between the check and the count: admission is atomic on the event loop.
        Every admitted stream must be :meth:`release`\\ d.
        """
        if self.draining:
            raise RequestError("server is shutting down", grpc.StatusCode.UNAVAILABLE)
        if self.metrics.active_streams >= self.limits.max_streams:
            raise RequestError(
                f"stream limit reached ({self.limits.max_streams} live streams)",
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            )
        self.metrics.stream_started()

    def release(self) -> None:
        """An admitted stream has ended."""
        self.metrics.stream_ended()

    async def open_stream(self, config: SessionConfig, profile: str | None = None) -> Stream:
        """A new stream with ``config``, on the base models or on ``profile``'s adapted ones.

        A profile not yet loaded is loaded in a worker thread (:class:`ProfileCache`); its
        streams share the profile's own batcher.

        Raises:
            RequestError: INVALID_ARGUMENT for a malformed profile name or a mode whose
                model this server did not load, NOT_FOUND for an unknown profile,
                FAILED_PRECONDITION for a profile that was never adapted.
        """
        recognizer, entry = await self.acquire_recognizer(profile)
        try:
            session = recognizer.stream(config)
        except ValueError as e:
            self.release_profile(entry)
            raise RequestError(str(e)) from None
        return Stream(self, session, self.batcher if entry is None else entry.batcher, entry)

    async def acquire_recognizer(self, profile: str | None) -> tuple[Recognizer, LoadedProfile | None]:
        """The recognizer of ``profile`` (loaded if need be), or the base one when it is empty.

        A profile's entry comes back with it; give it to :meth:`release_profile` when done.

        Raises:
            RequestError: as :meth:`open_stream`.
        """
        if not profile:
            return self.recognizer, None
        if self.profiles is None:
            raise RequestError(
                f"profile {profile!r} not found: this server serves no profiles", grpc.StatusCode.NOT_FOUND
            )
        entry = await self.profiles.acquire(profile)
        return entry.recognizer, entry

    def release_profile(self, entry: LoadedProfile | None) -> None:
        """A request that used ``entry`` (from :meth:`acquire_recognizer`) is done."""
        if entry is not None and self.profiles is not None:
            self.profiles.release(entry)

    async def stop(self) -> None:
        """Stop the batchers and the decode workers (after the transports have stopped)."""
        await self.batcher.stop()
        if self.profiles is not None:
            await self.profiles.stop()
        decoder = self.recognizer.decoder
        if isinstance(decoder, PooledDecoder):
            await asyncio.get_running_loop().run_in_executor(None, decoder.close)
