"""The Vosk WebSocket endpoint (asr serve --ws-port) end to end on loopback with tiny models.

A plain ``websockets`` client speaks vosk-server's protocol as its own test clients do:
a config text message, 200 ms binary PCM16 chunks each answered by one reply, then
``{"eof" : 1}`` answered by the last final, then the server closes. Transcripts of
random models mean nothing: these tests check the message shapes, that both
transports share one engine, every bad-input case, limits, tokens and TLS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import websockets
from asr.server.app import RunningServer, ServerConfig, start_in_thread
from asr.server.engine import RequestError
from asr.server.ws import final_message, vosk_config
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asr.api import Recognizer
from asr.audio import float_to_pcm16
from asr.decoding import Hypothesis, Word
from asr.streaming import Result
from asr.v1 import asr_pb2, asr_pb2_grpc
from tests.helpers import (
    audio_requests,
    config_request,
    finals,
    make_tiny_recognizer,
    noise,
    self_signed_cert,
    wait_for,
)
from tests.net_helpers import loopback_server

TOKEN = "ws-test-token-7f3a"
CHUNK = 6400  # bytes: 200 ms of 16 kHz PCM16, as vosk-server's test.py sends


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory: pytest.TempPathFactory) -> Recognizer:
    return make_tiny_recognizer(tmp_path_factory.mktemp("ws-models"))


@pytest.fixture(scope="module")
def server(recognizer: Recognizer) -> Iterator[RunningServer]:
    yield from loopback_server(recognizer, ws_port=0)


@pytest.fixture(scope="module")
def strict(recognizer: Recognizer) -> Iterator[RunningServer]:
    """Small limits: 1 s idle timeout, 3 s of audio, 64 KiB messages, 2 streams."""
    yield from loopback_server(
        recognizer,
        ws_port=0,
        idle_timeout_s=1.0,
        max_stream_seconds=3.0,
        max_message_bytes=64 * 1024,
        max_streams=2,
    )


def url(server: RunningServer, query: str = "") -> str:
    assert server.handle is not None and server.handle.ws_port is not None
    return f"ws://127.0.0.1:{server.handle.ws_port}/{query}"


def idle(server: RunningServer) -> bool:
    assert server.handle is not None
    return wait_for(lambda: server.handle is not None and server.handle.metrics.active_streams == 0)


async def vosk_session(
    address: str, pcm: bytes, config: str | list[str] | None = None, **connect: Any
) -> tuple[list[dict[str, Any]], int | None]:
    """vosk-server's test.py, step by step: every reply in order, and the close code."""
    replies = []
    async with websockets.connect(address, max_size=None, **connect) as ws:
        for message in [config] if isinstance(config, str) else config or []:
            await ws.send(message)
        for i in range(0, len(pcm), CHUNK):
            await ws.send(pcm[i : i + CHUNK])
            replies.append(json.loads(await ws.recv()))
        await ws.send('{"eof" : 1}')
        replies.append(json.loads(await ws.recv()))
        with pytest.raises(ConnectionClosed):
            await ws.recv()  # the server closes after the last final
        return replies, ws.close_code


async def bad_session(
    address: str, *messages: str | bytes, wait_s: float = 10.0
) -> tuple[list[Any], int | None]:
    """Send ``messages``, then collect replies until the server closes."""
    replies: list[Any] = []
    async with websockets.connect(address, max_size=None) as ws:
        try:
            for m in messages:
                await ws.send(m)
        except ConnectionClosed:  # refused early (stream cap): the replies sent so far still arrive
            pass
        try:
            async with asyncio.timeout(wait_s):
                while True:
                    replies.append(json.loads(await ws.recv()))
        except ConnectionClosed:
            pass
        return replies, ws.close_code


