#!/usr/bin/env python3
"""Soak test: many real-time streams for a long time against one server process.

    .venv/bin/python scripts/soak.py --streams 200 --seconds 600

The server (``asr serve`` on 127.0.0.1, a free port, the shipped models unless told
otherwise) runs in a child process; this process is the client, one asyncio loop with
``grpc.aio`` and one channel per ``--streams-per-channel`` streams. Each of the
``--streams`` slots streams a random slice (``--clip-seconds``) of a loop made from
the bundled samples, paced in real time, half-closes, waits for the final, and is at
once replaced by a new stream: clients join and leave all the time. The slots start
spread over ``--warmup-seconds``; the measured soak is the ``--seconds`` after that.
When the time is up every stream half-closes and gets ``--drain-seconds`` to end.

Measured:

* server RSS (VmRSS of the child, every ``--sample-seconds``): at the end of warm-up,
  at the end, peak, and the growth from start to end in percent;
* errors: every stream that ends with a status other than OK, by code and message;
* partial latency: for each partial, the time from sending the newest chunk it covers
  to receiving it (it covers a chunk when its end time is at least the chunk's end
  minus 50 ms, the audio the features hold back), p50/p95/max per time window;
* how late the client's own pacing ran (if that grows, the numbers measure the client).

Writes OUT/soak.json and OUT/soak.md (``--out``, default reports/) and prints a
summary; the exit code is 1 if any stream failed or the server died. Bounded: it never
runs longer than warm-up + seconds + drain + the server's start-up, and binds loopback only.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import bisect
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchlib
import grpc
import numpy as np
from asr.client.aio import wait_accepted
from benchlib import COVER_SLACK_S, ROOT, SAMPLES, ServerProcess, quantiles, stop_server
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from asr.audio import SAMPLE_RATE, float_to_pcm16, load_audio
from asr.constants import MODES, Mode
from asr.manifest import read_manifest
from asr.v1 import asr_pb2, asr_pb2_grpc

GAP_S = 0.6  # silence between samples in the audio loop (so utterances end)
PERCENTILES = (50, 95, 99)  # of the latencies


# ---------------------------------------------------------------------- server
def start_server(args: argparse.Namespace, log_path: Path) -> ServerProcess:
    """``asr serve`` in a child process on 127.0.0.1 and a free port; waits until it listens."""
    cmd = [sys.executable, "-m", "asr.cli", "serve", "--host", "127.0.0.1", "--port", "0",
           "--max-streams", str(args.streams + 16), "--grace", "10",
           "--streaming-model", args.streaming_model]  # fmt: skip
    cmd += ["--no-offline"] if args.no_offline else ["--offline-model", args.offline_model]
    cmd += ["--no-lm"] if args.no_lm else ["--lm", args.lm]
    if args.server_threads:
        cmd += ["--threads", str(args.server_threads)]
    cmd += args.serve_args.split()
    try:
        return benchlib.start_server(
            cmd, r"listening on port (\d+)", args.startup_timeout, log_path, stream="stderr"
        )
    except RuntimeError as e:
        raise SystemExit(str(e)) from None


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MB (VmRSS from /proc), or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------- audio
def audio_loop() -> np.ndarray:
    """The bundled samples back to back with silence between them, as one 16 kHz loop."""
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    parts = []
    for entry in read_manifest(SAMPLES):
        parts += [load_audio(entry["audio_filepath"]), gap]
    return np.concatenate(parts)


def clip(loop: np.ndarray, seconds: float, rng: random.Random) -> bytes:
    """``seconds`` of the loop from a random start (wrapping round) as PCM16."""
    n = int(seconds * SAMPLE_RATE)
    start = rng.randrange(len(loop))
    reps = (start + n) // len(loop) + 1
    return float_to_pcm16(np.tile(loop, reps)[start : start + n])


# ---------------------------------------------------------------- measurements
@dataclass
class Soak:
    """Everything the stream tasks record; times are seconds since the soak's t0."""

    t0: float
    warmup_s: float
    started: int = 0
    ok: int = 0
    finals: int = 0
    audio_s: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: dict[str, str] = field(default_factory=dict)
    error_times: list[float] = field(default_factory=list)
    partial_t: array.array[float] = field(default_factory=lambda: array.array("d"))  # arrival times
    partial_ms: array.array[float] = field(default_factory=lambda: array.array("d"))  # their latencies
    send_lag_ms: array.array[float] = field(default_factory=lambda: array.array("d"))

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def error(self, code: str, message: str) -> None:
        self.errors[code] += 1
        self.error_examples.setdefault(code, message[:300])
        self.error_times.append(self.now())


