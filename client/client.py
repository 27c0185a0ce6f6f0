"""A small, typed client for the asr.v1.Recognizer gRPC service.

    from asr.client import FileSource, RecognizerClient, StreamOptions

    with RecognizerClient("localhost:50051", token="...") as client:
        call = client.stream(FileSource("talk.wav"), StreamOptions(model="two-pass"), realtime=True)
        for event in call:             # partials while audio is still going out, then finals
            print(event.is_final, event.text, event.end, event.sent_audio_seconds)

``call.force_endpoint()`` closes the current utterance, ``call.end_audio()`` stops
sending and waits for the last results, ``call.cancel()`` drops the stream. Errors
come back as :class:`RecognizerError` with the gRPC status code and the server's message.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import numpy as np
from asr.client.sources import CHUNK_MS, ArraySource, FileSource, pace, to_pcm16
from grpc_health.v1 import health_pb2, health_pb2_grpc

from asr.constants import SAMPLE_RATE, Mode
from asr.v1 import asr_pb2, asr_pb2_grpc

log = logging.getLogger(__name__)

ENCODINGS = {
    "LINEAR16": asr_pb2.LINEAR16,
    "MULAW": asr_pb2.MULAW,
    "ALAW": asr_pb2.ALAW,
    "WAV": asr_pb2.WAV,
    "FLAC": asr_pb2.FLAC,
}
_BYTES_PER_SAMPLE = {"LINEAR16": 2, "MULAW": 1, "ALAW": 1}  # containers: unknown
MAX_RECEIVE_BYTES = 64 * 2**20


class RecognizerError(RuntimeError):
    """A call failed; ``code`` is the gRPC status code and ``details`` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

    @classmethod
    def from_rpc(cls, error: grpc.RpcError) -> RecognizerError:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        return cls(code, details or code.name)


