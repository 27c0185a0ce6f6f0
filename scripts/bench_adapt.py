#!/usr/bin/env python
"""Speaker adaptation benchmark: WER with the LM against minutes of enrollment, per held-out voice.

For each voice (held out of every training set: flite rms, festival ked, mbrola us3, SVOX
Pico en-GB) and each enrollment length:

1. enrollment takes: the shipped prompts (asr/prompts.txt, train-split sentences), in order,
   spoken by the voice until the minutes are reached (rate varied 0.9-1.1);
2. test set: ``--test-utts`` sentences of the corpus *test* split (never trained on, never in
   the LM; disjoint from the prompts), spoken by the same voice (rate 0.85-1.15);
3. ``asr adapt``'s defaults fine-tune both models on the takes (wall time recorded);
4. WER/CER with the LM in the offline (``asr transcribe``), two-pass and streaming modes,
   before (shipped models) and after (the profile), and the adapted offline model on the
   next voice's test set (what adapting to one voice costs on another).

Every (voice, minutes, settings) cell is one JSON file under ``OUT/cells``: an interrupted run
resumes at the next cell. ``--lr``, ``--steps``, ``--speeds`` and ``--kl-weight`` change the
adaptation settings, and the cell name and the report carry them. ``--floor`` also scores the
shipped models on a trained-on voice of each voice's engine family (SEEN_VOICES) speaking the
same test sentences: what a voice the models know scores. ``--render-only`` renders
reports/adaptation.{json,md,png} from the cells there.

    nohup taskset -c 0 .venv/bin/python scripts/bench_adapt.py --minutes 10 5 2 --threads 1 --floor &
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from asr.adapt import AdaptConfig, adapt_profile
from asr.api import Recognizer
from asr.audio import SAMPLE_RATE, load_audio
from asr.corpus.voices import FESTIVAL_ENGINES, Prosody, Voice, synthesize, synthesize_festival_batch
from asr.metrics import error_rates
from asr.profiles import ProfileStore
from asr.prompts import CORPUS_SEED, enrollment_prompts
from asr.streaming import SessionConfig
from asr.text import normalize_text

log = logging.getLogger("bench_adapt")

VOICES = {
    "flite:rms": Voice("flite", "rms", "rms"),
    "festival:ked_diphone": Voice("festival", "ked_diphone", "ked"),
    "mbrola:mb-us3": Voice("mbrola", "mb-us3", "mb-us3"),
    "pico:en-GB": Voice("pico", "en-GB", "pico-kh0"),
}
# A voice of the same engine family that the shipped models were trained on, per held-out voice:
# the shipped models on it, speaking the same test sentences, show what a trained-on voice scores.
SEEN_VOICES = {
    "flite:rms": Voice("flite", "slt", "slt"),
    "festival:ked_diphone": Voice("festival", "kal_diphone", "kal"),
    "mbrola:mb-us3": Voice("mbrola", "mb-us1", "mb-us1"),
    "pico:en-GB": Voice("pico", "en-US", "pico-lh0"),
}
MODES = ("offline", "two-pass", "streaming")
# AdaptConfig fields that do not change what is learnt (a cell with other values of only these
# still counts as "asr adapt's defaults").
# What a field that a cell's config lacks (it predates the field) meant: the field's "off".
ABSENT: dict[str, Any] = {"speeds": []}
RUN_FIELDS = ("threads", "time_budget_s", "lm", "base_streaming", "base_offline", "kinds")
DEFAULT_MINUTES = (1.0, 2.0, 5.0, 10.0, 20.0)


def slug(voice_id: str) -> str:
    return voice_id.replace(":", "-")


def tag(args: argparse.Namespace) -> str:
    """The cell-name suffix of settings other than asr adapt's defaults."""
    return (
        (f"-s{args.steps}" if args.steps else "")
        + (f"-kl{args.kl_weight:g}" if args.kl_weight else "")
        + (f"-lr{args.lr:g}" if args.lr else "")
        + ("-sp" + "_".join(f"{f:g}" for f in args.speeds) if args.speeds is not None else "")
    )


