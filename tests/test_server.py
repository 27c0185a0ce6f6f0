"""The gRPC server end to end on loopback (port 0) with tiny random models.

Transcripts of random models mean nothing, so these tests check the contract: when
results arrive, their shape, status codes, limits, auth and counters.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import soundfile as sf
from asr.client import RecognizerClient, RecognizerError, StreamOptions
from asr.server.app import RunningServer, ServerConfig

from asr.api import Recognizer
from asr.audio import float_to_mulaw, float_to_pcm16
from asr.v1 import asr_pb2, asr_pb2_grpc
from tests.helpers import (
    Request,
    audio_requests,
    config_request,
    finals,
    make_tiny_recognizer,
    noise,
    run_unguarded_script,
    wait_for,
)
from tests.net_helpers import loopback_server


def status_of(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory: pytest.TempPathFactory) -> Recognizer:
    return make_tiny_recognizer(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def server(recognizer: Recognizer) -> Iterator[RunningServer]:
    yield from loopback_server(recognizer)


@pytest.fixture(scope="module")
def limited(recognizer: Recognizer) -> Iterator[RunningServer]:
    """One live stream, 64 KiB messages, 2 s of audio per stream, metrics on a free port."""
    yield from loopback_server(
        recognizer, max_streams=1, max_message_bytes=64 * 1024, max_stream_seconds=2.0, metrics_port=0
    )


@pytest.fixture(scope="module")
def secured(recognizer: Recognizer) -> Iterator[RunningServer]:
    yield from loopback_server(recognizer, tokens=["s3cret"])


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[RecognizerClient]:
    with RecognizerClient(f"127.0.0.1:{server.port}", timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def stub(client: RecognizerClient) -> asr_pb2_grpc.RecognizerStub:
    return asr_pb2_grpc.RecognizerStub(client.channel)


# --------------------------------------------------------------------- basics
def test_health_reports_serving(client: RecognizerClient) -> None:
    assert client.health() == "SERVING"
    assert client.health("asr.v1.Recognizer") == "SERVING"


def test_list_models(client: RecognizerClient) -> None:
    models = client.list_models()
    assert [m.name for m in models] == ["stream", "two-pass", "offline"]
    assert all(m.parameters > 0 and m.checkpoint.endswith(".pt") and m.description for m in models)


def test_partials_arrive_before_the_audio_ends(client: RecognizerClient) -> None:
    audio = noise(3.0)
    with client.stream(audio, StreamOptions(interim_results=True), realtime=True) as call:
        first = next(e for e in call if e.has_result and not e.is_final)
        call.cancel()
    assert first.sent_audio_seconds < 1.5  # half of the 3 s still to go
    assert first.end <= first.sent_audio_seconds + 0.01  # covers only audio that was sent
    assert first.text and 0.0 <= first.stability <= 1.0


def test_cancel_mid_stream_releases_the_stream(client: RecognizerClient) -> None:
    call = client.stream(noise(5.0), StreamOptions(interim_results=True), realtime=True)
    next(iter(call))
    assert client.stats().active_streams >= 1
    call.cancel()
    assert list(call) == []  # iteration ends quietly after our own cancel
    assert wait_for(lambda: client.stats().active_streams == 0)


def test_recognize_returns_finals_with_duration(stub: asr_pb2_grpc.RecognizerStub) -> None:
    for model in ("stream", "two-pass", "offline"):
        config = asr_pb2.RecognitionConfig(
            encoding=asr_pb2.LINEAR16, sample_rate_hertz=16000, model=model, enable_word_time_offsets=True
        )
        response = stub.Recognize(
            asr_pb2.RecognizeRequest(config=config, audio_content=float_to_pcm16(noise(1.5)))
        )
        assert response.audio_duration == pytest.approx(1.5)
        assert response.processing_seconds > 0
        assert response.results and all(r.is_final for r in response.results)
        assert all(0.0 <= r.result_start_time <= r.result_end_time <= 1.5 + 1e-6 for r in response.results)


def test_half_close_without_audio_ends_cleanly(stub: asr_pb2_grpc.RecognizerStub) -> None:
    assert list(stub.StreamingRecognize(iter([]))) == []
    responses = list(stub.StreamingRecognize(iter([config_request(interim=True)])))
    assert finals(responses) == []


# ------------------------------------------------------------- bad requests
@pytest.mark.parametrize(
    "requests",
    [
        pytest.param([Request(audio_content=b"\0\0" * 160)], id="audio-before-config"),
        pytest.param([config_request(rate=100)], id="rate-100-hz"),
        pytest.param([config_request(model="whisper-xl")], id="unknown-model"),
        pytest.param([config_request(), config_request()], id="two-configs"),
        pytest.param([config_request(encoding=asr_pb2.ENCODING_UNSPECIFIED)], id="no-encoding"),
        pytest.param([config_request(trailing_silence_ms=5)], id="bad-endpointing"),
        pytest.param(
            [config_request(encoding=asr_pb2.WAV), Request(audio_content=b"not a wav")], id="bad-wav"
        ),
    ],
)
def test_bad_streams_are_invalid_argument(stub: asr_pb2_grpc.RecognizerStub, requests: list[Request]) -> None:
    with pytest.raises(grpc.RpcError) as info:
        list(stub.StreamingRecognize(iter(requests)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details()  # a message that says why


def test_bad_recognize_is_invalid_argument(stub: asr_pb2_grpc.RecognizerStub) -> None:
    for config in (
        asr_pb2.RecognitionConfig(encoding=asr_pb2.LINEAR16, sample_rate_hertz=100),
        asr_pb2.RecognitionConfig(encoding=asr_pb2.LINEAR16, sample_rate_hertz=16000, model="nope"),
    ):
        request = asr_pb2.RecognizeRequest(config=config, audio_content=b"\0\0" * 1600)
        assert status_of(lambda r=request: stub.Recognize(r)) == grpc.StatusCode.INVALID_ARGUMENT


def test_client_gets_the_status_and_message(client: RecognizerClient) -> None:
    with pytest.raises(RecognizerError) as info:
        list(client.stream(noise(0.2), StreamOptions(model="whisper-xl")))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "whisper-xl" in info.value.details


# ------------------------------------------------------------------ encodings
def test_odd_pcm16_byte_counts_across_chunks(recognizer: Recognizer) -> None:
    """On the float model: int8 scales activations per call, so its outputs move a little
    with the chunking (asr.model.quantize_int8)."""
    pcm = float_to_pcm16(noise(2.0, seed=3))
    for server in loopback_server(recognizer, int8=False):
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = asr_pb2_grpc.RecognizerStub(channel)
            even = list(stub.StreamingRecognize(iter([config_request(), *audio_requests(pcm, 3200)])))
            odd = list(
                stub.StreamingRecognize(iter([config_request(), *audio_requests(pcm, [3201, 1, 999, 4799])]))
            )
        assert finals(even) and finals(odd) == finals(even)


def test_mulaw_and_wav_are_accepted(stub: asr_pb2_grpc.RecognizerStub) -> None:
    audio8k = noise(1.5, rate=8000)
    mulaw = [config_request(rate=8000, encoding=asr_pb2.MULAW), *audio_requests(float_to_mulaw(audio8k), 800)]
    assert finals(list(stub.StreamingRecognize(iter(mulaw))))

    buffer = io.BytesIO()
    sf.write(buffer, audio8k, 8000, format="WAV", subtype="PCM_16")
    wav = buffer.getvalue()
    streamed = [config_request(rate=0, encoding=asr_pb2.WAV), Request(audio_content=wav)]
    assert finals(list(stub.StreamingRecognize(iter(streamed))))
    config = asr_pb2.RecognitionConfig(encoding=asr_pb2.WAV, model="offline")
    response = stub.Recognize(asr_pb2.RecognizeRequest(config=config, audio_content=wav))
    assert response.audio_duration == pytest.approx(1.5, abs=0.01)  # decoded and resampled to 16 kHz


def test_stats_count_streams_and_audio(client: RecognizerClient) -> None:
    before = client.stats()
    list(client.stream(noise(1.0), StreamOptions(interim_results=False)))
    after = client.stats()
    assert after.total_streams == before.total_streams + 1
    assert after.audio_seconds == pytest.approx(before.audio_seconds + 1.0)
    assert after.active_streams == 0 and after.last_batch_size >= 1
    # one stream: every batch it took part in carried only its own chunk
    assert after.batches > before.batches
    assert after.batched_chunks - before.batched_chunks == after.batches - before.batches
    assert after.batch_compute_seconds > before.batch_compute_seconds


# ---------------------------------------------------------------------- limits
def test_oversize_message_is_resource_exhausted(limited: RunningServer) -> None:
    big = b"\0\0" * 40000  # 80 kB > 64 KiB
    with RecognizerClient(f"127.0.0.1:{limited.port}") as c:
        stub = asr_pb2_grpc.RecognizerStub(c.channel)
        code = status_of(
            lambda: list(stub.StreamingRecognize(iter([config_request(), Request(audio_content=big)])))
        )
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        config = asr_pb2.RecognitionConfig(encoding=asr_pb2.LINEAR16, sample_rate_hertz=16000)
        request = asr_pb2.RecognizeRequest(config=config, audio_content=big)
        assert status_of(lambda: stub.Recognize(request)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert wait_for(lambda: c.stats().active_streams == 0)


def test_stream_limit_is_resource_exhausted(limited: RunningServer) -> None:
    release = threading.Event()

    def held_open() -> Iterator[Request]:
        yield config_request()
        release.wait(10)

    with RecognizerClient(f"127.0.0.1:{limited.port}") as c:
        stub = asr_pb2_grpc.RecognizerStub(c.channel)
        first = stub.StreamingRecognize(held_open())
        try:
            assert wait_for(lambda: c.stats().active_streams == 1)
            with pytest.raises(RecognizerError) as info:
                list(c.stream(noise(0.2)))
            assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            release.set()
        assert list(first) == []  # the held stream still ends cleanly
        assert wait_for(lambda: c.stats().active_streams == 0)
        assert list(c.stream(noise(0.2)))  # and the slot is free again


def _aio_streams(port: int, n: int, audio: bytes) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """``n`` concurrent grpc.aio streams that wait for acceptance before sending ``audio``:
    each stream's status and initial metadata."""
    from asr.client.aio import wait_accepted
    from grpc import aio

    async def one(stub: asr_pb2_grpc.RecognizerStub) -> tuple[str, tuple[tuple[str, str], ...]]:
        call = stub.StreamingRecognize(timeout=30)
        try:
            await call.write(config_request())
            if await wait_accepted(call):
                await call.write(Request(audio_content=audio))
                await call.done_writing()
            while await call.read() != aio.EOF:
                pass
        except (aio.AioRpcError, asyncio.InvalidStateError):
            pass
        metadata = tuple(tuple(m) for m in (await call.initial_metadata() or ()))
        return (await call.code()).name, metadata

    async def main() -> list[tuple[str, tuple[tuple[str, str], ...]]]:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = asr_pb2_grpc.RecognizerStub(channel)
            return list(await asyncio.gather(*(one(stub) for _ in range(n))))

    return asyncio.run(main())