@dataclass(frozen=True)
class StreamOptions:
    """Recognition settings; mirrors ``asr.v1.StreamingRecognitionConfig``.

    Zero means "server default" for ``hotword_boost`` and the endpointing times.

    Attributes:
        model: "stream" (uni-LSTM), "two-pass" (BiLSTM re-decodes each final) or "offline".
        sample_rate: rate of the audio sent (the server resamples); sources set their own.
        encoding: LINEAR16, MULAW, ALAW, WAV or FLAC (sources always send LINEAR16).
        interim_results: send partial results while an utterance is open.
        max_alternatives: n-best finals, 1..10.
        word_time_offsets: word start/end times in results.
        word_confidence: word confidences in results.
        hotwords: words or phrases to favour, with ``hotword_boost``.
        trailing_silence_ms: silence that ends an utterance (server default 600).
        max_utterance_ms: an utterance is cut at this length (server default 20000).
        initial_silence_timeout_ms: end the stream if nobody speaks by then (0: never).
        single_utterance: end the stream after the first final.
        partial_decoder: "greedy" (fast) or "beam" partials.
        profile: a speaker profile's adapted models on the server ("": the base models).
    """

    model: str = Mode.STREAM
    sample_rate: int = SAMPLE_RATE
    encoding: str = "LINEAR16"
    interim_results: bool = True
    max_alternatives: int = 1
    word_time_offsets: bool = False
    word_confidence: bool = False
    hotwords: tuple[str, ...] = ()
    hotword_boost: float = 0.0
    trailing_silence_ms: int = 0
    max_utterance_ms: int = 0
    initial_silence_timeout_ms: int = 0
    single_utterance: bool = False
    partial_decoder: str = "greedy"
    profile: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.hotwords, str):
            raise ValueError(f"expected a sequence of hotwords, got the string {self.hotwords!r}")
        object.__setattr__(self, "hotwords", tuple(self.hotwords))
        if self.encoding not in ENCODINGS:
            raise ValueError(f"expected encoding in {sorted(ENCODINGS)}, got {self.encoding!r}")
        if self.partial_decoder not in ("greedy", "beam"):
            raise ValueError(f"expected partial_decoder 'greedy' or 'beam', got {self.partial_decoder!r}")
        if self.sample_rate <= 0:
            raise ValueError(f"expected sample_rate > 0, got {self.sample_rate}")
        if self.max_alternatives < 1:
            raise ValueError(f"expected max_alternatives >= 1, got {self.max_alternatives}")
        for name in ("trailing_silence_ms", "max_utterance_ms", "initial_silence_timeout_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"expected {name} >= 0, got {getattr(self, name)}")

    def recognition_config(self) -> asr_pb2.RecognitionConfig:
        """The ``RecognitionConfig`` message (also what ``Recognize`` sends)."""
        config = asr_pb2.RecognitionConfig(
            encoding=ENCODINGS[self.encoding],
            sample_rate_hertz=self.sample_rate,
            model=self.model,
            max_alternatives=self.max_alternatives,
            enable_word_time_offsets=self.word_time_offsets,
            enable_word_confidence=self.word_confidence,
            endpointing=asr_pb2.EndpointingConfig(
                trailing_silence_ms=self.trailing_silence_ms,
                max_utterance_ms=self.max_utterance_ms,
                initial_silence_timeout_ms=self.initial_silence_timeout_ms,
            ),
            partial_decoder=self.partial_decoder,
            profile=self.profile,
        )
        if self.hotwords:
            config.speech_contexts.add(phrases=self.hotwords, boost=self.hotword_boost)
        return config

    def to_proto(self) -> asr_pb2.StreamingRecognitionConfig:
        """The ``StreamingRecognitionConfig`` sent as the first message of a stream."""
        return asr_pb2.StreamingRecognitionConfig(
            config=self.recognition_config(),
            interim_results=self.interim_results,
            single_utterance=self.single_utterance,
        )


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds from the start of the stream (0 unless word_time_offsets)
    end: float
    confidence: float  # 0 unless word_confidence


@dataclass(frozen=True)
class SpeechEvent:
    type: str  # SPEECH_START, SPEECH_END, END_OF_SINGLE_UTTERANCE, INITIAL_SILENCE_TIMEOUT
    time: float  # seconds from the start of the stream


@dataclass(frozen=True)
class StreamEvent:
    """One result (partial or final), or speech events alone (then ``text`` is empty).

    Attributes:
        sent_audio_seconds: audio handed to gRPC when this arrived; with real-time
            pacing, ``sent_audio_seconds - end`` is the latency of the result.
    """

    is_final: bool
    text: str
    stability: float
    start: float
    end: float
    utterance_index: int
    confidence: float = 0.0
    words: tuple[Word, ...] = ()
    alternatives: tuple[str, ...] = ()  # all transcripts, best first
    events: tuple[SpeechEvent, ...] = ()
    sent_audio_seconds: float = 0.0

    @property
    def has_result(self) -> bool:
        return bool(self.alternatives)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    parameters: int
    checkpoint: str
    language_model: bool


@dataclass(frozen=True)
class ServerStats:
    active_streams: int
    total_streams: int
    errors: int
    audio_seconds: float
    compute_seconds: float
    partial_latency_p50_ms: float
    partial_latency_p95_ms: float
    last_batch_size: int
    batches: int = 0  # batched model steps since the server started
    batched_chunks: int = 0  # stream chunks those steps carried
    batch_compute_seconds: float = 0.0

    @property
    def mean_batch_size(self) -> float:
        return self.batched_chunks / self.batches if self.batches else 0.0


def _event(result: asr_pb2.StreamingRecognitionResult, sent: float) -> StreamEvent:
    best = result.alternatives[0] if result.alternatives else asr_pb2.SpeechRecognitionAlternative()
    return StreamEvent(
        is_final=result.is_final,
        text=best.transcript,
        stability=result.stability,
        start=result.result_start_time,
        end=result.result_end_time,
        utterance_index=result.utterance_index,
        confidence=best.confidence,
        words=tuple(Word(w.word, w.start_time, w.end_time, w.confidence) for w in best.words),
        alternatives=tuple(a.transcript for a in result.alternatives),
        sent_audio_seconds=sent,
    )


def events_from_response(
    response: asr_pb2.StreamingRecognizeResponse, sent_audio_seconds: float = 0.0, next_utterance: int = 0
) -> list[StreamEvent]:
    """A response as events: one per result, speech events on the first one.

    A response holding speech events only becomes one event with empty text, at the
    time of its first speech event and with utterance index ``next_utterance``.
    """
    speech = tuple(SpeechEvent(asr_pb2.SpeechEventType.Name(e.type), e.time) for e in response.speech_events)
    events = [_event(r, sent_audio_seconds) for r in response.results]
    if events:
        events[0] = replace(events[0], events=speech)
    elif speech:
        t = speech[0].time
        events.append(
            StreamEvent(
                False, "", 0.0, t, t, next_utterance, events=speech, sent_audio_seconds=sent_audio_seconds
            )
        )
    return events


class StreamCall(Iterator[StreamEvent]):
    """One live ``StreamingRecognize`` call: iterate it for :class:`StreamEvent` objects.

    Audio goes out on gRPC's sending thread while the caller iterates the results.
    Iteration raises :class:`RecognizerError` when the call fails, and the source's
    own error (e.g. :class:`~asr.client.sources.MicrophoneError`) when the audio does.
    Use it as a context manager to cancel the call if the caller stops early.
    """

    def __init__(
        self,
        stub: asr_pb2_grpc.RecognizerStub,
        options: StreamOptions,
        chunks: Iterable[bytes],
        realtime: bool,
        metadata: tuple[tuple[str, str], ...],
        timeout: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self._chunks = chunks
        self._bytes_per_sample = _BYTES_PER_SAMPLE.get(options.encoding)
        self._realtime = (
            realtime and self._bytes_per_sample is not None and not getattr(chunks, "live", False)
        )
        self._clock = clock
        self._control: queue.SimpleQueue[asr_pb2.StreamingRecognizeRequest] = queue.SimpleQueue()
        self._cancelled = threading.Event()
        self._audio_ended = threading.Event()
        self._wake = threading.Event()  # interrupts the pacing sleep
        self._sent_bytes = 0
        self._next_utterance = 0
        self._source_error: Exception | None = None
        self._pending: deque[StreamEvent] = deque()
        self._call = stub.StreamingRecognize(self._requests(), metadata=metadata, timeout=timeout)

    @property
    def sent_audio_seconds(self) -> float:
        """Seconds of audio handed to gRPC so far (0 for WAV/FLAC containers)."""
        if self._bytes_per_sample is None:
            return 0.0
        return self._sent_bytes / self._bytes_per_sample / self.options.sample_rate

    def force_endpoint(self) -> None:
        """Close the current utterance now; its final comes back (sent before the next chunk)."""
        self._control.put(
            asr_pb2.StreamingRecognizeRequest(control=asr_pb2.StreamingControl(force_endpoint=True))
        )

    def end_audio(self) -> None:
        """Stop sending audio and half-close; the remaining results still arrive."""
        self._audio_ended.set()
        self._wake.set()

    def cancel(self) -> None:
        """Drop the stream (the server stops work on it); iteration then ends quietly."""
        self._cancelled.set()
        self._wake.set()
        self._call.cancel()

    def _requests(self) -> Iterator[asr_pb2.StreamingRecognizeRequest]:
        yield asr_pb2.StreamingRecognizeRequest(streaming_config=self.options.to_proto())
        chunks: Iterable[bytes] = self._chunks
        if self._realtime:
            assert self._bytes_per_sample is not None
            chunks = pace(
                chunks, self.options.sample_rate, self._bytes_per_sample, self._clock, self._wake.wait
            )
        iterator = iter(chunks)
        try:
            for chunk in iterator:
                if self._cancelled.is_set() or self._audio_ended.is_set():
                    break
                yield from self._drain_control()
                self._sent_bytes += len(chunk)  # counted once handed over, before any reply to it
                yield asr_pb2.StreamingRecognizeRequest(audio_content=chunk)
            if not self._cancelled.is_set():
                yield from self._drain_control()
        except Exception as e:  # noqa: BLE001 - the source failed: re-raised to the caller by __next__
            log.debug("audio source failed: %r", e)
            self._source_error = e
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # releases the microphone, if that is the source

    def _drain_control(self) -> Iterator[asr_pb2.StreamingRecognizeRequest]:
        while True:
            try:
                yield self._control.get_nowait()
            except queue.Empty:
                return

    def __iter__(self) -> StreamCall:
        return self

    def __next__(self) -> StreamEvent:
        # Not a generator: a KeyboardInterrupt while waiting must leave the call usable.
        while not self._pending:
            if self._source_error is not None:
                self.cancel()
                raise self._source_error
            try:
                response = next(self._call)
            except StopIteration:
                if self._source_error is not None:
                    raise self._source_error from None
                raise
            except grpc.RpcError as e:
                if self._cancelled.is_set() and e.code() == grpc.StatusCode.CANCELLED:
                    raise StopIteration from None
                raise RecognizerError.from_rpc(e) from None
            for event in events_from_response(response, self.sent_audio_seconds, self._next_utterance):
                if event.has_result:
                    self._next_utterance = event.utterance_index + (1 if event.is_final else 0)
                self._pending.append(event)
        return self._pending.popleft()

    def __enter__(self) -> StreamCall:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is not None or self._call.running():
            self.cancel()


AudioInput = Iterable[bytes] | np.ndarray | str | os.PathLike[str]


class RecognizerClient:
    """A channel to one server.

    Args:
        target: ``host:port``.
        token: bearer token, sent as ``authorization: Bearer <token>`` metadata.
        tls_ca: PEM file of the CA that signed the server's certificate (TLS on);
            without it the channel is plaintext.
        timeout: deadline in seconds of unary calls (Recognize, ListModels, GetStats,
            health); streams have none unless :meth:`stream` is given one.
    """

    def __init__(
        self,
        target: str,
        token: str | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
    ) -> None:
        if not target:
            raise ValueError("expected a server address host:port, got an empty string")
        options = [("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)]
        if tls_ca is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=Path(tls_ca).read_bytes())
            self.channel = grpc.secure_channel(target, credentials, options)
        else:
            self.channel = grpc.insecure_channel(target, options)
        self.target = target
        self.timeout = timeout
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        self._stub = asr_pb2_grpc.RecognizerStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> RecognizerClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _unary(self, method: Callable[..., Any], request: Any) -> Any:
        try:
            return method(request, metadata=self._metadata, timeout=self.timeout)
        except grpc.RpcError as e:
            raise RecognizerError.from_rpc(e) from None

    def stream(
        self,
        source: AudioInput,
        config: StreamOptions | None = None,
        realtime: bool = False,
        chunk_ms: float = CHUNK_MS,
        timeout: float | None = None,
    ) -> StreamCall:
        """Start a streaming recognition; iterate the returned call for events.

        Args:
            source: a source from :mod:`asr.client.sources` (its ``sample_rate`` wins
                over ``config.sample_rate`` and it is sent as LINEAR16), a file path,
                mono samples (float or int16) at ``config.sample_rate``, or any iterable
                of bytes already in ``config.encoding``.
            realtime: send at audio speed (as if spoken live) instead of as fast as
                possible; live sources (the microphone) are never paced again.
            chunk_ms: chunk length for paths and arrays.
            timeout: deadline of the whole stream in seconds.
        """
        config = config or StreamOptions()
        chunks: Iterable[bytes]
        if isinstance(source, str | os.PathLike):
            chunks = FileSource(source, chunk_ms)
        elif isinstance(source, np.ndarray):
            chunks = ArraySource(source, config.sample_rate, chunk_ms)
        else:
            chunks = source
        rate = getattr(chunks, "sample_rate", None)
        if rate is not None:
            config = replace(config, sample_rate=rate, encoding="LINEAR16")
        return StreamCall(self._stub, config, chunks, realtime, self._metadata, timeout)

    def recognize(
        self, audio: np.ndarray | bytes | str | os.PathLike[str], config: StreamOptions | None = None
    ) -> list[StreamEvent]:
        """Recognize a whole recording in one request; returns the finals.

        Each event's ``sent_audio_seconds`` is the audio duration the server decoded.

        Args:
            audio: a file path (decoded here and sent as 16 kHz LINEAR16), mono samples
                (float or int16) at ``config.sample_rate``, or bytes in ``config.encoding``.
        """
        config = config or StreamOptions()
        if isinstance(audio, str | os.PathLike):
            source = FileSource(audio)
            data = b"".join(source)
            config = replace(config, sample_rate=source.sample_rate, encoding="LINEAR16")
        elif isinstance(audio, np.ndarray):
            data = to_pcm16(audio)
            config = replace(config, encoding="LINEAR16")
        elif isinstance(audio, bytes | bytearray | memoryview):
            data = bytes(audio)
        else:
            raise ValueError(f"expected a path, an array or bytes, got {type(audio).__name__}")
        request = asr_pb2.RecognizeRequest(config=config.recognition_config(), audio_content=data)
        response = self._unary(self._stub.Recognize, request)
        return [_event(r, response.audio_duration) for r in response.results]

    def list_models(self) -> list[ModelInfo]:
        """The models and modes the server offers."""
        response = self._unary(self._stub.ListModels, asr_pb2.ListModelsRequest())
        return [
            ModelInfo(m.name, m.description, m.parameters, m.checkpoint, m.language_model)
            for m in response.models
        ]

    def stats(self) -> ServerStats:
        """The server's live counters."""
        r = self._unary(self._stub.GetStats, asr_pb2.GetStatsRequest())
        return ServerStats(
            active_streams=r.active_streams,
            total_streams=r.total_streams,
            errors=r.errors,
            audio_seconds=r.audio_seconds,
            compute_seconds=r.compute_seconds,
            partial_latency_p50_ms=r.partial_latency_p50_ms,
            partial_latency_p95_ms=r.partial_latency_p95_ms,
            last_batch_size=r.last_batch_size,
            batches=r.batches,
            batched_chunks=r.batched_chunks,
            batch_compute_seconds=r.batch_compute_seconds,
        )

    def health(self, service: str = "") -> str:
        """``grpc.health.v1`` status name: SERVING, NOT_SERVING, ... (no token needed)."""
        request = health_pb2.HealthCheckRequest(service=service)
        response = self._unary(self._health.Check, request)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


__all__ = [
    "ENCODINGS",
    "ModelInfo",
    "RecognizerClient",
    "RecognizerError",
    "ServerStats",
    "SpeechEvent",
    "StreamCall",
    "StreamEvent",
    "StreamOptions",
    "Word",
    "events_from_response",
]
