#!/usr/bin/env python3
"""Benchmark batch transcription: RTF with beam + LM, and peak memory on a 60-minute file.

    .venv/bin/python scripts/bench_transcribe.py --manifest data/corpus/test.jsonl --files 300

Writes reports/transcribe_bench.json and reports/transcribe_bench.md. Each measurement
runs `asr transcribe` in a fresh subprocess so that peak RSS is the process's own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from asr.audio import load_audio, write_wav
from asr.decoding import OFFLINE_BEAM_WIDTH, DecoderOptions
from asr.manifest import read_manifest

ROOT = Path(__file__).resolve().parent.parent
_PEAK_RSS_WRAPPER = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(r.returncode)"
)


def run_transcribe(files: list[str], mode: str, threads: int, extra: list[str]) -> dict[str, float]:
    """One `asr transcribe` subprocess; wall time and the child's peak RSS."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "asr.cli", "transcribe", *files, "--mode", mode, "--format", "json",
               "--output-dir", out, "--quiet", "--threads", str(threads), *extra]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        # A wrapper process per run, so that RUSAGE_CHILDREN is this run's peak alone.
        wrapper = [sys.executable, "-c", _PEAK_RSS_WRAPPER, *cmd]
        started = time.perf_counter()
        result = subprocess.run(wrapper, env=env, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-2000:])
        peak_kb = int(result.stderr.strip().splitlines()[-1].split()[-1])
        audio = sum(json.loads(p.read_text())["duration"] for p in Path(out).glob("*.json"))
    return {
        "files": len(files),
        "audio_seconds": round(audio, 2),
        "wall_seconds": round(wall, 2),
        "rtf": round(wall / audio, 4),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def make_long_file(manifest: str, minutes: float, path: Path) -> float:
    """Concatenate test utterances with 0.4-2 s gaps into one long 16 kHz wav."""
    rng = np.random.default_rng(0)
    entries = read_manifest(manifest)
    pieces: list[np.ndarray] = []
    total = 0
    target = int(minutes * 60 * 16000)
    i = 0
    while total < target:
        audio = load_audio(entries[i % len(entries)]["audio_filepath"])
        gap = np.zeros(int(rng.uniform(0.4, 2.0) * 16000), np.float32)
        pieces += [audio, gap]
        total += len(audio) + len(gap)
        i += 1
    write_wav(path, np.concatenate(pieces)[:target])
    return target / 16000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", default="data/corpus/test.jsonl", help="utterances to transcribe")
    parser.add_argument("--files", type=int, default=300, help="how many files for the RTF run")
    parser.add_argument("--long-minutes", type=float, default=60.0, help="length of the long file")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["offline:1:2", "offline:2:1", "offline:1:1", "offline:1:1:32", "stream:1:1"],
        help="runs as MODE:THREADS:JOBS[:BEAM] (torch threads, beam worker processes, beam width; "
        "default width: asr transcribe's, 128 offline and 32 otherwise)",
    )
    parser.add_argument("--out", default="reports/transcribe_bench", help="report path prefix")
    args = parser.parse_args()

    files = [e["audio_filepath"] for e in read_manifest(args.manifest)[: args.files]]
    report: dict[str, object] = {"machine": f"{os.cpu_count()} CPU cores", "runs": []}
    runs: list[dict[str, object]] = []
    for spec in args.configs:
        mode, threads, jobs, *beam = spec.split(":")
        width = (
            int(beam[0]) if beam else (OFFLINE_BEAM_WIDTH if mode == "offline" else DecoderOptions.beam_width)
        )
        r = run_transcribe(files, mode, int(threads), ["--jobs", jobs, "--beam-width", str(width)])
        what = f"{len(files)} test files"
        runs.append(
            {"what": what, "mode": mode, "threads": int(threads), "jobs": int(jobs), "beam": width, **r}
        )
        print(runs[-1], flush=True)
    long_path = ROOT / "data" / "bench" / f"long-{args.long_minutes:g}min.wav"
    long_path.parent.mkdir(parents=True, exist_ok=True)
    if not long_path.exists():
        make_long_file(args.manifest, args.long_minutes, long_path)
    r = run_transcribe([str(long_path)], "offline", 2, [])
    long_run = {"mode": "offline", "threads": 2, "jobs": 1, "beam": OFFLINE_BEAM_WIDTH}
    runs.append({"what": f"one {args.long_minutes:g}-minute file", **long_run, **r})
    print(runs[-1], flush=True)
    report["runs"] = runs

    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    lines = [
        "# Batch transcription benchmark",
        "",
        f"`scripts/bench_transcribe.py`, {report['machine']}, beam search + LM, whole process timed "
        "(model loading included).",
        "",
        "| input | mode | torch threads | beam jobs | beam width | audio (s) | wall (s) | RTF | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['what']} | {r['mode']} | {r['threads']} | {r['jobs']} | {r['beam']} | {r['audio_seconds']} | "
            f"{r['wall_seconds']} | "
            f"{r['rtf']} | {r['peak_rss_mb']} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
