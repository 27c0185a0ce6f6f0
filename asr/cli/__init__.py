"""The ``asr`` command: one subcommand per job, each with its own ``--help``.

Each module of this package registers a group of subcommands and holds thin handlers
that turn flags into calls of the library; the work itself lives in the module of its
concern (``asr.train``, ``asr.transcribe``, ``asr.server.app``, ...).

To add a subcommand:
1. write ``asr/cli/NAME.py`` with ``register(sub)``, which calls ``sub.add_parser(...)``,
   adds the flags and ends with ``set_defaults(func=handler)``;
2. ``handler(args) -> int`` imports what it needs inside the function (``asr --help`` stays fast)
   and returns the exit code; raise ``ValueError``/``OSError`` for bad input (one line, exit 1);
3. import the module below and add it to ``COMMAND_MODULES`` (their order is the order in --help).
"""

from __future__ import annotations

import argparse
import logging
import sys

from asr.cli import bench, corpus, lm, profiles, serve, training, transcribe

log = logging.getLogger("asr")

COMMAND_MODULES = (corpus, training, lm, transcribe, profiles, serve, bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``asr`` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="asr",
        description="Streaming speech recognition with LSTM + CTC: corpus, training, evaluation, "
        "transcription and a gRPC server.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    from asr.client.cli import add_stream_parser

    add_stream_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except (ValueError, LookupError, OSError, RuntimeError) as e:
        # Bad input or setup: one line, not a traceback.
        if args.verbose:
            raise
        action = getattr(args, f"{args.command}_command", None)
        name = f"{args.command} {action}" if isinstance(action, str) else args.command
        print(f"asr {name}: error: {e} (-v for the traceback)", file=sys.stderr)
        return 1
