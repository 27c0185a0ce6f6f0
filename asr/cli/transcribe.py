"""``asr transcribe``: files to text, no server needed."""

from __future__ import annotations

import argparse
import sys

from asr.cli.common import HelpFormatter, add_decoding_flags, positive_int, set_threads
from asr.cli.profiles import add_profile_flags
from asr.constants import Mode


def _transcribe(args: argparse.Namespace) -> int:
    from asr.api import Recognizer
    from asr.decoding import OFFLINE_BEAM_WIDTH
    from asr.fusion import FUSION_FILE
    from asr.streaming import EndpointConfig, SessionConfig
    from asr.transcribe import transcribe_files

    set_threads(args.threads)
    recognizer = Recognizer.load(
        streaming=args.streaming_model,
        offline=args.offline_model if args.mode != "stream" else None,
        lm=None if args.no_lm else args.lm,
        fusion=None if args.no_fusion else FUSION_FILE,
        offline_beam_width=args.beam_width or OFFLINE_BEAM_WIDTH,
        profile=args.profile,
        profiles_dir=args.profiles_dir,
    )
    if args.beam_width and args.mode != "offline":
        recognizer.decoder = recognizer.decoder.with_options(beam_width=args.beam_width)
    config = SessionConfig(
        hotwords=tuple(args.hotword),
        hotword_weight=args.hotword_weight,
        n_best=args.n_best,
        endpoint=EndpointConfig(
            trailing_silence_ms=args.trailing_silence_ms, max_utterance_ms=args.max_utterance_ms
        ),
    )
    report = transcribe_files(
        recognizer,
        args.files,
        args.mode,
        args.format,
        args.output_dir,
        config,
        progress=not args.quiet,
        jobs=args.jobs,
    )
    rtf = report.seconds / max(report.audio_seconds, 1e-9)
    print(
        f"{len(report.done)} transcribed, {len(report.failed)} failed; "
        f"{report.audio_seconds / 60:.1f} min of audio in {report.seconds:.1f} s (RTF {rtf:.3f})",
        file=sys.stderr,
    )
    for path, reason in report.failed:
        print(f"FAILED {path}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from asr.decoding import OFFLINE_BEAM_WIDTH, DecoderOptions
    from asr.endpoint import EndpointConfig

    p = sub.add_parser(
        "transcribe",
        help="transcribe audio files (batch, no server needed)",
        description=(
            "Transcribe wav/flac/ogg/mp3 files. In offline mode, files of up to a minute are batched "
            "through the BiLSTM and segmented at its blank runs, with beam search in --jobs worker "
            "processes. Longer files are read in blocks and segmented at endpoints (bounded memory, "
            "global timestamps). A file that fails is reported and the rest go on; the exit code is 1 "
            "if any file failed."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    p.add_argument(
        "--mode",
        choices=[Mode.OFFLINE, Mode.TWO_PASS, Mode.STREAM],
        default=Mode.OFFLINE,
        help="offline/two-pass: BiLSTM finals; stream: uni-LSTM only",
    )
    p.add_argument("--format", choices=["txt", "json", "srt", "vtt"], default="txt", help="output format")
    p.add_argument("--output-dir", help="write DIR/<name>.<format> per file instead of stdout")
    p.add_argument("--streaming-model", default="streaming", help="streaming model name or path")
    p.add_argument("--offline-model", default="offline", help="offline model name or path")
    add_profile_flags(p, "--streaming-model and --offline-model")
    add_decoding_flags(p)
    p.add_argument("--hotword", action="append", default=[], help="boost this word/phrase (repeatable)")
    p.add_argument(
        "--hotword-weight",
        type=float,
        default=None,
        help=f"hotword boost (default {DecoderOptions.hotword_weight:g})",
    )
    p.add_argument("--n-best", type=int, default=1, help="alternatives per utterance (json)")
    p.add_argument(
        "--beam-width",
        type=positive_int,
        default=None,
        help=f"beam width of the finals (default: {OFFLINE_BEAM_WIDTH} in offline mode, "
        f"{DecoderOptions.beam_width} in two-pass and stream mode, as live finals use); each doubling "
        "costs about twice the search time and gains about half a point of WER (README, 'Batch transcription')",
    )
    p.add_argument(
        "--trailing-silence-ms",
        type=int,
        default=EndpointConfig.trailing_silence_ms,
        help="silence that ends an utterance",
    )
    p.add_argument(
        "--max-utterance-ms",
        type=int,
        default=EndpointConfig.max_utterance_ms,
        help="longest utterance before a cut",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for the models (0: torch's default, one per core); more than 1 gains "
        "little on a free machine and costs much on a busy one, where the threads wait for each other",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="offline mode: beam-search worker processes; with more than one, batch k is "
        "decoded while the model runs on batch k+1 (2 suits a 2-core machine)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_transcribe)
