#!/usr/bin/env python3
"""Does Kokoro-82M speech help on voices recorded from people? A controlled fine-tune.

Two fine-tunes of the shipped offline model (BiLSTM), side by side, from the same weights,
with the same number of steps, lr schedule, seed and augmentation, one CPU thread each:

* **control**: a slice of the main corpus (``data/corpus``) and of the training-only
  supplements' engines (``data/corpus-supp-slice``): the kind of data the shipped model was trained on;
* **treatment**: the same slice plus the Kokoro corpus's training split
  (``data/corpus-kokoro``), repeated until it is about a third of the hours (``--kokoro-share``).

The control separates "more steps" from "Kokoro speech". The shipped model (baseline) and
both fine-tunes are scored with the same code as ``asr eval`` (:func:`evaluate_manifest`):

* greedy CER per voice on the test split (``data/corpus/test.jsonl``), and pooled over its
  held-out voices recorded from people (flite rms, festival ked, mbrola us3/de4/pl1);
* the Pico set (SVOX Pico en-GB, a held-out voice): greedy CER, and WER with beam + LM;
* the real-speech smoke set: WER with beam + LM (and greedy);
* the Kokoro corpus's held-out styles (``data/kokoro-test``): greedy CER and WER.

Steps (each resumable; ``all`` runs them in order)::

    .venv/bin/python scripts/kokoro_finetune.py data        # corpora and evaluation sets
    .venv/bin/python scripts/kokoro_finetune.py manifests   # the two arms' training manifests
    .venv/bin/python scripts/kokoro_finetune.py cache       # features of every manifest, once
    .venv/bin/python scripts/kokoro_finetune.py probe       # seconds per step, to choose --steps
    .venv/bin/python scripts/kokoro_finetune.py train       # both arms, pinned to cores 0 and 1
    .venv/bin/python scripts/kokoro_finetune.py eval        # baseline, control, treatment
    .venv/bin/python scripts/kokoro_finetune.py report      # reports/kokoro-finetune.{md,json}

``--steps``, ``--lr``, ``--kokoro-share``, ``--cores`` and the rest are recorded in the
report; ``train control`` / ``train treatment`` run one arm (``--cores 1,1``: both on core 1,
one after the other). The Kokoro corpus's training split is read from its shards, so a build still in progress (or stopped)
gives what it has so far; ``manifests`` fixes that list for both training and the report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"

# Held-out voices of the test split that were recorded from people (not espeak-ng's formants).
HUMAN_TEST_VOICES = (
    "flite:rms",
    "festival:ked_diphone",
    "mbrola:mb-us3",
    "mbrola:mb-de4-en",
    "mbrola:mb-pl1-en",
)
ARMS = ("control", "treatment")


@dataclasses.dataclass
class Settings:
    """Everything that defines the experiment; stored in the report."""

    corpus: str = "data/corpus"  # main corpus slice: its train, dev and test splits
    corpus_hours: float = 6.0
    supplement: str = "data/corpus-supp-slice"  # training-only engines of the shipped model's supplements
    supplement_hours: float = 2.0
    supplement_engines: str = "mbrola-x=0.35 rhvoice=0.27 piper=0.2 festival-x=0.1 pico=0.08"
    kokoro: str = "data/corpus-kokoro"  # Kokoro corpus; its train shards are read
    kokoro_hours: float = 3.0  # what its build asks for (it may be stopped earlier)
    kokoro_test: str = "data/kokoro-test"  # the Kokoro corpus's test split, built on its own
    kokoro_test_utts: int = 120  # one shard: the first half of the corpus's own 240-utterance test split
    smoke: str = "data/smoke/manifest.jsonl"
    pico: str = "data/pico-eval/manifest.jsonl"
    work: str = "data/kokoro-finetune"
    base: str = "models/offline/model.pt"
    kind: str = "offline"
    kokoro_share: float = 0.33  # the treatment's share of hours from Kokoro (by repeating it)
    steps: int = 450
    lr: float = 3e-4
    rewarm_steps: int = 100
    anneal_fraction: float = 0.3  # the lr ramps down to its floor over this last part of the steps
    freq_warp: float = 0.15
    dropout: float = 0.2
    seed: int = 1234
    max_minutes: float = 60.0  # safety cap per run; the step count is what the arms share
    cores: tuple[int, int] = (0, 1)  # control, treatment

    @property
    def work_dir(self) -> Path:
        return ROOT / self.work


def _run(cmd: list[str], **kwargs: Any) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, **kwargs)


def _nice(cmd: list[str]) -> list[str]:
    return ["nice", "-n", "19", *cmd]


# ----------------------------------------------------------------------------- data


def build_data(s: Settings) -> None:
    """The corpora and evaluation sets (each command resumes)."""
    asr = str(BIN / "asr")
    py = str(BIN / "python")
    _run(_nice([asr, "corpus", "real-smoke", "--out", str(Path(s.smoke).parent)]))
    _run(_nice([asr, "corpus", "build", "--hours", str(s.corpus_hours), "--out", s.corpus, "--quiet"]))
    _run(_nice([py, "scripts/piper_eval_set.py", "--voice", "pico:en-GB", "--out", str(Path(s.pico).parent)]))
    _run(
        _nice(
            [
                asr,
                "corpus",
                "build",
                "--hours",
                str(s.supplement_hours),
                "--engines",
                *s.supplement_engines.split(),
            ]
            + ["--dev-utts", "0", "--test-utts", "0", "--out", s.supplement, "--quiet"]
        )
    )
    _run(
        _nice(
            [asr, "corpus", "build", "--hours", str(s.kokoro_hours), "--engines", "kokoro=1"]
            + ["--dev-utts", "120", "--test-utts", str(s.kokoro_test_utts), "--out", s.kokoro, "--quiet"]
        ),
        env={**os.environ, "ASR_KOKORO_STYLES": os.environ.get("ASR_KOKORO_STYLES", "64")},
    )
    build_kokoro_test(s)


def build_kokoro_test(s: Settings) -> None:
    """The Kokoro corpus's test split (the same shards its own build would make), on its own:
    the styles and voice split are copied from the corpus, so none is filtered again."""
    src, out = ROOT / s.kokoro, ROOT / s.kokoro_test
    out.mkdir(parents=True, exist_ok=True)
    styles = json.loads((src / "kokoro-styles.json").read_text(encoding="utf-8"))
    if "kept" not in styles:
        raise SystemExit(
            f"expected {src}/kokoro-styles.json to hold the filter's result; its build is still filtering"
        )
    for name in ("kokoro-styles.json", "voices.json"):
        if (src / name).exists() and not (out / name).exists():
            (out / name).write_bytes((src / name).read_bytes())
    _run(
        _nice(
            [str(BIN / "asr"), "corpus", "build", "--hours", "0", "--engines", "kokoro=1"]
            + ["--dev-utts", "0", "--test-utts", str(s.kokoro_test_utts), "--out", s.kokoro_test, "--quiet"]
        ),
        env={**os.environ, "ASR_KOKORO_STYLES": str(styles["config"]["styles"])},
    )


def kokoro_train_entries(s: Settings) -> list[dict[str, Any]]:
    """Training utterances of the Kokoro corpus's finished shards, with absolute paths."""
    from asr.manifest import read_manifest

    root = ROOT / s.kokoro
    entries = []
    for shard in sorted((root / "shards").glob("train-*.jsonl")):
        for e in read_manifest(shard, resolve=False):
            path = Path(e["audio_filepath"])
            entries.append({**e, "audio_filepath": str(path if path.is_absolute() else root / path)})
    return entries


