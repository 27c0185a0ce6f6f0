#!/usr/bin/env python3
"""Capacity sweep: the largest number of real-time streams one server process holds.

    .venv/bin/python scripts/bench_capacity.py --streams 20 40 60 80 --seconds 45
    .venv/bin/python scripts/bench_capacity.py --streams 40 80 --int8 --token-min-logp -3 --label int8

Runs ``scripts/bench_load.py`` once per stream count (a fresh server each time, the
same client and audio) and checks each run against the service's targets:

* no failed stream;
* p95 partial latency <= chunk duration + 250 ms (from sending a chunk to receiving
  the partial that covers it, so it includes the chunk's own 100 ms of buffering
  in the client: the bound is generous by one chunk);
* p95 final latency <= 300 ms after the end of speech (the client half-closes with the
  last chunk, so the endpoint fires at once).

The largest count that holds all three is the verdict. Counts run in the given order and
the sweep stops after the first failing count unless ``--all``. Server settings
(``--int8``, ``--beam-width``, ``--token-min-logp``, ``--max-wait-ms``, ``--max-batch``,
``--decode-workers``, ``--gil-switch-ms``) pass through to
every run. Writes ``reports/capacity[-LABEL].{json,md}`` and keeps each run's own report
under ``reports/capacity/``. Run it on an otherwise idle machine: the report records the
load average before each run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import ROOT, add_server_flags, server_flag_args, server_settings

from asr.constants import MODES, Mode

PARTIAL_SLACK_MS = 250.0
FINAL_LIMIT_MS = 300.0


def verdict(run: dict[str, Any], chunk_ms: float) -> tuple[bool, list[str]]:
    """Whether one bench_load report meets the targets, and why not."""
    why = []
    if run["streams_failed"]:
        why.append(f"{run['streams_failed']} streams failed {run['status_codes']}")
    p95 = run["partial_ms"]["p95"]
    if run["mode"] != "offline" and (p95 is None or p95 > chunk_ms + PARTIAL_SLACK_MS):
        why.append(f"partial p95 {p95} ms > {chunk_ms + PARTIAL_SLACK_MS:g}")
    f95 = run["final_ms"]["p95"]
    if f95 is None or f95 > FINAL_LIMIT_MS:
        why.append(f"final p95 {f95} ms > {FINAL_LIMIT_MS:g}")
    return not why, why


def write_report(summary: dict[str, Any], out: Path) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    best = summary["largest_passing"]
    lines = [
        "# Capacity sweep: real-time streams per server process",
        "",
        f"`scripts/bench_capacity.py`: mode `{summary['mode']}`, {summary['chunk_ms']:g} ms chunks, "
        f"{summary['seconds']:g} s per count, server settings {summary['server'] or 'defaults'}; "
        f"{summary['machine']}; client and server on the same machine.",
        "",
        f"Targets: no failed stream, p95 partial latency <= chunk + {PARTIAL_SLACK_MS:g} ms, "
        f"p95 final latency <= {FINAL_LIMIT_MS:g} ms.",
        "",
        f"**Largest count that holds: {best if best is not None else 'none of those tried'}.**",
        "",
        "| streams | ok / failed | partial p50 / p95 ms | final p50 / p95 ms | server CPU % | client CPU % "
        "| server RSS peak MB | load avg before | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["runs"]:
        p, f = r["partial_ms"], r["final_ms"]
        lines.append(
            f"| {r['streams']} | {r['streams_ok']} / {r['streams_failed']} | {p['p50']} / {p['p95']} "
            f"| {f['p50']} / {f['p95']} | {r['server_cpu']['steady_percent']} | {r['client_cpu_percent']} "
            f"| {r['server_rss_mb']['peak']} | {r['load_average_at_start']} "
            f"| {'holds' if r['holds'] else 'fails: ' + '; '.join(r['why'])} |"
        )
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--streams", type=int, nargs="+", required=True, help="stream counts to try, in order"
    )
    parser.add_argument("--seconds", type=float, default=45.0, help="seconds per count (default 45)")
    parser.add_argument("--mode", default=Mode.STREAM, choices=MODES)
    parser.add_argument("--chunk-ms", type=float, default=100.0, help="audio per message (default 100)")
    add_server_flags(parser)
    parser.add_argument("--all", action="store_true", help="go on after a failing count")
    parser.add_argument("--label", default="", help="report name suffix: reports/capacity-LABEL")
    args = parser.parse_args()

    server = server_settings(args)
    passthrough = server_flag_args(args)
    suffix = f"-{args.label}" if args.label else ""
    runs: list[dict[str, Any]] = []
    for n in args.streams:
        prefix = f"reports/capacity/load{suffix}-{n}"
        cmd = [
            sys.executable, str(ROOT / "scripts" / "bench_load.py"), "--streams", str(n),
            "--seconds", str(args.seconds), "--mode", args.mode, "--chunk-ms", str(args.chunk_ms),
            "--ramp", str(min(5.0, args.seconds / 4)), "--out", prefix, *passthrough,
        ]  # fmt: skip
        print(f"== {n} streams: {' '.join(cmd[1:])}", flush=True)
        started = time.monotonic()
        subprocess.run(cmd, cwd=ROOT, check=False)
        report_path = ROOT / (prefix + ".json")
        if not report_path.exists():
            print(f"no report from the {n}-stream run", file=sys.stderr)
            return 2
        run = json.loads(report_path.read_text())
        run["holds"], run["why"] = verdict(run, args.chunk_ms)
        run["run_seconds"] = round(time.monotonic() - started, 1)
        runs.append(run)
        print(f"== {n} streams: {'holds' if run['holds'] else 'fails: ' + '; '.join(run['why'])}", flush=True)
        if not run["holds"] and not args.all:
            break
    passing = [r["streams"] for r in runs if r["holds"]]
    summary = {
        "machine": runs[0]["machine"],
        "mode": args.mode,
        "chunk_ms": args.chunk_ms,
        "seconds": args.seconds,
        "server": server,
        "largest_passing": max(passing) if passing else None,
        "runs": runs,
    }
    out = ROOT / f"reports/capacity{suffix}"
    print(write_report(summary, out), end="")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