def check_final(message: dict[str, Any], words: bool = True) -> None:
    assert set(message) <= {"text", "result"} and isinstance(message["text"], str)
    if words and message["text"]:
        assert [w["word"] for w in message["result"]] == message["text"].split()
    for w in message.get("result", []):
        assert set(w) == {"word", "start", "end", "conf"}
        assert 0 <= w["start"] <= w["end"] and 0 <= w["conf"] <= 1


# ------------------------------------------------------------------ protocol
def test_vosk_session_one_reply_per_chunk_then_final_and_close(server: RunningServer) -> None:
    pcm = float_to_pcm16(noise(3.0, seed=1))
    config = '{"config": {"sample_rate": 16000, "words": 1, "max_alternatives": 0, "phrase_list": ["go on"]}}'
    replies, code = asyncio.run(vosk_session(url(server), pcm, config))
    assert len(replies) == -(-len(pcm) // CHUNK) + 1  # one per chunk, one for the eof
    assert code == 1000
    partials = [r for r in replies[:-1] if "partial" in r]
    assert partials and all(set(r) == {"partial"} and isinstance(r["partial"], str) for r in partials)
    assert any(r["partial"] for r in partials)  # text while the audio goes on
    assert "text" in replies[-1]  # eof is answered by a final, even an empty one
    finals_ = [r for r in replies if "text" in r]
    for message in finals_:
        check_final(message)
    starts = [w["start"] for r in finals_ for w in r.get("result", [])]
    assert starts == sorted(starts)  # times run from the start of the stream, across utterances
    assert idle(server)


@pytest.mark.parametrize(("config", "mode"), [("{}", "two-pass"), ('{"model": "stream"}', "stream")])
def test_websocket_and_grpc_share_one_engine(server: RunningServer, config: str, mode: str) -> None:
    """Same audio, same chunks: the same finals over both transports, counted in one set of metrics.

    A Vosk client that names no model gets two-pass (the server loaded the offline model).
    """
    assert server.handle is not None
    pcm = float_to_pcm16(noise(3.0, seed=2))
    before = server.handle.metrics.total_streams
    replies, _ = asyncio.run(vosk_session(url(server), pcm, f'{{"config": {config}}}'))
    ws_text = " ".join(r["text"] for r in replies if r.get("text"))
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = asr_pb2_grpc.RecognizerStub(channel)
        requests = [config_request(model=mode), *audio_requests(pcm, CHUNK)]
        responses = list(stub.StreamingRecognize(iter(requests)))
        stats = stub.GetStats(asr_pb2.GetStatsRequest())
    grpc_text = " ".join(text for text, *_ in finals(responses) if text)
    assert ws_text and ws_text == grpc_text
    assert stats.total_streams == before + 2


def test_no_config_means_16khz_and_words(server: RunningServer) -> None:
    replies, code = asyncio.run(vosk_session(url(server), float_to_pcm16(noise(2.0, seed=3))))
    assert code == 1000
    assert any(r.get("result") for r in replies)


def test_words_off_and_other_rates(server: RunningServer) -> None:
    pcm8k = float_to_pcm16(noise(2.0, seed=4, rate=8000))
    configs = ['{"config": {"words": 0}}', '{"config": {"sample_rate": 8000}}']  # they add up, as in Vosk
    replies, code = asyncio.run(vosk_session(url(server), pcm8k, configs))
    assert code == 1000
    finals_ = [r for r in replies if "text" in r]
    assert finals_ and all(set(r) == {"text"} for r in finals_)


def test_alternatives_take_vosks_nbest_shape(server: RunningServer) -> None:
    config = json.dumps({"config": {"sample_rate": 16000, "max_alternatives": 3, "model": "two-pass"}})
    replies, _ = asyncio.run(vosk_session(url(server), float_to_pcm16(noise(2.0, seed=5)), config))
    finals_ = [r for r in replies if "alternatives" in r]
    assert finals_ and all(set(r) == {"alternatives"} for r in finals_)
    for r in finals_:
        assert 1 <= len(r["alternatives"]) <= 3
        for alt in r["alternatives"]:
            assert set(alt) <= {"text", "confidence", "result"} and isinstance(alt["text"], str)
            for w in alt.get("result", []):
                assert set(w) == {"word", "start", "end"}


def test_reset_closes_the_utterance_and_the_session_goes_on(server: RunningServer) -> None:
    async def run() -> list[dict[str, Any]]:
        async with websockets.connect(url(server)) as ws:
            await ws.send(float_to_pcm16(noise(1.0, seed=6)))
            partial = json.loads(await ws.recv())
            await ws.send('{"reset" : 1}')
            reset = json.loads(await ws.recv())
            await ws.send(float_to_pcm16(noise(0.5, seed=7)))
            after = json.loads(await ws.recv())
            await ws.send('{"eof" : 1}')
            return [partial, reset, after, json.loads(await ws.recv())]

    partial, reset, after, last = asyncio.run(run())
    assert set(partial) == {"partial"} and "text" in reset and "partial" in after and "text" in last
    check_final(reset)
    if reset.get("result") and last.get("result"):
        assert last["result"][0]["start"] >= reset["result"][-1]["end"]


def test_final_message_merges_the_finals_of_one_reply() -> None:
    def result(text: str, start: float) -> Result:
        words = tuple(Word(w, start + i, start + i + 0.5, 0.8) for i, w in enumerate(text.split()))
        return Result(True, (Hypothesis(text, words, 0.8),), 0, start, start + 2)

    merged = final_message([result("go on", 0.0), result("stop now", 3.0)], words=True, alternatives=0)
    assert merged["text"] == "go on stop now"
    assert [w["word"] for w in merged["result"]] == ["go", "on", "stop", "now"]
    assert final_message([], words=True, alternatives=0) == {"text": ""}  # Vosk's empty final
    assert final_message([], words=True, alternatives=2) == {
        "alternatives": [{"text": "", "confidence": 1.0}]
    }


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("messages", "code", "says"),
    [
        (["this is not json"], 1007, "JSON"),
        (['{"partial": 1}'], 1007, "expected"),
        ([b"\0\0" * 100, '{"config": {"sample_rate": 16000}}'], 1008, "before the audio"),
        ([b"\0" * 3201], 1007, "even number of bytes"),
        (['{"config": {"sample_rate": 100}}'], 1007, "sample_rate"),
        (['{"config": {"sample_rate": 500000}}'], 1007, "sample_rate"),
        (['{"config": {"sample_rate": "fast"}}'], 1007, "expected a number"),
        (['{"config": {"model": "whisper-xl"}}'], 1007, "whisper-xl"),
        (['{"config": {"profile": "nobody"}}', b"\0\0" * 100], 1007, "nobody"),
        (['{"config": {"max_alternatives": 99}}'], 1007, "max_alternatives"),
        (['{"config": {"phrase_list": "go on"}}'], 1007, "phrase_list"),
        (['{"config": {"trailing_silence_ms": 5}}'], 1007, "trailing_silence_ms"),
    ],
)
def test_bad_input_gets_an_error_and_a_close_code(
    server: RunningServer, messages: list[str | bytes], code: int, says: str
) -> None:
    replies, close_code = asyncio.run(bad_session(url(server), *messages))
    errors = [r for r in replies if "error" in r]
    assert len(errors) == 1 and says in errors[0]["error"] and replies[-1] is errors[0]
    assert close_code == code
    assert idle(server)
    # The server stays healthy: the next WebSocket stream works.
    replies, ok = asyncio.run(vosk_session(url(server), float_to_pcm16(noise(0.6))))
    assert ok == 1000 and "text" in replies[-1]


