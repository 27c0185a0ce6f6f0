"""The ``asr`` command: one subcommand per job, each with its own ``--help``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("asr")


def _engine_weights(specs: list[str] | None) -> dict[str, float] | None:
    """``["piper=1", "flite=0.5"]`` -> ``{"piper": 1.0, "flite": 0.5}``; None keeps the defaults."""
    if not specs:
        return None
    from asr.corpus.build import DEFAULT_ENGINE_WEIGHTS, SUPPLEMENT_ENGINES

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
    from asr.corpus.build import CorpusConfig, build_corpus, format_summary

    weights = _engine_weights(args.engines)
    config = CorpusConfig(
        out=Path(args.out),
        hours=args.hours,
        dev_utts=args.dev_utts,
        test_utts=args.test_utts,
        seed=args.seed,
        jobs=args.jobs,
        text_order=args.text_order,
        **({"engine_weights": weights} if weights else {}),
    )
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
    build.add_argument(
        "--engines",
        nargs="+",
        metavar="NAME=WEIGHT",
        help=(
            "share of training utterances per engine (espeak, mbrola, flite, festival, piper, mbrola-x, "
            "rhvoice, pico, festival-x); default espeak=0.40 mbrola=0.28 flite=0.20 festival=0.12 (the rest off). "
            "E.g. a Piper-only supplement: --engines piper=1 --dev-utts 0 --test-utts 0 --out data/corpus-piper; "
            "mbrola-x: 9 more mbrola databases (recorded people) speaking English; rhvoice: RHVoice's 6 English "
            "voices; pico: SVOX Pico's en-US and en-GB voices; festival-x: festival's rab and don diphone voices; "
            "all training only"
        ),
    )
    build.add_argument(
        "--text-order",
        choices=["random", "cycle"],
        default="random",
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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
            "CTC all-blank plateau; starting it on this subset avoids that (see models/streaming/MODEL_CARD.md)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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


def _train(args: argparse.Namespace) -> int:
    from asr.train import TrainConfig, run_training

    config = TrainConfig(
        out_dir=args.out,
        train_manifests=args.train,
        dev_manifest=args.dev,
        kind=args.kind,
        hidden=args.hidden,
        layers=args.layers,
        proj_dim=args.proj_dim,
        dropout=args.dropout,
        max_steps=args.steps,
        max_frames=args.batch_frames,
        max_utterances=args.batch_utterances,
        loader_workers=args.loader_workers,
        augment_on_device=args.augment_on_device,
        lr=args.lr,
        warmup_steps=args.warmup,
        lr_half_life=args.lr_half_life,
        anneal_steps=args.anneal_steps,
        grad_clip=args.grad_clip,
        specaugment=not args.no_specaugment,
        bf16=args.bf16,
        freq_warp=args.freq_warp,
        channel_eq=args.channel_eq,
        eval_every=args.eval_every,
        save_every=args.save_every,
        snapshot_every=args.snapshot_every,
        log_every=args.log_every,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
        feature_jobs=args.feature_jobs,
        cache_dir=args.cache_dir,
        max_wall_minutes=args.max_minutes,
        anneal_minutes=args.anneal_minutes,
        init_from=args.init_from,
    )
    best = run_training(config)
    print(f"best checkpoint: {best}")
    return 0


def _add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="train a streaming (uni-LSTM) or offline (BiLSTM) CTC model",
        description=(
            "CTC training with AdamW, warm-up + exponential decay, gradient clipping, SpecAugment "
            "and length-bucketed batches. Features are cached under --cache-dir. Re-running with "
            "the same --out resumes exactly from OUT/last.pt; the best dev-CER model is OUT/best.pt. "
            "For several processes: torchrun --nproc_per_node N -m asr.cli train ..."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--kind", choices=["streaming", "offline"], default="streaming", help="model type")
    p.add_argument("--train", nargs="+", required=True, metavar="MANIFEST", help="JSONL training manifest(s)")
    p.add_argument("--dev", metavar="MANIFEST", help="JSONL dev manifest for periodic greedy CER/WER")
    p.add_argument("--out", required=True, help="run folder (resume state, best checkpoint, log)")
    p.add_argument("--steps", type=int, default=20000, help="total optimizer steps")
    p.add_argument("--batch-frames", type=int, default=16000, help="padded 10 ms frames per batch")
    p.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=600, help="warm-up steps")
    p.add_argument("--lr-half-life", type=int, default=4000, help="steps per halving of the lr")
    p.add_argument(
        "--anneal-steps",
        type=int,
        default=0,
        help="ramp the lr linearly down to its floor over the last N steps before --steps "
        "(can be set when resuming, to finish a run inside a time budget)",
    )
    p.add_argument("--grad-clip", type=float, default=5.0, help="gradient-norm clip")
    p.add_argument("--hidden", type=int, default=None, help="LSTM units (per direction)")
    p.add_argument("--layers", type=int, default=None, help="LSTM layers")
    p.add_argument("--proj-dim", type=int, default=None, help="input projection size")
    p.add_argument(
        "--dropout",
        type=float,
        default=0.1,
        help="dropout after the input projection, between LSTM layers and before the output head "
        "(no weights, so a resumed or warm-started run may change it)",
    )
    p.add_argument("--no-specaugment", action="store_true", help="disable SpecAugment")
    p.add_argument(
        "--freq-warp",
        type=float,
        default=0.0,
        help="vocal tract length perturbation: warp each utterance's frequency axis by a random "
        "factor in [1-W, 1+W] (e.g. 0.1; 0 = off)",
    )
    p.add_argument(
        "--channel-eq",
        type=float,
        default=0.0,
        metavar="DB",
        help="microphone/channel colouring: add a random smooth EQ curve (tilt and bows, up to "
        "about DB dB) to each utterance's log-mel (e.g. 6; 0 = off)",
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 autocast in the training forward pass (weights, optimizer and dev eval stay fp32); "
        "on CPUs with AVX512-BF16 the BiLSTM trains ~1.7x faster",
    )
    p.add_argument("--eval-every", type=int, default=500, help="steps between dev evaluations")
    p.add_argument("--save-every", type=int, default=250, help="steps between resume saves")
    p.add_argument(
        "--snapshot-every",
        type=int,
        default=0,
        help="also keep the weights every N steps as OUT/snapshots/step-NNNNNNN.pt (shippable fp16, "
        "7-9 MB each), to average the last few with 'asr average' (0 = off)",
    )
    p.add_argument("--log-every", type=int, default=25, help="steps between progress lines")
    p.add_argument("--seed", type=int, default=1234, help="random seed")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--batch-utterances",
        type=int,
        default=128,
        help="utterances per batch at most (raise it with --batch-frames on a GPU)",
    )
    p.add_argument(
        "--loader-workers",
        type=int,
        default=0,
        help="processes that collate and augment batches ahead of the model (0: in the training "
        "process; a GPU needs several to be kept busy)",
    )
    p.add_argument(
        "--augment-on-device",
        action="store_true",
        help="frequency warp, normalisation and SpecAugment on whole batches on the model's device "
        "(with a GPU, per-utterance augmentation in the loader is the bottleneck)",
    )
    p.add_argument(
        "--feature-jobs", type=int, default=os.cpu_count() or 1, help="processes for feature caching"
    )
    p.add_argument("--cache-dir", default="data/feats", help="feature cache folder")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop and save after this many minutes")
    p.add_argument(
        "--anneal-minutes",
        type=float,
        default=0.0,
        help="ramp the lr linearly down to its floor over the last N minutes of --max-minutes "
        "(a time-boxed run on a machine of unknown speed; use instead of --anneal-steps)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        help="warm start from this checkpoint (e.g. models/streaming/model.pt) when OUT/last.pt is absent",
    )
    p.set_defaults(func=_train)


def _average(args: argparse.Namespace) -> int:
    import torch

    from asr import checkpoint

    paths = [Path(p) for p in args.checkpoints]
    if args.last:
        if args.last < 2:
            raise SystemExit(f"asr average: --last: expected 2 or more, got {args.last}")

        def step(path: Path) -> int:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            return int(ckpt.get("training", {}).get("steps", -1)) if isinstance(ckpt, dict) else -1

        paths = sorted(paths, key=step)[-args.last :]
    try:
        averaged = checkpoint.average_checkpoints(paths)
    except ValueError as e:
        raise SystemExit(f"asr average: {e}") from None
    steps = [entry["steps"] for entry in averaged["training"]["averaged_from"]]
    log.info("averaged %d checkpoints (steps %s)", len(paths), ", ".join(str(s) for s in steps))
    if args.dev:
        from asr.evaluate import evaluate_manifest

        checkpoint.save(averaged, args.out)
        loaded = checkpoint.load_model(args.out)
        scores, _ = evaluate_manifest(loaded, args.dev, progress=False)
        averaged["metrics"] = {
            "dev_cer": scores.cer,
            "dev_wer": scores.wer,
            "dev_utterances": scores.utterances,
            "step": max(s for s in steps if s is not None),
        }
        print(f"dev CER {100 * scores.cer:.2f}% WER {100 * scores.wer:.2f}% ({scores.utterances} utterances)")
    checkpoint.save(averaged, args.out)
    print(f"averaged {len(paths)} checkpoints (steps {steps[0]}..{steps[-1]}) -> {args.out}")
    return 0


def _add_average(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
    from asr import checkpoint
    from asr.widen import widen_model

    loaded = checkpoint.load_model(args.checkpoint)
    wide = widen_model(loaded.model, args.hidden, seed=args.seed, method=args.method, noise=args.noise)
    training = dict(loaded.meta["training"])
    training["widened_from"] = {
        "path": str(args.checkpoint),
        "hidden": loaded.model.config.hidden,
        "method": args.method,
        "noise": args.noise,
        "steps": training.get("steps"),
    }
    out = checkpoint.make_checkpoint(
        wide, loaded.vocab, loaded.features, loaded.normalizer, training, dict(loaded.meta["metrics"])
    )
    checkpoint.save(out, args.out)
    before = sum(p.numel() for p in loaded.model.parameters())
    after = sum(p.numel() for p in wide.parameters())
    print(
        f"widened {args.checkpoint}: hidden {loaded.model.config.hidden} -> {args.hidden}, "
        f"{before / 1e6:.2f} M -> {after / 1e6:.2f} M parameters -> {args.out}"
    )
    return 0


def _add_widen(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "widen",
        help="grow a trained model's LSTM layers without changing what it computes",
        description=(
            "Function-preserving widening (Net2Net's wider step): every LSTM layer gets HIDDEN units per "
            "direction, and the wider model gives the same outputs as the trained one until training "
            "continues it: asr train --kind KIND --hidden HIDDEN --init-from OUT ..."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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

    import torch

    from asr.evaluate import evaluate_manifest, grouped_scores

    if args.threads:
        torch.set_num_threads(args.threads)
    decoder = None
    if args.decoder == "beam":
        from asr.api import load_decoder

        decoder = load_decoder(None if args.no_lm else args.lm)
    model = args.model
    if args.int8:
        from dataclasses import replace

        from asr.checkpoint import load_model
        from asr.model import quantize_int8

        model = load_model(args.model)
        model = replace(model, model=quantize_int8(model.model))
    result, rows = evaluate_manifest(
        model, args.manifest, limit=args.limit, progress=not args.json, decoder=decoder
    )
    groups = grouped_scores(rows, args.by) if args.by else None
    if result.utterances == 0:  # WER 0% over nothing would read as a perfect score
        print(
            f"asr eval: none of the {result.failed} utterances in {args.manifest} could be decoded "
            "(the warnings above say why; audio paths are relative to the manifest's folder)",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps({**result.to_dict(), **({"by": {args.by: groups}} if groups else {})}))
    else:
        if args.show:
            for row in rows[: args.show]:
                print(f"REF: {row['ref']}\nHYP: {row['hyp']}\n")
        if groups:
            width = max(len(args.by), *(len(g) for g in groups))
            print(f"{args.by:<{width}}  utts  words    WER     CER")
            for g, s in groups.items():
                print(
                    f"{g:<{width}}  {s['utterances']:>4}  {s['words']:>5}  "
                    f"{100 * s['wer']:5.1f}%  {100 * s['cer']:5.1f}%"
                )
        print(
            f"{result.utterances} utterances ({result.failed} failed), {result.audio_seconds / 60:.1f} min audio: "
            f"WER {100 * result.wer:.2f}%  CER {100 * result.cer:.2f}%  RTF {result.rtf:.4f} "
            f"({result.threads} threads, {args.decoder}{'' if args.decoder == 'greedy' or args.no_lm else ' + LM'})"
        )
    return 0


def _add_eval(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "eval",
        help="WER/CER/RTF of a model on a manifest",
        description=(
            "Decode a JSONL manifest (greedy, or beam search with the tuned KenLM) and report WER, CER, "
            "real-time factor and counts."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--manifest", required=True, help="JSONL manifest (audio_filepath, duration, text)")
    p.add_argument("--model", default="streaming", help="streaming, offline, or a checkpoint path")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    p.add_argument("--limit", type=int, default=None, help="only the first N utterances")
    p.add_argument("--show", type=int, default=0, help="print N reference/hypothesis pairs")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--decoder", choices=["greedy", "beam"], default="greedy", help="decoding")
    p.add_argument("--lm", default=str(_models_dir() / "lm"), help="language model folder (beam)")
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


def _transcribe(args: argparse.Namespace) -> int:
    from asr.api import Recognizer
    from asr.decoding import OFFLINE_BEAM_WIDTH
    from asr.fusion import FUSION_FILE
    from asr.streaming import EndpointConfig, SessionConfig
    from asr.transcribe import transcribe_files

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    recognizer = Recognizer.load(
        streaming=args.streaming_model,
        offline=args.offline_model if args.mode != "stream" else None,
        lm=None if args.no_lm else args.lm,
        fusion=None if args.no_fusion else FUSION_FILE,
        offline_beam_width=args.beam_width or OFFLINE_BEAM_WIDTH,
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


def _add_transcribe(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    p.add_argument(
        "--mode",
        choices=["offline", "two-pass", "stream"],
        default="offline",
        help="offline/two-pass: BiLSTM finals; stream: uni-LSTM only",
    )
    p.add_argument("--format", choices=["txt", "json", "srt", "vtt"], default="txt", help="output format")
    p.add_argument("--output-dir", help="write DIR/<name>.<format> per file instead of stdout")
    p.add_argument("--streaming-model", default="streaming", help="streaming model name or path")
    p.add_argument("--offline-model", default="offline", help="offline model name or path")
    p.add_argument("--lm", default=str(_models_dir() / "lm"), help="language model folder")
    p.add_argument("--no-lm", action="store_true", help="beam search without a language model")
    p.add_argument(
        "--no-fusion",
        action="store_true",
        help="two-pass and offline finals from the BiLSTM alone, not fused with the streaming model "
        "(models/fusion.json)",
    )
    p.add_argument("--hotword", action="append", default=[], help="boost this word/phrase (repeatable)")
    p.add_argument("--hotword-weight", type=float, default=None, help="hotword boost (default 10)")
    p.add_argument("--n-best", type=int, default=1, help="alternatives per utterance (json)")
    p.add_argument(
        "--beam-width",
        type=_positive_int,
        default=None,
        help="beam width of the finals (default: 128 in offline mode, 32 in two-pass and stream "
        "mode, as live finals use); each doubling costs about twice the search time and gains "
        "about half a point of WER (README, 'Batch transcription')",
    )
    p.add_argument("--trailing-silence-ms", type=int, default=600, help="silence that ends an utterance")
    p.add_argument("--max-utterance-ms", type=int, default=20000, help="longest utterance before a cut")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="offline mode: beam-search worker processes; with more than one, batch k is "
        "decoded while the model runs on batch k+1 (2 suits a 2-core machine with --threads 1)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_transcribe)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _models_dir() -> Path:
    from asr.checkpoint import MODELS_DIR

    return MODELS_DIR


def _lm_build(args: argparse.Namespace) -> int:
    from asr.lm import build_lm

    summary = build_lm(
        args.text, args.out, args.exclude, order=args.order, memory=args.memory, prune=args.prune
    )
    print(summary)
    return 0


def _lm_tune(args: argparse.Namespace) -> int:
    import torch

    from asr.audio import load_audio
    from asr.checkpoint import load_model
    from asr.evaluate import batch_log_probs
    from asr.features import log_mel
    from asr.lm import tune_decoder
    from asr.manifest import read_manifest
    from asr.text import normalize_text

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(args.model)
    entries = read_manifest(args.manifest)[: args.limit]
    log_probs, refs = [], []
    for e in entries:
        feats = loaded.normalizer(log_mel(load_audio(e["audio_filepath"]), loaded.features))
        log_probs.append(batch_log_probs(loaded.model, [feats])[0].numpy())
        refs.append(normalize_text(str(e["text"])))
    alphas = [float(a) for a in args.alphas.split(",")]
    betas = [float(b) for b in args.betas.split(",")]
    tuned = tune_decoder(log_probs, refs, args.lm, alphas, betas, args.beam_width)
    print(
        f"best alpha {tuned['alpha']} beta {tuned['beta']}: WER {100 * tuned['wer']:.2f}% "
        f"(greedy {100 * tuned['greedy_wer']:.2f}%) on {tuned['utterances']} utterances; saved to {args.lm}/lm.json"
    )
    return 0


def _add_lm(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--text", nargs="+", default=["data/corpus/text/train.txt"], help="training sentences")
    p.add_argument(
        "--exclude",
        nargs="*",
        default=["data/corpus/text/dev.txt", "data/corpus/text/test.txt"],
        help="held-out sentences that must not reach the LM",
    )
    p.add_argument("--out", default=str(_models_dir() / "lm"), help="output folder")
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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--manifest", default="data/corpus/dev.jsonl", help="dev manifest")
    t.add_argument("--model", default="offline", help="model whose outputs are decoded")
    t.add_argument("--lm", default=str(_models_dir() / "lm"), help="language model folder")
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


def _add_fusion(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--manifest", default="data/corpus/dev.jsonl", help="dev manifest")
    t.add_argument("--streaming-model", default="streaming", help="streaming model name or path")
    t.add_argument("--offline-model", default="offline", help="offline model name or path")
    t.add_argument("--lm", default=str(_models_dir() / "lm"), help="language model folder")
    t.add_argument("--weights", default="0.1,0.2,0.3,0.4", help="comma-separated streaming-model weights")
    t.add_argument(
        "--shifts",
        default="auto",
        help="comma-separated shifts in 30 ms steps, or auto (each utterance's own lag, where the two "
        "models' speech probabilities line up best), e.g. auto,3,4,5",
    )
    t.add_argument("--limit", type=int, default=None, help="only the first N dev utterances")
    t.add_argument("--out", default=str(_models_dir() / "fusion.json"), help="where to write the result")
    t.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=_fusion_tune)


def _serve(args: argparse.Namespace) -> int:
    from asr.server.app import ServerConfig, serve

    tokens = list(args.token)
    if args.token_file:
        tokens += [t.strip() for t in Path(args.token_file).read_text().splitlines() if t.strip()]
    serve(
        ServerConfig(
            host=args.host,
            port=args.port,
            streaming_model=args.streaming_model,
            offline_model=None if args.no_offline else args.offline_model,
            lm=None if args.no_lm else args.lm,
            max_streams=args.max_streams,
            max_message_bytes=args.max_message_bytes,
            max_stream_seconds=args.max_stream_seconds,
            idle_timeout_s=args.idle_timeout,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tokens=tokens,
            metrics_port=args.metrics_port,
            reuse_port=args.reuse_port,
            grace_s=args.grace,
            threads=args.threads,
            int8=args.int8,
            beam_width=args.beam_width,
            token_min_logp=args.token_min_logp,
            decode_workers=args.decode_workers,
            gil_switch_ms=args.gil_switch_ms or None,
            gc_freeze=args.gc_freeze,
            fusion=args.fusion,
        )
    )
    return 0


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the gRPC recognition server",
        description=(
            "Serve asr.v1.Recognizer (StreamingRecognize, Recognize, ListModels, GetStats) plus "
            "grpc.health.v1 and server reflection. One batched LSTM step serves every live stream. "
            "SIGTERM drains in-flight streams within --grace seconds."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="[::]", help="address to bind")
    p.add_argument("--port", type=int, default=50051, help="port (0: pick a free one)")
    p.add_argument("--streaming-model", default="streaming", help="streaming model name or path")
    p.add_argument("--offline-model", default="offline", help="offline model name or path")
    p.add_argument("--no-offline", action="store_true", help="do not load the BiLSTM (no two-pass/offline)")
    p.add_argument("--lm", default=str(_models_dir() / "lm"), help="language model folder")
    p.add_argument("--no-lm", action="store_true", help="beam search without a language model")
    p.add_argument("--max-streams", type=int, default=256, help="live streams before RESOURCE_EXHAUSTED")
    p.add_argument("--max-message-bytes", type=int, default=4 * 2**20, help="largest request message")
    p.add_argument(
        "--max-stream-seconds", type=float, default=3600, help="audio per stream before OUT_OF_RANGE"
    )
    p.add_argument(
        "--idle-timeout", type=float, default=30, help="seconds without a message before a stream ends"
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=256,
        help="most streams per batched model step (bigger batches cost less per stream)",
    )
    p.add_argument("--max-wait-ms", type=float, default=10, help="longest wait to fill a batch")
    p.add_argument("--tls-cert", help="PEM certificate (with --tls-key: TLS on)")
    p.add_argument("--tls-key", help="PEM private key")
    p.add_argument("--token", action="append", default=[], help="accepted bearer token (repeatable)")
    p.add_argument("--token-file", help="file with one accepted bearer token per line")
    p.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus text on http://HOST:PORT/metrics"
    )
    p.add_argument("--reuse-port", action="store_true", help="SO_REUSEPORT: run one server process per core")
    p.add_argument("--grace", type=float, default=10, help="seconds to drain streams on SIGTERM")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads for the batched model step (0: 1 thread; more seldom helps: the server is bound by Python work, use --reuse-port and one process per core instead)",
    )
    p.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="int8 weights for the streaming model: 2-4x less CPU per batched step; outputs move "
        "slightly (test WER with the LM 37.79 -> 37.86%%), and a stream's results depend a little on "
        "the other streams in its batch. --no-int8 serves the float model",
    )
    p.add_argument(
        "--fusion",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="two-pass and offline finals search the BiLSTM's log-probs fused with the streaming model's, "
        "when models/fusion.json was tuned for the loaded checkpoints (`asr fusion tune`); --no-fusion: "
        "the BiLSTM's alone",
    )
    p.add_argument(
        "--beam-width",
        type=int,
        default=None,
        help="beam width of the finals (default 32); smaller is cheaper and a little less accurate",
    )
    p.add_argument(
        "--token-min-logp",
        type=float,
        default=None,
        help="skip symbols below this log-prob in the finals' beam search (default -5; -3 halves "
        "the cost of a final, see docs/CAPACITY.md)",
    )
    p.add_argument(
        "--decode-workers",
        type=int,
        default=None,
        help="processes for the finals' beam searches (0: threads of the server process; default: "
        "1 on a machine with 2 or more cores, where the pure-Python beam search then runs beside "
        "the event loop, not against it)",
    )
    p.add_argument(
        "--gil-switch-ms",
        type=float,
        default=1.0,
        help="Python's GIL switch interval while serving (0: keep Python's 5 ms). The event loop, "
        "gRPC's poller and the model/decode threads share one GIL; 1 ms halved p95 latency at 200 "
        "streams (docs/CAPACITY.md)",
    )
    p.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gc.freeze() once the models are loaded, so Python's full garbage collections skip the "
        "models and the LM's trie (they paused the server up to 0.6 s at 200 streams)",
    )
    p.set_defaults(func=_serve)


def _bench(args: argparse.Namespace) -> int:
    from asr.bench import BenchConfig, default_pico_manifest, default_smoke_manifest, run_bench
    from asr.bench_report import headline_header, headline_rows

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
    header, rows = headline_header(report), headline_rows(report)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for line in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))
    print(
        f"{report['meta']['wall_seconds']} s; report: {config.out / 'tradeoff.md'}, "
        f"{config.out / 'tradeoff.json'} and plots in {config.out}/"
    )
    return 0


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--quick", action="store_true", help="60 test utterances, 30 for PocketSphinx, 2 chunk sizes"
    )
    p.add_argument("--limit", type=int, default=None, help="cap every set and subset at N utterances")
    p.add_argument("--out", default="reports", help="output folder")
    p.add_argument("--test-manifest", default="data/corpus/test.jsonl", help="held-out-voice test split")
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
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts for RTF")
    p.add_argument(
        "--chunks-ms", type=int, nargs="+", default=None, help="chunk sizes to sweep (must include 120)"
    )
    p.add_argument("--latency-utts", type=int, default=None, help="test utterances for latency (default 100)")
    p.add_argument(
        "--peer-utts", type=int, default=None, help="test utterances for PocketSphinx (default 100)"
    )
    p.add_argument("--no-peer", action="store_true", help="skip PocketSphinx")
    p.add_argument("--streaming-model", default="streaming", help="streaming model name or path")
    p.add_argument("--offline-model", default="offline", help="offline model name or path")
    p.add_argument("--lm", default=str(_models_dir() / "lm"), help="language model folder")
    p.add_argument("--no-lm", action="store_true", help="beam search without a language model")
    p.add_argument(
        "--no-fusion",
        action="store_true",
        help="two-pass and offline finals from the BiLSTM alone, not fused with the streaming model "
        "(models/fusion.json)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_bench)


def _demo(args: argparse.Namespace) -> int:
    from asr.demo import run_demo

    return run_demo(port=args.port, model=args.model, realtime=not args.fast)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="start the server, stream the bundled samples in real time, show partials and finals",
        description=(
            "The main job in one command: start the gRPC server with the shipped models, stream the "
            "bundled held-out-voice samples through the gRPC client paced in real time, show the "
            "partials as they arrive and each final, then shut the server down."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--port", type=int, default=50051, help="server port (0: any free port)")
    p.add_argument("--model", choices=["stream", "two-pass", "offline"], default="two-pass", help="mode")
    p.add_argument("--fast", action="store_true", help="send audio as fast as possible instead of real time")
    p.set_defaults(func=_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr",
        description="Streaming speech recognition with LSTM + CTC: corpus, training, evaluation, "
        "transcription and a gRPC server.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_corpus(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_average(sub)
    _add_widen(sub)
    _add_lm(sub)
    _add_fusion(sub)
    _add_transcribe(sub)
    _add_serve(sub)
    _add_demo(sub)
    _add_bench(sub)
    from asr.client.cli import add_stream_parser

    add_stream_parser(sub)
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
    except (ValueError, OSError, RuntimeError) as e:  # bad input or setup: one line, not a traceback
        if args.verbose:
            raise
        action = getattr(args, f"{args.command}_command", None)
        name = f"{args.command} {action}" if isinstance(action, str) else args.command
        print(f"asr {name}: error: {e} (-v for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
