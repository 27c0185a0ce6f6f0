"""The README's main job: a server, a real-time gRPC stream, partials and finals, clean stop.

`asr demo` (what `make demo` runs):

1. starts the gRPC server on the default port with the shipped models;
2. streams the bundled samples (held-out test voices) through the gRPC client, paced
   in real time;
3. shows the live partial rewriting one line and each final on its own line, next to
   the reference transcript;
4. shuts the server down (draining) and exits.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TextIO

from asr.constants import Mode
from asr.manifest import read_manifest

log = logging.getLogger(__name__)

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "data" / "samples" / "manifest.jsonl"


def run_demo(
    port: int = 50051,
    manifest: str | Path = SAMPLES,
    model: str = Mode.TWO_PASS,
    realtime: bool = True,
    out: TextIO = sys.stdout,
) -> int:
    """Run the demo; returns an exit code (0 when every stream ended cleanly)."""
    from asr.client.cli import LivePrinter
    from asr.client.client import RecognizerClient, RecognizerError, StreamOptions
    from asr.client.sources import FileSource
    from asr.server.app import ServerConfig, start_in_thread

    entries = read_manifest(manifest)
    print(f"starting the server on 127.0.0.1:{port} with the shipped models ...", file=out)
    started = time.perf_counter()
    server = start_in_thread(ServerConfig(host="127.0.0.1", port=port))
    print(f"server ready in {time.perf_counter() - started:.1f} s (port {server.port})", file=out)
    failures = 0
    try:
        with RecognizerClient(f"127.0.0.1:{server.port}") as client:
            options = StreamOptions(model=model, interim_results=True)
            for entry in entries:
                name = Path(entry["audio_filepath"]).name
                voice = entry.get("voice", "?")
                print(f"\n== {name} ({entry['duration']:.1f} s, voice {voice}), model {model}", file=out)
                print(f"   reference: {entry['text']}", file=out)
                printer = LivePrinter(out, partials=True, words=False)
                tty = out.isatty()
                try:
                    for event in client.stream(
                        FileSource(entry["audio_filepath"]), options, realtime=realtime
                    ):
                        if tty or event.is_final:
                            printer.show(event)
                        elif event.text:  # not a terminal (a log): one line per partial
                            print(f"   partial @{event.sent_audio_seconds:5.2f}s: {event.text}", file=out)
                except RecognizerError as e:
                    failures += 1
                    print(f"error: {e}", file=out)
                printer.close()
            stats = client.stats()
            print(
                f"\nserver stats: {stats.total_streams} streams, {stats.audio_seconds:.1f} s of audio, "
                f"partial latency p50 {stats.partial_latency_p50_ms:.0f} ms / p95 {stats.partial_latency_p95_ms:.0f} ms",
                file=out,
            )
    finally:
        server.stop()
        print("server stopped", file=out)
    return 1 if failures else 0