def config_request(mode: str) -> asr_pb2.StreamingRecognizeRequest:
    config = asr_pb2.RecognitionConfig(encoding=asr_pb2.LINEAR16, sample_rate_hertz=SAMPLE_RATE, model=mode)
    return asr_pb2.StreamingRecognizeRequest(
        streaming_config=asr_pb2.StreamingRecognitionConfig(config=config, interim_results=True)
    )


async def one_stream(
    stub: asr_pb2_grpc.RecognizerStub, soak: Soak, pcm: bytes, args: argparse.Namespace, stop_at: float
) -> None:
    """Stream ``pcm`` in real time, half-close, read to the end; record latencies and the status."""
    chunk = int(SAMPLE_RATE * args.chunk_ms / 1000) * 2
    sent_at: list[float] = []  # perf_counter when chunk k was handed to gRPC
    covered: list[float] = []  # audio seconds sent up to and including chunk k
    call = stub.StreamingRecognize()
    soak.started += 1

    async def read() -> None:
        async for response in call:
            arrived = time.perf_counter()
            for result in response.results:
                if result.is_final:
                    soak.finals += 1
                elif result.alternatives:
                    k = bisect.bisect_right(covered, result.result_end_time + COVER_SLACK_S) - 1
                    if k >= 0:
                        soak.partial_t.append(arrived - soak.t0)
                        soak.partial_ms.append(1000 * (arrived - sent_at[k]))

    reader = asyncio.create_task(read())
    reader.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved, even if abandoned
    try:
        await call.write(config_request(args.mode))
        accepted = await wait_accepted(call)  # else the server refused it: status below
        begin = time.perf_counter()
        for k, i in enumerate(range(0, len(pcm), chunk) if accepted else ()):
            due = begin + k * args.chunk_ms / 1000
            if due >= stop_at or reader.done():
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            now = time.perf_counter()
            soak.send_lag_ms.append(1000 * (now - due))
            sent_at.append(now)
            covered.append((i + len(pcm[i : i + chunk])) / 2 / SAMPLE_RATE)
            await call.write(asr_pb2.StreamingRecognizeRequest(audio_content=pcm[i : i + chunk]))
        await call.done_writing()
    except (aio.AioRpcError, asyncio.InvalidStateError):
        pass  # the call ended early; its status is read below
    try:
        await asyncio.wait_for(asyncio.shield(reader), timeout=args.drain_seconds)
    except TimeoutError:
        call.cancel()
        soak.error("CLIENT_TIMEOUT", f"no end within {args.drain_seconds:g} s of the last audio")
        return
    except aio.AioRpcError:
        pass
    code = await call.code()
    if code == grpc.StatusCode.OK:
        soak.ok += 1
        soak.audio_s += covered[-1] if covered else 0.0
    else:
        soak.error(code.name, await call.details() or "")


