"""The ``asr`` command: one subcommand per job, each with its own ``--help``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("asr")


def _corpus_build(args: argparse.Namespace) -> int:
    from asr.corpus.build import CorpusConfig, build_corpus, format_summary

    config = CorpusConfig(
        out=Path(args.out),
        hours=args.hours,
        dev_utts=args.dev_utts,
        test_utts=args.test_utts,
        seed=args.seed,
        jobs=args.jobs,
    )
    summary = build_corpus(config, progress=not args.quiet)
    print(format_summary(summary))
    print(f"manifests: {config.out}/train.jsonl dev.jsonl test.jsonl; summary: {config.out}/summary.json")
    return 0


def _add_corpus(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    corpus = sub.add_parser(
        "corpus",
        help="build the synthetic training corpus",
        description="Synthetic speech corpus from Debian's offline TTS engines.",
    )
    csub = corpus.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    build = csub.add_parser(
        "build",
        help="synthesise, augment and write wav + JSONL manifests (resumable)",
        description=(
            "Synthesise English sentences from Debian text packages with espeak-ng, mbrola, flite "
            "and festival voices, vary rate/pitch/volume, augment (noise, babble, reverb, telephone "
            "band, gain, speed) and write 16 kHz wav files with NeMo-style JSONL manifests. "
            "dev and test hold out whole voices and whole sentences. Re-running the same command "
            "resumes; a larger --hours extends the corpus."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    build.add_argument("--hours", type=float, default=10.0, help="hours of training audio to build")
    build.add_argument("--out", default="data/corpus", help="output folder")
    build.add_argument("--dev-utts", type=int, default=400, help="utterances in the dev split")
    build.add_argument("--test-utts", type=int, default=1000, help="utterances in the test split")
    build.add_argument("--seed", type=int, default=1234, help="seed for splits and every random choice")
    build.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=_corpus_build)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr",
        description="Streaming speech recognition with LSTM + CTC: corpus, training, evaluation, "
        "transcription and a gRPC server.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_corpus(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
