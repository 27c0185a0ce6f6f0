"""``asr lm`` and ``asr fusion``: the language model and the two models' fusion, tuned on dev."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr.cli.common import HelpFormatter, default_lm, models_dir


def _lm_build(args: argparse.Namespace) -> int:
    from asr.lm import build_lm

    summary = build_lm(
        args.text, args.out, args.exclude, order=args.order, memory=args.memory, prune=args.prune
    )
    print(summary)
    return 0


def _lm_tune(args: argparse.Namespace) -> int:
    from asr.cli.common import set_threads
    from asr.lm import tune_on_manifest

    set_threads(args.threads)
    alphas = [float(a) for a in args.alphas.split(",")]
    betas = [float(b) for b in args.betas.split(",")]
    tuned = tune_on_manifest(args.model, args.manifest, args.lm, alphas, betas, args.beam_width, args.limit)
    print(
        f"best alpha {tuned['alpha']} beta {tuned['beta']}: WER {100 * tuned['wer']:.2f}% "
        f"(greedy {100 * tuned['greedy_wer']:.2f}%) on {tuned['utterances']} utterances; saved to {args.lm}/lm.json"
    )
    return 0


def _register_lm(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lm = sub.add_parser(
        "lm", help="build the KenLM language model", description="KenLM n-gram language model."
    )
    lsub = lm.add_subparsers(dest="lm_command", required=True, metavar="ACTION")
    p = lsub.add_parser(
        "build",
        help="train and binarise an n-gram from training text",
        description=(
            "Train a KenLM n-gram on training sentences only (lines of --exclude files, i.e. dev and "
            "test sentences, are removed), binarise it (trie, 8-bit) and write lm.bin + unigrams.txt. "
            "Needs lmplz/build_binary: scripts/build-kenlm.sh."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("--text", nargs="+", default=["data/corpus/text/train.txt"], help="training sentences")
    p.add_argument(
        "--exclude",
        nargs="*",
        default=["data/corpus/text/dev.txt", "data/corpus/text/test.txt"],
        help="held-out sentences that must not reach the LM",
    )
    p.add_argument("--out", default=default_lm(), help="output folder")
    p.add_argument("--order", type=int, default=4, help="n-gram order")
    p.add_argument("--memory", default="1G", help="lmplz memory cap (-S)")
    p.add_argument("--prune", default=None, help='lmplz --prune thresholds, e.g. "0 0 1 1"')
    p.set_defaults(func=_lm_build)
    t = lsub.add_parser(
        "tune",
        help="grid-search the LM weight (alpha) and word bonus (beta) on dev",
        description=(
            "Decode a dev manifest with beam search + LM over a grid of alpha/beta values and store "
            "the best pair in LM/lm.json, where the decoder picks it up. Use the dev split, never test."
        ),
        formatter_class=HelpFormatter,
    )
    t.add_argument("--manifest", default="data/corpus/dev.jsonl", help="dev manifest")
    t.add_argument("--model", default="offline", help="model whose outputs are decoded")
    t.add_argument("--lm", default=default_lm(), help="language model folder")
    t.add_argument("--alphas", default="0.3,0.5,0.7,0.9,1.2", help="comma-separated LM weights")
    t.add_argument("--betas", default="0,1,2,3", help="comma-separated word bonuses")
    t.add_argument("--beam-width", type=int, default=16, help="beam width while tuning")
    t.add_argument("--limit", type=int, default=200, help="dev utterances to use")
    t.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    t.set_defaults(func=_lm_tune)


def _fusion_tune(args: argparse.Namespace) -> int:
    import json

    import torch

    from asr.api import load_decoder
    from asr.checkpoint import load_model
    from asr.fusion import tune_on_manifest

    if args.threads:
        torch.set_num_threads(args.threads)
    result = tune_on_manifest(
        load_model(args.streaming_model),
        load_model(args.offline_model),
        load_decoder(args.lm),
        args.manifest,
        limit=args.limit,
        weights=[float(w) for w in args.weights.split(",")],
        shifts=[None if s == "auto" else int(s) for s in args.shifts.split(",")],
        progress=not args.quiet,
    )
    out = Path(args.out)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"weight {result['weight']}, shift {result['shift']}: dev WER with the LM "
        f"{100 * result['dev_wer']['bilstm_alone']:.2f}% (BiLSTM alone) -> {100 * result['dev_wer']['fused']:.2f}% "
        f"on {result['tuned_on']['utterances']} utterances; wrote {out}"
    )
    return 0


def _register_fusion(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fusion = sub.add_parser(
        "fusion",
        help="tune how two-pass finals fuse the two models",
        description="Two-pass finals: the BiLSTM's log-probs fused with the streaming model's (asr/fusion.py).",
    )
    fsub = fusion.add_subparsers(dest="fusion_command", required=True, metavar="ACTION")
    t = fsub.add_parser(
        "tune",
        help="grid-search the streaming model's weight and time shift on dev",
        description=(
            "Decode a dev manifest with the two models' fused log-probs, (1 - w) * BiLSTM[t] + w * "
            "uni-LSTM[t + shift], and pick the weight by WER with beam search + LM (with fixed --shifts, "
            "the shift first by greedy WER). Writes the pair and both "
            "checkpoints' hashes to --out, where two-pass sessions pick it up; a recogniser with "
            "other checkpoints ignores the file. Re-run after shipping either model. Use the dev "
            "split, never test. About 5 minutes for 480 dev utterances on 2 cores."
        ),
        formatter_class=HelpFormatter,
    )
    t.add_argument("--manifest", default="data/corpus/dev.jsonl", help="dev manifest")
    t.add_argument("--streaming-model", default="streaming", help="streaming model name or path")
    t.add_argument("--offline-model", default="offline", help="offline model name or path")
    t.add_argument("--lm", default=default_lm(), help="language model folder")
    t.add_argument("--weights", default="0.1,0.2,0.3,0.4", help="comma-separated streaming-model weights")
    t.add_argument(
        "--shifts",
        default="auto",
        help="comma-separated shifts in 30 ms steps, or auto (each utterance's own lag, where the two "
        "models' speech probabilities line up best), e.g. auto,3,4,5",
    )
    t.add_argument("--limit", type=int, default=None, help="only the first N dev utterances")
    t.add_argument("--out", default=str(models_dir() / "fusion.json"), help="where to write the result")
    t.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=_fusion_tune)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_lm(sub)
    _register_fusion(sub)
