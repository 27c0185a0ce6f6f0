"""``asr bench``: the real-time vs full-sequence trade-off, measured."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from asr.cli.common import HelpFormatter, add_decoding_flags

log = logging.getLogger("asr")


def _bench(args: argparse.Namespace) -> int:
    from asr.bench import BenchConfig, default_pico_manifest, default_smoke_manifest, run_bench
    from asr.bench_report import headline_table

    smoke = None if args.no_smoke else (args.smoke_manifest or default_smoke_manifest())
    if smoke is None and not args.no_smoke:
        log.warning("no real-speech smoke set found (asr corpus real-smoke builds it): skipped")
    pico = None if args.no_pico else (args.pico_manifest or default_pico_manifest())
    if pico is None and not args.no_pico:
        log.warning(
            "no Pico set found (scripts/piper_eval_set.py --voice pico:en-GB --out data/pico-eval builds it): skipped"
        )
    sizes = {k: v for k, v in (("latency_utts", args.latency_utts), ("peer_utts", args.peer_utts)) if v}
    config = BenchConfig.preset(
        quick=args.quick,
        limit=args.limit,
        out=Path(args.out),
        test_manifest=args.test_manifest,
        smoke_manifest=smoke,
        pico_manifest=pico,
        streaming_model=args.streaming_model,
        offline_model=args.offline_model,
        lm=None if args.no_lm else args.lm,
        fusion=not args.no_fusion,
        threads=tuple(args.threads),
        peer=not args.no_peer,
        progress=not args.quiet,
        **({"chunks_ms": tuple(args.chunks_ms)} if args.chunks_ms else {}),
        **sizes,
    )
    report = run_bench(config)
    print(headline_table(report))
    print(
        f"{report['meta']['wall_seconds']} s; report: {config.out / 'tradeoff.md'}, "
        f"{config.out / 'tradeoff.json'} and plots in {config.out}/"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from asr.bench import CHUNKS_MS, HEADLINE_CHUNK_MS, BenchConfig

    p = sub.add_parser(
        "bench",
        help="measure the real-time vs full-sequence trade-off (streaming, two-pass, offline, PocketSphinx)",
        description=(
            "WER/CER (greedy and LM) on the test split, the real-speech smoke set and the held-out Pico voice, "
            "simulated real-time "
            "latency (first partial, finals, partial word lag), RTF per thread count, size, a chunk-size "
            "sweep and PocketSphinx side by side. Writes OUT/tradeoff.md, OUT/tradeoff.json and PNG plots. "
            "A full run takes about 15-20 min on a free 2-core machine; --quick about 3-5 min."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--quick", action="store_true", help="60 test utterances, 30 for PocketSphinx, 2 chunk sizes"
    )
    p.add_argument("--limit", type=int, default=None, help="cap every set and subset at N utterances")
    p.add_argument("--out", default=str(BenchConfig.out), help="output folder")
    p.add_argument("--test-manifest", default=BenchConfig.test_manifest, help="held-out-voice test split")
    p.add_argument(
        "--smoke-manifest",
        default=None,
        help="real-speech smoke set (default: data/smoke_real or data/smoke)",
    )
    p.add_argument("--no-smoke", action="store_true", help="skip the smoke set")
    p.add_argument(
        "--pico-manifest",
        default=None,
        help="held-out SVOX Pico en-GB voice on held-out sentences (default: data/pico-eval, when built)",
    )
    p.add_argument("--no-pico", action="store_true", help="skip the Pico set")
    p.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=list(BenchConfig.threads),
        help="torch thread counts for RTF",
    )
    p.add_argument(
        "--chunks-ms",
        type=int,
        nargs="+",
        default=None,
        help=f"chunk sizes to sweep (must include {HEADLINE_CHUNK_MS}; default {' '.join(map(str, CHUNKS_MS))})",
    )
    p.add_argument(
        "--latency-utts",
        type=int,
        default=None,
        help=f"test utterances for latency (default {BenchConfig.latency_utts})",
    )
    p.add_argument(
        "--peer-utts",
        type=int,
        default=None,
        help=f"test utterances for PocketSphinx (default {BenchConfig.peer_utts})",
    )
    p.add_argument("--no-peer", action="store_true", help="skip PocketSphinx")
    p.add_argument(
        "--streaming-model", default=BenchConfig.streaming_model, help="streaming model name or path"
    )
    p.add_argument("--offline-model", default=BenchConfig.offline_model, help="offline model name or path")
    add_decoding_flags(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_bench)