def test_accepted_stream_says_so_before_audio(server: RunningServer) -> None:
    from asr.client.aio import ACCEPTED_METADATA_KEY

    ((status, metadata),) = _aio_streams(server.port, 1, float_to_pcm16(noise(0.3)))
    assert status == "OK" and (ACCEPTED_METADATA_KEY, "stream") in metadata


def test_aio_clients_over_the_limit_see_resource_exhausted(limited: RunningServer) -> None:
    """grpc.aio reports a write racing a refusal as INTERNAL 'Internal error from Core';
    admission after the config and waiting for acceptance leave the server's own status."""
    release = threading.Event()

    def held_open() -> Iterator[Request]:
        yield config_request()
        release.wait(20)

    with RecognizerClient(f"127.0.0.1:{limited.port}") as c:
        held = asr_pb2_grpc.RecognizerStub(c.channel).StreamingRecognize(held_open())
        try:
            assert wait_for(lambda: c.stats().active_streams == 1)
            outcomes = _aio_streams(limited.port, 40, float_to_pcm16(noise(0.2)))
        finally:
            release.set()
        assert list(held) == []
    assert [status for status, _ in outcomes] == ["RESOURCE_EXHAUSTED"] * 40
    assert all(metadata == () for _, metadata in outcomes)  # refused: never accepted


