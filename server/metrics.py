"""Server metrics: counters and latency histograms, as Prometheus text and a stats RPC."""

from __future__ import annotations

import bisect
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


@dataclass
class Histogram:
    """A Prometheus-style cumulative histogram plus a window of recent values for quantiles."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS_MS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    total: float = 0.0
    n: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=2000))

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1
        self.recent.append(value)

    def quantile(self, q: float) -> float:
        if not self.recent:
            return 0.0
        values = sorted(self.recent)
        return values[min(len(values) - 1, int(q * len(values)))]

    def prometheus(self, name: str, help_text: str) -> list[str]:
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.n}')
        lines += [f"{name}_sum {self.total:.3f}", f"{name}_count {self.n}"]
        return lines


class Metrics:
    """Thread-safe counters of one server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active_streams = 0
        self.total_streams = 0
        self.errors = 0
        self.audio_seconds = 0.0
        self.compute_seconds = 0.0
        self.partial_latency = Histogram()
        self.final_latency = Histogram()

    def stream_started(self) -> None:
        with self._lock:
            self.active_streams += 1
            self.total_streams += 1

    def stream_ended(self) -> None:
        with self._lock:
            self.active_streams -= 1

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def audio(self, seconds: float, compute_seconds: float) -> None:
        with self._lock:
            self.audio_seconds += seconds
            self.compute_seconds += compute_seconds

    def partial(self, latency_ms: float) -> None:
        with self._lock:
            self.partial_latency.observe(latency_ms)

    def final(self, latency_ms: float) -> None:
        with self._lock:
            self.final_latency.observe(latency_ms)

    @property
    def rtf(self) -> float:
        return self.compute_seconds / self.audio_seconds if self.audio_seconds else 0.0

    def prometheus(self) -> str:
        with self._lock:
            lines = [
                "# HELP asr_active_streams Live streaming recognitions.",
                "# TYPE asr_active_streams gauge",
                f"asr_active_streams {self.active_streams}",
                "# HELP asr_streams_total Streams started.",
                "# TYPE asr_streams_total counter",
                f"asr_streams_total {self.total_streams}",
                "# HELP asr_errors_total Streams or requests that ended with an error status.",
                "# TYPE asr_errors_total counter",
                f"asr_errors_total {self.errors}",
                "# HELP asr_audio_seconds_total Audio seconds recognised.",
                "# TYPE asr_audio_seconds_total counter",
                f"asr_audio_seconds_total {self.audio_seconds:.3f}",
                "# HELP asr_rtf Compute seconds per audio second since start.",
                "# TYPE asr_rtf gauge",
                f"asr_rtf {self.rtf:.5f}",
            ]
            lines += self.partial_latency.prometheus(
                "asr_partial_latency_ms", "From receiving a chunk to sending the partial that covers it."
            )
            lines += self.final_latency.prometheus(
                "asr_final_latency_ms", "From the endpoint (or end of audio) to sending the final."
            )
        return "\n".join(lines) + "\n"


def start_metrics_http(metrics: Metrics, host: str, port: int) -> ThreadingHTTPServer:
    """Serve ``GET /metrics`` (Prometheus text) on a daemon thread; port 0 picks one."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path.rstrip("/") != "/metrics":
                self.send_error(404)
                return
            body = metrics.prometheus().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("metrics http: " + format, *args)

    httpd = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True).start()
    return httpd
