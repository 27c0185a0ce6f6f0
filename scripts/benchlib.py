"""What the load benchmarks share: the server child process, its CPU and memory from
/proc, latency quantiles, the server-setting flags, and the per-stream record and server
counters the load clients report.

The scripts in this folder import it as ``benchlib`` (Python puts a script's own folder
first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from asr.client import RecognizerClient

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "data" / "samples" / "manifest.jsonl"  # bundled held-out-voice clips
# A partial covers a chunk when its end time is at least the chunk's end minus this: the
# features and 3-frame stacking hold back up to ~45 ms of every chunk until the next one
# arrives ((window - hop) + (stack - 1) * hop + one hop of rounding = 15 + 20 + 10 ms).
COVER_SLACK_S = 0.05
RETRY_AFTER_S = 1.0  # a load-bench slot whose stream failed waits this long before the next one
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")

# ServerConfig fields that the benchmarks pass through to the server, with their flags' help.
SERVER_FLAGS: dict[str, tuple[type, str]] = {
    "beam_width": (int, "server: beam width of the finals"),
    "token_min_logp": (float, "server: token floor of the finals' beam"),
    "max_wait_ms": (float, "server: longest wait to fill a batch"),
    "max_batch": (int, "server: streams per batched model step"),
    "decode_workers": (int, "server: beam-search processes for the finals"),
    "gil_switch_ms": (float, "server: GIL switch interval in ms (0: Python's own 5 ms)"),
}


# ---------------------------------------------------------------- server process
@dataclass
class ServerProcess:
    """A server running in a child process, and the last lines of the stream it logs to."""

    process: subprocess.Popen[str]
    port: int
    started_s: float  # seconds from start to listening
    log: deque[str]


def start_server(
    cmd: list[str],
    port_pattern: str,
    timeout: float = 300.0,
    log_path: Path | None = None,
    stream: str = "stdout",
) -> ServerProcess:
    """Run ``cmd`` (from the repository root) and wait until a line of its ``stream``
    (``stdout`` or ``stderr``) matches ``port_pattern``, whose first group is the port.

    Every line of that stream goes on being read (and written to ``log_path``, if given),
    so the child never blocks on a full pipe.

    Raises:
        RuntimeError: the server exited or did not listen within ``timeout`` seconds.
    """
    if stream not in ("stdout", "stderr"):
        raise ValueError(f"expected stream 'stdout' or 'stderr', got {stream!r}")
    started = time.monotonic()
    process = subprocess.Popen(
        cmd,
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE if stream == "stdout" else None,
        stderr=subprocess.PIPE if stream == "stderr" else None,
    )
    lines = process.stdout if stream == "stdout" else process.stderr
    assert lines is not None
    log: deque[str] = deque(maxlen=200)
    port: list[int] = []
    ready = threading.Event()
    pattern = re.compile(port_pattern)

    def read() -> None:
        file = log_path.open("w") if log_path is not None else None
        try:
            for line in lines:
                if file is not None:
                    file.write(line)
                    file.flush()
                log.append(line)
                if not port and (m := pattern.search(line)):
                    port.append(int(m.group(1)))
                    ready.set()
        finally:
            if file is not None:
                file.close()
            ready.set()  # exited

    threading.Thread(target=read, daemon=True, name="server-log").start()
    ready.wait(timeout)
    if not port:
        process.kill()
        process.wait()
        raise RuntimeError(
            f"the server did not start within {timeout:g} s (exit code {process.poll()}):\n" + "".join(log)
        )
    return ServerProcess(process, port[0], time.monotonic() - started, log)


def stop_server(server: ServerProcess, timeout: float = 30.0) -> tuple[int | None, float]:
    """SIGTERM (the server drains) and wait; the exit code (None if it had to be killed)
    and the seconds it took."""
    started = time.monotonic()
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    try:
        code: int | None = server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        code = None
    return code, time.monotonic() - started


# -------------------------------------------------------------- process monitor
def _descendants(pid: int) -> list[int]:
    """Live child processes of ``pid``, recursively (from /proc/PID/task/*/children)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def _stat_fields(path: str) -> list[str]:
    """Fields of a /proc stat file after the command name (field 3 onwards)."""
    with open(path) as f:
        return f.read().rsplit(")", 1)[1].split()


def _cpu_seconds(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime (fields 14, 15)


@dataclass
class ProcessMonitor:
    """Samples a process's CPU time and RSS from /proc every ``interval`` seconds."""

    pid: int
    interval: float = 0.25
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, cpu s, rss bytes)
    parts: list[tuple[float, float, float, float]] = field(default_factory=list)  # (t, see read_parts)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def read(self) -> tuple[float, float, int]:
        """(time, CPU seconds, RSS bytes) of the server and its live child processes
        (``--decode-workers``), so that work moved out of the main process still counts."""
        cpu, rss = 0.0, 0
        for pid in [self.pid, *_descendants(self.pid)]:
            try:
                fields = _stat_fields(f"/proc/{pid}/stat")
            except OSError:  # exited meanwhile
                continue
            cpu += _cpu_seconds(fields)
            rss += int(fields[21]) * _PAGE  # field 24
        self.parts.append((time.monotonic(), *self.read_parts()))
        return time.monotonic(), cpu, rss

    def read_parts(self) -> tuple[float, float, float]:
        """CPU seconds of the server's main thread (the event loop), its other threads
        (the batcher's model step, gRPC's and the decode client's threads) and its child
        processes (decode workers)."""
        main = other = children = 0.0
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return main, other, children
        for tid in tids:
            try:
                seconds = _cpu_seconds(_stat_fields(f"/proc/{self.pid}/task/{tid}/stat"))
            except OSError:
                continue
            if int(tid) == self.pid:
                main += seconds
            else:
                other += seconds
        for pid in _descendants(self.pid):
            try:
                children += _cpu_seconds(_stat_fields(f"/proc/{pid}/stat"))
            except OSError:
                continue
        return main, other, children

    def parts_percent(self, start: float, end: float) -> dict[str, float]:
        """Mean CPU (% of one core) of each part between two monotonic times. A thread or
        worker that exits inside the window makes its part read low."""
        inside = [s for s in self.parts if start - self.interval <= s[0] <= end + self.interval]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return {}
        span = inside[-1][0] - inside[0][0]
        names = ("event_loop_thread", "other_threads", "decode_workers")
        return {n: round(100 * (inside[-1][k + 1] - inside[0][k + 1]) / span, 1) for k, n in enumerate(names)}

    def peak_rss(self) -> int:
        """VmHWM: the process's peak RSS over its whole life (model loading included)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def start(self) -> None:
        self.samples.append(self.read())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self.read())
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(self.read())

    def cpu_percent(self, start: float, end: float) -> float:
        """Mean CPU (% of one core) between two monotonic times (nearest samples)."""
        inside = [s for s in self.samples if start - self.interval <= s[0] <= end + self.interval]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return float("nan")
        return 100 * (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


# ------------------------------------------------------------------ statistics
def quantiles(
    values: Iterable[float], percentiles: tuple[int, ...] = (50, 95)
) -> dict[str, float | int | None]:
    """``n``, ``pNN`` for each of ``percentiles`` and ``max`` of ``values``, rounded to 0.1
    (all None when there are none)."""
    a = np.asarray(list(values), dtype=np.float64)
    keys = [f"p{p}" for p in percentiles] + ["max"]
    if a.size == 0:
        return {"n": 0} | dict.fromkeys(keys)
    out: dict[str, float | int | None] = {"n": int(a.size)}
    for p in percentiles:
        out[f"p{p}"] = round(float(np.percentile(a, p)), 1)
    out["max"] = round(float(a.max()), 1)
    return out


# ----------------------------------------------------------------- server flags
def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """``--int8/--no-int8`` and the :data:`SERVER_FLAGS`; unset ones keep the server's default."""
    parser.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="server: int8 streaming model (asr serve's default) or, with --no-int8, the float one",
    )
    for name, (kind, text) in SERVER_FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=text)


def server_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ServerConfig fields that :func:`add_server_flags` flags set (``--gil-switch-ms 0``:
    None, Python's own interval)."""
    settings: dict[str, Any] = {}
    if args.int8 is not None:
        settings["int8"] = args.int8
    for name in SERVER_FLAGS:
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    if "gil_switch_ms" in settings:
        settings["gil_switch_ms"] = settings["gil_switch_ms"] or None
    return settings


def server_flag_args(args: argparse.Namespace) -> list[str]:
    """The flags of :func:`add_server_flags` that ``args`` set, to pass on to another script."""
    out: list[str] = []
    if args.int8 is not None:
        out.append("--int8" if args.int8 else "--no-int8")
    for name in SERVER_FLAGS:
        value = getattr(args, name)
        if value is not None:
            out += ["--" + name.replace("_", "-"), str(value)]
    return out


@dataclass
class StreamRecord:
    """One load-bench stream: its status and latencies."""

    audio_seconds: float
    status: str = "OK"
    detail: str = ""  # the error's message, when status is not OK
    partial_ms: list[float] = field(default_factory=list)
    final_ms: float | None = None
    lag_ms: list[float] = field(default_factory=list)
    finals: int = 0


def pcm_chunks(audio: np.ndarray, chunk_ms: float) -> tuple[list[bytes], np.ndarray]:
    """16 kHz float audio as PCM16 chunks of ``chunk_ms``, and the audio end time (s) of each chunk."""
    from asr.audio import SAMPLE_RATE, float_to_pcm16

    n = max(1, round(SAMPLE_RATE * chunk_ms / 1000))
    pcm = float_to_pcm16(audio)
    chunks = [pcm[i : i + 2 * n] for i in range(0, len(pcm), 2 * n)]
    return chunks, np.cumsum([len(c) / 2 / SAMPLE_RATE for c in chunks])


async def paced_slots(
    run_one: Callable[[np.ndarray], Awaitable[StreamRecord]],
    clips: list[np.ndarray],
    streams: int,
    seconds: float,
    ramp: float,
    records: list[StreamRecord],
) -> tuple[float, float]:
    """Keep ``streams`` slots busy for ``seconds``, slot i starting at ``ramp * i / streams``.

    Each slot runs one stream after another (clip i, i+1, ... in turn), appends its record,
    and backs off :data:`RETRY_AFTER_S` after a failed stream. Returns (start, end) monotonic times.
    """
    start = time.monotonic()
    deadline = start + seconds

    async def slot(i: int) -> None:
        await asyncio.sleep(ramp * i / streams)
        k = i
        while time.monotonic() < deadline:
            record = await run_one(clips[k % len(clips)])
            k += 1
            records.append(record)
            if record.status != "OK":
                await asyncio.sleep(RETRY_AFTER_S)

    await asyncio.gather(*(slot(i) for i in range(streams)))
    return start, time.monotonic()


def server_stats(client: RecognizerClient) -> dict[str, float]:
    """The server's own counters (GetStats), for the report."""
    s = client.stats()
    return {
        "total_streams": s.total_streams,
        "errors": s.errors,
        "audio_seconds": round(s.audio_seconds, 1),
        "compute_seconds": round(s.compute_seconds, 1),
        "partial_latency_p50_ms": round(s.partial_latency_p50_ms, 1),
        "partial_latency_p95_ms": round(s.partial_latency_p95_ms, 1),
        "last_batch_size": s.last_batch_size,
        "batches": s.batches,
        "mean_batch_size": round(s.mean_batch_size, 1),
        "batch_compute_seconds": round(s.batch_compute_seconds, 1),
    }
