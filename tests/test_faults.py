"""Fault injection on loopback: clients that vanish or stall, bad input, decompression
bombs, SIGTERM under load, access control, and a batch of broken files.

Each case asserts what the client sees (status code and message) and, for the shared
server, that it is unharmed afterwards: health SERVING and no live stream left behind.
Cases already covered by tests/test_server.py (audio before config, two configs, odd
PCM16 byte counts across chunks, oversize messages, the stream limit, half-close without
audio) are not repeated here; docs/reliability.md lists every case and its test.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import re
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
from asr.client import RecognizerClient, RecognizerError, StreamOptions
from asr.server.app import RunningServer, ServerConfig, start_in_thread

from asr import checkpoint
from asr.api import Recognizer
from asr.audio import float_to_pcm16, write_wav
from asr.cli import main as asr_main
from asr.decoding import Decoder
from asr.v1 import asr_pb2, asr_pb2_grpc
from tests.helpers import (
    Request,
    audio_requests,
    config_request,
    finals,
    noise,
    self_signed_cert,
    wait_for,
    write_tiny_checkpoints,
)

MAX_STREAM_SECONDS = 60.0
IDLE_TIMEOUT_S = 2.0
TOKEN = "tok-3f9a1c-never-logged"


# -------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Tiny streaming (blank-biased, so noise gives text) and offline checkpoints on disk."""
    folder = tmp_path_factory.mktemp("models")
    paths = write_tiny_checkpoints(folder, seed=0, blank_share=0.5)
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def recognizer(model_files: tuple[Path, Path]) -> Recognizer:
    return Recognizer(checkpoint.load_model(model_files[0]), checkpoint.load_model(model_files[1]), Decoder())


@pytest.fixture(scope="module")
def server(recognizer: Recognizer) -> Iterator[RunningServer]:
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        grace_s=0.5,
        idle_timeout_s=IDLE_TIMEOUT_S,
        max_stream_seconds=MAX_STREAM_SECONDS,
        max_message_bytes=2 * 2**20,
    )
    running = start_in_thread(config, recognizer)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def shared_client(server: RunningServer) -> Iterator[RecognizerClient]:
    with RecognizerClient(f"127.0.0.1:{server.port}", timeout=30) as c:
        yield c


@pytest.fixture
def client(shared_client: RecognizerClient) -> Iterator[RecognizerClient]:
    """The shared server's client; after the test the server must be healthy and idle."""
    yield shared_client
    assert wait_for(lambda: shared_client.stats().active_streams == 0, 10), "a stream was left behind"
    assert shared_client.health() == "SERVING"
    assert shared_client.health("asr.v1.Recognizer") == "SERVING"


@pytest.fixture
def stub(client: RecognizerClient) -> asr_pb2_grpc.RecognizerStub:
    return asr_pb2_grpc.RecognizerStub(client.channel)


def stream_status(stub: asr_pb2_grpc.RecognizerStub, requests: list[Request]) -> tuple[grpc.StatusCode, str]:
    try:
        list(stub.StreamingRecognize(iter(requests), timeout=30))
    except grpc.RpcError as e:
        return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""


def boosted_config(boost: float) -> Request:
    request = config_request()
    request.streaming_config.config.speech_contexts.add(phrases=["hello"], boost=boost)
    return request


def wav_bytes(audio: np.ndarray, rate: int = 16000, declared_rate: int | None = None) -> bytes:
    """A PCM16 WAV; ``declared_rate`` patches the header's rate afterwards (a lying header)."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    if declared_rate is not None:
        struct.pack_into("<II", data, 24, declared_rate, declared_rate * 2)  # rate, byte rate
    return bytes(data)


def flac_bytes(audio: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="FLAC")
    return buffer.getvalue()


def recognize_status(stub: asr_pb2_grpc.RecognizerStub, request: asr_pb2.RecognizeRequest) -> grpc.StatusCode:
    try:
        stub.Recognize(request, timeout=30)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


# ------------------------------------------------------------ vanishing clients
KILLED_CLIENT = r"""
import sys, time
import grpc, numpy as np
from asr.v1 import asr_pb2, asr_pb2_grpc

