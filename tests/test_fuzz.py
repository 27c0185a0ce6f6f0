"""Hypothesis fuzzing of everything a client's bytes reach.

Targets: request validation (``session_config``), the per-stream ``AudioDecoder`` for
every encoding, container decoding (``decode_audio_bytes``, ``load_audio``) of raw and
mutated WAV/FLAC/OGG bytes, and the servicer itself (``StreamingRecognize`` and
``Recognize``, in process) driven with arbitrary message sequences, including bytes
that are not a protobuf at all.

Only clean errors are allowed: ``RequestError`` (a gRPC INVALID_ARGUMENT or
OUT_OF_RANGE with a message) and ``AudioError``. Any other exception, a hang, or a
stream left counted as live fails the test.

Budget: ``FUZZ_EXAMPLES`` inputs in all (default 300, about 20 s), shared by the tests
below in proportion to ``WEIGHTS``. The long run recorded in docs/reliability.md:

    FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest tests/test_fuzz.py --hypothesis-show-statistics
"""

from __future__ import annotations

import asyncio
import io
import math
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import pytest
import soundfile as sf
from asr.server.batcher import StreamBatcher
from asr.server.engine import Engine, Limits, RequestError
from asr.server.metrics import Metrics
from asr.server.servicer import AudioDecoder, RecognizerService, session_config
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from asr.api import Recognizer
from asr.audio import AudioError, decode_audio_bytes, load_audio
from asr.v1 import asr_pb2
from tests.helpers import make_tiny_recognizer

TOTAL = int(os.environ.get("FUZZ_EXAMPLES", "300"))
WEIGHTS = {"config": 15, "decoder": 10, "containers": 25, "files": 5, "stream": 35, "recognize": 10}
CLEAN_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE}
LIMITS = Limits(max_streams=8, max_stream_seconds=1.0, idle_timeout_s=10.0)
SERVER_RATES = (8000, 192000)  # what the servicer allows a container to declare
HANG_S = 60.0

F = TypeVar("F", bound=Callable[..., Any])


def budget(name: str) -> Callable[[F], F]:
    """Hypothesis settings giving test ``name`` its share of ``FUZZ_EXAMPLES``."""
    share = max(5, round(TOTAL * WEIGHTS[name] / sum(WEIGHTS.values())))
    return settings(
        max_examples=share,
        deadline=None,  # CPU-starved machines; hangs are caught by HANG_S instead
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# ----------------------------------------------------------------- strategies
INT32 = st.integers(-(2**31), 2**31 - 1)
ENCODINGS = [asr_pb2.LINEAR16, asr_pb2.MULAW, asr_pb2.ALAW, asr_pb2.WAV, asr_pb2.FLAC]


def _container(fmt: str, subtype: str | None, rate: int, seconds: float, channels: int = 1) -> bytes:
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal((int(rate * seconds), channels))).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