def test_max_stream_seconds_is_out_of_range(limited: RunningServer) -> None:
    with RecognizerClient(f"127.0.0.1:{limited.port}") as c:
        with pytest.raises(RecognizerError) as info:
            list(c.stream(noise(2.5)))
        assert info.value.code == grpc.StatusCode.OUT_OF_RANGE
        assert wait_for(lambda: c.stats().active_streams == 0)


def test_metrics_http_endpoint(limited: RunningServer) -> None:
    assert limited.handle is not None and limited.handle.metrics_port
    url = f"http://127.0.0.1:{limited.handle.metrics_port}"
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    for name in ("asr_active_streams", "asr_streams_total", "asr_partial_latency_ms_bucket", "asr_rtf"):
        assert name in text
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{url}/nope", timeout=5)
    assert info.value.code == 404


# ------------------------------------------------------------------------ auth
def test_token_auth(secured: RunningServer) -> None:
    target = f"127.0.0.1:{secured.port}"
    for token in (None, "wrong"):
        with RecognizerClient(target, token=token) as c:
            with pytest.raises(RecognizerError) as info:
                c.list_models()
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(RecognizerError) as info:
                list(c.stream(noise(0.2)))
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert c.health() == "SERVING"  # probes need no token
    with RecognizerClient(target, token="s3cret") as c:
        assert [m.name for m in c.list_models()][0] == "stream"
        assert any(e.is_final for e in c.stream(noise(0.5)))


