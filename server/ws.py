"""vosk-server's WebSocket protocol and the web page, on one port beside the gRPC server.

One aiohttp application serves, on ``asr serve --ws-port PORT``:

- ``/`` with ``Upgrade: websocket``: the Vosk protocol, so existing Vosk clients work
  unchanged. An optional first text message ``{"config": {...}}``, then binary PCM16
  mono little-endian audio, then ``{"eof" : 1}``. Every binary message gets exactly
  one answer (``{"partial": ...}``, or a final ``{"text": ..., "result": [...]}``), as
  Vosk's clients send a chunk and read one reply; ``eof`` gets the last final, then
  the server closes. ``{"reset" : 1}`` ends the open utterance with a final.
- ``/`` without the upgrade: the page (``server/web/``), and its scripts and style.

Both transports share one :class:`asr.server.engine.Engine`: the same models, the
same cross-stream batcher, the same limits and metrics. Tokens go in an
``Authorization: Bearer`` header or, for browsers, which cannot set headers on a
WebSocket, a ``token`` query parameter. The access log shows paths without their
query, so a token never reaches a log.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import grpc
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.abc import AbstractAccessLogger
from asr.server.engine import Engine, RequestError, Stream
from asr.server.servicer import MAX_RATE, MIN_RATE, session_config

from asr.audio import pcm16_to_float
from asr.constants import MODES, Mode
from asr.decoding import Hypothesis
from asr.streaming import Result, SessionConfig
from asr.v1 import asr_pb2

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
STATIC_FILES = {  # what the page needs: name -> content type
    "index.html": "text/html",
    "app.js": "text/javascript",
    "enroll.js": "text/javascript",
    "worklet.js": "text/javascript",
    "style.css": "text/css",
}
DEFAULT_SAMPLE_RATE = 16000  # when a client sends no config (vosk-server's is set per install)
MAX_ALTERNATIVES = 10
# WebSocket close codes (RFC 6455 section 7.4.1) for the gRPC status of a RequestError.
CLOSE_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: WSCloseCode.INVALID_TEXT,  # 1007: data not as the protocol says
    grpc.StatusCode.NOT_FOUND: WSCloseCode.INVALID_TEXT,  # 1007: the config names an unknown profile
    grpc.StatusCode.FAILED_PRECONDITION: WSCloseCode.POLICY_VIOLATION,  # 1008
    grpc.StatusCode.OUT_OF_RANGE: WSCloseCode.POLICY_VIOLATION,
    grpc.StatusCode.DEADLINE_EXCEEDED: WSCloseCode.POLICY_VIOLATION,
    grpc.StatusCode.RESOURCE_EXHAUSTED: WSCloseCode.TRY_AGAIN_LATER,  # 1013
    grpc.StatusCode.UNAVAILABLE: WSCloseCode.GOING_AWAY,  # 1001
}
ENDPOINT_KEYS = ("trailing_silence_ms", "max_utterance_ms", "initial_silence_timeout_ms")
VOSK_KEYS = ("sample_rate", "words", "max_alternatives", "phrase_list")
OUR_KEYS = ("model", "profile", "hotword_boost", "partial_decoder", *ENDPOINT_KEYS)


# ----------------------------------------------------------------- the protocol
def _number(config: dict[str, Any], key: str, integral: bool = False) -> float | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RequestError(f"config {key}: expected a number, got {value!r}")
    if integral and value != int(value):
        raise RequestError(f"config {key}: expected a whole number, got {value!r}")
    return value


def vosk_config(
    message: dict[str, Any], offline_available: bool
) -> tuple[SessionConfig, bool, int, str | None]:
    """Validate a ``{"config": {...}}`` message.

    Vosk's keys: ``sample_rate``, ``words``, ``max_alternatives``, ``phrase_list``
    (phrases to favour: here hotwords with a boost, not a closed grammar). Ours:
    ``model`` (stream, two-pass or offline; by default two-pass where the server loaded
    the offline model: a Vosk client cannot name our models, and two-pass streams the
    same partials with more accurate finals), ``profile``, ``hotword_boost``,
    ``partial_decoder`` and the endpointing keys ``trailing_silence_ms``,
    ``max_utterance_ms`` and ``initial_silence_timeout_ms``. Other keys are ignored, as
    Vosk ignores what it does not know.

    Returns:
        the session config, whether finals list their words, the number of
        alternatives (0: Vosk's plain final), and the profile (None: the base models).

    Raises:
        RequestError: a value of the wrong type or out of range.
    """
    config = message["config"]
    if not isinstance(config, dict):
        raise RequestError(f"config: expected a JSON object, got {config!r}")
    rate = _number(config, "sample_rate", integral=True)
    if rate is not None and not MIN_RATE <= rate <= MAX_RATE:
        raise RequestError(f"config sample_rate: expected {MIN_RATE}..{MAX_RATE}, got {rate:g}")
    alternatives = _number(config, "max_alternatives", integral=True) or 0
    if not 0 <= alternatives <= MAX_ALTERNATIVES:
        raise RequestError(f"config max_alternatives: expected 0..{MAX_ALTERNATIVES}, got {alternatives:g}")
    phrases = config.get("phrase_list") or []
    if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
        raise RequestError(f"config phrase_list: expected a list of strings, got {phrases!r}")
    for key in ("model", "profile", "partial_decoder"):
        if not isinstance(config.get(key, ""), str):
            raise RequestError(f"config {key}: expected a string, got {config[key]!r}")
    rc = asr_pb2.RecognitionConfig(
        encoding=asr_pb2.LINEAR16,
        sample_rate_hertz=int(rate if rate is not None else DEFAULT_SAMPLE_RATE),
        model=config.get("model") or (Mode.TWO_PASS if offline_available else Mode.STREAM),
        max_alternatives=int(alternatives),
        partial_decoder=config.get("partial_decoder", ""),
    )
    phrases = [p for p in phrases if p.strip() and p.strip() != "[unk]"]  # Vosk's unknown-word token
    boost = _number(config, "hotword_boost") or 0.0
    if phrases or boost:
        rc.speech_contexts.add(phrases=phrases, boost=boost)
    for key in ENDPOINT_KEYS:
        value = _number(config, key, integral=True)
        if value is not None:
            if not 0 <= value <= 2**31 - 1:
                raise RequestError(f"config {key}: expected 0..{2**31 - 1}, got {value:g}")
            setattr(rc.endpointing, key, int(value))
    ignored = sorted(set(config) - {*VOSK_KEYS, *OUR_KEYS})
    if ignored:
        log.debug("websocket config: ignoring keys %s", ignored)
    session = session_config(rc, interim_results=True, offline_available=offline_available)
    words = bool(config.get("words", True))
    return session, words, int(alternatives), config.get("profile") or None


def _words(hyp: Hypothesis, confidence: bool) -> list[dict[str, Any]]:
    out = []
    for w in hyp.words:
        word: dict[str, Any] = {"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)}
        if confidence:
            word["conf"] = round(w.confidence, 6)
        out.append(word)
    return out


def final_message(finals: Sequence[Result], words: bool, alternatives: int) -> dict[str, Any]:
    """Vosk's final for the finals of one reply (several, if one chunk ended several utterances).

    ``{"result": [{"word", "start", "end", "conf"}...], "text": ...}`` (``result`` only
    with ``words`` and when there are words), or with ``alternatives`` > 0 Vosk's n-best
    shape ``{"alternatives": [{"text", "confidence", "result"}...]}``. Times are
    seconds from the start of the stream.
    """
    finals = [r for r in finals if r.alternatives]
    if alternatives:
        # Earlier finals of the same reply lead every alternative with their best text.
        lead = [r.alternatives[0] for r in finals[:-1]]
        entries = []
        for hyp in finals[-1].alternatives[:alternatives] if finals else ():
            entry: dict[str, Any] = {
                "text": " ".join(h.text for h in [*lead, hyp] if h.text),
                "confidence": round(hyp.confidence, 6),
            }
            if words:
                entry["result"] = [w for h in [*lead, hyp] for w in _words(h, confidence=False)]
            entries.append(entry)
        return {"alternatives": entries or [{"text": "", "confidence": 1.0}]}
    best = [r.alternatives[0] for r in finals]
    message: dict[str, Any] = {}
    listed = [w for h in best for w in _words(h, confidence=True)]
    if words and listed:
        message["result"] = listed
    message["text"] = " ".join(h.text for h in best if h.text)
    return message


class _Reply:
    """The one answer each binary message gets: a final if one came, else the partial."""

    def __init__(self, words: bool, alternatives: int) -> None:
        self.words = words
        self.alternatives = alternatives
        self.partial = ""

    def __call__(self, results: Sequence[Result], final: bool = False) -> dict[str, Any]:
        finals = [r for r in results if r.is_final and r.alternatives]
        after = results[results.index(finals[-1]) + 1 :] if finals else results
        partials = [r for r in after if not r.is_final and r.alternatives]
        if finals or final:
            self.partial = partials[-1].text if partials else ""
            return final_message(finals, self.words, self.alternatives)
        if partials:
            self.partial = partials[-1].text
        return {"partial": self.partial}


# ------------------------------------------------------------------- the server
class _AccessLogger(AbstractAccessLogger):
    """Method, path (never the query, where a token may be), status, size and time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %d %d %.3fs",
            request.remote,
            request.method,
            request.path,
            response.status,
            response.body_length,
            time,
        )


