"""``asr train``, ``asr eval``, ``asr average`` and ``asr widen``: make and measure models."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from asr.cli.common import HelpFormatter, default_lm
from asr.cli.profiles import add_profile_flags

if TYPE_CHECKING:
    from asr.checkpoint import LoadedModel


def _train(args: argparse.Namespace) -> int:
    from asr.config_flags import dataclass_from_args
    from asr.train import TrainConfig, run_training

    best = run_training(dataclass_from_args(TrainConfig, args))
    print(f"best checkpoint: {best}")
    return 0


def _register_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="train a streaming (uni-LSTM) or offline (BiLSTM) CTC model",
        description=(
            "CTC training with AdamW, warm-up + exponential decay, gradient clipping, SpecAugment "
            "and length-bucketed batches. Features are cached under --cache-dir. Re-running with "
            "the same --out resumes exactly from OUT/last.pt; the best dev-CER model is OUT/best.pt. "
            "For several processes: torchrun --nproc_per_node N -m asr.cli train ..."
        ),
        formatter_class=HelpFormatter,
    )
    from asr.config_flags import add_dataclass_flags
    from asr.train import TrainConfig

    # The CLI caches features with every core; a library caller's TrainConfig gets one process.
    add_dataclass_flags(p, TrainConfig, defaults={"feature_jobs": os.cpu_count() or 1})
    p.set_defaults(func=_train)


def _average(args: argparse.Namespace) -> int:
    from asr.averaging import average_run

    if args.last and args.last < 2:
        raise SystemExit(f"asr average: --last: expected 2 or more, got {args.last}")
    try:
        steps, scores = average_run(args.checkpoints, args.out, last=args.last, dev=args.dev)
    except ValueError as e:
        raise SystemExit(f"asr average: {e}") from None
    if scores is not None:
        print(f"dev CER {100 * scores.cer:.2f}% WER {100 * scores.wer:.2f}% ({scores.utterances} utterances)")
    print(f"averaged {len(steps)} checkpoints (steps {steps[0]}..{steps[-1]}) -> {args.out}")
    return 0


def _register_average(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "average",
        help="average the weights of several checkpoints of one training run",
        description=(
            "Checkpoint averaging: the element-wise mean of the weights of snapshots taken along one "
            "training run (asr train --snapshot-every N writes them to RUN/snapshots/). Snapshots of "
            "a run at a constant, low learning rate scatter around a minimum; their mean usually sits "
            "nearer its centre and decodes better than any one of them. The result is a shippable "
            "checkpoint (fp16), usable wherever a model path is."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "checkpoints", nargs="+", metavar="CKPT", help="checkpoints of one run (e.g. RUN/snapshots/*.pt)"
    )
    p.add_argument("--out", required=True, help="where to write the averaged checkpoint")
    p.add_argument("--last", type=int, default=0, help="average only the N latest by training step (0: all)")
    p.add_argument(
        "--dev",
        metavar="MANIFEST",
        help="also measure greedy dev CER/WER of the average and store it in the checkpoint's metrics",
    )
    p.set_defaults(func=_average)


def _widen(args: argparse.Namespace) -> int:
    from asr.widen import widen_checkpoint

    w = widen_checkpoint(args.checkpoint, args.hidden, args.out, args.seed, args.method, args.noise)
    print(
        f"widened {args.checkpoint}: hidden {w.hidden_before} -> {w.hidden_after}, "
        f"{w.params_before / 1e6:.2f} M -> {w.params_after / 1e6:.2f} M parameters -> {args.out}"
    )
    return 0


def _register_widen(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "widen",
        help="grow a trained model's LSTM layers without changing what it computes",
        description=(
            "Function-preserving widening (Net2Net's wider step): every LSTM layer gets HIDDEN units per "
            "direction, and the wider model gives the same outputs as the trained one until training "
            "continues it: asr train --kind KIND --hidden HIDDEN --init-from OUT ..."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("checkpoint", metavar="CKPT", help="a trained checkpoint (e.g. models/offline/model.pt)")
    p.add_argument(
        "--hidden", type=int, required=True, help="new LSTM units per direction (above the current)"
    )
    p.add_argument("--out", required=True, help="where to write the widened checkpoint")
    p.add_argument(
        "--method",
        choices=("split", "zero"),
        default="split",
        help="split: new units copy trained ones and share their outgoing weights (used at once); "
        "zero: new units start random with zero outgoing weights (exact, but slow to be used)",
    )
    p.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="split only: noise on the copies' input weights, relative to each matrix's std "
        "(breaks their symmetry; the outputs then match only approximately)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the choice of units to copy and of random weights"
    )
    p.set_defaults(func=_widen)


def _eval(args: argparse.Namespace) -> int:
    import json

    from asr.cli.common import set_threads
    from asr.evaluate import evaluate_manifest, format_report, grouped_scores

    set_threads(args.threads)
    decoder = None
    if args.decoder == "beam":
        from asr.api import load_decoder

        decoder = load_decoder(None if args.no_lm else args.lm)
    from asr.cli.profiles import profile_checkpoint

    name = profile_checkpoint(args, args.model)
    model: str | LoadedModel = name
    if args.int8:
        from dataclasses import replace

        from asr.checkpoint import load_model
        from asr.model import quantize_int8

        loaded = load_model(name)
        model = replace(loaded, model=quantize_int8(loaded.model))
    result, rows = evaluate_manifest(
        model, args.manifest, limit=args.limit, progress=not args.json, decoder=decoder
    )
    if result.utterances == 0:  # WER 0% over nothing would read as a perfect score
        print(
            f"asr eval: none of the {result.failed} utterances in {args.manifest} could be decoded "
            "(the warnings above say why; audio paths are relative to the manifest's folder)",
            file=sys.stderr,
        )
        return 1
    if args.json:
        groups = {"by": {args.by: grouped_scores(rows, args.by)}} if args.by else {}
        print(json.dumps({**result.to_dict(), **groups}))
    else:
        decoding = args.decoder + ("" if args.decoder == "greedy" or args.no_lm else " + LM")
        print(format_report(result, rows, decoding, by=args.by, show=args.show))
    return 0


def _register_eval(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "eval",
        help="WER/CER/RTF of a model on a manifest",
        description=(
            "Decode a JSONL manifest (greedy, or beam search with the tuned KenLM) and report WER, CER, "
            "real-time factor and counts."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("--manifest", required=True, help="JSONL manifest (audio_filepath, duration, text)")
    p.add_argument("--model", default="streaming", help="streaming, offline, or a checkpoint path")
    add_profile_flags(p, "the shipped --model")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    p.add_argument("--limit", type=int, default=None, help="only the first N utterances")
    p.add_argument("--show", type=int, default=0, help="print N reference/hypothesis pairs")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--decoder", choices=["greedy", "beam"], default="greedy", help="decoding")
    p.add_argument("--lm", default=default_lm(), help="language model folder (beam)")
    p.add_argument("--no-lm", action="store_true", help="beam search without the language model")
    p.add_argument(
        "--int8",
        action="store_true",
        help="evaluate the model with int8 weights, as `asr serve --int8` runs the streaming model",
    )
    p.add_argument(
        "--by",
        choices=["voice", "condition"],
        default=None,
        help="also break WER/CER down per voice (espeak-ng variants pooled) or per condition "
        "(clean/augmented), from the manifest's voice/engine/augment fields",
    )
    p.set_defaults(func=_eval)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_train(sub)
    _register_eval(sub)
    _register_average(sub)
    _register_widen(sub)