def requests():
    config = asr_pb2.RecognitionConfig(encoding=asr_pb2.LINEAR16, sample_rate_hertz=16000, model="stream")
    yield asr_pb2.StreamingRecognizeRequest(
        streaming_config=asr_pb2.StreamingRecognitionConfig(config=config, interim_results=True)
    )
    rng = np.random.default_rng(0)
    while True:  # never half-closes: only SIGKILL ends it
        chunk = (0.3 * 32767 * rng.standard_normal(1600)).clip(-32768, 32767).astype("<i2")
        yield asr_pb2.StreamingRecognizeRequest(audio_content=chunk.tobytes())
        time.sleep(0.1)

channel = grpc.insecure_channel(sys.argv[1])
for response in asr_pb2_grpc.RecognizerStub(channel).StreamingRecognize(requests()):
    print("response", flush=True)
"""


def test_client_killed_mid_stream(client: RecognizerClient, server: RunningServer) -> None:
    """SIGKILL: the connection drops with no half-close and no RST_STREAM; the server cleans up."""
    before = client.stats().total_streams
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CLIENT, f"127.0.0.1:{server.port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert select.select([child.stdout], [], [], 60)[0], "the child got no response"
        assert child.stdout.readline().strip() == "response"  # mid-stream: results are flowing
        assert client.stats().active_streams == 1
    finally:
        child.kill()
        child.wait(10)
    assert wait_for(lambda: client.stats().active_streams == 0, 10)
    assert client.stats().total_streams == before + 1
    assert any(e.is_final for e in client.stream(noise(0.5)))  # still serving


def test_channel_closed_mid_stream(client: RecognizerClient, server: RunningServer) -> None:
    with RecognizerClient(f"127.0.0.1:{server.port}") as other:
        call = other.stream(noise(10.0), StreamOptions(interim_results=True), realtime=True)
        next(iter(call))
        assert client.stats().active_streams == 1
    # the channel is gone; the call was neither cancelled nor half-closed by us
    assert wait_for(lambda: client.stats().active_streams == 0, 10)


def test_client_deadline_exceeded(client: RecognizerClient) -> None:
    started = time.monotonic()
    with pytest.raises(RecognizerError) as info:
        list(client.stream(noise(5.0), StreamOptions(interim_results=True), realtime=True, timeout=1.0))
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 4.0  # not the 5 s of audio


def test_slow_but_steady_client_outlives_the_idle_timeout(stub: asr_pb2_grpc.RecognizerStub) -> None:
    """The timeout is per gap between messages, not per stream: gaps of 0.6 x the timeout,
    for 2.4 x the timeout in all, never trip it (the server's timer re-arms itself)."""
    pcm = float_to_pcm16(noise(0.4))

    def trickle() -> Iterator[Request]:
        yield config_request()
        for chunk in audio_requests(pcm, 1600):  # 4 messages
            time.sleep(0.6 * IDLE_TIMEOUT_S)
            yield chunk

    started = time.monotonic()
    responses = list(stub.StreamingRecognize(trickle(), timeout=30))
    assert time.monotonic() - started >= 2.4 * IDLE_TIMEOUT_S
    assert [r for r in responses if any(res.is_final for res in r.results)]


def test_silent_client_hits_the_idle_timeout(stub: asr_pb2_grpc.RecognizerStub) -> None:
    release = threading.Event()

    def config_then_nothing() -> Iterator[Request]:
        yield config_request()
        release.wait(30)

    started = time.monotonic()
    try:
        with pytest.raises(grpc.RpcError) as info:
            list(stub.StreamingRecognize(config_then_nothing(), timeout=30))
    finally:
        release.set()
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "idle timeout" in info.value.details()
    assert IDLE_TIMEOUT_S <= time.monotonic() - started < IDLE_TIMEOUT_S + 5


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("requests", "words"),
    [
        pytest.param(
            [config_request(rate=0)], "sample_rate_hertz must be in 8000..192000, got 0", id="rate-0"
        ),
        pytest.param([config_request(rate=10**7)], "got 10000000", id="rate-10M"),
        pytest.param(
            [config_request(encoding=asr_pb2.FLAC), Request(audio_content=b"fLaC" + bytes(range(256)) * 4)],
            "could not decode FLAC bytes",
            id="garbage-flac",
        ),
        pytest.param(
            [
                config_request(encoding=asr_pb2.WAV),
                Request(audio_content=b"RIFF\x24\0\0\0WAVEfmt " + b"\xff" * 40),
            ],
            "could not decode WAV bytes",
            id="garbage-wav-header",
        ),
        pytest.param(
            [
                config_request(encoding=asr_pb2.WAV),
                Request(audio_content=wav_bytes(noise(0.1), declared_rate=1)),
            ],
            "sample rate 1 Hz is outside 8000..192000",
            id="wav-declaring-1-hz",
        ),
        pytest.param([boosted_config(float("inf"))], "boost must be a finite number", id="boost-inf"),
        pytest.param([boosted_config(float("nan"))], "boost must be a finite number", id="boost-nan"),
        pytest.param(
            [config_request(), *audio_requests(b"\0\0" * 1600), config_request()],
            "only be sent once",
            id="config-after-audio",
        ),
    ],
)
def test_bad_input_is_invalid_argument(
    stub: asr_pb2_grpc.RecognizerStub, requests: list[Request], words: str
) -> None:
    code, details = stream_status(stub, requests)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in details
    assert "0x" not in details  # no object reprs in messages


