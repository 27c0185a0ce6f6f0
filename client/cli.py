"""``asr stream``: send a file or the microphone to a server and show results live.

The partial result rewrites one terminal line; each final is printed on its own line
with the utterance's time span. Wired into the ``asr`` command by
:func:`add_stream_parser`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import TYPE_CHECKING, TextIO

from asr.constants import MODES, Mode

if TYPE_CHECKING:
    from asr.client.client import StreamEvent, StreamOptions
    from asr.client.sources import FileSource, MicrophoneSource

# Heavy modules (grpc, numpy, audio) are imported when the command runs, not when the
# parser is built, so that `asr --help` stays fast.
CHUNK_MS = 100  # the same as asr.client.sources.CHUNK_MS
CLEAR_LINE = "\r\x1b[K"  # carriage return + erase to the end of the line


class LivePrinter:
    """Shows partials on one rewritten line and finals as ``[start-end] text`` lines."""

    def __init__(self, out: TextIO, partials: bool, words: bool = False) -> None:
        self.out = out
        self.partials = partials
        self.words = words
        self._line_open = False

    def _width(self) -> int:
        return max(20, shutil.get_terminal_size((100, 24)).columns - 1)

    def show(self, event: StreamEvent) -> None:
        if event.is_final:
            if self._line_open:
                self.out.write(CLEAR_LINE)
                self._line_open = False
            if event.text:
                self.out.write(f"[{event.start:.2f}-{event.end:.2f}] {event.text}\n")
                if self.words and event.words:
                    spans = " ".join(f"{w.word}({w.start:.2f}-{w.end:.2f})" for w in event.words)
                    self.out.write(f"    {spans}\n")
        elif self.partials and event.text:
            text = event.text
            width = self._width()
            if len(text) > width:  # a wrapped line cannot be rewritten with \r: show the tail
                text = "..." + text[-(width - 3) :]
            self.out.write(CLEAR_LINE + text)
            self._line_open = True
        self.out.flush()

    def close(self) -> None:
        """End an unfinished partial line."""
        if self._line_open:
            self.out.write("\n")
            self.out.flush()
            self._line_open = False


def _options(args: argparse.Namespace) -> StreamOptions:
    from asr.client.client import StreamOptions

    return StreamOptions(
        model=args.model,
        interim_results=_show_partials(args),
        max_alternatives=1,
        word_time_offsets=args.words,
        word_confidence=args.words,
        hotwords=tuple(args.hotword),
        hotword_boost=args.hotword_boost,
        trailing_silence_ms=args.trailing_silence_ms,
        max_utterance_ms=args.max_utterance_ms,
        single_utterance=args.single_utterance,
        partial_decoder=args.partial_decoder,
        profile=args.profile or "",
    )


def _show_partials(args: argparse.Namespace) -> bool:
    return bool(sys.stdout.isatty() if args.interim is None else args.interim)


def run_stream(args: argparse.Namespace) -> int:
    """The ``asr stream`` command; returns the exit code."""
    from asr.client.client import RecognizerClient, RecognizerError
    from asr.client.sources import FileSource, MicrophoneError, MicrophoneSource

    from asr.audio import AudioError

    if (args.file is None) == (not args.mic):
        print("asr stream: error: give either FILE or --mic", file=sys.stderr)
        return 2
    try:
        options = _options(args)
        if args.mic:
            device = int(args.mic_device) if str(args.mic_device).isdigit() else args.mic_device
            source: FileSource | MicrophoneSource = MicrophoneSource(
                args.mic_rate, args.chunk_ms, device, args.seconds
            )
        else:
            source = FileSource(args.file, args.chunk_ms)
    except (AudioError, MicrophoneError, ValueError) as e:
        print(f"asr stream: error: {e}", file=sys.stderr)
        return 1
    printer = LivePrinter(sys.stdout, _show_partials(args), args.words)
    if args.mic:
        print("listening... (Ctrl-C to stop)", file=sys.stderr)
    token = args.token or os.environ.get("ASR_TOKEN") or None
    with RecognizerClient(args.server, token, args.tls_ca) as client:
        try:
            with client.stream(source, options, realtime=args.realtime) as call:
                try:
                    for event in call:
                        printer.show(event)
                except KeyboardInterrupt:
                    # First Ctrl-C: stop sending and wait for the last final; a second one quits.
                    call.end_audio()
                    printer.close()
                    print("stopping: waiting for the last result (Ctrl-C again to quit)", file=sys.stderr)
                    for event in call:
                        printer.show(event)
        except RecognizerError as e:
            printer.close()
            print(f"asr stream: error from {args.server}: {e}", file=sys.stderr)
            return 1
        except MicrophoneError as e:
            printer.close()
            print(f"asr stream: error: {e}", file=sys.stderr)
            return 1
    printer.close()
    return 0


def add_stream_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``asr stream`` to the ``asr`` command's subparsers (sets ``func``)."""
    p = sub.add_parser(
        "stream",
        help="stream a file or the microphone to a server; show live results",
        description=(
            "Send audio to a running `asr serve` over gRPC and print results as they arrive: "
            "the partial transcript rewrites one line while the utterance goes on, and each "
            "final result is printed on its own line as '[start-end] text' (seconds from the "
            "start of the stream). A FILE (any format libsndfile reads) is sent at real-time "
            "speed by default, as if spoken live; --fast sends it as fast as possible. --mic "
            "captures the default input device (needs: pip install sounddevice; apt install "
            "libportaudio2); Ctrl-C stops capture and waits for the last final. Errors print the "
            "server's gRPC status and message and exit with code 1."
        ),
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="audio file to send (or use --mic)")
    p.add_argument("--mic", action="store_true", help="capture from the microphone instead of a file")
    p.add_argument(
        "--server",
        default="localhost:50051",
        metavar="HOST:PORT",
        help="server address (default: %(default)s)",
    )
    p.add_argument(
        "--model",
        choices=MODES,
        default=Mode.STREAM,
        help="stream (default): uni-LSTM partials and finals; two-pass: BiLSTM re-decodes each "
        "final; offline: BiLSTM finals only",
    )
    speed = p.add_mutually_exclusive_group()
    speed.add_argument(
        "--realtime",
        dest="realtime",
        action="store_true",
        default=True,
        help="send a file at audio speed, as if spoken live (the default)",
    )
    speed.add_argument(
        "--fast", dest="realtime", action="store_false", help="send a file as fast as possible"
    )
    p.add_argument(
        "--token", help="bearer token, sent as 'authorization: Bearer TOKEN' (default: $ASR_TOKEN if set)"
    )
    p.add_argument(
        "--tls-ca", metavar="PEM", help="CA certificate of the server: TLS on (default: plaintext)"
    )
    p.add_argument(
        "--chunk-ms",
        type=float,
        default=CHUNK_MS,
        help="audio per message in milliseconds (default: %(default)s)",
    )
    p.add_argument("--hotword", action="append", default=[], help="favour this word or phrase (repeatable)")
    p.add_argument("--hotword-boost", type=float, default=0.0, help="hotword weight (default: the server's)")
    p.add_argument(
        "--interim",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show the live partial line (default: only when stdout is a terminal)",
    )
    p.add_argument("--words", action="store_true", help="print word times under each final")
    p.add_argument(
        "--partial-decoder",
        choices=["greedy", "beam"],
        default="greedy",
        help="how partials are decoded (default: %(default)s)",
    )
    p.add_argument(
        "--trailing-silence-ms",
        type=int,
        default=0,
        help="silence that ends an utterance (default: the server's)",
    )
    p.add_argument(
        "--max-utterance-ms",
        type=int,
        default=0,
        help="longest utterance before a cut (default: the server's)",
    )
    p.add_argument("--single-utterance", action="store_true", help="end the stream after the first final")
    p.add_argument(
        "--profile",
        default=None,
        metavar="NAME",
        help="recognise with speaker profile NAME's adapted models (the server's --profiles-dir)",
    )
    p.add_argument(
        "--mic-rate", type=int, default=16000, help="microphone sample rate in Hz (default: %(default)s)"
    )
    p.add_argument("--mic-device", help="input device name or index (default: the system's default input)")
    p.add_argument(
        "--seconds", type=float, help="stop the microphone after this many seconds (default: Ctrl-C)"
    )
    p.set_defaults(func=run_stream)
