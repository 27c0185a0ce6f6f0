"""``asr serve`` and ``asr demo``: the gRPC server, and the server with the bundled samples."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr.cli.common import HelpFormatter, default_lm


def _serve(args: argparse.Namespace) -> int:
    from asr.server.app import ServerConfig, serve

    tokens = list(args.token)
    if args.token_file:
        tokens += [t.strip() for t in Path(args.token_file).read_text().splitlines() if t.strip()]
    serve(
        ServerConfig(
            host=args.host,
            port=args.port,
            streaming_model=args.streaming_model,
            offline_model=None if args.no_offline else args.offline_model,
            lm=None if args.no_lm else args.lm,
            max_streams=args.max_streams,
            max_message_bytes=args.max_message_bytes,
            max_stream_seconds=args.max_stream_seconds,
            idle_timeout_s=args.idle_timeout,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tokens=tokens,
            metrics_port=args.metrics_port,
            ws_port=args.ws_port,
            reuse_port=args.reuse_port,
            grace_s=args.grace,
            threads=args.threads,
            int8=args.int8,
            beam_width=args.beam_width,
            token_min_logp=args.token_min_logp,
            decode_workers=args.decode_workers,
            gil_switch_ms=args.gil_switch_ms or None,
            gc_freeze=args.gc_freeze,
            fusion=args.fusion,
        )
    )
    return 0


def _register_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the gRPC recognition server",
        description=(
            "Serve asr.v1.Recognizer (StreamingRecognize, Recognize, ListModels, GetStats) plus "
            "grpc.health.v1 and server reflection. One batched LSTM step serves every live stream. "
            "SIGTERM drains in-flight streams within --grace seconds."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("--host", default="[::]", help="address to bind")
    p.add_argument("--port", type=int, default=50051, help="port (0: pick a free one)")
    p.add_argument("--streaming-model", default="streaming", help="streaming model name or path")
    p.add_argument("--offline-model", default="offline", help="offline model name or path")
    p.add_argument("--no-offline", action="store_true", help="do not load the BiLSTM (no two-pass/offline)")
    p.add_argument("--lm", default=default_lm(), help="language model folder")
    p.add_argument("--no-lm", action="store_true", help="beam search without a language model")
    p.add_argument("--max-streams", type=int, default=256, help="live streams before RESOURCE_EXHAUSTED")
    p.add_argument("--max-message-bytes", type=int, default=4 * 2**20, help="largest request message")
    p.add_argument(
        "--max-stream-seconds", type=float, default=3600, help="audio per stream before OUT_OF_RANGE"
    )
    p.add_argument(
        "--idle-timeout", type=float, default=30, help="seconds without a message before a stream ends"
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=256,
        help="most streams per batched model step (bigger batches cost less per stream)",
    )
    p.add_argument("--max-wait-ms", type=float, default=10, help="longest wait to fill a batch")
    p.add_argument("--tls-cert", help="PEM certificate (with --tls-key: TLS on)")
    p.add_argument("--tls-key", help="PEM private key")
    p.add_argument("--token", action="append", default=[], help="accepted bearer token (repeatable)")
    p.add_argument("--token-file", help="file with one accepted bearer token per line")
    p.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus text on http://HOST:PORT/metrics"
    )
    p.add_argument(
        "--ws-port",
        type=int,
        default=None,
        help="also speak vosk-server's WebSocket protocol at ws://HOST:PORT/ and serve the web page at "
        "http://HOST:PORT/ (wss/https with --tls-cert; same models, limits and tokens as gRPC)",
    )
    p.add_argument("--reuse-port", action="store_true", help="SO_REUSEPORT: run one server process per core")
    p.add_argument("--grace", type=float, default=10, help="seconds to drain streams on SIGTERM")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads for the batched model step (0: 1 thread; more seldom helps: the server is bound by Python work, use --reuse-port and one process per core instead)",
    )
    p.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="int8 weights for the streaming model: 2-4x less CPU per batched step; outputs move "
        "slightly (test WER with the LM 37.79 -> 37.86%%), and a stream's results depend a little on "
        "the other streams in its batch. --no-int8 serves the float model",
    )
    p.add_argument(
        "--fusion",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="two-pass and offline finals search the BiLSTM's log-probs fused with the streaming model's, "
        "when models/fusion.json was tuned for the loaded checkpoints (`asr fusion tune`); --no-fusion: "
        "the BiLSTM's alone",
    )
    p.add_argument(
        "--beam-width",
        type=int,
        default=None,
        help="beam width of the finals (default 32); smaller is cheaper and a little less accurate",
    )
    p.add_argument(
        "--token-min-logp",
        type=float,
        default=None,
        help="skip symbols below this log-prob in the finals' beam search (default -5; -3 halves "
        "the cost of a final, see docs/CAPACITY.md)",
    )
    p.add_argument(
        "--decode-workers",
        type=int,
        default=None,
        help="processes for the finals' beam searches (0: threads of the server process; default: "
        "1 on a machine with 2 or more cores, where the pure-Python beam search then runs beside "
        "the event loop, not against it)",
    )
    p.add_argument(
        "--gil-switch-ms",
        type=float,
        default=1.0,
        help="Python's GIL switch interval while serving (0: keep Python's 5 ms). The event loop, "
        "gRPC's poller and the model/decode threads share one GIL; 1 ms halved p95 latency at 200 "
        "streams (docs/CAPACITY.md)",
    )
    p.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gc.freeze() once the models are loaded, so Python's full garbage collections skip the "
        "models and the LM's trie (they paused the server up to 0.6 s at 200 streams)",
    )
    p.set_defaults(func=_serve)


def _demo(args: argparse.Namespace) -> int:
    from asr.demo import run_demo

    return run_demo(port=args.port, model=args.model, realtime=not args.fast)


def _register_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="start the server, stream the bundled samples in real time, show partials and finals",
        description=(
            "The main job in one command: start the gRPC server with the shipped models, stream the "
            "bundled held-out-voice samples through the gRPC client paced in real time, show the "
            "partials as they arrive and each final, then shut the server down."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("--port", type=int, default=50051, help="server port (0: any free port)")
    p.add_argument("--model", choices=["stream", "two-pass", "offline"], default="two-pass", help="mode")
    p.add_argument("--fast", action="store_true", help="send audio as fast as possible instead of real time")
    p.set_defaults(func=_demo)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_serve(sub)
    _register_demo(sub)
