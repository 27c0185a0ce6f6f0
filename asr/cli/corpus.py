"""``asr corpus``: build the synthetic training corpus and other manifests."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr.cli.common import HelpFormatter
from asr.corpus.config import DEFAULT_ENGINE_WEIGHTS, SUPPLEMENT_ENGINES, TEXT_ORDERS, CorpusConfig


def _engine_weights(specs: list[str] | None) -> dict[str, float] | None:
    """``["piper=1", "flite=0.5"]`` -> ``{"piper": 1.0, "flite": 0.5}``; None keeps the defaults."""
    if not specs:
        return None
    known = {*DEFAULT_ENGINE_WEIGHTS, *SUPPLEMENT_ENGINES}
    weights = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if name not in known:
            raise SystemExit(f"asr corpus build: --engines: expected one of {sorted(known)}, got {name!r}")
        try:
            weights[name] = float(value) if sep else 1.0
        except ValueError:
            raise SystemExit(f"asr corpus build: --engines: expected NAME=WEIGHT, got {spec!r}") from None
    return weights


def _corpus_build(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from asr.corpus.build import build_corpus, format_summary

    weights = _engine_weights(args.engines)
    config = CorpusConfig(
        out=Path(args.out),
        hours=args.hours,
        dev_utts=args.dev_utts,
        test_utts=args.test_utts,
        seed=args.seed,
        jobs=args.jobs,
        text_order=args.text_order,
    )
    if weights:
        config = replace(config, engine_weights=weights)
    summary = build_corpus(config, progress=not args.quiet)
    print(format_summary(summary))
    print(f"manifests: {config.out}/train.jsonl dev.jsonl test.jsonl; summary: {config.out}/summary.json")
    return 0


def _corpus_smoke(args: argparse.Namespace) -> int:
    from asr.corpus.smoke import build_smoke_set

    manifest = build_smoke_set(args.out)
    print(f"smoke set manifest: {manifest}")
    return 0


def _corpus_librispeech(args: argparse.Namespace) -> int:
    from asr.manifest import librispeech_manifest

    n = librispeech_manifest(args.root, args.out)
    print(f"{n} utterances -> {args.out}")
    return 0


def _corpus_clean(args: argparse.Namespace) -> int:
    from asr.manifest import clean_subset

    n, hours = clean_subset(args.manifest, args.out, args.min_snr)
    print(f"{n} clean utterances ({hours:.2f} h) -> {args.out}")
    return 0


def _corpus_select(args: argparse.Namespace) -> int:
    from asr.corpus.select import write_selection

    report = write_selection(
        Path(args.pool),
        args.heard,
        Path(args.out),
        n=args.sentences,
        min_zipf=args.min_zipf,
        floor=args.floor,
        scale=args.scale,
        cap=args.cap,
        repeats=args.repeats,
    )
    print(
        f"{report['chosen']} sentences ({report['chosen_words']} words) -> {args.out}/text/train.txt; "
        f"common words heard enough: {report['targets_met_before']} -> {report['targets_met_after']} "
        f"of {report['target_words']}. Next: asr corpus build --out {args.out} --dev-utts 0 --test-utts 0 ..."
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        formatter_class=HelpFormatter,
    )
    defaults = CorpusConfig(out=Path("data/corpus"))
    build.add_argument("--hours", type=float, default=defaults.hours, help="hours of training audio to build")
    build.add_argument("--out", default=str(defaults.out), help="output folder")
    build.add_argument("--dev-utts", type=int, default=defaults.dev_utts, help="utterances in the dev split")
    build.add_argument(
        "--test-utts", type=int, default=defaults.test_utts, help="utterances in the test split"
    )
    build.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed for splits and every random choice"
    )
    build.add_argument("--jobs", type=int, default=defaults.jobs, help="worker processes")
    default_mix = " ".join(f"{name}={weight:.2f}" for name, weight in defaults.engine_weights.items())
    build.add_argument(
        "--engines",
        nargs="+",
        metavar="NAME=WEIGHT",
        help=(
            f"share of training utterances per engine ({', '.join([*DEFAULT_ENGINE_WEIGHTS, *SUPPLEMENT_ENGINES])}); "
            f"default {default_mix} (the rest off). "
            "E.g. a Piper-only supplement: --engines piper=1 --dev-utts 0 --test-utts 0 --out data/corpus-piper; "
            "mbrola-x: 9 more mbrola databases (recorded people) speaking English; rhvoice: RHVoice's 6 English "
            "voices; pico: SVOX Pico's en-US and en-GB voices; festival-x: festival's rab and don diphone voices; "
            "all training only. kokoro: Kokoro-82M neural voices, one speaker per sampled style, styles held out "
            "whole for dev and test (ASR_KOKORO_STYLES styles are tried, 120 by default; the ones PocketSphinx "
            "understands are kept; scores in OUT/kokoro-styles.json)"
        ),
    )
    build.add_argument(
        "--text-order",
        choices=TEXT_ORDERS,
        default=defaults.text_order,
        help=(
            "random: each utterance draws its sentence independently (with replacement; how the shipped "
            "corpora were built); cycle: every sentence once before any twice, in a seeded order (for a "
            "supplement of chosen sentences, e.g. from select-text)"
        ),
    )
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=_corpus_build)
    smoke = csub.add_parser(
        "real-smoke",
        help="collect the real-speech smoke set (Debian's transcribed human clips)",
        description=(
            "Copy the transcribed human recordings of pocketsphinx-testdata and alsa-utils (~20 clips, "
            "~120 words) to 16 kHz wav with a manifest. Evaluation only."
        ),
        formatter_class=HelpFormatter,
    )
    smoke.add_argument("--out", default="data/smoke", help="output folder")
    smoke.set_defaults(func=_corpus_smoke)
    libri = csub.add_parser(
        "librispeech",
        help="turn a LibriSpeech-style folder into a JSONL manifest",
        description=(
            "Scan a LibriSpeech-style folder (*.trans.txt files with 'UTTERANCE-ID TEXT' lines and "
            "UTTERANCE-ID.flac beside them) and write a JSONL manifest that `asr train --train` reads. "
            "`asr train` also accepts such a folder directly."
        ),
        formatter_class=HelpFormatter,
    )
    libri.add_argument("root", help="folder to scan (recursively)")
    libri.add_argument("--out", required=True, help="manifest to write")
    libri.set_defaults(func=_corpus_librispeech)
    clean = csub.add_parser(
        "clean-subset",
        help="write the clean part of a manifest (the streaming model's warm-up curriculum)",
        description=(
            "Keep utterances without reverb, babble or telephone band whose added noise (if any) is "
            "at --min-snr dB or more. A uni-LSTM started on the full augmented corpus can sit on the "
            "CTC all-blank plateau; starting it on this subset avoids that (see docs/training.md)."
        ),
        formatter_class=HelpFormatter,
    )
    clean.add_argument("manifest", help="corpus manifest, e.g. data/corpus/train.jsonl")
    clean.add_argument("--out", required=True, help="manifest to write, e.g. data/corpus/train-clean.jsonl")
    clean.add_argument("--min-snr", type=float, default=15.0, help="lowest added-noise SNR kept (dB)")
    clean.set_defaults(func=_corpus_clean)
    select = csub.add_parser(
        "select-text",
        help="pick train sentences rich in under-heard everyday words (for a supplement corpus)",
        description=(
            "Choose sentences from a corpus's train text (never dev or test) that bring the most common "
            "English words (wordfreq's list) that the given manifests rarely say, and write OUT/text/ so "
            "that `asr corpus build --out OUT --dev-utts 0 --test-utts 0` speaks them. A word's wanted "
            "count is SCALE x its frequency share of the heard words, clamped to [FLOOR, CAP]. "
            "Needs `pip install wordfreq` (corpus building only)."
        ),
        formatter_class=HelpFormatter,
    )
    select.add_argument(
        "--pool", default="data/corpus/text/train.txt", help="candidate sentences (a train.txt)"
    )
    select.add_argument("--heard", nargs="+", required=True, help="manifests already trained on")
    select.add_argument("--out", required=True, help="supplement folder, e.g. data/corpus-common")
    select.add_argument("--sentences", type=int, default=8000, help="how many sentences to choose")
    select.add_argument("--min-zipf", type=float, default=3.0, help="commonest words only: zipf >= this")
    select.add_argument("--floor", type=int, default=50, help="least wanted count per word")
    select.add_argument("--scale", type=float, default=2.0, help="wanted count / frequency share")
    select.add_argument("--cap", type=int, default=500, help="most wanted count per word")
    select.add_argument("--repeats", type=float, default=1.0, help="expected utterances per chosen sentence")
    select.set_defaults(func=_corpus_select)