class _VoskSocket(web.WebSocketResponse):
    """Sends ``{"error": ...}`` before aiohttp closes for an oversized message (1009)."""

    def __init__(self, max_bytes: int) -> None:
        # No permessage-deflate: PCM barely compresses, and inflating it costs server CPU.
        super().__init__(max_msg_size=max_bytes, compress=False)
        self.max_bytes = max_bytes

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG and not self.closed:
            with suppress(Exception):
                await self.send_str(
                    json.dumps({"error": f"message larger than the {self.max_bytes} byte maximum"})
                )
            message = message or b"message too big"
        return await super().close(code=code, message=message, drain=drain)


class WebServer:
    """The Vosk WebSocket endpoint and the page on one port (plain or TLS), on the engine's loop."""

    def __init__(
        self,
        engine: Engine,
        host: str,
        port: int,
        tokens: Sequence[str] = (),
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        extra_routes: Callable[[web.Application], None] | None = None,
    ) -> None:
        """Bind the port now (``port`` 0 picks one: see :attr:`port`); :meth:`start` serves it."""
        if any(not t for t in tokens):
            raise ValueError("expected non-empty tokens")
        self.engine = engine
        self._tokens = [t.encode() for t in tokens]
        self._ssl = ssl_context
        self._sockets: set[web.WebSocketResponse] = set()
        self._idle: asyncio.Event | None = None
        # Requests as large as a stream's messages (an enrollment take is one request).
        self.app = web.Application(middlewares=[self._auth], client_max_size=engine.limits.max_message_bytes)
        self.app.router.add_get("/", self._root)
        for name in STATIC_FILES:
            if name != "index.html":
                self.app.router.add_get(f"/{name}", self._static)
        self.app.router.add_get("/api/models", self._models)
        if extra_routes is not None:
            extra_routes(self.app)
        self._sock = _bind(host, port, reuse_port)
        self.port = int(self._sock.getsockname()[1])
        self._runner: web.AppRunner | None = None

    @property
    def scheme(self) -> str:
        return "https" if self._ssl else "http"

    async def start(self) -> None:
        self._idle = asyncio.Event()
        self._idle.set()
        self._runner = web.AppRunner(self.app, access_log_class=_AccessLogger, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock, ssl_context=self._ssl).start()
        log.info("web page and Vosk WebSocket on %s port %d", self.scheme, self.port)

    async def stop(self, grace_s: float) -> None:
        """Let live streams end within ``grace_s`` (the engine is draining), then close the rest."""
        if self._runner is None:
            return
        if self._sockets and self._idle is not None:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace_s)
        for ws in list(self._sockets):
            with suppress(Exception):
                await ws.send_str(json.dumps({"error": "server is shutting down"}))
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server is shutting down")
        await self._runner.cleanup()
        self._runner = None

    # ---------------------------------------------------------------- HTTP
    def authorized(self, request: web.BaseRequest) -> bool:
        """Whether ``request`` carries an accepted token (always, when there are none)."""
        if not self._tokens:
            return True
        scheme, _, header = request.headers.get("Authorization", "").partition(" ")
        given = header.strip() if scheme.lower() == "bearer" else request.query.get("token", "")
        return any(hmac.compare_digest(given.encode(), t) for t in self._tokens)

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        page = request.path.lstrip("/") in STATIC_FILES or (request.path == "/" and not _upgrade(request))
        if not page and not self.authorized(request):  # the page itself holds nothing to protect
            log.warning("unauthenticated request to %s", request.path)  # never the token or the query
            return web.json_response(
                {"error": "missing or invalid token (Authorization: Bearer <token>, or ?token=)"},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await handler(request)

    async def _root(self, request: web.Request) -> web.StreamResponse:
        if _upgrade(request):
            return await self._vosk(request)
        return self._file("index.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        return self._file(request.path.lstrip("/"))

    def _file(self, name: str) -> web.Response:
        return web.Response(
            body=(WEB_DIR / name).read_bytes(),
            content_type=STATIC_FILES[name],
            charset="utf-8",
            headers={
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; "
                "media-src 'self' blob:; img-src 'self' data:",
            },
        )

    async def _models(self, request: web.Request) -> web.Response:
        modes = list(MODES) if self.engine.offline_available else [Mode.STREAM]
        return web.json_response({"models": modes})

    # ----------------------------------------------------------- WebSocket
    async def _vosk(self, request: web.Request) -> web.WebSocketResponse:
        ws = _VoskSocket(self.engine.limits.max_message_bytes)
        await ws.prepare(request)
        self._sockets.add(ws)
        if self._idle is not None:
            self._idle.clear()
        admitted = False
        try:
            self.engine.admit()
            admitted = True
            await self._recognize(ws)
        except RequestError as e:
            self.engine.metrics.error()
            log.info("websocket stream refused or ended: %s", e)
            with suppress(Exception):  # the client may be gone already
                await ws.send_str(json.dumps({"error": str(e)}))
                await ws.close(code=CLOSE_CODES.get(e.code, WSCloseCode.POLICY_VIOLATION), message=b"error")
        except ConnectionError as e:  # the client vanished mid-reply: its stream is released below
            log.info("websocket client went away: %s", e)
        except Exception:
            log.exception("websocket stream failed")
            self.engine.metrics.error()
            with suppress(Exception):
                await ws.send_str(json.dumps({"error": "internal error"}))
                await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal error")
        finally:
            if admitted:
                self.engine.release()
            self._sockets.discard(ws)
            if not self._sockets and self._idle is not None:
                self._idle.set()
        return ws

    async def _recognize(self, ws: web.WebSocketResponse) -> None:
        """One Vosk session on an open WebSocket; returns once it has ended or closed."""
        engine = self.engine
        idle = engine.limits.idle_timeout_s
        settings: dict[str, Any] = {}
        session, words, alternatives, profile = vosk_config({"config": settings}, engine.offline_available)
        reply = _Reply(words, alternatives)
        stream: Stream | None = None
        try:
            while True:
                try:
                    msg = await ws.receive(timeout=idle if idle > 0 and math.isfinite(idle) else None)
                except TimeoutError:
                    raise RequestError(
                        f"no message for {idle:g} s (idle timeout)", grpc.StatusCode.DEADLINE_EXCEEDED
                    ) from None
                received = time.perf_counter()
                if msg.type == WSMsgType.BINARY:
                    if len(msg.data) % 2:
                        raise RequestError(
                            "binary messages hold PCM16 samples (2 bytes each): "
                            f"expected an even number of bytes, got {len(msg.data)}"
                        )
                    if stream is None:
                        stream = await engine.open_stream(session, profile)
                    if engine.draining:
                        await ws.send_str(json.dumps(reply(await stream.finish(), final=True)))
                        raise RequestError("server is shutting down", grpc.StatusCode.UNAVAILABLE)
                    results = await stream.accept(pcm16_to_float(msg.data), received)
                    await ws.send_str(json.dumps(reply(results)))
                    if stream.finished:  # initial silence timeout, or a single utterance
                        await ws.close()
                        return
                elif msg.type == WSMsgType.TEXT:
                    command = _command(msg.data)
                    if "config" in command:
                        if stream is not None:
                            raise RequestError(
                                "config may only come before the audio", grpc.StatusCode.FAILED_PRECONDITION
                            )
                        if not isinstance(command["config"], dict):
                            raise RequestError(f"config: expected a JSON object, got {command['config']!r}")
                        settings.update(command["config"])  # as in Vosk, a later config adds to earlier ones
                        session, words, alternatives, profile = vosk_config(
                            {"config": settings}, engine.offline_available
                        )
                        reply = _Reply(words, alternatives)
                        continue
                    if stream is None:
                        stream = await engine.open_stream(session, profile)
                    if "eof" in command:
                        await ws.send_str(json.dumps(reply(await stream.finish(), final=True)))
                        await ws.close()
                        return
                    await ws.send_str(json.dumps(reply(await stream.force_endpoint(), final=True)))
                else:  # closed, closing or a transport error: the client is gone or done
                    if msg.type == WSMsgType.ERROR:
                        log.info("websocket error: %s", ws.exception())
                    return
        finally:
            if stream is not None:
                stream.close()


def _command(text: str) -> dict[str, Any]:
    """A text message: ``{"config": ...}``, ``{"eof" : 1}`` or ``{"reset" : 1}``."""
    try:
        command = json.loads(text)
    except ValueError:
        raise RequestError(
            f'text messages must be JSON ({{"config": ...}}, {{"eof" : 1}} or {{"reset" : 1}}), got {text[:80]!r}'
        ) from None
    if not isinstance(command, dict) or not {"config", "eof", "reset"} & set(command):
        raise RequestError(f'expected {{"config": ...}}, {{"eof" : 1}} or {{"reset" : 1}}, got {text[:80]!r}')
    return command


def _upgrade(request: web.BaseRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A listening TCP socket on ``host`` (``[::]``: every address, IPv4 too) and ``port``."""
    if not 0 <= port <= 65535:
        raise ValueError(f"expected a port in 0..65535, got {port}")
    name = host.strip("[]")
    if name in ("::", "0.0.0.0", ""):
        sock = socket.create_server(
            ("", port),
            family=socket.AF_INET6 if socket.has_dualstack_ipv6() else socket.AF_INET,
            dualstack_ipv6=socket.has_dualstack_ipv6(),
            reuse_port=reuse_port,
        )
    else:
        family = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((name, port), family=family, reuse_port=reuse_port)
    sock.setblocking(False)
    return sock


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context from PEM files (the gRPC server's certificate and key)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