def recipe_changes(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of a cell's adapt config that differ from asr adapt's defaults (AdaptConfig())."""
    defaults = json.loads(json.dumps(asdict(AdaptConfig())))
    return {k: v for k, v in config.items() if k not in RUN_FIELDS and k in defaults and defaults[k] != v}


def recipe_label(config: dict[str, Any]) -> str:
    """The learning settings of one adapt config, for the report."""
    speeds = "/".join(f"{f:g}" for f in config.get("speeds") or []) or "off"
    return f"lr {config['lr']:g}, {config['steps']} steps, speed perturbation {speeds}" + (
        f", KL weight {config['kl_weight']:g}" if config.get("kl_weight") else ""
    )


def floor_scores(voice_id: str, args: argparse.Namespace, base: Recognizer) -> dict[str, Any]:
    """The shipped models on SEEN_VOICES[voice_id] speaking the test sentences (cached)."""
    out = Path(args.out)
    seen = SEEN_VOICES[voice_id]
    sentences = test_sentences(out, args.test_utts)
    path = out / "floor" / f"{slug(seen.id)}-{len(sentences)}.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    audios, refs = test_set(seen, out, sentences)
    log.info("%s (seen in training): shipped models on %d test utterances", seen.id, len(refs))
    result = {"voice": seen.id, "for": voice_id, "test_utterances": len(refs)}
    result.update(score_modes(base, audios, refs, MODES))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def test_sentences(out: Path, n: int, seed: int = 7) -> list[str]:
    """``n`` test-split sentences (cached in OUT/test-sentences.txt)."""
    path = out / "test-sentences.txt"
    if path.exists():
        return path.read_text(encoding="utf-8").splitlines()[:n]
    from asr.corpus.build import split_sentences
    from asr.corpus.text_sources import collect_sentences

    everything = [s for sentences in collect_sentences().values() for s in sentences]
    test = split_sentences(everything, CORPUS_SEED)["test"]
    rng = np.random.default_rng(seed)
    chosen = [test[int(k)] for k in rng.choice(len(test), max(n, 200), replace=False)]
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(chosen) + "\n", encoding="utf-8")
    return chosen[:n]


def speak(voice: Voice, texts: list[str], folder: Path, seed: int, rates: tuple[float, float]) -> list[Path]:
    """Each text as a wav in ``folder`` (kept across runs); the paths, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    prosodies = [Prosody(rate=float(rng.uniform(*rates))) for _ in texts]
    paths = [folder / f"{i:04d}.wav" for i in range(len(texts))]
    todo = [(t, p, w) for t, p, w in zip(texts, prosodies, paths, strict=True) if not w.exists()]
    if voice.engine in FESTIVAL_ENGINES:
        for k in range(0, len(todo), 50):
            synthesize_festival_batch(voice, todo[k : k + 50])
    else:
        for text, prosody, wav in todo:
            synthesize(voice, text, prosody, wav)
    return paths


def enrollment(voice: Voice, out: Path, minutes: float) -> list[tuple[Path, str]]:
    """Prompt takes of ``voice`` until ``minutes`` of audio (synthesised in blocks of 20)."""
    prompts = enrollment_prompts()
    folder = out / "audio" / slug(voice.id) / "enroll"
    takes: list[tuple[Path, str]] = []
    total = 0.0
    for start in range(0, len(prompts), 20):
        block = prompts[start : start + 20]
        # One seed per block, so a longer enrollment extends a shorter one with the same takes.
        paths = speak(voice, block, folder / f"b{start:04d}", seed=1000 + start, rates=(0.9, 1.1))
        for path, text in zip(paths, block, strict=True):
            if total >= minutes * 60:
                return takes
            takes.append((path, text))
            total += len(load_audio(path)) / SAMPLE_RATE
    log.warning("%s: the prompts ran out at %.1f min", voice.id, total / 60)
    return takes


def score_modes(
    rec: Recognizer, audios: list[np.ndarray], refs: list[str], modes: tuple[str, ...]
) -> dict[str, Any]:
    """WER/CER with the LM per mode, and the decoding seconds."""
    out: dict[str, Any] = {}
    for mode in modes:
        started = time.perf_counter()
        if mode == "offline":
            with rec.offline_batch(1) as batch:
                finals = batch.transcribe(audios)
            hyps = [" ".join(r.text for r in rs if r.text) for rs in finals]
        else:
            hyps = []
            for audio in audios:
                session = rec.stream(
                    SessionConfig(mode="stream" if mode == "streaming" else mode, interim_results=False)
                )
                results = session.accept_audio(audio) + session.finish()
                hyps.append(" ".join(r.text for r in results if r.is_final and r.text))
        counts = error_rates(zip(refs, hyps, strict=True))
        out[mode] = {
            "wer": round(counts.wer, 4),
            "cer": round(counts.cer, 4),
            "seconds": round(time.perf_counter() - started, 1),
        }
        log.info("  %s: WER %.1f%%  CER %.1f%%", mode, 100 * counts.wer, 100 * counts.cer)
    return out


def test_set(voice: Voice, out: Path, sentences: list[str]) -> tuple[list[np.ndarray], list[str]]:
    paths = speak(voice, sentences, out / "audio" / slug(voice.id) / "test", seed=7, rates=(0.85, 1.15))
    return [load_audio(p) for p in paths], [normalize_text(s) for s in sentences]


def run_cell(voice_id: str, minutes: float, args: argparse.Namespace, base: Recognizer) -> dict[str, Any]:
    out = Path(args.out)
    voice = VOICES[voice_id]
    sentences = test_sentences(out, args.test_utts)
    audios, refs = test_set(voice, out, sentences)
    base_file = out / "base" / f"{slug(voice_id)}-{len(refs)}.json"
    if base_file.exists():
        before = json.loads(base_file.read_text())
    else:
        log.info("%s: shipped models on %d test utterances", voice_id, len(refs))
        before = score_modes(base, audios, refs, MODES)
        base_file.parent.mkdir(parents=True, exist_ok=True)
        base_file.write_text(json.dumps(before, indent=1))
    takes = enrollment(voice, out, minutes)
    prompts = {t for _, t in takes}
    assert not prompts & set(sentences), "enrollment and test sentences must be disjoint"
    store = ProfileStore(out / "profiles")
    name = f"{slug(voice_id)}-{minutes:g}m{tag(args)}".replace(".", "_")
    if store.exists(name):
        store.delete(name)
    refused = 0
    for path, text in takes:
        try:
            store.add_recording(name, load_audio(path), SAMPLE_RATE, text, source=str(path))
        except ValueError as e:
            refused += 1
            log.warning("%s: take refused: %s", path, e)
    enrolled = store.minutes(name)
    log.info(
        "%s: %.1f min enrolled (%d takes, %d refused); adapting", voice_id, enrolled, len(takes), refused
    )
    started = time.perf_counter()
    changes: dict[str, Any] = {"threads": args.threads}
    if args.steps:
        changes["steps"] = args.steps
    if args.time_budget:
        changes["time_budget_s"] = args.time_budget
    if args.kl_weight:
        changes["kl_weight"] = args.kl_weight
    if args.lr:
        changes["lr"] = args.lr
    if args.speeds is not None:
        changes["speeds"] = tuple(args.speeds)
    cpu_started = time.process_time()
    report = adapt_profile(store, name, AdaptConfig(**changes))
    adapt_seconds = time.perf_counter() - started
    adapt_cpu_seconds = time.process_time() - cpu_started
    adapted = Recognizer.load(profile=name, profiles_dir=store.root)
    log.info("%s, %g min: adapted profile on the test set", voice_id, minutes)
    after = score_modes(adapted, audios, refs, MODES)
    voices = list(args.voices)
    other_id = voices[(voices.index(voice_id) + 1) % len(voices)] if len(voices) > 1 else None
    cross = None
    if other_id is not None and other_id != voice_id:
        other_audios, other_refs = test_set(VOICES[other_id], out, sentences)
        other_base = out / "base" / f"{slug(other_id)}-{len(other_refs)}.json"
        base_other = json.loads(other_base.read_text())["offline"] if other_base.exists() else None
        log.info("%s profile on %s's test set (offline)", voice_id, other_id)
        cross = {
            "voice": other_id,
            "before": base_other,
            "after": score_modes(adapted, other_audios, other_refs, ("offline",))["offline"],
        }
    return {
        "voice": voice_id,
        "kl_weight": args.kl_weight,
        "steps_asked": args.steps or None,
        "minutes_asked": minutes,
        "minutes_enrolled": round(enrolled, 2),
        "takes": len(takes),
        "refused": refused,
        "test_utterances": len(refs),
        "before": before,
        "after": after,
        "cross_voice": cross,
        "adapt_seconds": round(adapt_seconds, 1),
        "adapt_cpu_seconds": round(adapt_cpu_seconds, 1),
        "adapt_report": report.to_dict(),
        "load_average": os.getloadavg(),
    }


def _cell_row(c: dict[str, Any], label: str) -> str:
    steps = "/".join(f"{m['best_step']} of {m['steps']}" for m in c["adapt_report"]["models"])
    row = [label, f"{c['minutes_enrolled']:.1f}", str(c["test_utterances"])]
    for mode in MODES:
        b, a = c["before"][mode]["wer"], c["after"][mode]["wer"]
        row.append(f"{100 * b:.1f}% → **{100 * a:.1f}%** ({a / b:.2f}x)" if b else f"{100 * a:.1f}%")
    row.append(f"{c['adapt_seconds']:.0f} / {c.get('adapt_cpu_seconds', 0):.0f} ({steps})")
    row.append(f"{c['adapt_report']['config'].get('threads') or 'default'}")
    row.append(f"{c['load_average'][0]:.1f}")
    return "| " + " | ".join(row) + " |"


CELL_HEADER = [
    "| voice | enrolled min | test utts | offline before → after | two-pass before → after "
    "| streaming before → after | adapt wall s / CPU s (steps kept of run, streaming / offline) "
    "| torch threads | load avg |",
    "|---|---|---|---|---|---|---|---|---|",
]


def render(out: Path, report: Path) -> None:
    """reports/adaptation.{json,md,png} from every finished cell and floor figure."""
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    for c in cells:
        c["recipe_changes"] = recipe_changes(c["adapt_report"]["config"])
    cells.sort(
        key=lambda c: (list(VOICES).index(c["voice"]), c["minutes_asked"], json.dumps(c["recipe_changes"]))
    )
    # the other voice's shipped-model figures, when measured after this cell
    shipped = {(c["voice"], c["test_utterances"]): c["before"]["offline"] for c in cells}
    for c in cells:
        x = c.get("cross_voice")
        if x and not x["before"]:
            x["before"] = shipped.get((x["voice"], c["test_utterances"]))
    found = {f["for"]: f for f in (json.loads(p.read_text()) for p in (out / "floor").glob("*.json"))}
    floors = {v: found[v] for v in VOICES if v in found}
    defaults = asdict(AdaptConfig())
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other jobs: see load_average)",
        "test_set": "corpus test-split sentences, each voice speaking the same ones",
        "enrollment": "asr/prompts.txt in order (train-split sentences), disjoint from the test sentences",
        "adapt_config": "asr adapt defaults (AdaptConfig()) unless recipe_changes says otherwise",
        "defaults": recipe_label(defaults),
    }
    report.parent.mkdir(parents=True, exist_ok=True)
    report.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "cells": cells, "floor": list(floors.values())}, indent=1) + "\n"
    )
    current = [c for c in cells if not c["recipe_changes"]]
    others = [c for c in cells if c["recipe_changes"]]
    lines = [
        "# Speaker adaptation: WER with the LM against minutes of enrollment",
        "",
        "Held-out voices (no training set has them). Test: corpus test-split sentences spoken by each "
        "voice; enrollment: the shipped prompts (train-split sentences). Produced by "
        "`scripts/bench_adapt.py`.",
        "",
        f"`asr adapt` defaults ({recipe_label(defaults)}):",
        "",
        *CELL_HEADER,
        *(_cell_row(c, c["voice"]) for c in current),
    ]
    if others:
        lines += [
            "",
            "Other adaptation settings (what differs from the defaults above):",
            "",
            *CELL_HEADER,
            *(_cell_row(c, f"{c['voice']} ({recipe_label(c['adapt_report']['config'])})") for c in others),
        ]
    if floors:
        adapted: dict[str, list[str]] = {}
        for c in current:
            if c["minutes_asked"] == 10.0:
                runs = adapted.setdefault(c["voice"], [])
                runs.append(" / ".join(f"{100 * c['after'][m]['wer']:.1f}%" for m in MODES))
        lines += [
            "",
            "A trained-on voice of the same engine family, speaking the same test sentences, "
            "through the shipped models (WER with the LM), beside the held-out voice adapted "
            "with 10 minutes (each run of the defaults above):",
            "",
            "| held-out voice | trained-on voice | offline | two-pass | streaming "
            "| held-out voice adapted: offline / two-pass / streaming |",
            "|---|---|---|---|---|---|",
        ]
        for voice_id, f in floors.items():
            after = "; ".join(adapted.get(voice_id, [])) or "-"
            lines.append(
                f"| {voice_id} | {f['voice']} | "
                + " | ".join(f"{100 * f[m]['wer']:.1f}%" for m in MODES)
                + f" | {after} |"
            )
    cross = [c for c in cells if c.get("cross_voice") and c["cross_voice"]["before"]]
    if cross:
        lines += [
            "",
            "Adapted to one voice, tested on another (offline mode, WER with the LM):",
            "",
            "| adapted to | settings | tested on | shipped model | adapted model |",
            "|---|---|---|---|---|",
        ]
        for c in cross:
            x = c["cross_voice"]
            settings = recipe_label(c["adapt_report"]["config"]) if c["recipe_changes"] else "defaults"
            lines.append(
                f"| {c['voice']} ({c['minutes_enrolled']:.1f} min) | {settings} | {x['voice']} | "
                f"{100 * x['before']['wer']:.1f}% | {100 * x['after']['wer']:.1f}% |"
            )
    done = {(c["voice"], c["minutes_asked"]) for c in current}
    missing = [f"{v} {m:g} min" for m in DEFAULT_MINUTES for v in VOICES if (v, m) not in done]
    lines += [
        "",
        f"Machine: {meta['machine']}. Adaptation wall time includes loading, the held-out "
        "evaluations and the before/after report; CPU time is the process's, all threads.",
    ]
    if missing:
        lines.append(f"Not run with the defaults (of the full grid): {', '.join(missing)}.")
    report.with_suffix(".md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib not installed: no plot")
        return
    fig, axes = plt.subplots(1, len(MODES), figsize=(4.2 * len(MODES), 3.6), sharey=True)
    for ax, mode in zip(axes, MODES, strict=True):
        for voice_id in VOICES:
            mine = [c for c in current if c["voice"] == voice_id]
            if not mine:
                continue
            lengths = sorted({c["minutes_asked"] for c in mine})  # runs of one length: their mean
            xs = [0.0] + lengths
            ys = [100 * mine[0]["before"][mode]["wer"]] + [
                100 * float(np.mean([c["after"][mode]["wer"] for c in mine if c["minutes_asked"] == m]))
                for m in lengths
            ]
            (line,) = ax.plot(xs, ys, marker="o", label=voice_id)
            if voice_id in floors:  # the shipped models on a trained-on voice of the same engine
                ax.axhline(100 * floors[voice_id][mode]["wer"], color=line.get_color(), ls="--", lw=0.8)
        ax.set_title(f"{mode} (dashed: a trained-on voice)" if floors else mode)
        ax.set_xlabel("enrollment minutes")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("WER with the LM (%), mean of the runs")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(report.with_suffix(".png"), dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--voices", nargs="+", default=list(VOICES), choices=list(VOICES))
    p.add_argument(
        "--minutes",
        nargs="*",
        type=float,
        default=list(DEFAULT_MINUTES),
        help="enrollment lengths (none: no cells)",
    )
    p.add_argument("--test-utts", type=int, default=60)
    p.add_argument("--threads", type=int, default=0, help="torch threads for adaptation (0: default)")
    p.add_argument("--steps", type=int, default=0, help="adaptation steps (0: asr adapt's default)")
    p.add_argument(
        "--time-budget",
        type=float,
        default=0,
        help="seconds of training per model (0: asr adapt's default); a busy machine does fewer steps "
        "in the default budget, so a run that measures accuracy can raise it and report the time",
    )
    p.add_argument(
        "--kl-weight", type=float, default=0.0, help="asr adapt --kl-weight (cells are kept apart by it)"
    )
    p.add_argument("--lr", type=float, default=0.0, help="adaptation learning rate (0: asr adapt's default)")
    p.add_argument(
        "--speeds",
        type=float,
        nargs="*",
        default=None,
        help="speed perturbation factors (none given: off; the option left out: asr adapt's default)",
    )
    p.add_argument(
        "--floor",
        action="store_true",
        help="also score the shipped models on a trained-on voice of each voice's engine family",
    )
    p.add_argument("--out", default="data/bench-adapt")
    p.add_argument("--report", default="reports/adaptation", help="report path stem")
    p.add_argument("--render-only", action="store_true", help="only render the report from finished cells")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asr.decoding").setLevel(logging.WARNING)
    out = Path(args.out)
    if not args.render_only:
        base = Recognizer.load()
        if args.floor:
            for voice_id in args.voices:
                floor_scores(voice_id, args, base)
        for minutes in args.minutes:
            for voice_id in args.voices:
                cell = out / "cells" / f"{slug(voice_id)}-{minutes:g}m{tag(args)}.json"
                if cell.exists():
                    continue
                result = run_cell(voice_id, minutes, args, base)
                cell.parent.mkdir(parents=True, exist_ok=True)
                cell.write_text(json.dumps(result, indent=1))
                render(out, Path(args.report))
    render(out, Path(args.report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
