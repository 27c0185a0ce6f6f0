"""Server factory, one-call ``serve``, and embedding helpers.

# inside a running asyncio loop (e.g. your own aio app):
server, port = create_server(ServerConfig(port=0))
await server.start()

# blocking, with SIGTERM/SIGINT draining (what `asr serve` runs):
serve(ServerConfig(port=50051))

# from a plain (non-async) app: a server on a background thread
running = start_in_thread(ServerConfig(port=0))
...  # use 127.0.0.1:running.port
running.stop()
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import ThreadingHTTPServer
from pathlib import Path

import grpc
import numpy as np
import torch
from asr.server.auth import BearerTokenInterceptor
from asr.server.batcher import StreamBatcher
from asr.server.engine import Engine, Limits
from asr.server.enroll_http import EnrollmentAPI
from asr.server.metrics import Metrics, start_metrics_http
from asr.server.profiles import ProfileCache
from asr.server.servicer import RecognizerService
from asr.server.ws import WebServer, tls_context
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from asr.api import Recognizer
from asr.checkpoint import MODELS_DIR
from asr.config_flags import option
from asr.constants import SAMPLE_RATE, Mode
from asr.decode_pool import PooledDecoder
from asr.decoding import DecoderOptions
from asr.fusion import FUSION_FILE
from asr.model import quantize_int8
from asr.profiles import ProfileStore
from asr.v1 import asr_pb2, asr_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = asr_pb2.DESCRIPTOR.services_by_name["Recognizer"].full_name


@dataclass
class ServerConfig:
    """Everything ``asr serve`` can set: each field is one of its flags (``asr.config_flags``),
    with the help text in the field's metadata. A new field needs ``option(default, help=...)``.

    The per-stream limits default to :class:`Limits`'s values; :meth:`limits` gives them to
    the engine.
    """

    host: str = option("[::]", help="address to bind")
    port: int = option(50051, help="port (0: pick a free one)")
    streaming_model: str = option("streaming", help="streaming model name or path")
    offline_model: str | None = option("offline", help="offline model name or path")
    lm: str | None = option(str(MODELS_DIR / "lm"), help="language model folder")
    max_streams: int = option(Limits.max_streams, help="live streams before RESOURCE_EXHAUSTED")
    max_message_bytes: int = option(Limits.max_message_bytes, help="largest request message")
    max_stream_seconds: float = option(Limits.max_stream_seconds, help="audio per stream before OUT_OF_RANGE")
    idle_timeout_s: float = option(
        Limits.idle_timeout_s, help="seconds without a message before a stream ends", flag="--idle-timeout"
    )
    max_batch: int = option(
        256, help="most streams per batched model step (bigger batches cost less per stream)"
    )
    max_wait_ms: float = option(10.0, help="longest wait to fill a batch")
    tls_cert: str | None = option(None, help="PEM certificate (with --tls-key: TLS on)")
    tls_key: str | None = option(None, help="PEM private key")
    tokens: list[str] = option(
        default_factory=list, help="accepted bearer token (repeatable)", flag="--token", action="append"
    )
    metrics_port: int | None = option(None, help="serve Prometheus text on http://HOST:PORT/metrics")
    # The Vosk WebSocket protocol and the web page on this port (None: off), sharing the
    # gRPC server's engine, limits, TLS certificate and tokens (asr.server.ws).
    ws_port: int | None = option(
        None,
        help="also speak vosk-server's WebSocket protocol at ws://HOST:PORT/ and serve the web page at "
        "http://HOST:PORT/ (wss/https with --tls-cert; same models, limits and tokens as gRPC)",
    )
    reuse_port: bool = option(False, help="SO_REUSEPORT: run one server process per core")
    grace_s: float = option(10.0, help="seconds to drain streams on SIGTERM", flag="--grace")
    # torch's thread setting is process-wide. A step's tensors are small (one 100 ms chunk
    # per stream, batched LSTM steps), so more threads mostly add OpenMP hand-offs: with 2
    # on a busy 2-core machine a chunk's log-mel took ~20x the CPU of 1 thread.
    threads: int = option(
        0,
        help="torch threads for the batched model step (0: 1 thread; more seldom helps: the server is "
        "bound by Python work, use --reuse-port and one process per core instead)",
    )
    # With int8, chunked decoding no longer equals whole-utterance decoding exactly
    # (asr.model.quantize_int8); the float model keeps that parity.
    int8: bool = option(
        True,
        help="int8 weights for the streaming model: 2-4x less CPU per batched step; outputs move "
        "slightly (test WER with the LM 37.79 -> 37.86%%), and a stream's results depend a little on "
        "the other streams in its batch. --no-int8 serves the float model",
    )
    # Beam search of the finals (None: the decoder's defaults). A smaller beam or a higher
    # token floor makes each final cheaper at some cost in accuracy.
    beam_width: int | None = option(
        None,
        help=f"beam width of the finals (default {DecoderOptions.beam_width}); smaller is cheaper and "
        "a little less accurate",
    )
    token_min_logp: float | None = option(
        None,
        help=f"skip symbols below this log-prob in the finals' beam search (default "
        f"{DecoderOptions.token_min_logp:g}; -3 halves the cost of a final, see docs/serving.md)",
    )
    # Beam search is pure Python: in-process it competes with the event loop for the GIL,
    # in a worker it runs on another core.
    decode_workers: int | None = option(
        None,
        help="processes for the finals' beam searches (0: threads of the server process; default: "
        "1 on a machine with 2 or more cores, where the pure-Python beam search then runs beside "
        "the event loop, not against it)",
    )
    # Process-wide (None: leave it). At Python's default 5 ms a thread that wakes for one
    # message can wait a whole interval behind a busy one; 0.2 ms was worse again (more
    # switching).
    gil_switch_ms: float | None = option(
        1.0,
        help="Python's GIL switch interval while serving (0: keep Python's 5 ms). The event loop, "
        "gRPC's poller and the model/decode threads share one GIL; 1 ms halved p95 latency at 200 "
        "streams (docs/serving.md)",
    )
    # Process-wide: objects that exist then are never collected, so an app that embeds the
    # server and builds much cyclic garbage before it may want False.
    gc_freeze: bool = option(
        True,
        help="gc.freeze() once the models are loaded, so Python's full garbage collections skip the "
        "models and the LM's trie (they paused the server up to 0.6 s at 200 streams)",
    )
    fusion: bool = option(
        True,
        help="two-pass and offline finals search the BiLSTM's log-probs fused with the streaming model's, "
        "when models/fusion.json was tuned for the loaded checkpoints (`asr fusion tune`); --no-fusion: "
        "the BiLSTM's alone",
    )

    profiles_dir: str | None = option(
        None,
        help="speaker profiles a request may name (RecognitionConfig.profile, the WebSocket config's "
        "profile); default: $ASR_PROFILES, else $XDG_DATA_HOME/lstm-asr/profiles",
    )
    max_profiles: int = option(
        8,
        help="adapted profiles kept loaded at once (about 30 MB each); the least recently used idle one "
        "goes first",
    )

    def limits(self) -> Limits:
        """The per-stream limits every transport enforces."""
        return Limits(
            max_streams=self.max_streams,
            max_stream_seconds=self.max_stream_seconds,
            idle_timeout_s=self.idle_timeout_s,
            max_message_bytes=self.max_message_bytes,
        )


def decode_workers(config: ServerConfig) -> int:
    """The decode worker processes ``config`` asks for (``None``: one where there are 2+ cores)."""
    if config.decode_workers is None:
        return 1 if (os.cpu_count() or 1) >= 2 else 0
    if config.decode_workers < 0:
        raise ValueError(f"expected decode_workers >= 0, got {config.decode_workers}")
    return config.decode_workers


def _serving_recognizer(config: ServerConfig, recognizer: Recognizer) -> Recognizer:
    """The recognizer with the server's int8 and beam settings applied (a new one if any)."""
    changes: dict[str, float] = {}
    if config.beam_width is not None:
        if not 1 <= config.beam_width <= 1024:
            raise ValueError(f"expected beam_width in 1..1024, got {config.beam_width}")
        changes["beam_width"] = config.beam_width
    if config.token_min_logp is not None:
        if not -50.0 <= config.token_min_logp < 0:
            raise ValueError(f"expected token_min_logp in [-50, 0), got {config.token_min_logp}")
        changes["token_min_logp"] = config.token_min_logp
    workers = decode_workers(config)
    if not changes and not config.int8 and not workers and recognizer.offline_beam_width is None:
        return recognizer
    streaming = recognizer.streaming
    if config.int8:
        streaming = replace(streaming, model=quantize_int8(streaming.model))
    decoder = recognizer.decoder.with_options(**changes) if changes else recognizer.decoder
    if workers:
        decoder = PooledDecoder(decoder, workers)
    # Every final the server sends, offline Recognize included, uses --beam-width: the
    # capacity it was measured at (docs/serving.md), not the wider offline_beam_width.
    return Recognizer(streaming, recognizer.offline, decoder, recognizer.fusion)