async def slot(
    index: int, stubs: list[asr_pb2_grpc.RecognizerStub], soak: Soak, loop_audio: np.ndarray,
    args: argparse.Namespace, stop_at: float,
) -> None:  # fmt: skip
    """One client slot: new streams back to back until ``stop_at``."""
    rng = random.Random(args.seed * 100_003 + index)
    stub = stubs[index // args.streams_per_channel]
    await asyncio.sleep(soak.warmup_s * index / args.streams)  # join spread over the warm-up
    low, high = args.clip_seconds
    while time.perf_counter() < stop_at:
        pcm = clip(loop_audio, rng.uniform(low, high), rng)
        try:
            await one_stream(stub, soak, pcm, args, stop_at)
        except Exception as e:  # noqa: BLE001 - any client-side failure is counted, and the slot goes on
            soak.error("CLIENT_" + type(e).__name__, str(e))
            await asyncio.sleep(0.1)


async def sampler(
    pid: int, stub: asr_pb2_grpc.RecognizerStub, soak: Soak, every: float, stop_at: float,
    samples: list[dict[str, Any]],
) -> None:  # fmt: skip
    """Server RSS and live counters every ``every`` seconds."""
    while True:
        stats: dict[str, Any] = {}
        try:
            r = await stub.GetStats(asr_pb2.GetStatsRequest(), timeout=5)
            stats = {"active_streams": r.active_streams, "total_streams": r.total_streams, "errors": r.errors}
        except aio.AioRpcError as e:
            stats = {"stats_error": e.code().name}
        samples.append({"t": round(soak.now(), 2), "rss_mb": rss_mb(pid), **stats})
        if time.perf_counter() >= stop_at:
            return
        await asyncio.sleep(min(every, max(0.0, stop_at - time.perf_counter())))


async def run(args: argparse.Namespace, server: ServerProcess) -> dict[str, Any]:
    loop_audio = audio_loop()
    n_channels = -(-args.streams // args.streams_per_channel)
    channels = [aio.insecure_channel(f"127.0.0.1:{server.port}") for _ in range(n_channels)]
    stubs = [asr_pb2_grpc.RecognizerStub(c) for c in channels]
    soak = Soak(t0=time.perf_counter(), warmup_s=args.warmup_seconds)
    stop_at = soak.t0 + args.warmup_seconds + args.seconds
    samples: list[dict[str, Any]] = []
    monitor = asyncio.create_task(
        sampler(server.process.pid, stubs[0], soak, args.sample_seconds, stop_at, samples)
    )
    slots = [
        asyncio.create_task(slot(i, stubs, soak, loop_audio, args, stop_at)) for i in range(args.streams)
    ]
    await asyncio.gather(*slots)
    await monitor
    await asyncio.sleep(1.0)
    idle_rss = rss_mb(server.process.pid)  # every stream ended: what is left is kept memory
    health = health_pb2_grpc.HealthStub(channels[0])
    try:
        status = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        serving = health_pb2.HealthCheckResponse.ServingStatus.Name(status.status)
    except aio.AioRpcError as e:
        serving = e.code().name
    final_stats = samples[-1] if samples else {}
    for c in channels:
        await c.close()
    report = build_report(args, soak, samples, serving, final_stats, n_channels)
    report["rss_mb"]["idle_after"] = idle_rss
    return report


# --------------------------------------------------------------------- report
def build_report(
    args: argparse.Namespace, soak: Soak, samples: list[dict[str, Any]], serving: str,
    final_stats: dict[str, Any], n_channels: int,
) -> dict[str, Any]:  # fmt: skip
    warm = args.warmup_seconds
    end = warm + args.seconds
    window = args.window_seconds or max(5.0, min(60.0, args.seconds / 10))
    t = np.frombuffer(soak.partial_t, dtype=np.float64)
    ms = np.frombuffer(soak.partial_ms, dtype=np.float64)
    windows = []
    start = warm
    while start < end - 1e-9:
        stop = min(start + window, end)
        values = ms[(t >= start) & (t < stop)]
        errors = sum(start <= e < stop for e in soak.error_times)
        windows.append(
            {
                "start_s": round(start - warm, 1),
                "end_s": round(stop - warm, 1),
                "errors": errors,
                **quantiles(values, PERCENTILES),
            }
        )
        start = stop
    rss = [(s["t"], s["rss_mb"]) for s in samples if s.get("rss_mb") is not None]
    after_warmup = [mb for t, mb in rss if t >= warm]
    rss_start = after_warmup[0] if after_warmup else None
    rss_end = rss[-1][1] if rss else None
    growth = round(100 * (rss_end - rss_start) / rss_start, 2) if rss_start and rss_end else None
    errors = sum(soak.errors.values())
    return {
        "config": {
            "streams": args.streams, "seconds": args.seconds, "warmup_seconds": warm, "mode": args.mode,
            "clip_seconds": list(args.clip_seconds), "chunk_ms": args.chunk_ms, "channels": n_channels,
            "window_seconds": window, "seed": args.seed, "serve_args": args.serve_args,
            "models": {"streaming": args.streaming_model, "offline": None if args.no_offline else args.offline_model,
                       "lm": None if args.no_lm else args.lm},
            "load_average_at_start": list(os.getloadavg()), "cpus": os.cpu_count(),
        },
        "server": {"startup_seconds": None, "health_at_end": serving, "exit_code": None, "shutdown_seconds": None,
                   "stats_at_end": {k: v for k, v in final_stats.items() if k not in ("t", "rss_mb")}},
        "rss_mb": {
            "start": rss_start, "end": rss_end, "peak": max((mb for _, mb in rss), default=None),
            "growth_pct": growth, "samples": rss,
        },
        "streams": {
            "started": soak.started, "ok": soak.ok, "errors": errors, "finals": soak.finals,
            "audio_hours": round(soak.audio_s / 3600, 3),
            "error_codes": dict(soak.errors), "error_examples": soak.error_examples,
        },
        "partial_latency_ms": {
            "warmup": quantiles(ms[t < warm], PERCENTILES),
            "soak": quantiles(ms[t >= warm], PERCENTILES),
            "windows": windows,
        },
        "client_send_lag_ms": quantiles(np.frombuffer(soak.send_lag_ms, dtype=np.float64), PERCENTILES),
    }  # fmt: skip


def _fmt(value: object) -> str:
    return "-" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)


def write_markdown(report: dict[str, Any], path: Path) -> None:
    c, r, s, lat = report["config"], report["rss_mb"], report["streams"], report["partial_latency_ms"]
    lines = [
        "# Soak test",
        "",
        f"`scripts/soak.py --streams {c['streams']} --seconds {c['seconds']:g} --warmup-seconds {c['warmup_seconds']:g}"
        + (f" --serve-args \"{c['serve_args']}\"`" if c.get("serve_args") else "`")
        + f" (mode {c['mode']}, clips {c['clip_seconds'][0]:g}-{c['clip_seconds'][1]:g} s, {c['channels']} channel(s),"
        f" {c['cpus']} CPUs, load average at start {c['load_average_at_start'][0]:.2f})",
        "",
        "| | |",
        "|---|---|",
        f"| verdict | {'PASS' if report['ok'] else 'FAIL'} |",
        f"| streams served (ended OK) | {s['ok']} of {s['started']} started |",
        f"| audio streamed | {s['audio_hours']:.2f} h |",
        f"| errors | {s['errors']} {json.dumps(s['error_codes']) if s['errors'] else ''} |",
        f"| server RSS after warm-up / end / peak | {_fmt(r['start'])} / {_fmt(r['end'])} / {_fmt(r['peak'])} MB |",
        f"| server RSS once every stream ended | {_fmt(r.get('idle_after'))} MB |",
        f"| RSS growth | {_fmt(r['growth_pct'])} % |",
        f"| partial latency p50 / p95 / max (soak) | {_fmt(lat['soak']['p50'])} / {_fmt(lat['soak']['p95'])} / {_fmt(lat['soak']['max'])} ms |",
        f"| client pacing lag p95 | {_fmt(report['client_send_lag_ms']['p95'])} ms |",
        f"| health at end / server exit | {report['server']['health_at_end']} / {report['server']['exit_code']} "
        f"(drained in {_fmt(report['server']['shutdown_seconds'])} s) |",
        "",
        "## Partial latency per window",
        "",
        "| window (s) | partials | p50 ms | p95 ms | max ms | errors |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for w in lat["windows"]:
        lines.append(
            f"| {w['start_s']:g}-{w['end_s']:g} | {w['n']} | {_fmt(w['p50'])} | {_fmt(w['p95'])} | {_fmt(w['max'])} | {w['errors']} |"
        )
    if s["errors"]:
        lines += ["", "## Errors", ""] + [
            f"- {code} x{n}: {s['error_examples'][code]}" for code, n in s["error_codes"].items()
        ]
    path.write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        pass

    p = argparse.ArgumentParser(
        description=__doc__,
        epilog="A quick check: scripts/soak.py --streams 4 --seconds 20 --warmup-seconds 5",
        formatter_class=Formatter,
    )
    p.add_argument("--streams", type=int, default=200, help="concurrent streams (slots) kept open")
    p.add_argument(
        "--seconds", type=float, default=600, help="length of the measured soak, after the warm-up"
    )
    p.add_argument(
        "--warmup-seconds", type=float, default=30, help="slots join spread over this; not measured"
    )
    p.add_argument("--out", default="reports", help="folder for soak.json, soak.md and soak-server.log")
    p.add_argument("--mode", choices=MODES, default=Mode.STREAM, help="model of every stream")
    p.add_argument("--clip-seconds", type=float, nargs=2, default=[5.0, 30.0], metavar=("MIN", "MAX"),
                   help="each stream sends a random slice this long (uniform) of the bundled samples")  # fmt: skip
    p.add_argument("--chunk-ms", type=float, default=100, help="audio per message, sent in real time")
    p.add_argument(
        "--window-seconds", type=float, default=0, help="latency window (0: seconds/10, within 5..60)"
    )
    p.add_argument(
        "--sample-seconds", type=float, default=5, help="how often server RSS and stats are sampled"
    )
    p.add_argument("--streams-per-channel", type=int, default=50, help="streams sharing one gRPC channel")
    p.add_argument(
        "--drain-seconds", type=float, default=30, help="longest wait for a stream's end after its audio"
    )
    p.add_argument("--startup-timeout", type=float, default=300, help="longest wait for the server to listen")
    p.add_argument("--streaming-model", default="streaming", help="server's streaming model (name or path)")
    p.add_argument("--offline-model", default="offline", help="server's offline model (name or path)")
    p.add_argument(
        "--no-offline", action="store_true", help="server without the offline model (mode stream only)"
    )
    p.add_argument("--lm", default=str(ROOT / "models" / "lm"), help="server's language model folder")
    p.add_argument("--no-lm", action="store_true", help="server without the language model")
    p.add_argument("--server-threads", type=int, default=0, help="server torch threads (0: torch default)")
    p.add_argument(
        "--serve-args",
        default="",
        help='more `asr serve` flags, e.g. "--int8 --decode-workers 1 --token-min-logp -3"',
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the clip choices")
    args = p.parse_args(argv)
    if args.streams < 1 or args.seconds <= 0 or args.warmup_seconds < 0 or args.streams_per_channel < 1:
        p.error("expected --streams >= 1, --seconds > 0, --warmup-seconds >= 0, --streams-per-channel >= 1")
    if not 0 < args.clip_seconds[0] <= args.clip_seconds[1]:
        p.error(f"expected 0 < MIN <= MAX for --clip-seconds, got {args.clip_seconds}")
    if args.no_offline and args.mode != "stream":
        p.error(f"--mode {args.mode} needs the offline model")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"starting the server ({args.streaming_model}, {args.offline_model if not args.no_offline else 'no offline'}) ..."
    )
    server = start_server(args, out / "soak-server.log")
    print(f"server pid {server.process.pid} on port {server.port}, ready in {server.started_s:.1f} s; "
          f"{args.streams} streams, {args.warmup_seconds:g} s warm-up + {args.seconds:g} s soak")  # fmt: skip
    try:
        report = asyncio.run(run(args, server))
    finally:
        code, shutdown = stop_server(server)
    report["server"].update(
        startup_seconds=round(server.started_s, 1), exit_code=code, shutdown_seconds=round(shutdown, 2)
    )
    report["ok"] = (
        report["streams"]["errors"] == 0 and code == 0 and report["server"]["health_at_end"] == "SERVING"
    )
    (out / "soak.json").write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, out / "soak.md")
    s, r, lat = report["streams"], report["rss_mb"], report["partial_latency_ms"]["soak"]
    print(
        f"{'PASS' if report['ok'] else 'FAIL'}: {s['ok']} streams served ({s['audio_hours']:.2f} h of audio), "
        f"{s['errors']} errors {dict(s['error_codes']) if s['errors'] else ''}\n"
        f"server RSS {_fmt(r['start'])} MB after warm-up -> {_fmt(r['end'])} MB at the end "
        f"({_fmt(r['growth_pct'])} %), peak {_fmt(r['peak'])} MB\n"
        f"partial latency p50 {_fmt(lat['p50'])} ms, p95 {_fmt(lat['p95'])} ms over {lat['n']} partials; "
        f"client pacing lag p95 {_fmt(report['client_send_lag_ms']['p95'])} ms\n"
        f"wrote {out / 'soak.json'} and {out / 'soak.md'}"
    )
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