SEEDS = [
    _container("WAV", "PCM_16", 16000, 0.05),
    _container("WAV", "PCM_U8", 8000, 0.05, channels=2),
    _container("WAV", "FLOAT", 22050, 0.05),
    _container("WAV", "ULAW", 8000, 0.05),
    _container("FLAC", None, 16000, 0.05),
    _container("FLAC", "PCM_24", 44100, 0.03, channels=2),
    _container("OGG", "VORBIS", 16000, 0.1),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real container with bytes flipped, cut, spliced or repeated (headers included)."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "repeat"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            value = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, 1]) | st.integers(0, 255))
            data[at : at + 4] = bytes([value]) * len(data[at : at + 4])
        elif kind == "cut":
            data = data[:at]
        elif kind == "insert":
            data[at:at] = draw(st.binary(max_size=16))
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


MAGIC = st.sampled_from([b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM", b""])
RAW_AUDIO = st.one_of(
    st.binary(max_size=256),
    st.tuples(MAGIC, st.binary(max_size=256)).map(b"".join),
    mutated(),
)


def speech_contexts() -> st.SearchStrategy[list[asr_pb2.SpeechContext]]:
    return st.lists(
        st.builds(
            asr_pb2.SpeechContext,
            phrases=st.lists(
                st.text(max_size=16) | st.sampled_from(["hello", "ok go", " ", "é€😀"]), max_size=3
            ),
            boost=st.floats(width=32),  # NaN and inf included
        ),
        max_size=2,
    )


def recognition_configs(plausible: bool) -> st.SearchStrategy[asr_pb2.RecognitionConfig]:
    """Any config (``plausible=False``) or one mostly inside the documented ranges."""
    trailing, longest, initial = (
        st.sampled_from([0, 90, 300, 600]),
        st.sampled_from([0, 1000, 5000, 20000]),
        st.sampled_from([0, 500, 3000]),
    )
    return st.builds(
        asr_pb2.RecognitionConfig,
        encoding=st.sampled_from(ENCODINGS) if plausible else st.sampled_from([0, *ENCODINGS]) | st.integers(0, 9),
        sample_rate_hertz=st.sampled_from([8000, 16000, 44100]) if plausible else st.sampled_from([0, 7999, 8000, 16000, 192000, 192001]) | INT32,
        model=st.sampled_from(["", "stream", "two-pass", "offline"]) if plausible else st.sampled_from(["", "stream", "streaming", "two-pass", "offline"]) | st.text(max_size=12),
        max_alternatives=st.integers(0, 10) if plausible else INT32,
        enable_word_time_offsets=st.booleans(),
        enable_word_confidence=st.booleans(),
        speech_contexts=speech_contexts(),
        endpointing=st.builds(
            asr_pb2.EndpointingConfig,
            trailing_silence_ms=trailing if plausible else trailing | INT32,
            max_utterance_ms=longest if plausible else longest | INT32,
            initial_silence_timeout_ms=initial if plausible else initial | INT32,
        ),
        partial_decoder=st.sampled_from(["", "greedy", "beam"]) if plausible else st.text(max_size=8),
    )  # fmt: skip


def config_message(plausible: bool = True) -> st.SearchStrategy[asr_pb2.StreamingRecognizeRequest]:
    return st.builds(
        lambda config, interim, single: asr_pb2.StreamingRecognizeRequest(
            streaming_config=asr_pb2.StreamingRecognitionConfig(
                config=config, interim_results=interim, single_utterance=single
            )
        ),
        recognition_configs(plausible),
        st.booleans(),
        st.booleans(),
    )


def pcm_noise(n: int) -> bytes:
    return (np.random.default_rng(n).standard_normal(n) * 8000).astype("<i2").tobytes()


AUDIO_BYTES = st.one_of(
    st.binary(max_size=4000),
    st.integers(0, 8000).map(pcm_noise),  # plausible speech-like PCM16, odd lengths never
    RAW_AUDIO,
)
# A message is a parsed request or raw bytes that reach the servicer through the
# deserializer (as gRPC would hand them over), so undecodable input is exercised too.
MESSAGE = st.one_of(
    AUDIO_BYTES.map(lambda b: asr_pb2.StreamingRecognizeRequest(audio_content=b)),
    st.booleans().map(
        lambda f: asr_pb2.StreamingRecognizeRequest(control=asr_pb2.StreamingControl(force_endpoint=f))
    ),
    st.just(asr_pb2.StreamingRecognizeRequest()),
    config_message(plausible=False),
    st.binary(max_size=64),
)
_CONFIG_FIRST = st.tuples(config_message(), st.lists(MESSAGE, max_size=8)).map(lambda t: [t[0], *t[1]])
SEQUENCES = st.sampled_from([True, True, True, False]).flatmap(  # mostly a config first
    lambda config_first: _CONFIG_FIRST if config_first else st.lists(MESSAGE, max_size=4)
)


# --------------------------------------------------------------------- harness
class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class FakeContext:
    """What the servicer uses of ``grpc.aio.ServicerContext``: ``abort`` raises."""

    def __init__(self) -> None:
        self.initial_metadata: tuple[tuple[str, str], ...] | None = None

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise Aborted(code, details)

    async def send_initial_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        assert self.initial_metadata is None, "initial metadata sent twice"
        self.initial_metadata = metadata


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory: pytest.TempPathFactory) -> Recognizer:
    return make_tiny_recognizer(tmp_path_factory.mktemp("fuzz-models"))


def run_service(recognizer: Recognizer, call: Callable[[RecognizerService], Any]) -> Any:
    """Run ``call(service)`` on a fresh service and event loop; returns its result or ``Aborted``."""

    async def main() -> Any:
        service = RecognizerService(
            Engine(recognizer, StreamBatcher(recognizer.streaming.model), Metrics(), LIMITS)
        )
        try:
            return await asyncio.wait_for(call(service), HANG_S)
        except Aborted as e:
            return e
        finally:
            await service.batcher.stop()
            assert service.active_streams == 0, "a stream was left counted as live"

    return asyncio.run(main())


def assert_clean(outcome: object) -> None:
    if isinstance(outcome, Aborted):
        event(f"{outcome.code.name}: " + outcome.details.split("'")[0][:32])
    else:
        event("OK")
    if isinstance(outcome, Aborted):
        assert outcome.code in CLEAN_CODES, outcome
        assert outcome.details.strip(), "an error without a message"


def check_samples(samples: np.ndarray) -> None:
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert np.isfinite(samples).all()


# ----------------------------------------------------------------------- tests
@budget("config")
@given(recognition_configs(True) | recognition_configs(False), st.booleans(), st.booleans(), st.booleans())
def test_session_config(
    recognizer: Recognizer, config: asr_pb2.RecognitionConfig, interim: bool, single: bool, offline: bool
) -> None:
    try:
        session = session_config(config, interim, single, offline_available=offline)
    except RequestError as e:
        event("rejected")
        assert e.code == grpc.StatusCode.INVALID_ARGUMENT and str(e)
        return
    event("accepted")
    assert 8000 <= session.sample_rate <= 192000 and 1 <= session.n_best <= 10
    recognizer.stream(session)  # whatever passes validation must make a session


@budget("decoder")
@given(st.sampled_from(ENCODINGS), st.lists(AUDIO_BYTES, max_size=6))
def test_audio_decoder(encoding: int, chunks: list[bytes]) -> None:
    decode = AudioDecoder(encoding)
    total = 0
    for chunk in chunks:
        try:
            samples = decode(chunk, max_seconds=60.0)
        except RequestError as e:
            assert encoding in (asr_pb2.WAV, asr_pb2.FLAC), "raw codecs take any bytes"
            assert e.code in CLEAN_CODES and str(e)
            continue
        check_samples(samples)
        total += len(samples)
        if encoding in (asr_pb2.MULAW, asr_pb2.ALAW):
            assert np.abs(samples).max(initial=0.0) <= 1.0  # (float WAV may hold louder samples)
    if encoding == asr_pb2.LINEAR16:
        assert total == sum(map(len, chunks)) // 2  # a trailing odd byte is only carried


@budget("containers")
@given(RAW_AUDIO, st.booleans())
def test_decode_audio_bytes(data: bytes, server_limits: bool) -> None:
    limits: dict[str, Any] = {"max_seconds": 60.0, "rate_range": SERVER_RATES} if server_limits else {}
    try:
        samples = decode_audio_bytes(data, name="fuzz", **limits)
    except AudioError as e:
        event(type(e).__name__)
        assert str(e).startswith("fuzz")
        return
    event("decoded")
    check_samples(samples)
    if server_limits:
        assert len(samples) <= 60 * 16000 + 16


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-files")


@budget("files")
@given(RAW_AUDIO, st.sampled_from(["", ".wav", ".flac", ".ogg", ".mp3", ".txt"]))
def test_load_audio_file(scratch: Path, data: bytes, suffix: str) -> None:
    path = scratch / f"input{suffix}"
    path.write_bytes(data)
    try:
        samples = load_audio(path)
    except AudioError as e:
        event("AudioError")
        assert str(path) in str(e)
        return
    event("decoded")
    check_samples(samples)


def _boosted(boost: float) -> list[asr_pb2.StreamingRecognizeRequest | bytes]:
    config = asr_pb2.RecognitionConfig(encoding=asr_pb2.LINEAR16, sample_rate_hertz=8000)
    config.speech_contexts.add(boost=boost)
    first = asr_pb2.StreamingRecognizeRequest(
        streaming_config=asr_pb2.StreamingRecognitionConfig(config=config)
    )
    return [first, asr_pb2.StreamingRecognizeRequest(audio_content=pcm_noise(4000))]


@budget("stream")
@given(SEQUENCES)
@example(_boosted(float("inf")))  # found by the 10,000-input run: beam search crashed (UNKNOWN)
@example(_boosted(float("nan")))
def test_streaming_recognize(
    recognizer: Recognizer, messages: list[asr_pb2.StreamingRecognizeRequest | bytes]
) -> None:
    async def call(service: RecognizerService) -> list[asr_pb2.StreamingRecognizeResponse]:
        async def requests() -> AsyncIterator[asr_pb2.StreamingRecognizeRequest]:
            for m in messages:
                yield asr_pb2.StreamingRecognizeRequest.FromString(m) if isinstance(m, bytes) else m

        return [r async for r in service.StreamingRecognize(requests(), FakeContext())]  # type: ignore[arg-type]

    outcome = run_service(recognizer, call)
    assert_clean(outcome)
    if not isinstance(outcome, Aborted):
        for response in outcome:
            response.SerializeToString()
            for result in response.results:
                assert all(math.isfinite(x) for x in (result.result_start_time, result.result_end_time))


@budget("recognize")
@given(recognition_configs(plausible=True) | recognition_configs(plausible=False), AUDIO_BYTES)
def test_recognize(recognizer: Recognizer, config: asr_pb2.RecognitionConfig, audio: bytes) -> None:
    request = asr_pb2.RecognizeRequest(config=config, audio_content=audio)

    async def call(service: RecognizerService) -> asr_pb2.RecognizeResponse:
        return await service.Recognize(request, FakeContext())  # type: ignore[arg-type]

    outcome = run_service(recognizer, call)
    assert_clean(outcome)
    if not isinstance(outcome, Aborted):
        assert outcome.audio_duration >= 0 and all(r.is_final for r in outcome.results)