def test_oversized_message_is_refused_with_1009(strict: RunningServer) -> None:
    replies, code = asyncio.run(bad_session(url(strict), b"\0\0" * 40000))  # 80,000 > 65,536 bytes
    assert code == 1009
    assert len(replies) == 1 and "65536 byte maximum" in replies[0]["error"]
    assert idle(strict)


def test_silent_client_hits_the_idle_timeout(strict: RunningServer) -> None:
    replies, code = asyncio.run(bad_session(url(strict), '{"config": {"sample_rate": 16000}}', wait_s=10))
    assert code == 1008 and "idle timeout" in replies[-1]["error"]
    assert idle(strict)


def test_stream_longer_than_the_maximum(strict: RunningServer) -> None:
    chunks = [float_to_pcm16(noise(0.5, seed=k)) for k in range(8)]  # 4 s > 3 s
    replies, code = asyncio.run(bad_session(url(strict), *chunks))
    assert code == 1008 and "3 s maximum" in replies[-1]["error"]
    assert idle(strict)


def test_stream_cap_refuses_with_try_again_later(strict: RunningServer) -> None:
    async def run() -> tuple[list[Any], int | None]:
        async with websockets.connect(url(strict)) as a, websockets.connect(url(strict)) as b:
            for ws in (a, b):  # both admitted and live
                await ws.send(b"\0\0" * 1600)
                await ws.recv()
            return await bad_session(url(strict), b"\0\0" * 1600)

    replies, code = asyncio.run(run())
    assert code == 1013 and "stream limit" in replies[-1]["error"]
    assert idle(strict)