def test_int8_and_cheaper_finals_serve(recognizer: Recognizer) -> None:
    """`asr serve --int8 --beam-width 8 --token-min-logp -3`: same contract, quantised model."""
    for server in loopback_server(recognizer, int8=True, beam_width=8, token_min_logp=-3.0):
        service_recognizer = server.handle.service.recognizer
        assert service_recognizer is not recognizer  # the caller's recognizer is left alone
        assert any("quantized" in type(m).__module__ for m in service_recognizer.streaming.model.modules())
        assert not any("quantized" in type(m).__module__ for m in recognizer.streaming.model.modules())
        assert service_recognizer.decoder.options.beam_width == 8
        assert service_recognizer.decoder.options.token_min_logp == -3.0
        with RecognizerClient(f"127.0.0.1:{server.port}") as client:
            assert client.list_models()[0].parameters == recognizer.streaming.model.num_parameters()
            events = list(client.stream(noise(2.0), StreamOptions(interim_results=True)))
        assert any(e.has_result and not e.is_final for e in events)
        assert any(e.is_final and e.text for e in events)


def test_gil_switch_interval_is_set_while_serving_and_restored(recognizer: Recognizer) -> None:
    before = sys.getswitchinterval()
    for _ in loopback_server(recognizer, gil_switch_ms=0.5):
        assert sys.getswitchinterval() == pytest.approx(0.0005)
        for _ in loopback_server(recognizer, gil_switch_ms=2.0):  # a second server in the same process
            assert sys.getswitchinterval() == pytest.approx(0.002)
    assert sys.getswitchinterval() == pytest.approx(before)
    for _ in loopback_server(recognizer, gil_switch_ms=None):  # None leaves it alone
        assert sys.getswitchinterval() == pytest.approx(before)


