#!/usr/bin/env python3
"""Print (or write into README.md) the README's trade-off table from an `asr bench` report.

The README's table sits between two markers:

    <!-- bench-table:start -->
    ...
    <!-- bench-table:end -->

    .venv/bin/python scripts/readme_table.py                   # print the rows
    .venv/bin/python scripts/readme_table.py --write README.md # replace the block in place

Under the table it writes which sets were measured, from the report's ``sets`` and ``meta``.
A report made with `--no-peer` has no PocketSphinx row; the README's existing peer row is then kept
as it is.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
HEADER = (
    "| mode | test WER / CER greedy | test WER / CER with LM | smoke WER with LM | Pico WER / CER with LM "
    "| first partial | final after end of audio | RTF (1 thread) | model |\n|---|---|---|---|---|---|---|---|---|"
)
LABELS = {
    "streaming": "streaming (uni-LSTM)",
    "two-pass": "two-pass (uni partials, BiLSTM finals)",
    "offline": "offline (BiLSTM, whole utterance)",
    "pocketsphinx": "PocketSphinx en-us (peer)",
}
PEER_LABEL = LABELS["pocketsphinx"]
FUSED_LABELS = {  # when the report's meta has a fusion (asr/fusion.py)
    "two-pass": "two-pass (uni partials, BiLSTM + uni fused finals)",
    "offline": "offline (BiLSTM + uni fused, whole file)",
}


def _pct(d: dict | None, key: str = "wer") -> str:
    return "—" if not d else f"{100 * d[key]:.1f}"


def _pair(d: dict | None) -> str:
    return "—" if not d else f"{_pct(d)} / {_pct(d, 'cer')}"


def _ms(d: dict | None) -> str:
    return "—" if not d else f"{1000 * d['mean']:.0f} ms"


def rows(report: dict) -> list[str]:
    """One README row per mode of the report, in the report's order."""
    out = []
    labels = {**LABELS, **(FUSED_LABELS if report.get("meta", {}).get("fusion") else {})}
    for mode, m in report["modes"].items():
        peer = mode == "pocketsphinx"
        greedy = m["test"].get("greedy")
        lm = m["test"].get("lm")
        lat = m.get("latency") or {}
        rtf = m.get("rtf", {}).get("1")
        out.append(
            "| "
            + " | ".join(
                [
                    labels.get(mode, mode),
                    "—" if peer or not greedy else _pair(greedy),
                    _pair(lm) + (" †" if peer else ""),
                    _pct((m.get("smoke") or {}).get("lm")),
                    _pair((m.get("pico") or {}).get("lm")),
                    _ms(lat.get("first_partial_s")),
                    _ms(lat.get("final_after_audio_s")),
                    "—" if rtf is None else f"{rtf:.3f}",
                    f"{m.get('size_mb', 0):.1f} MB",
                ]
            )
            + " |"
        )
    return out


def _minutes(s: dict) -> str:
    return f"{s['utterances']} utterances, {s['audio_seconds'] / 60:.0f} min"


def legend(report: dict) -> list[str]:
    """The lines under the table that name the test sets and the conditions (none if the report lacks them)."""
    sets, meta = report.get("sets") or {}, report.get("meta") or {}
    parts = []
    if "test" in sets:
        parts.append(
            f"**test**: the held-out test split ({_minutes(sets['test'])}), voices and sentences never trained on"
        )
    if "smoke" in sets:
        parts.append(f"**smoke**: {sets['smoke']['utterances']} clips of real human speech")
    if "pico" in sets:
        parts.append(
            f"**Pico**: {sets['pico']['utterances']} held-out sentences in SVOX Pico's en-GB voice, "
            "which no training set holds"
        )
    if "latency" in sets:
        chunk = meta.get("headline_chunk_ms", "?")
        parts.append(
            f"latency and RTF: the {sets['latency']['what']} of the test split streamed in simulated real time "
            f"in {chunk} ms chunks, mean"
        )
    if "peer" in sets:
        parts.append(f"† PocketSphinx on the {sets['peer']['what']} of the test split only")
    if meta.get("date"):
        parts.append(f"measured {meta['date'][:10]} on {meta.get('machine', 'an unnamed machine')}")
    if not parts:
        return []
    return ["", "; ".join(parts) + "."]


def block(report: dict, old_block: str = "") -> str:
    """The whole marked block; keeps an old PocketSphinx row (with as many columns) when the report has none."""
    lines = rows(report)
    notes = legend(report)
    columns = HEADER.splitlines()[0].count("|")
    if "pocketsphinx" not in report["modes"]:
        kept = [
            line
            for line in old_block.splitlines()
            if line.startswith(f"| {PEER_LABEL}") and line.count("|") == columns
        ]
        lines += kept
        if kept and notes and "peer" not in (report.get("sets") or {}):
            notes[-1] += " The PocketSphinx row is kept from an earlier report on the same sets."
    return "\n".join([START, HEADER, *lines, *notes, END])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--report", type=Path, default=Path("reports/tradeoff.json"), help="asr bench's JSON")
    parser.add_argument("--write", type=Path, metavar="README", help="replace the marked block in this file")
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text())
    if args.write is None:
        print(block(report))
        return 0
    text = args.write.read_text()
    found = re.search(re.escape(START) + r".*?" + re.escape(END), text, re.S)
    if not found:
        print(f"error: {args.write} has no {START} ... {END} block", file=sys.stderr)
        return 1
    args.write.write_text(text[: found.start()] + block(report, found.group(0)) + text[found.end() :])
    print(f"updated the trade-off table in {args.write} from {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