@dataclass
class ServerHandle:
    """What :func:`create_server` builds, for callers that need more than (server, port)."""

    server: aio.Server
    port: int
    service: RecognizerService
    health: health.aio.HealthServicer
    batcher: StreamBatcher
    metrics: Metrics
    metrics_http: ThreadingHTTPServer | None = None  # the /metrics endpoint, if configured
    web: WebServer | None = None  # the Vosk WebSocket endpoint and the page, if configured
    gil_switch_ms: float | None = None  # ServerConfig.gil_switch_ms, applied while run_server runs

    @property
    def metrics_port(self) -> int | None:
        """The bound metrics HTTP port (useful with ``metrics_port=0``), or None."""
        return None if self.metrics_http is None else int(self.metrics_http.server_address[1])

    @property
    def ws_port(self) -> int | None:
        """The bound WebSocket/page port (useful with ``ws_port=0``), or None."""
        return None if self.web is None else self.web.port


def build_server(config: ServerConfig, recognizer: Recognizer | None = None) -> ServerHandle:
    """Create (not start) the server; must run inside an asyncio event loop."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ValueError("expected both tls_cert and tls_key, or neither")
    if config.threads < 0:
        raise ValueError(f"expected threads >= 0, got {config.threads}")
    if config.gil_switch_ms is not None and not 0.05 <= config.gil_switch_ms <= 100:
        raise ValueError(f"expected gil_switch_ms in 0.05..100 (or None), got {config.gil_switch_ms}")
    torch.set_num_threads(config.threads or 1)
    recognizer = recognizer or Recognizer.load(
        config.streaming_model,
        config.offline_model,
        config.lm,
        FUSION_FILE if config.fusion else None,
        offline_beam_width=None,
    )
    recognizer = _serving_recognizer(config, recognizer)
    # Warm up (mel filterbank, decoder, first LSTM calls) so the first stream is not slow.
    warm_up = np.zeros(SAMPLE_RATE, np.float32)
    recognizer.transcribe(warm_up, mode=Mode.TWO_PASS if recognizer.offline else Mode.STREAM)
    metrics = Metrics()
    batcher = StreamBatcher(recognizer.streaming.model, config.max_batch, config.max_wait_ms)
    limits = config.limits()
    store = ProfileStore(config.profiles_dir)
    profiles = ProfileCache(
        store,
        recognizer,
        config.max_profiles,
        lambda model: StreamBatcher(model, config.max_batch, config.max_wait_ms),
        int8=config.int8,
    )
    service = RecognizerService(Engine(recognizer, batcher, metrics, limits, profiles))
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 1 if config.reuse_port else 0),
    ]
    interceptors = [BearerTokenInterceptor(config.tokens)] if config.tokens else []
    server = aio.server(options=options, interceptors=interceptors)
    asr_pb2_grpc.add_RecognizerServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{config.host}:{config.port}"
    if config.tls_cert and config.tls_key:
        credentials = grpc.ssl_server_credentials(
            [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())]
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    web = None
    if config.ws_port is not None:
        tls = tls_context(config.tls_cert, config.tls_key) if config.tls_cert and config.tls_key else None
        enrollment = EnrollmentAPI(store)
        web = WebServer(
            service.engine,
            config.host,
            config.ws_port,
            config.tokens,
            tls,
            config.reuse_port,
            enrollment.add_routes,
        )
    metrics_http = None
    if config.metrics_port is not None:
        metrics_host = "0.0.0.0" if config.host in ("[::]", "0.0.0.0") else config.host
        metrics_http = start_metrics_http(metrics, metrics_host, config.metrics_port)
    if config.gc_freeze:
        gc.collect()
        gc.freeze()
    return ServerHandle(
        server, port, service, health_servicer, batcher, metrics, metrics_http, web, config.gil_switch_ms
    )


def create_server(config: ServerConfig, recognizer: Recognizer | None = None) -> tuple[aio.Server, int]:
    """``(server, port)``, bound but not started (call ``await server.start()``)."""
    handle = build_server(config, recognizer)
    return handle.server, handle.port


async def run_server(
    handle: ServerHandle, grace_s: float, stop: asyncio.Event, on_started: Callable[[], None] | None = None
) -> None:
    """Start, mark SERVING, wait for ``stop``, then drain within ``grace_s``."""
    _gil_switch_enter(handle.gil_switch_ms)
    try:
        await _run_server(handle, grace_s, stop, on_started)
    finally:
        _gil_switch_exit(handle.gil_switch_ms)


_switch_lock = threading.Lock()
_switch_active: list[float] = []  # the intervals (s) of the running servers that set one, oldest first
_switch_before = 0.005  # Python's interval before the first of them set it


def _gil_switch_enter(ms: float | None) -> None:
    """Set the (process-wide) GIL switch interval while a server runs.

    With several servers in one process the newest running one's value holds; when the
    last of them stops, Python's previous interval comes back.
    """
    global _switch_before
    if ms is None:
        return
    with _switch_lock:
        if not _switch_active:
            _switch_before = sys.getswitchinterval()
        _switch_active.append(ms / 1000.0)
        sys.setswitchinterval(_switch_active[-1])


def _gil_switch_exit(ms: float | None) -> None:
    if ms is None:
        return
    with _switch_lock:
        _switch_active.reverse()
        _switch_active.remove(ms / 1000.0)  # the newest entry with this value
        _switch_active.reverse()
        sys.setswitchinterval(_switch_active[-1] if _switch_active else _switch_before)


async def _run_server(
    handle: ServerHandle, grace_s: float, stop: asyncio.Event, on_started: Callable[[], None] | None
) -> None:
    await handle.server.start()
    if handle.web is not None:
        await handle.web.start()
    for name in ("", SERVICE_NAME):
        await handle.health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("listening on port %d", handle.port)
    if on_started is not None:
        on_started()
    await stop.wait()
    log.info("draining: %d live streams, grace %.0f s", handle.metrics.active_streams, grace_s)
    handle.service.draining = True
    for name in ("", SERVICE_NAME):
        await handle.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await asyncio.gather(
        handle.server.stop(grace_s), *([handle.web.stop(grace_s)] if handle.web is not None else [])
    )
    await handle.batcher.stop()
    decoder = handle.service.recognizer.decoder
    if isinstance(decoder, PooledDecoder):
        await asyncio.get_running_loop().run_in_executor(None, decoder.close)
    if handle.metrics_http is not None:
        await asyncio.get_running_loop().run_in_executor(None, handle.metrics_http.shutdown)
        handle.metrics_http.server_close()
    log.info("stopped")


def serve(config: ServerConfig, recognizer: Recognizer | None = None) -> None:
    """Run a server until SIGTERM/SIGINT; in-flight streams get ``grace_s`` to finish."""

    async def main() -> None:
        handle = build_server(config, recognizer)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_server(handle, config.grace_s, stop)

    asyncio.run(main())


class RunningServer:
    """A server on a background thread (for non-async apps and tests)."""

    def __init__(self, config: ServerConfig, recognizer: Recognizer | None = None) -> None:
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.handle: ServerHandle | None = None
        self._thread = threading.Thread(
            target=self._main, args=(config, recognizer), daemon=True, name="asr-server"
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    @property
    def port(self) -> int:
        assert self.handle is not None
        return self.handle.port

    def _main(self, config: ServerConfig, recognizer: Recognizer | None) -> None:
        async def main() -> None:
            try:
                self.handle = build_server(config, recognizer)
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = e
                self._ready.set()
                return
            await run_server(self.handle, config.grace_s, self._stop, on_started=self._ready.set)

        asyncio.run(main())

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)


def start_in_thread(config: ServerConfig, recognizer: Recognizer | None = None) -> RunningServer:
    """Start a server on a background thread; returns once it is bound."""
    return RunningServer(config, recognizer)
