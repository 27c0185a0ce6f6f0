#!/usr/bin/env python3
"""Load benchmark of the gRPC server: N concurrent real-time streams against one server process.

    .venv/bin/python scripts/bench_load.py --streams 50 --seconds 60 --mode stream

The server runs in a child process (this script again, with the shipped models, on
127.0.0.1 and a free port); this process is the client. It keeps ``--streams`` streams
open at once: each slot streams one utterance paced in real time, half-closes, waits
for the final and starts the next one, until ``--seconds`` have passed (the slots'
first streams are spread over ``--ramp`` seconds). The audio is the bundled
held-out-voice samples (tests/data/samples) unless ``--audio`` names files; each clip
is cut 100 ms after its last 10 ms frame within 50 dB of its loudest, so that the end
of the audio is the end of speech.

Measured:

* partial latency: for each partial result, the time from sending the newest chunk
  it covers to receiving it. A partial covers a chunk when its end time is at least
  the chunk's end audio time minus 50 ms (COVER_SLACK_S: the features and 3-frame stacking
  hold back up to ~45 ms of every chunk until the next one arrives). Send times are
  taken by this script's own pacer as each chunk is handed to gRPC.
* final latency: end of audio sent (the last chunk) to the final received.
* server CPU (% of one core, from /proc/PID/stat over the run, decode workers included)
  and RSS (start, peak, end); client CPU; error status codes; how far the client's pacing
  fell behind.
* server CPU seconds per second of real-time stream: the server's CPU time over the run
  divided by the audio seconds all streams sent. Unlike a stream count, this carries
  over between machines (streams that fit ~ cores x headroom / this figure).

With ``--profiles-dir DIR --profiles NAME ...`` the streams take turns: each profile in
order, then the base models, round and round (so with 10 profiles one stream in 11 is a
base-model stream); the server loads the profiles as streams ask for them and keeps them all.

Writes reports/load_bench.json and reports/load_bench.md (``--out`` changes the prefix);
the exit code is 1 if any stream failed.
Other busy processes on the machine make the numbers meaningless: the report records
the load average at the start.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from asr.client import RecognizerClient, RecognizerError, StreamOptions
from bench_ws import run_load_ws
from benchlib import (
    COVER_SLACK_S,
    RETRY_AFTER_S,
    ROOT,
    SAMPLES,
    ProcessMonitor,
    ServerProcess,
    StreamRecord,
    add_server_flags,
    paced_slots,
    pcm_chunks,
    quantiles,
    server_settings,
    server_stats,
    stop_server,
)
from benchlib import start_server as start_child

from asr.audio import SAMPLE_RATE, load_audio
from asr.constants import MODES, Mode
from asr.manifest import read_manifest


# ------------------------------------------------------------------- server side
def serve_child(threads: int, max_streams: int, extra: dict[str, Any]) -> int:
    """The child: serve the shipped models on 127.0.0.1:0; print ``PORT n`` once listening."""
    from asr.server.app import ServerConfig, build_server, run_server

    config = ServerConfig(
        host="127.0.0.1", port=0, threads=threads, max_streams=max_streams, grace_s=2.0, **extra
    )

    async def main() -> None:
        handle = build_server(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_server(handle, config.grace_s, stop, lambda: print(f"PORT {handle.port}", flush=True))

    asyncio.run(main())
    return 0


def start_server(
    threads: int, max_streams: int, extra: dict[str, Any], timeout: float = 300.0
) -> ServerProcess:
    """Start the child server (``extra``: more ServerConfig fields) and wait for its port."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--server-threads",
        str(threads),
        "--max-streams",
        str(max_streams),
        "--server-config",
        json.dumps(extra),
    ]
    return start_child(cmd, r"^PORT (\d+)", timeout)


# ------------------------------------------------------------------- client side
class PacedSource:
    """PCM16 chunks handed out at audio speed; records when each one was handed to gRPC."""

    live = True  # already paced: the client must not pace it again
    sample_rate = SAMPLE_RATE

    def __init__(self, audio: np.ndarray, chunk_ms: float) -> None:
        self.chunks, self.ends = pcm_chunks(audio, chunk_ms)  # and the audio end of each chunk
        self.sent: list[float] = []  # monotonic send time of each chunk
        self.lag: list[float] = []  # send time - schedule (> 0: the client fell behind)

    def __iter__(self) -> Iterator[bytes]:
        start = time.monotonic()
        for chunk, end in zip(self.chunks, self.ends, strict=True):
            due = start + end  # a chunk leaves when its audio would have ended live
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            self.sent.append(now)
            self.lag.append(now - due)
            yield chunk