def old_manifests(s: Settings) -> list[str]:
    """The training data both arms share: the main-corpus slice and the supplements' slice."""
    return [str(ROOT / s.corpus / "train.jsonl"), str(ROOT / s.supplement / "train.jsonl")]


def write_manifests(s: Settings) -> dict[str, Any]:
    """Fix the training data of both arms: ``WORK/kokoro-train.jsonl`` and ``WORK/mix.json``."""
    from asr.manifest import read_manifest, total_hours, write_manifest

    work = s.work_dir
    kokoro_manifest = work / "kokoro-train.jsonl"
    if not kokoro_manifest.exists():  # fixed once: later shards of a running build are not used
        write_manifest(kokoro_manifest, kokoro_train_entries(s))
    old = old_manifests(s)
    hours = {
        "corpus": total_hours(read_manifest(old[0])),
        "supplement": total_hours(read_manifest(old[1])),
        "kokoro": total_hours(read_manifest(kokoro_manifest)),
    }
    old_hours = hours["corpus"] + hours["supplement"]
    # repeat the Kokoro split so that it makes up about kokoro_share of the treatment's hours
    repeats = max(1, round(s.kokoro_share / (1 - s.kokoro_share) * old_hours / max(hours["kokoro"], 1e-9)))
    mix = {
        "hours": {k: round(v, 3) for k, v in hours.items()},
        "kokoro_repeats": repeats,
        "kokoro_styles": sorted({e["speaker"] for e in read_manifest(kokoro_manifest)}),
        "train": {"control": old, "treatment": old + [str(kokoro_manifest)] * repeats},
    }
    (work / "mix.json").write_text(json.dumps(mix, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in mix.items() if k != "train"}, indent=1))
    return mix