def test_vanished_client_frees_its_stream(server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    assert server.handle is not None
    caplog.set_level(logging.INFO)

    async def run() -> None:
        ws = await websockets.connect(url(server))
        await ws.send(float_to_pcm16(noise(0.4)))
        await ws.recv()
        assert server.handle is not None and server.handle.metrics.active_streams == 1
        ws.transport.abort()  # no close frame, no FIN handshake: the peer is just gone
        # And one that vanishes while its reply is on the way.
        ws = await websockets.connect(url(server))
        await ws.send(float_to_pcm16(noise(0.4)))
        ws.transport.abort()

    asyncio.run(run())
    assert idle(server)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and not r.name.startswith("websockets")]
    assert not errors, errors[0].getMessage()
    replies, code = asyncio.run(vosk_session(url(server), float_to_pcm16(noise(0.6))))
    assert code == 1000


def test_draining_sends_the_final_then_going_away(recognizer: Recognizer) -> None:
    running = start_in_thread(ServerConfig(host="127.0.0.1", port=0, ws_port=0, grace_s=5.0), recognizer)

    async def run() -> tuple[list[Any], int | None]:
        replies: list[Any] = []
        async with websockets.connect(url(running)) as ws:
            await ws.send(float_to_pcm16(noise(0.4)))
            replies.append(json.loads(await ws.recv()))
            stopper = threading.Thread(target=running.stop)
            stopper.start()
            assert wait_for(lambda: running.handle is not None and running.handle.service.engine.draining)
            try:
                await ws.send(float_to_pcm16(noise(0.4, seed=1)))
                while True:
                    replies.append(json.loads(await ws.recv()))
            except ConnectionClosed:
                pass
            stopper.join(10)
            return replies, ws.close_code

    replies, code = asyncio.run(run())
    assert code == 1001
    assert "text" in replies[-2] and "shutting down" in replies[-1]["error"]


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["sample_rate", "words", "max_alternatives", "phrase_list", "model", "profile", "hotword_boost",
             "trailing_silence_ms", "max_utterance_ms", "initial_silence_timeout_ms", "partial_decoder", "x"]
        ),
        st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
        | st.text(max_size=8) | st.lists(st.text(max_size=8), max_size=3),
    )
)  # fmt: skip
def test_any_config_is_accepted_or_refused_with_a_message(config: dict[str, Any]) -> None:
    try:
        session, words, alternatives, _ = vosk_config({"config": config}, offline_available=True)
    except RequestError as e:
        assert str(e) and e.code == grpc.StatusCode.INVALID_ARGUMENT
        return
    assert 8000 <= session.sample_rate <= 192000 and 0 <= alternatives <= 10 and isinstance(words, bool)