def run_stream(
    client: RecognizerClient, audio: np.ndarray, mode: str, chunk_ms: float, profile: str = ""
) -> StreamRecord:
    """One paced stream of one utterance; latencies from the client's own clock."""
    source = PacedSource(audio, chunk_ms)
    record = StreamRecord(audio_seconds=len(audio) / SAMPLE_RATE)
    arrivals: list[tuple[float, bool, float]] = []  # (arrival, is_final, result end)
    options = StreamOptions(model=mode, interim_results=mode != "offline", profile=profile)
    try:
        for event in client.stream(source, options, timeout=record.audio_seconds + 60):
            if event.has_result:
                arrivals.append((time.monotonic(), event.is_final, event.end))
    except RecognizerError as e:
        record.status = e.code.name
    except Exception as e:  # noqa: BLE001 - counted, not fatal: the benchmark goes on
        record.status = f"client:{type(e).__name__}"
    return score_arrivals(record, arrivals, source.sent, source.ends, source.lag)


def score_arrivals(
    record: StreamRecord,
    arrivals: list[tuple[float, bool, float]],
    sent: list[float],
    ends: np.ndarray,
    lags: list[float],
) -> StreamRecord:
    """Fill ``record``'s latencies from the results' (arrival, is_final, result end) times, the
    chunks' send times, their audio end times (all chunks, sent or not) and the pacer's lags."""
    sent_a = np.array(sent)
    all_sent = len(sent_a) == len(ends)
    ends = ends[: len(sent_a)]
    for arrival, is_final, end in arrivals:
        if is_final:
            record.finals += 1
            if all_sent and arrival >= sent_a[-1]:
                record.final_ms = 1000 * (arrival - sent_a[-1])  # the last one wins
            continue
        # The newest chunk this partial covers (and that had been sent when it arrived).
        covered = np.nonzero((ends <= end + COVER_SLACK_S) & (sent_a <= arrival))[0]
        if len(covered):
            record.partial_ms.append(1000 * (arrival - sent_a[covered[-1]]))
    record.lag_ms = [1000 * x for x in lags]
    return record


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for the child's WebSocket listener)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def trim_trailing_silence(audio: np.ndarray, keep_s: float = 0.1, floor_db: float = -50.0) -> np.ndarray:
    """Cut the audio ``keep_s`` after its last 10 ms frame within ``floor_db`` of the loudest."""
    hop = SAMPLE_RATE // 100
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)  # (T, 160)
    rms = np.sqrt(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.nonzero(rms >= rms.max() * 10 ** (floor_db / 20))[0]
    if len(loud) == 0:
        return audio
    return audio[: min(len(audio), (int(loud[-1]) + 1) * hop + round(keep_s * SAMPLE_RATE))]


def load_clips(paths: list[str]) -> list[np.ndarray]:
    """The utterances, 16 kHz, ending 100 ms after their speech (so end of audio is end of speech)."""
    if not paths:
        paths = [str(SAMPLES.parent / e["audio_filepath"]) for e in read_manifest(SAMPLES)]
    return [trim_trailing_silence(load_audio(p, SAMPLE_RATE)) for p in paths]


def run_load(
    port: int,
    clips: list[np.ndarray],
    streams: int,
    seconds: float,
    ramp: float,
    mode: str,
    chunk_ms: float,
    profiles: Iterator[str] | None = None,
) -> tuple[list[StreamRecord], float, float, dict[str, float]]:
    """Keep ``streams`` slots busy for ``seconds``, each stream with the next of ``profiles``;
    returns (records, start, end, server stats)."""
    profiles = profiles or itertools.repeat("")
    records: list[StreamRecord] = []
    lock = threading.Lock()
    with RecognizerClient(f"127.0.0.1:{port}") as client:
        start = time.monotonic()
        deadline = start + seconds

        def slot(i: int) -> None:
            time.sleep(ramp * i / streams)
            k = i
            while time.monotonic() < deadline:
                with lock:
                    profile = next(profiles)
                record = run_stream(client, clips[k % len(clips)], mode, chunk_ms, profile)
                k += 1
                with lock:
                    records.append(record)
                if record.status != "OK":
                    time.sleep(RETRY_AFTER_S)  # a refused client backs off instead of spinning

        threads = [threading.Thread(target=slot, args=(i,), daemon=True) for i in range(streams)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        end = time.monotonic()
        server = server_stats(client)
    return records, start, end, server


async def run_stream_aio(
    stub: Any, audio: np.ndarray, mode: str, chunk_ms: float, profile: str = ""
) -> StreamRecord:
    """:func:`run_stream` on grpc.aio: one event loop paces and reads every stream."""
    import grpc
    from asr.client.aio import wait_accepted

    from asr.v1 import asr_pb2

    chunks, ends = pcm_chunks(audio, chunk_ms)
    record = StreamRecord(audio_seconds=len(audio) / SAMPLE_RATE)
    sent: list[float] = []
    lags: list[float] = []
    config = asr_pb2.StreamingRecognitionConfig(
        config=asr_pb2.RecognitionConfig(
            encoding=asr_pb2.LINEAR16, sample_rate_hertz=SAMPLE_RATE, model=mode, profile=profile
        ),
        interim_results=mode != "offline",
    )

    calls: list[Any] = []

    async def requests():  # type: ignore[no-untyped-def]
        yield asr_pb2.StreamingRecognizeRequest(streaming_config=config)
        if not await wait_accepted(calls[0]):
            return  # refused: the call's status says why
        start = time.monotonic()
        for chunk, end in zip(chunks, ends, strict=True):
            due = start + end
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            sent.append(now)
            lags.append(now - due)
            yield asr_pb2.StreamingRecognizeRequest(audio_content=chunk)

    arrivals: list[tuple[float, bool, float]] = []
    try:
        call = stub.StreamingRecognize(requests(), timeout=record.audio_seconds + 60)
        calls.append(call)
        async for response in call:
            now = time.monotonic()
            for r in response.results:
                arrivals.append((now, r.is_final, r.result_end_time))
    except grpc.aio.AioRpcError as e:
        record.status = e.code().name
        record.detail = (e.details() or "")[:300]
    except Exception as e:  # noqa: BLE001 - counted, not fatal
        record.status = f"client:{type(e).__name__}"
        record.detail = str(e)[:300]
    return score_arrivals(record, arrivals, sent, ends, lags)


def run_load_aio(
    port: int,
    clips: list[np.ndarray],
    streams: int,
    seconds: float,
    ramp: float,
    mode: str,
    chunk_ms: float,
    profiles: Iterator[str] | None = None,
) -> tuple[list[StreamRecord], float, float, dict[str, float]]:
    """:func:`run_load` with an asyncio client (``--client aio``)."""
    names = profiles or itertools.repeat("")
    from grpc import aio

    from asr.v1 import asr_pb2_grpc

    records: list[StreamRecord] = []

    async def main() -> tuple[float, float]:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = asr_pb2_grpc.RecognizerStub(channel)
            return await paced_slots(
                lambda clip: run_stream_aio(stub, clip, mode, chunk_ms, next(names)),
                clips,
                streams,
                seconds,
                ramp,
                records,
            )

    start, end = asyncio.run(main())
    with RecognizerClient(f"127.0.0.1:{port}") as client:
        server = server_stats(client)
    return records, start, end, server


def _per_audio_second(cpu_percent: float, wall: float, records: list[Any]) -> float | None:
    """Server CPU seconds over the run per second of audio that streams sent and got their results
    for (streams that ended OK; None if there were none)."""
    audio = sum(r.audio_seconds for r in records if r.status == "OK")
    return round(cpu_percent / 100 * wall / audio, 5) if audio > 0 and cpu_percent == cpu_percent else None


def write_report(report: dict[str, Any], out: Path) -> str:
    """Write ``out``.json and ``out``.md; returns the markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    p, f, cpu, rss = report["partial_ms"], report["final_ms"], report["server_cpu"], report["server_rss_mb"]
    lag = report["client_send_lag_ms"]
    lines = [
        "# Streaming load benchmark",
        "",
        f"`scripts/bench_load.py`: {report['streams']} concurrent real-time streams "
        f"over {report.get('transport', 'grpc')}, mode "
        f"`{report['mode']}`, {report['chunk_ms']} ms chunks, {report['seconds']} s; server in its own "
        f"process; {report['machine']}, load average {report['load_average_at_start']} at the start. "
        f"Server settings: {report['server_config'] or 'defaults'}."
        + (
            f" Streams take turns with the speaker profiles {', '.join(report['profiles'])} and the base "
            "models."
            if report.get("profiles")
            else ""
        ),
        "",
        "| measure | value |",
        "|---|---|",
        f"| streams completed / failed | {report['streams_ok']} / {report['streams_failed']} |",
        f"| status codes | {report['status_codes']} |",
        f"| audio streamed | {report['audio_seconds']} s |",
        f"| partial latency p50 / p95 / max | {p['p50']} / {p['p95']} / {p['max']} ms ({p['n']} partials) |",
        f"| final latency p50 / p95 / max | {f['p50']} / {f['p95']} / {f['max']} ms ({f['n']} finals; "
        f"{report['streams_without_final']} streams had theirs before the end of audio) |",
        f"| server CPU (with its decode workers), whole run / steady | {cpu['mean_percent']} / "
        f"{cpu['steady_percent']} % of one core |",
        f"| server CPU seconds per second of real-time stream | {cpu.get('seconds_per_stream_second')} |",
        "| steady server CPU by part: event-loop thread / other threads / decode workers | "
        + " / ".join(str(v) for v in cpu.get("steady_parts_percent", {}).values())
        + " % |",
        f"| server RSS start / peak / end | {rss['start']} / {rss['peak']} / {rss['end']} MB "
        f"(lifetime peak {rss['lifetime_peak']}) |",
        f"| client CPU ({report.get('client', 'threads')}) | {report['client_cpu_percent']} % of one core |",
        f"| client send lag p95 / max | {lag['p95']} / {lag['max']} ms |",
        "",
        "Partial latency: for each partial, from sending the newest chunk it covers "
        f"(result end >= chunk end - {COVER_SLACK_S * 1000:g} ms) to receiving it. Final latency: "
        "from sending the last chunk (end of audio) to receiving the final. Steady CPU excludes the ramp.",
    ]
    if report.get("transport") == "ws":
        lines.append(
            "Over the Vosk WebSocket protocol each chunk gets one reply, in order: a partial's latency "
            "runs from sending its chunk to receiving that chunk's reply; the final is the reply to eof."
        )
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=50, help="concurrent streams (default 50)")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="start streams for this long (default 60)"
    )
    parser.add_argument(
        "--ramp", type=float, default=2.0, help="seconds over which the slots start (default 2)"
    )
    parser.add_argument(
        "--mode", choices=MODES, default=Mode.STREAM, help="model of every stream (default stream)"
    )
    parser.add_argument("--chunk-ms", type=float, default=100.0, help="audio per message (default 100)")
    parser.add_argument("--audio", nargs="+", default=[], metavar="FILE", help="utterances to stream "
                        "(default: the bundled samples in tests/data/samples)")  # fmt: skip
    parser.add_argument(
        "--server-threads", type=int, default=0, help="server torch threads (0: torch default)"
    )
    parser.add_argument("--max-streams", type=int, default=256, help="the server's stream cap (default 256)")
    add_server_flags(parser)
    parser.add_argument(
        "--client",
        choices=("aio", "threads"),
        default="aio",
        help="load generator: one asyncio loop for all streams (aio, light), or the library's "
        "RecognizerClient with a thread per stream (threads, what an app would use)",
    )
    parser.add_argument(
        "--transport",
        choices=("grpc", "ws"),
        default="grpc",
        help="streams over gRPC, or over the Vosk WebSocket protocol of `asr serve --ws-port` (ws)",
    )
    parser.add_argument(
        "--profiles",
        nargs="+",
        default=[],
        metavar="NAME",
        help="speaker profiles (in --profiles-dir) the streams take turns with, the base models last",
    )
    parser.add_argument("--profiles-dir", help="server: the profiles folder (asr serve --profiles-dir)")
    parser.add_argument("--out", default="reports/load_bench", help="report path prefix")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--server-config", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return serve_child(args.server_threads, args.max_streams, json.loads(args.server_config))
    server_extra = server_settings(args)
    if args.profiles:
        if args.transport == "ws" or not args.profiles_dir:
            parser.error("--profiles needs --profiles-dir and the gRPC transport")
        server_extra |= {"profiles_dir": args.profiles_dir, "max_profiles": len(args.profiles)}
    if not (1 <= args.streams <= 1000 and 0 < args.seconds <= 3600 and args.chunk_ms > 0 and args.ramp >= 0):
        parser.error("expected 1 <= --streams <= 1000, 0 < --seconds <= 3600, --chunk-ms > 0, --ramp >= 0")

    clips = load_clips(args.audio)
    load_average = round(os.getloadavg()[0], 2)
    print(f"starting the server (load average {load_average}) ...", flush=True)
    ws_port = free_port() if args.transport == "ws" else None
    child_extra = {**server_extra, "ws_port": ws_port} if ws_port else server_extra
    server = start_server(args.server_threads, args.max_streams, child_extra)
    port = server.port
    monitor = ProcessMonitor(server.process.pid)
    try:
        monitor.start()
        rss_start = monitor.samples[0][2]
        print(
            f"server pid {server.process.pid} on port {port}; {args.streams} streams for {args.seconds:g} s",
            flush=True,
        )
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        load = (port, clips, args.streams, args.seconds, args.ramp, args.mode, args.chunk_ms)
        if ws_port:
            records, start, end, server_stats = run_load_ws(*load, ws_port=ws_port)
        else:
            runner = run_load_aio if args.client == "aio" else run_load
            profiles = itertools.cycle([*args.profiles, ""])
            records, start, end, server_stats = runner(*load, profiles=profiles)
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        monitor.stop()
        lifetime_peak = monitor.peak_rss()
    finally:
        stop_server(server)

    wall = end - start
    client_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    codes = Counter(r.status for r in records)
    steady_end = start + args.seconds
    mb = 1 / 2**20
    report: dict[str, Any] = {
        "machine": f"{os.cpu_count()} CPU cores",
        "load_average_at_start": load_average,
        "streams": args.streams,
        "seconds": args.seconds,
        "mode": args.mode,
        "chunk_ms": args.chunk_ms,
        "server_threads": args.server_threads,
        "client": args.client,
        "transport": args.transport,
        "profiles": args.profiles,
        "server_config": server_extra,
        "wall_seconds": round(wall, 1),
        "streams_ok": codes.get("OK", 0),
        "streams_failed": sum(n for c, n in codes.items() if c != "OK"),
        "status_codes": dict(codes),
        # The first message seen for each failing code, to tell a limit from a bug.
        "status_details": {c: next(r.detail for r in records if r.status == c) for c in codes if c != "OK"},
        "audio_seconds": round(sum(r.audio_seconds for r in records), 1),
        "partial_ms": quantiles([x for r in records for x in r.partial_ms]),
        "final_ms": quantiles([r.final_ms for r in records if r.final_ms is not None]),
        "streams_without_final": sum(1 for r in records if r.status == "OK" and r.final_ms is None),
        "server_cpu": {
            "mean_percent": round(monitor.cpu_percent(start, end), 1),
            "steady_percent": round(monitor.cpu_percent(start + args.ramp, steady_end), 1),
            "steady_parts_percent": monitor.parts_percent(start + args.ramp, steady_end),
            # Server CPU seconds (decode workers included) per second of audio streamed in real
            # time: the figure that carries over to a machine with other cores or other counts.
            "seconds_per_stream_second": _per_audio_second(monitor.cpu_percent(start, end), wall, records),
        },
        "server_rss_mb": {
            "start": round(rss_start * mb, 1),
            "peak": round(max(s[2] for s in monitor.samples) * mb, 1),
            "end": round(monitor.samples[-1][2] * mb, 1),
            "lifetime_peak": round(lifetime_peak * mb, 1),
        },
        "client_cpu_percent": round(100 * client_cpu / wall, 1),
        "client_send_lag_ms": quantiles([x for r in records for x in r.lag_ms]),
        "server_stats": server_stats,
    }
    out = ROOT / args.out
    text = write_report(report, out)
    print(text, end="")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0 if report["streams_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