@pytest.mark.parametrize(
    "changes",
    [{"beam_width": 0}, {"token_min_logp": 0.5}, {"gil_switch_ms": 0.0}],
    ids=["beam-0", "floor-positive", "switch-0"],
)
def test_bad_decoder_settings_are_refused(recognizer: Recognizer, changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="expected"):
        next(loopback_server(recognizer, **changes))


def test_decode_workers_give_the_same_finals(recognizer: Recognizer) -> None:
    """Finals decoded in a worker process equal those decoded in the server process."""
    audio = noise(2.5, seed=3)
    options = StreamOptions(interim_results=False, word_time_offsets=True)
    for in_process in loopback_server(recognizer, decode_workers=0):
        assert type(in_process.handle.service.recognizer.decoder).__name__ != "PooledDecoder"
        with RecognizerClient(f"127.0.0.1:{in_process.port}") as client:
            expected = [(e.text, e.start, e.end) for e in client.stream(audio, options) if e.is_final]
    for server in loopback_server(recognizer, decode_workers=1):
        assert type(server.handle.service.recognizer.decoder).__name__ == "PooledDecoder"
        with RecognizerClient(f"127.0.0.1:{server.port}") as pooled:
            got = [(e.text, e.start, e.end) for e in pooled.stream(audio, options) if e.is_final]
            # A stream cancelled mid-utterance leaves no open search in the worker.
            call = pooled.stream(noise(5.0), StreamOptions(interim_results=True), realtime=True)
            next(iter(call))
            call.cancel()
            assert list(call) == []
            pool = server.handle.service.recognizer.decoder
            assert wait_for(lambda: pooled.stats().active_streams == 0)
            assert wait_for(lambda: pool.open_searches() == 0)  # type: ignore[attr-defined,union-attr]  # noqa: B023
    assert got == expected and any(text for text, _, _ in got)


def test_default_decode_workers_follow_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default a machine with 2+ cores gets one decode worker, a 1-core one none."""
    from asr.server.app import decode_workers

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert decode_workers(ServerConfig()) == 1
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert decode_workers(ServerConfig()) == 0
    assert decode_workers(ServerConfig(decode_workers=3)) == 3
    with pytest.raises(ValueError, match="expected decode_workers"):
        decode_workers(ServerConfig(decode_workers=-1))


def test_default_server_runs_int8_with_a_decode_worker(server: RunningServer) -> None:
    """The defaults are the measured capacity settings (docs/serving.md)."""
    recognizer = server.handle.service.recognizer
    assert any("quantized" in type(m).__module__ for m in recognizer.streaming.model.modules())
    if (os.cpu_count() or 1) >= 2:
        assert type(recognizer.decoder).__name__ == "PooledDecoder"


def test_default_server_freezes_the_loaded_heap(server: RunningServer) -> None:
    """gc.freeze() after loading: full collections skip the models and the LM trie."""
    import gc

    assert gc.get_freeze_count() > 100_000  # the shipped LM's character trie alone


def test_unguarded_script_can_start_a_server_with_a_decode_worker(tmp_path: Path) -> None:
    """The README's embedding lines at a script's top level, with no ``__main__`` guard:
    the decode worker must not run the script again (multiprocessing's spawn did, and the
    second server in the child hung the app)."""
    lines = run_unguarded_script(
        tmp_path,
        "from asr.server import ServerConfig, start_in_thread\n"
        "running = start_in_thread(ServerConfig(port=0, offline_model=None, decode_workers=1))\n"
        "print('listening', running.port, type(running.handle.service.recognizer.decoder).__name__)\n"
        "running.stop()\n"
        "print('stopped')\n",
    )
    assert lines[0].startswith("listening ") and lines[0].endswith(" PooledDecoder")
    assert lines[-1] == "stopped"