def cache_features(s: Settings) -> None:
    from asr.data import load_feature_set
    from asr.features import FeatureConfig
    from asr.text import Vocabulary

    mix = json.loads((s.work_dir / "mix.json").read_text())
    manifests = dict.fromkeys(mix["train"]["treatment"] + [str(ROOT / s.corpus / "dev.jsonl")])
    for m in manifests:
        load_feature_set(m, FeatureConfig(), ROOT / "data" / "feats", 1, Vocabulary(), True)


# ----------------------------------------------------------------------------- training


def train_arm(s: Settings, arm: str) -> None:
    """One arm, in this process (``train`` runs both, pinned to a core each)."""
    import torch

    from asr import checkpoint
    from asr.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    if arm == "control":  # needs no Kokoro speech, so it can run before that corpus is finished
        manifests = old_manifests(s)
    else:
        manifests = json.loads((s.work_dir / "mix.json").read_text())["train"][arm]
    base = checkpoint.load_model(str(ROOT / s.base))
    start_step = int(base.meta["training"].get("steps", 0))
    config = TrainConfig(
        out_dir=str(s.work_dir / arm),
        train_manifests=manifests,
        dev_manifest=str(ROOT / s.corpus / "dev.jsonl"),
        kind=s.kind,
        dropout=s.dropout,
        max_steps=start_step + s.steps,
        lr=s.lr,
        lr_half_life=10**9,
        anneal_steps=round(s.anneal_fraction * s.steps),
        freq_warp=s.freq_warp,
        eval_every=10**9,  # dev is scored once, at the end
        save_every=100,
        seed=s.seed,
        threads=1,
        feature_jobs=1,
        cache_dir=str(ROOT / "data" / "feats"),
        max_wall_minutes=s.max_minutes,
        init_from=str(ROOT / s.base),
        rewarm_steps=s.rewarm_steps,
    )
    trainer = Trainer(config)
    started = time.time()
    trainer.train()
    final = trainer.shippable({"step": trainer.step})
    checkpoint.save(final, trainer.out / "final.pt")
    record = {
        "arm": arm,
        "steps": trainer.step - start_step,
        "from_step": start_step,
        "wall_seconds": round(time.time() - started, 1),
        "dev": trainer.history[-1] if trainer.history and "dev_cer" in trainer.history[-1] else None,
        "core": os.sched_getaffinity(0) and sorted(os.sched_getaffinity(0)),
    }
    (trainer.out / "run.json").write_text(json.dumps(record, indent=1), encoding="utf-8")


