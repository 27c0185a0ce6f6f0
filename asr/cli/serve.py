"""``asr serve`` and ``asr demo``: the gRPC server, and the server with the bundled samples."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr.cli.common import HelpFormatter
from asr.constants import MODES, Mode


def _serve(args: argparse.Namespace) -> int:
    from asr.config_flags import dataclass_from_args
    from asr.server.app import ServerConfig, serve

    tokens = list(args.tokens)
    if args.token_file:
        tokens += [t.strip() for t in Path(args.token_file).read_text().splitlines() if t.strip()]
    config = dataclass_from_args(
        ServerConfig,
        args,
        offline_model=None if args.no_offline else args.offline_model,
        lm=None if args.no_lm else args.lm,
        tokens=tokens,
        gil_switch_ms=args.gil_switch_ms or None,
    )
    serve(config)
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
    from asr.config_flags import add_dataclass_flags
    from asr.server.app import ServerConfig

    # Every ServerConfig field is a flag; these few only change how the fields are read.
    add_dataclass_flags(p, ServerConfig)
    p.add_argument("--no-offline", action="store_true", help="do not load the BiLSTM (no two-pass/offline)")
    p.add_argument("--no-lm", action="store_true", help="beam search without a language model")
    p.add_argument("--token-file", help="file with one accepted bearer token per line")
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
    p.add_argument("--model", choices=MODES, default=Mode.TWO_PASS, help="mode")
    p.add_argument("--fast", action="store_true", help="send audio as fast as possible instead of real time")
    p.set_defaults(func=_demo)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_serve(sub)
    _register_demo(sub)
