"""The Recognizer gRPC service: StreamingRecognize, Recognize, ListModels, GetStats."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator

import grpc
import numpy as np
from asr.client.aio import ACCEPTED_METADATA_KEY
from asr.server.batcher import StreamBatcher
from asr.server.engine import Engine, Limits, RequestError, Stream
from asr.server.metrics import Metrics
from google.protobuf.message import DecodeError
from grpc import aio

from asr.api import Recognizer, Transcript
from asr.audio import (
    AudioError,
    AudioTooLongError,
    alaw_to_float,
    decode_audio_bytes,
    mulaw_to_float,
    pcm16_to_float,
)
from asr.constants import Mode
from asr.streaming import EndpointConfig, EventType, Result, SessionConfig
from asr.v1 import asr_pb2, asr_pb2_grpc

log = logging.getLogger(__name__)

MODEL_NAMES = {
    "": Mode.STREAM,
    "stream": Mode.STREAM,
    "streaming": Mode.STREAM,
    "two-pass": Mode.TWO_PASS,
    "offline": Mode.OFFLINE,
}
MIN_RATE, MAX_RATE = 8000, 192000
_EVENTS = {
    EventType.SPEECH_START: asr_pb2.SPEECH_START,
    EventType.SPEECH_END: asr_pb2.SPEECH_END,
    EventType.INITIAL_SILENCE_TIMEOUT: asr_pb2.INITIAL_SILENCE_TIMEOUT,
}


def session_config(
    config: asr_pb2.RecognitionConfig,
    interim_results: bool = False,
    single_utterance: bool = False,
    offline_available: bool = True,
) -> SessionConfig:
    """Validate a RecognitionConfig and turn it into a SessionConfig (RequestError if bad)."""
    if config.model not in MODEL_NAMES:
        raise RequestError(f"unknown model {config.model!r}: expected one of stream, two-pass, offline")
    mode = MODEL_NAMES[config.model]
    if mode != Mode.STREAM and not offline_available:
        raise RequestError(f"model {mode!r} needs the offline model, which this server did not load")
    encoding = config.encoding
    if encoding == asr_pb2.ENCODING_UNSPECIFIED:
        raise RequestError("encoding is required: LINEAR16, MULAW, ALAW, WAV or FLAC")
    if encoding not in (asr_pb2.WAV, asr_pb2.FLAC):
        rate = config.sample_rate_hertz
        if not MIN_RATE <= rate <= MAX_RATE:
            raise RequestError(f"sample_rate_hertz must be in {MIN_RATE}..{MAX_RATE}, got {rate}")
    else:
        rate = 16000  # container bytes are decoded and resampled to 16 kHz first
    n_best = config.max_alternatives or 1
    if not 1 <= n_best <= 10:
        raise RequestError(f"max_alternatives must be in 1..10, got {config.max_alternatives}")
    if config.partial_decoder not in ("", "greedy", "beam"):
        raise RequestError(f"partial_decoder must be greedy or beam, got {config.partial_decoder!r}")
    hotwords: list[str] = []
    boost = None
    for context in config.speech_contexts:
        hotwords += [p.strip().lower() for p in context.phrases if p.strip()]
        if not math.isfinite(context.boost):  # inf/NaN would wreck every beam score
            raise RequestError(f"speech_contexts boost must be a finite number, got {context.boost}")
        if context.boost:
            boost = float(context.boost)
    ep = config.endpointing
    try:
        endpoint = EndpointConfig(
            trailing_silence_ms=ep.trailing_silence_ms or EndpointConfig.trailing_silence_ms,
            max_utterance_ms=ep.max_utterance_ms or EndpointConfig.max_utterance_ms,
            initial_silence_timeout_ms=ep.initial_silence_timeout_ms,
        )
        return SessionConfig(
            mode=mode,
            sample_rate=rate,
            interim_results=interim_results,
            partial_decoder=config.partial_decoder or "greedy",
            n_best=n_best,
            hotwords=tuple(hotwords),
            hotword_weight=boost,
            single_utterance=single_utterance,
            endpoint=endpoint,
        )
    except ValueError as e:
        raise RequestError(str(e)) from None


class AudioDecoder:
    """Bytes of one stream -> float32 samples; keeps an odd trailing PCM16 byte for the next chunk."""

    def __init__(self, encoding: int) -> None:
        self.encoding = encoding
        self._carry = b""

    def __call__(self, data: bytes, max_seconds: float | None = None) -> np.ndarray:
        """Decode one message; WAV/FLAC longer than ``max_seconds`` are refused before they expand."""
        if self.encoding == asr_pb2.LINEAR16:
            data = self._carry + data
            even = len(data) // 2 * 2
            self._carry = data[even:]
            return pcm16_to_float(data[:even])
        if self.encoding == asr_pb2.MULAW:
            return mulaw_to_float(data)
        if self.encoding == asr_pb2.ALAW:
            return alaw_to_float(data)
        try:
            return decode_audio_bytes(
                data, name="audio_content", max_seconds=max_seconds, rate_range=(MIN_RATE, MAX_RATE)
            )
        except AudioTooLongError as e:
            raise RequestError(str(e), grpc.StatusCode.OUT_OF_RANGE) from None
        except AudioError as e:
            raise RequestError(
                f"could not decode {asr_pb2.AudioEncoding.Name(self.encoding)} bytes: {e}"
            ) from None


def to_proto(result: Result, word_times: bool, word_confidence: bool) -> asr_pb2.StreamingRecognitionResult:
    msg = asr_pb2.StreamingRecognitionResult(
        is_final=result.is_final,
        stability=result.stability,
        result_start_time=result.start,
        result_end_time=result.end,
        utterance_index=result.utterance_index,
    )
    for hyp in result.alternatives:
        alt = msg.alternatives.add(transcript=hyp.text, confidence=hyp.confidence)
        if word_times or word_confidence:
            for w in hyp.words:
                alt.words.add(
                    word=w.word,
                    start_time=w.start if word_times else 0.0,
                    end_time=w.end if word_times else 0.0,
                    confidence=w.confidence if word_confidence else 0.0,
                )
    return msg


def to_response(
    results: list[Result], config: asr_pb2.RecognitionConfig
) -> asr_pb2.StreamingRecognizeResponse:
    response = asr_pb2.StreamingRecognizeResponse()
    for r in results:
        for event in r.events:
            response.speech_events.add(type=_EVENTS[event], time=r.end)
        if r.alternatives:
            response.results.append(
                to_proto(r, config.enable_word_time_offsets, config.enable_word_confidence)
            )
    return response


class _IdleTimer:
    """The idle timeout of one stream: no message for ``seconds`` cancels the read.

    One timer per stream, re-armed lazily when it fires, instead of a timer set and
    cancelled for every message (asyncio.timeout per read was a tenth of the server's
    busy time at 150 streams). Only time spent waiting for the client counts.
    """

    def __init__(self, seconds: float) -> None:
        self.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.seconds = seconds
        self.expired = False
        self._since: float | None = None  # when the current wait began; None when not waiting
        self._handle: asyncio.TimerHandle | None = None

    def waiting(self) -> None:
        self._since = self.loop.time()
        if self._handle is None and self.seconds > 0 and math.isfinite(self.seconds):
            self._handle = self.loop.call_at(self._since + self.seconds, self._check)

    def received(self) -> None:
        self._since = None

    def _check(self) -> None:
        self._handle = None
        if self._since is None:
            return  # busy, not waiting: the next wait re-arms the timer
        due = self._since + self.seconds
        if self.loop.time() >= due:
            self.expired = True
            self.task.cancel()
        else:
            self._handle = self.loop.call_at(due, self._check)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class RecognizerService(asr_pb2_grpc.RecognizerServicer):
    """Implements the Recognizer service on the server's shared :class:`Engine`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def recognizer(self) -> Recognizer:
        return self.engine.recognizer

    @property
    def batcher(self) -> StreamBatcher:
        return self.engine.batcher

    @property
    def metrics(self) -> Metrics:
        return self.engine.metrics

    @property
    def limits(self) -> Limits:
        return self.engine.limits

    @property
    def draining(self) -> bool:
        return self.engine.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self.engine.draining = value

    @property
    def active_streams(self) -> int:
        return self.metrics.active_streams

    async def _next(  # type: ignore[no-untyped-def]
        self, iterator: AsyncIterator[asr_pb2.StreamingRecognizeRequest], idle: _IdleTimer
    ):
        idle.waiting()
        try:
            return await anext(iterator)
        except StopAsyncIteration:
            return None
        except DecodeError as e:
            raise RequestError(f"not a valid StreamingRecognizeRequest message: {e}") from None
        except asyncio.CancelledError:
            if idle.expired and idle.task.uncancel() == 0:
                raise RequestError(
                    f"no message for {self.limits.idle_timeout_s:g} s (idle timeout)",
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ) from None
            raise
        finally:
            idle.received()

    async def StreamingRecognize(  # noqa: N802 - gRPC naming
        self,
        request_iterator: AsyncIterator[asr_pb2.StreamingRecognizeRequest],
        context: aio.ServicerContext,
    ) -> AsyncIterator[asr_pb2.StreamingRecognizeResponse]:
        idle = _IdleTimer(self.limits.idle_timeout_s)
        stream: Stream | None = None
        counted = False
        try:
            # Admission comes after the first message has arrived: refusing a stream while
            # the client is still sending its config makes grpc.aio clients report INTERNAL
            # 'Internal error from Core' instead of the status below (asr.client.aio).
            first = await self._next(request_iterator, idle)
            self.engine.admit()  # no await since the check: admission is atomic
            counted = True
            if first is None:
                return  # half-closed without sending anything: nothing to do
            if first.WhichOneof("request") != "streaming_config":
                raise RequestError(
                    f"the first message must be streaming_config, got {first.WhichOneof('request') or 'nothing'}"
                )
            sc = first.streaming_config
            config = session_config(
                sc.config, sc.interim_results, sc.single_utterance, self.recognizer.offline is not None
            )
            stream = await self.engine.open_stream(config, sc.config.profile or None)
            decode = AudioDecoder(sc.config.encoding)
            # Accepted: say so at once (initial metadata, before any result), so that an
            # asyncio client can wait for it before sending audio (asr.client.aio).
            await context.send_initial_metadata(((ACCEPTED_METADATA_KEY, config.mode),))
            drained = False
            while not stream.finished:
                request = await self._next(request_iterator, idle)
                if request is None:
                    break
                if self.draining:  # shutting down: close the open utterance with a final, then say so
                    drained = True
                    break
                received = time.perf_counter()
                kind = request.WhichOneof("request")
                if kind == "streaming_config":
                    raise RequestError("streaming_config may only be sent once, as the first message")
                if kind == "control":
                    results = await stream.force_endpoint() if request.control.force_endpoint else []
                else:
                    samples = decode(request.audio_content, stream.seconds_left)
                    results = await stream.accept(samples, received)
                if results:
                    yield to_response(results, sc.config)
            if not stream.finished:
                results = await stream.finish()
                if results:
                    yield to_response(results, sc.config)
            if drained:
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"server is shutting down: stream ended after {stream.audio_seconds:.2f} s of audio "
                    "(results up to there were sent); reconnect to go on",
                )
            if sc.single_utterance:
                yield asr_pb2.StreamingRecognizeResponse(
                    speech_events=[asr_pb2.SpeechEvent(type=asr_pb2.END_OF_SINGLE_UTTERANCE)]
                )
        except RequestError as e:
            self.metrics.error()
            await context.abort(e.code, str(e))
        finally:
            idle.close()
            if stream is not None:
                stream.close()  # at once, also on cancel: a decode worker may hold its search
            if counted:
                self.engine.release()

    async def Recognize(  # noqa: N802
        self, request: asr_pb2.RecognizeRequest, context: aio.ServicerContext
    ) -> asr_pb2.RecognizeResponse:
        started = time.perf_counter()
        try:
            config = session_config(request.config, offline_available=self.recognizer.offline is not None)
            samples = AudioDecoder(request.config.encoding)(
                request.audio_content, self.limits.max_stream_seconds
            )
            if len(samples) / config.sample_rate > self.limits.max_stream_seconds:
                raise RequestError(
                    f"audio longer than the {self.limits.max_stream_seconds:g} s maximum",
                    grpc.StatusCode.OUT_OF_RANGE,
                )

            recognizer, profile = await self.engine.acquire_recognizer(request.config.profile or None)

            def run() -> Transcript:
                return recognizer.transcribe(samples, config.mode, config.sample_rate, config)

            try:
                transcript = await asyncio.get_running_loop().run_in_executor(None, run)
            finally:
                self.engine.release_profile(profile)
        except RequestError as e:
            self.metrics.error()
            await context.abort(e.code, str(e))
        elapsed = time.perf_counter() - started
        self.metrics.audio(transcript.duration, elapsed)
        return asr_pb2.RecognizeResponse(
            results=[
                to_proto(r, request.config.enable_word_time_offsets, request.config.enable_word_confidence)
                for r in transcript.results
            ],
            audio_duration=transcript.duration,
            processing_seconds=elapsed,
        )

    async def ListModels(  # noqa: N802
        self, request: asr_pb2.ListModelsRequest, context: aio.ServicerContext
    ) -> asr_pb2.ListModelsResponse:
        rec = self.recognizer
        has_lm = rec.decoder.has_lm
        models = [
            asr_pb2.ModelInfo(
                name=Mode.STREAM,
                description="unidirectional LSTM: partials and finals in real time",
                parameters=rec.streaming.model.num_parameters(),
                checkpoint=str(rec.streaming.path),
                language_model=has_lm,
            )
        ]
        if rec.offline is not None:
            for name, text in (
                (Mode.TWO_PASS, "streaming partials, BiLSTM re-decodes each utterance for the final"),
                (Mode.OFFLINE, "BiLSTM over each whole utterance; finals only"),
            ):
                models.append(
                    asr_pb2.ModelInfo(
                        name=name,
                        description=text,
                        parameters=rec.offline.model.num_parameters(),
                        checkpoint=str(rec.offline.path),
                        language_model=has_lm,
                    )
                )
        return asr_pb2.ListModelsResponse(models=models)

    async def ListProfiles(  # noqa: N802
        self, request: asr_pb2.ListProfilesRequest, context: aio.ServicerContext
    ) -> asr_pb2.ListProfilesResponse:
        profiles = self.engine.profiles
        if profiles is None:
            return asr_pb2.ListProfilesResponse()

        def listing() -> list[asr_pb2.ProfileInfo]:
            loaded = set(profiles.loaded)
            return [
                asr_pb2.ProfileInfo(
                    name=info.name,
                    adapted=info.adapted,
                    enrolled_minutes=info.minutes,
                    loaded=info.name in loaded,
                )
                for info in (profiles.store.info(name) for name in profiles.store.names())
            ]

        infos = await asyncio.get_running_loop().run_in_executor(None, listing)
        return asr_pb2.ListProfilesResponse(profiles=infos, max_loaded=profiles.max_profiles)

    async def GetStats(  # noqa: N802
        self, request: asr_pb2.GetStatsRequest, context: aio.ServicerContext
    ) -> asr_pb2.GetStatsResponse:
        m = self.metrics
        return asr_pb2.GetStatsResponse(
            active_streams=m.active_streams,
            total_streams=m.total_streams,
            errors=m.errors,
            audio_seconds=m.audio_seconds,
            compute_seconds=m.compute_seconds,
            partial_latency_p50_ms=m.partial_latency.quantile(0.5),
            partial_latency_p95_ms=m.partial_latency.quantile(0.95),
            last_batch_size=self.batcher.last_batch_size,
            batches=self.batcher.batches,
            batched_chunks=self.batcher.items,
            batch_compute_seconds=self.batcher.compute_seconds,
        )