def test_garbage_protobuf_is_invalid_argument(client: RecognizerClient) -> None:
    raw = client.channel.stream_stream(
        "/asr.v1.Recognizer/StreamingRecognize",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as info:
        list(raw(iter([b"\xff\xff\xff\xff not a protobuf"]), timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid StreamingRecognizeRequest" in info.value.details()


def flac_without_length(data: bytes) -> bytes:
    """Zero the STREAMINFO total-samples field (36 bits), as a streaming encoder leaves it."""
    out = bytearray(data)
    field = int.from_bytes(out[18:26], "big") & ~((1 << 36) - 1)
    out[18:26] = field.to_bytes(8, "big")
    return bytes(out)


@pytest.mark.parametrize("length", ["declared", "unknown"])
def test_containers_longer_than_the_limit_are_refused_before_decoding(
    stub: asr_pb2_grpc.RecognizerStub, length: str
) -> None:
    """Ten minutes of FLAC silence is 28 kB: refused on its header, or once the limit is decoded."""
    bomb = flac_bytes(np.zeros(16000 * 600, np.float32))
    if length == "unknown":
        bomb = flac_without_length(bomb)
        assert sf.info(io.BytesIO(bomb)).frames >= 2**62
    assert len(bomb) < 100_000
    started = time.monotonic()
    code, details = stream_status(stub, [config_request(encoding=asr_pb2.FLAC), Request(audio_content=bomb)])
    assert code == grpc.StatusCode.OUT_OF_RANGE
    assert f"longer than the {MAX_STREAM_SECONDS:g} s maximum" in details
    config = asr_pb2.RecognitionConfig(encoding=asr_pb2.FLAC, model="offline")
    request = asr_pb2.RecognizeRequest(config=config, audio_content=bomb)
    assert recognize_status(stub, request) == grpc.StatusCode.OUT_OF_RANGE
    assert time.monotonic() - started < 10


def test_zero_length_chunks_change_nothing(stub: asr_pb2_grpc.RecognizerStub) -> None:
    audio = audio_requests(float_to_pcm16(noise(2.0, seed=5)), 3200)
    empty = Request(audio_content=b"")
    plain = list(stub.StreamingRecognize(iter([config_request(), *audio])))
    padded = [config_request(), empty, empty]
    for request in audio:
        padded += [request, empty]
    with_empties = list(stub.StreamingRecognize(iter(padded)))
    assert finals(plain) and finals(with_empties) == finals(plain)
    assert list(stub.StreamingRecognize(iter([config_request(), *[empty] * 50]))) == []


def test_a_lone_odd_byte_is_dropped(stub: asr_pb2_grpc.RecognizerStub) -> None:
    """PCM16 needs two bytes a sample: a trailing odd byte is kept for a next chunk that never comes."""
    assert list(stub.StreamingRecognize(iter([config_request(), Request(audio_content=b"\x01")]))) == []
    config = asr_pb2.RecognitionConfig(encoding=asr_pb2.LINEAR16, sample_rate_hertz=16000)
    response = stub.Recognize(asr_pb2.RecognizeRequest(config=config, audio_content=b"\x01\x02\x03"))
    assert response.audio_duration == pytest.approx(1 / 16000)


@pytest.mark.parametrize("declared", [8000, 48000])
def test_the_declared_rate_is_trusted(stub: asr_pb2_grpc.RecognizerStub, declared: int) -> None:
    """16 kHz audio declared at another in-range rate is accepted and resampled as declared."""
    pcm = float_to_pcm16(noise(2.0, seed=6))
    config = asr_pb2.RecognitionConfig(encoding=asr_pb2.LINEAR16, sample_rate_hertz=declared, model="stream")
    response = stub.Recognize(asr_pb2.RecognizeRequest(config=config, audio_content=pcm))
    assert response.audio_duration == pytest.approx(32000 / declared)
    streamed = finals(
        list(stub.StreamingRecognize(iter([config_request(rate=declared), *audio_requests(pcm)])))
    )
    assert all(end <= 32000 / declared + 1e-6 for _, _, end, _ in streamed)


# ---------------------------------------------------------- SIGTERM under load
def start_server_process(
    model_files: tuple[Path, Path], grace: float
) -> tuple[subprocess.Popen[str], int, list[str]]:
    """``asr serve`` on a free port; returns the process, its port and its stderr lines so far."""
    stream, offline = model_files
    process = subprocess.Popen(
        [sys.executable, "-m", "asr.cli", "serve", "--host", "127.0.0.1", "--port", "0",
         "--streaming-model", str(stream), "--offline-model", str(offline), "--no-lm",
         "--grace", str(grace), "--threads", "1"],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    ports: queue.SimpleQueue[int] = queue.SimpleQueue()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if found := re.search(r"listening on port (\d+)", line):
                ports.put(int(found.group(1)))

    threading.Thread(target=read, daemon=True).start()
    try:
        port = ports.get(timeout=60)
    except queue.Empty:
        process.kill()
        raise AssertionError("the server did not start:\n" + "".join(lines)) from None
    return process, port, lines


def test_sigterm_with_20_live_streams(model_files: tuple[Path, Path]) -> None:
    grace = 5.0
    process, port, log_lines = start_server_process(model_files, grace)
    outcomes: dict[int, tuple[str, str, int]] = {}  # stream -> (status, message, finals received)
    ended: dict[int, float] = {}
    try:
        with RecognizerClient(f"127.0.0.1:{port}", timeout=10) as c:

            def run(i: int) -> None:
                n_finals = 0
                try:
                    options = StreamOptions(interim_results=True)
                    for event in c.stream(noise(60.0, seed=i), options, realtime=True):
                        n_finals += event.is_final
                    outcomes[i] = ("OK", "", n_finals)
                except RecognizerError as e:
                    outcomes[i] = (e.code.name, e.details, n_finals)
                ended[i] = time.monotonic()

            threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(20)]
            for t in threads:
                t.start()
            assert wait_for(lambda: c.stats().active_streams == 20, 30)
            time.sleep(1.5)  # every stream has an utterance open
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            for t in threads:
                t.join(grace + 10)
        assert not any(t.is_alive() for t in threads), "a stream hung"
        code = process.wait(grace + 10)
        exited = time.monotonic() - sent
    finally:
        process.kill()
    assert code == 0
    assert exited < grace + 8, f"exit took {exited:.1f} s"
    assert len(outcomes) == 20
    for status, message, n_finals in outcomes.values():
        assert status == "UNAVAILABLE" and "server is shutting down" in message
        assert "reconnect" in message and n_finals >= 1  # the open utterance was closed with a final
    assert max(ended.values()) - sent < grace  # drained, not cut off when the grace ran out
    logs = "".join(log_lines)
    assert "draining: 20 live streams" in logs and "stopped" in logs
    assert "Traceback" not in logs


# -------------------------------------------------------------- access control
@pytest.fixture(scope="module")
def tls_server(
    recognizer: Recognizer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, Path]]:
    key, cert = self_signed_cert(tmp_path_factory.mktemp("tls"))
    config = ServerConfig(
        host="127.0.0.1", port=0, grace_s=0.5, tls_cert=str(cert), tls_key=str(key), tokens=[TOKEN]
    )
    running = start_in_thread(config, recognizer)
    yield running.port, cert
    running.stop()


def test_tls_and_token_refuse_strangers(
    tls_server: tuple[int, Path], caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    port, cert = tls_server
    target = f"127.0.0.1:{port}"
    caplog.set_level(logging.DEBUG)
    with RecognizerClient(target, token=TOKEN, tls_ca=cert, timeout=10) as c:
        assert c.health() == "SERVING"
        assert [m.name for m in c.list_models()][0] == "stream"
        assert any(e.is_final for e in c.stream(noise(0.5)))
        assert c.stats().active_streams == 0
    for token in (None, "wrong-" + TOKEN):
        with RecognizerClient(target, token=token, tls_ca=cert, timeout=10) as c:
            assert c.health() == "SERVING"  # probes need no token
            with pytest.raises(RecognizerError) as info:
                c.list_models()
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(RecognizerError) as info:
                list(c.stream(noise(0.2)))
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert "bearer token" in info.value.details
    with RecognizerClient(target, token=TOKEN, timeout=10) as plain:  # the right token, but no TLS
        for call in (plain.list_models, plain.health):
            with pytest.raises(RecognizerError) as info:
                call()
            assert info.value.code == grpc.StatusCode.UNAVAILABLE
    # Tokens, right or wrong, never reach the logs (Python logging or grpc's own stderr).
    records = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert "unauthenticated call to /asr.v1.Recognizer/ListModels" in records  # the refusals were logged
    captured = capfd.readouterr()
    for text in (records, captured.out, captured.err):
        assert TOKEN not in text


# ---------------------------------------------------------------- batch input
def test_batch_of_broken_files(
    model_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Good files, corrupt ones, a zero-byte file, a non-audio file and an hour of audio."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_wav(folder / "good1.wav", noise(2.0, seed=1))
    (folder / "good2.flac").write_bytes(flac_bytes(noise(2.0, seed=2)))
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\0\0\0WAVEfmt " + b"\xff" * 200)
    (folder / "cut.flac").write_bytes(flac_bytes(noise(2.0, seed=3))[:30])  # cut inside the header
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.txt").write_text("not audio at all\n")
    (folder / "subfolder").mkdir()
    # A long FLAC corrupted mid-way decodes up to the damage (with a warning), like load_audio.
    long_flac = bytearray(flac_bytes(noise(90.0, seed=4) * 0.3))
    for i in range(len(long_flac) // 2, len(long_flac) // 2 + 4000, 7):
        long_flac[i] ^= 0xFF
    (folder / "damaged-long.flac").write_bytes(bytes(long_flac))
    rng = np.random.default_rng(0)
    with sf.SoundFile(folder / "hour.wav", "w", 8000, 1, subtype="PCM_16") as f:
        for _ in range(60):  # one hour of faint noise at 8 kHz (58 MB)
            f.write((0.001 * rng.standard_normal(8000 * 60)).astype(np.float32))
    out = tmp_path / "out"
    stream, offline = model_files
    args = ["transcribe", *sorted(str(p) for p in folder.iterdir()),
            "--streaming-model", str(stream), "--offline-model", str(offline), "--no-lm",
            "--mode", "stream", "--format", "json", "--output-dir", str(out), "--quiet"]  # fmt: skip
    assert asr_main(args) == 1
    err = capsys.readouterr().err
    assert "4 transcribed, 5 failed" in err
    for name in ("corrupt.wav", "cut.flac", "empty.wav", "notes.txt", "subfolder"):
        assert f"FAILED {folder / name}: " in err
    assert "damaged-long.flac: decoding failed after" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == [
        "damaged-long.json",
        "good1.json",
        "good2.json",
        "hour.json",
    ]
    assert json.loads((out / "hour.json").read_text())["duration"] == pytest.approx(3600.0)