# -------------------------------------------------------------- page and HTTP
def http_get(address: str | urllib.request.Request, **kwargs: Any) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(address, timeout=10, **kwargs) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def test_page_and_its_files(server: RunningServer) -> None:
    assert server.handle is not None
    base = f"http://127.0.0.1:{server.handle.ws_port}"
    status, kind, body = http_get(base + "/")
    assert status == 200 and kind.startswith("text/html") and b'src="app.js"' in body
    for name, expected in (
        ("app.js", "text/javascript"),
        ("worklet.js", "text/javascript"),
        ("style.css", "text/css"),
    ):
        status, kind, body = http_get(f"{base}/{name}")
        assert status == 200 and kind.startswith(expected) and body
    assert http_get(base + "/worklet.js")[2].count(b"registerProcessor") == 1
    assert http_get(base + "/nothing-here")[0] == 404
    status, _, body = http_get(base + "/api/models")
    assert status == 200 and json.loads(body)["models"] == ["stream", "two-pass", "offline"]


# ------------------------------------------------------------- tokens and TLS
@pytest.fixture(scope="module")
def guarded(recognizer: Recognizer) -> Iterator[RunningServer]:
    yield from loopback_server(recognizer, ws_port=0, tokens=[TOKEN])


def test_tokens_guard_the_websocket_and_the_api_never_the_logs(
    guarded: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    assert guarded.handle is not None
    caplog.set_level(logging.DEBUG)
    pcm = float_to_pcm16(noise(0.6))
    for query in ("", "?token=wrong-token-123"):
        with pytest.raises(InvalidStatus) as info:
            asyncio.run(vosk_session(url(guarded, query), pcm))
        assert info.value.response.status_code == 401
    _, code = asyncio.run(vosk_session(url(guarded, f"?token={TOKEN}"), pcm))  # browsers
    assert code == 1000
    _, code = asyncio.run(
        vosk_session(url(guarded), pcm, additional_headers={"Authorization": f"Bearer {TOKEN}"})
    )
    assert code == 1000
    base = f"http://127.0.0.1:{guarded.handle.ws_port}"
    assert http_get(base + "/")[0] == 200  # the page holds nothing secret; what it calls does
    assert http_get(base + "/api/models")[0] == 401
    assert http_get(f"{base}/api/models?token={TOKEN}")[0] == 200
    request = urllib.request.Request(base + "/api/models", headers={"Authorization": f"Bearer {TOKEN}"})
    assert http_get(request)[0] == 200
    assert wait_for(lambda: "/api/models" in caplog.text)  # the access log did run
    # Every server-side record (the client library logs its own requests at DEBUG).
    server_logs = "\n".join(
        f"{r.name} {r.getMessage()}" for r in caplog.records if r.name.startswith(("aiohttp", "asr"))
    )
    assert "GET /?" not in server_logs and "GET / " in server_logs  # a path, never a query
    assert TOKEN not in server_logs and "wrong-token-123" not in server_logs


def test_tls_serves_wss_and_https(recognizer: Recognizer, tmp_path: Path) -> None:
    key, cert = self_signed_cert(tmp_path)
    running = start_in_thread(
        ServerConfig(host="127.0.0.1", port=0, ws_port=0, grace_s=0.5, tls_cert=str(cert), tls_key=str(key)),
        recognizer,
    )
    try:
        assert running.handle is not None
        context = ssl.create_default_context(cafile=str(cert))
        port = running.handle.ws_port
        replies, code = asyncio.run(
            vosk_session(f"wss://127.0.0.1:{port}/", float_to_pcm16(noise(0.6)), ssl=context)
        )
        assert code == 1000 and "text" in replies[-1]
        status, _, body = http_get(f"https://127.0.0.1:{port}/", context=context)
        assert status == 200 and b"<html" in body
    finally:
        running.stop()