def probe_speed(s: Settings, steps: int = 20) -> float:
    """Seconds per step of the control's training on this core (to choose ``--steps``)."""
    import shutil

    import torch

    from asr import checkpoint
    from asr.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    out = s.work_dir / "probe"
    shutil.rmtree(out, ignore_errors=True)
    start_step = int(checkpoint.load_model(str(ROOT / s.base)).meta["training"].get("steps", 0))
    config = TrainConfig(
        out_dir=str(out),
        train_manifests=old_manifests(s),
        kind=s.kind,
        dropout=s.dropout,
        max_steps=start_step + steps,
        lr=s.lr,
        lr_half_life=10**9,
        freq_warp=s.freq_warp,
        save_every=10**9,
        seed=s.seed,
        threads=1,
        cache_dir=str(ROOT / "data" / "feats"),
        init_from=str(ROOT / s.base),
    )
    trainer = Trainer(config)
    started = time.time()
    trainer.train()
    per_step = (time.time() - started) / steps
    shutil.rmtree(out, ignore_errors=True)
    print(f"{per_step:.2f} s per step; {s.steps} steps take about {per_step * s.steps / 60:.1f} min")
    return per_step


def train_both(s: Settings, arms: list[str]) -> None:
    procs = []
    for arm in arms:
        core = s.cores[ARMS.index(arm)]
        log_file = (s.work_dir / f"{arm}.log").open("a")
        cmd = ["taskset", "-c", str(core), str(BIN / "python"), __file__, *settings_args(s), "train-arm", arm]
        print("+", " ".join(cmd), flush=True)
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT))
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a training run failed (exit {p.returncode}); see {s.work_dir}/*.log")


# ----------------------------------------------------------------------------- evaluation


EVAL_SETS = ("test", "kokoro_test", "pico", "smoke")


def _counts(rows: list[dict[str, str]]) -> dict[str, int]:
    from asr.metrics import error_rates

    c = error_rates((r["ref"], r["hyp"]) for r in rows)
    return {"char_errors": c.char_errors, "chars": c.chars, "word_errors": c.word_errors, "words": c.words}


def evaluate_model(s: Settings, name: str, model: str, sets: list[str]) -> dict[str, Any]:
    """The report's scores of one model on ``sets``, merged into ``WORK/eval-NAME.json``."""
    import torch

    from asr.api import load_decoder
    from asr.evaluate import evaluate_manifest, grouped_scores

    torch.set_num_threads(1)
    lm = load_decoder(ROOT / "models" / "lm")
    path = s.work_dir / f"eval-{name}.json"
    out: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    out["model"] = model
    manifests = {
        "test": (ROOT / s.corpus / "test.jsonl", False),
        "kokoro_test": (ROOT / s.kokoro_test / "test.jsonl", False),
        "pico": (ROOT / s.pico, True),
        "smoke": (ROOT / s.smoke, True),
    }
    for key in sets:
        manifest, beam = manifests[key]
        result, rows = evaluate_manifest(model, manifest)
        entry: dict[str, Any] = {
            "manifest": str(manifest.relative_to(ROOT)),
            "utterances": result.utterances,
            "greedy": {"wer": result.wer, "cer": result.cer},
            "by_voice": grouped_scores(rows, "voice"),
        }
        if key == "test":  # counts of the voices recorded from people, pooled with Pico's
            entry["human_counts"] = _counts([r for r in rows if r["voice"] in HUMAN_TEST_VOICES])
        if key == "pico":
            entry["human_counts"] = _counts(rows)
        if beam:
            result_lm, _ = evaluate_manifest(model, manifest, decoder=lm)
            entry["beam_lm"] = {"wer": result_lm.wer, "cer": result_lm.cer}
        out[key] = entry
        path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    if "test" in out and "pico" in out:
        c = {
            k: out["test"]["human_counts"][k] + out["pico"]["human_counts"][k]
            for k in out["pico"]["human_counts"]
        }
        out["human_heldout"] = {
            "voices": [*HUMAN_TEST_VOICES, "pico:en-GB"],
            "greedy": {"wer": c["word_errors"] / c["words"], "cer": c["char_errors"] / c["chars"]},
            "utterances": sum(out["test"]["by_voice"][v]["utterances"] for v in HUMAN_TEST_VOICES)
            + out["pico"]["utterances"],
        }
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"{name}: {path}")
    return out


def eval_models(s: Settings, names: list[str], sets: list[str]) -> None:
    """Score the models in parallel, one process per core and one thread each."""
    models = {
        "baseline": str(ROOT / s.base),
        "baseline-streaming": str(ROOT / "models" / "streaming" / "model.pt"),
        "control": str(s.work_dir / "control" / "final.pt"),
        "treatment": str(s.work_dir / "treatment" / "final.pt"),
    }
    procs = []
    for i, name in enumerate(names):
        cmd = ["taskset", "-c", str(s.cores[i % 2]), str(BIN / "python"), __file__, *settings_args(s)]
        cmd += [f"--sets={','.join(sets)}", "eval-one", name, models[name]]
        procs.append(subprocess.Popen(cmd, cwd=ROOT))
        if len(procs) == 2:
            for p in procs:
                p.wait()
            procs = []
    for p in procs:
        p.wait()


# ----------------------------------------------------------------------------- report


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


COLUMNS = {
    "baseline": "shipped offline",
    "control": "control",
    "treatment": "treatment",
    "baseline-streaming": "shipped streaming (reference)",
}


def _synthesis(s: Settings) -> dict[str, Any]:
    """What the Kokoro corpus build measured: its filter and, when recorded, its speed
    (``WORK/kokoro-speed.json``: ``audio_s_per_cpu_s`` and a ``note`` on how it was measured)."""
    styles = json.loads((ROOT / s.kokoro / "kokoro-styles.json").read_text(encoding="utf-8"))
    scores = styles.get("scores", {})
    kept = styles.get("kept", [])
    speed_file = s.work_dir / "kokoro-speed.json"
    return {
        "styles_tried": len(scores),
        "styles_kept": len(kept),
        "kept_by_split": {
            split: sum(1 for n in kept if scores[n]["split"] == split) for split in ("train", "dev", "test")
        },
        "filter": styles.get("config"),
        "speed": json.loads(speed_file.read_text()) if speed_file.exists() else None,
    }


def write_report(s: Settings) -> None:
    work = s.work_dir
    evals = {
        n: json.loads((work / f"eval-{n}.json").read_text())
        for n in COLUMNS
        if (work / f"eval-{n}.json").exists()
    }
    runs = {
        a: json.loads((work / a / "run.json").read_text()) for a in ARMS if (work / a / "run.json").exists()
    }
    mix = json.loads((work / "mix.json").read_text())
    synthesis = _synthesis(s)
    report = {
        "settings": dataclasses.asdict(s),
        "data": {k: v for k, v in mix.items() if k != "train"},
        "train_manifests": mix["train"],
        "kokoro_corpus": synthesis,
        "runs": runs,
        "eval": evals,
    }
    (ROOT / "reports" / "kokoro-finetune.json").write_text(json.dumps(report, indent=1), encoding="utf-8")

    names = list(evals)
    hours = mix["hours"]
    speed = synthesis["speed"]
    lines = [
        "# Kokoro-82M speech in fine-tuning: a controlled experiment",
        "",
        "Made by `scripts/kokoro_finetune.py`; its settings and every number are in",
        "`reports/kokoro-finetune.json`. Two fine-tunes of the shipped offline model (BiLSTM,",
        f"`models/offline`), from the same weights, {s.steps} steps each (batches of up to 160 s of audio;",
        f"lr {s.lr:g} after a {s.rewarm_steps}-step ramp, down to its floor over the last"
        f" {round(100 * s.anneal_fraction)}%), seed {s.seed}, SpecAugment, frequency warp {s.freq_warp},"
        f" dropout {s.dropout}, one CPU thread:",
        "",
        f"- **control**: a main-corpus slice, `{s.corpus}` ({hours['corpus']:.2f} h: espeak-ng, mbrola, flite,"
        f" festival), and `{s.supplement}` ({hours['supplement']:.2f} h of the supplements' engines:"
        f" {s.supplement_engines.replace('=', ' ')});",
        f"- **treatment**: the same, plus the Kokoro corpus's training split ({hours['kokoro']:.2f} h,"
        f" {len(mix['kokoro_styles'])} sampled styles) repeated {mix['kokoro_repeats']} times, so that"
        f" Kokoro is {_share(hours, mix['kokoro_repeats'])}% of the hours.",
        "",
        "Both arms take the same steps, so the control measures what more steps on the old kind of data",
        "do, and the difference between the arms is the effect of Kokoro speech.",
        "",
        f"The Kokoro corpus: {synthesis['styles_tried']} styles tried, {synthesis['styles_kept']} kept by the"
        f" intelligibility filter ({synthesis['kept_by_split']['train']} train,"
        f" {synthesis['kept_by_split']['dev']} dev, {synthesis['kept_by_split']['test']} test)."
        + (
            f" Synthesis with the corpus's augmentation ran at {speed['audio_s_per_cpu_s']:.2f} audio-seconds"
            f" per CPU-second: {speed['note']}."
            if speed
            else ""
        ),
        "",
        "## Results",
        "",
        "Greedy CER in % unless marked. *Beam + LM* is `asr eval --decoder beam`: beam search with the",
        "shipped KenLM 4-gram, no two-pass fusion (the README's offline-mode figures fuse, so they differ).",
        "",
        "| set | " + " | ".join(COLUMNS[n] for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    rows = [
        (
            "**held-out voices recorded from people, pooled** (the test split's flite rms, festival ked,"
            " mbrola us3/de4/pl1, and Pico en-GB)",
            lambda e: e["human_heldout"]["greedy"]["cer"],
        ),
        *[(f"test split: {v}", _voice(v)) for v in (*HUMAN_TEST_VOICES, "espeak (all variants)")],
        (
            "test split, all 1080 utterances (held-out voices and sentences)",
            lambda e: e["test"]["greedy"]["cer"],
        ),
        ("Pico en-GB set (100 utterances, held-out voice)", lambda e: e["pico"]["greedy"]["cer"]),
        ("Pico en-GB set, WER beam + LM", lambda e: e["pico"]["beam_lm"]["wer"]),
        ("**real-speech smoke set (20 clips), WER beam + LM**", lambda e: e["smoke"]["beam_lm"]["wer"]),
        ("real-speech smoke set, CER beam + LM", lambda e: e["smoke"]["beam_lm"]["cer"]),
        ("real-speech smoke set, greedy WER", lambda e: e["smoke"]["greedy"]["wer"]),
        (
            "Kokoro held-out styles (`data/kokoro-test`, 120 utterances, 6 styles)",
            lambda e: e["kokoro_test"]["greedy"]["cer"],
        ),
        ("Kokoro held-out styles, greedy WER", lambda e: e["kokoro_test"]["greedy"]["wer"]),
    ]
    for label, get in rows:
        cells = []
        for n in names:
            try:
                cells.append(_pct(get(evals[n])))
            except KeyError:
                cells.append("—")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| run | core | steps | wall time (min) | dev CER, greedy (480 utterances, held-out voices) |",
        "|---|---|---|---|---|",
    ]
    base_dev = None
    if "baseline" in evals:
        from asr.checkpoint import load_model

        base_dev = load_model(str(ROOT / s.base)).meta["metrics"].get("dev_cer")
    if base_dev is not None:
        lines.append(f"| shipped offline | — | — | — | {100 * base_dev:.2f} |")
    for arm, r in runs.items():
        dev = f"{100 * r['dev']['dev_cer']:.2f}" if r.get("dev") else "—"
        core = ",".join(str(c) for c in r.get("core") or [])
        lines.append(f"| {arm} | {core} | {r['steps']} | {r['wall_seconds'] / 60:.1f} | {dev} |")
    lines += ["", "## What the numbers show", "", "<!-- findings -->", ""]
    md = ROOT / "reports" / "kokoro-finetune.md"
    findings = ""
    if md.exists():  # keep the hand-written findings across re-runs
        text = md.read_text(encoding="utf-8")
        if "<!-- findings -->" in text:
            findings = text.split("<!-- findings -->", 1)[1].strip()
    md.write_text("\n".join(lines) + (findings + "\n" if findings else ""), encoding="utf-8")
    print(md)


def _share(hours: dict[str, float], repeats: int) -> int:
    k = hours["kokoro"] * repeats
    return round(100 * k / (k + hours["corpus"] + hours["supplement"]))


def _voice(voice: str) -> Any:
    return lambda e: e["test"]["by_voice"][voice]["cer"]


# ----------------------------------------------------------------------------- CLI


def settings_args(s: Settings) -> list[str]:
    return [
        f"--steps={s.steps}",
        f"--lr={s.lr}",
        f"--kokoro-share={s.kokoro_share}",
        f"--cores={s.cores[0]},{s.cores[1]}",
        f"--max-minutes={s.max_minutes}",
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=Settings.steps, help="fine-tuning steps per arm")
    p.add_argument("--lr", type=float, default=Settings.lr)
    p.add_argument("--kokoro-share", type=float, default=Settings.kokoro_share)
    p.add_argument("--cores", default="0,1", help="CPU cores of the control and treatment runs")
    p.add_argument("--max-minutes", type=float, default=Settings.max_minutes, help="safety cap per run")
    p.add_argument(
        "step",
        choices=[
            "data",
            "kokoro-test",
            "manifests",
            "cache",
            "probe",
            "train",
            "train-arm",
            "eval",
            "eval-one",
            "report",
            "all",
        ],
    )
    p.add_argument(
        "names",
        nargs="*",
        help="train: arms; eval: models (baseline, baseline-streaming, control, treatment)",
    )
    p.add_argument("--sets", default=",".join(EVAL_SETS), help="eval: the sets to score (comma-separated)")
    args = p.parse_args()
    sets = [x for x in args.sets.split(",") if x]
    if unknown := set(sets) - set(EVAL_SETS):
        raise SystemExit(f"--sets: expected some of {EVAL_SETS}, got {sorted(unknown)}")
    cores = tuple(int(c) for c in args.cores.split(","))
    if len(cores) != 2:
        raise SystemExit(f"--cores: expected two cores like 0,1, got {args.cores!r}")
    s = Settings(
        steps=args.steps,
        lr=args.lr,
        kokoro_share=args.kokoro_share,
        cores=(cores[0], cores[1]),
        max_minutes=args.max_minutes,
    )
    s.work_dir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    if args.step in ("data", "all"):
        build_data(s)
    if args.step == "kokoro-test":
        build_kokoro_test(s)
    if args.step in ("manifests", "all"):
        write_manifests(s)
    if args.step in ("cache", "all"):
        cache_features(s)
    if args.step == "probe":
        probe_speed(s)
    if args.step in ("train", "all"):
        train_both(s, args.names or list(ARMS))
    if args.step == "train-arm":
        train_arm(s, args.names[0])
    if args.step in ("eval", "all"):
        eval_models(s, args.names or ["baseline", "baseline-streaming", "control", "treatment"], sets)
    if args.step == "eval-one":
        evaluate_model(s, args.names[0], args.names[1], sets)
    if args.step in ("report", "all"):
        write_report(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
