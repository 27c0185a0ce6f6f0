"""Build the synthetic speech corpus: text + voices -> augmented wav + JSONL manifests.

Layout of the output folder::

    OUT/text/{train,dev,test}.txt    sentences of each split (LM text = train only)
    OUT/voices.json                  the speaker split
    OUT/kokoro-styles.json           Kokoro styles' intelligibility scores (with --engines kokoro)
    OUT/shards/<split>-<k>.jsonl     one finished shard (the unit of resume)
    OUT/wav/<split>-<k>/<id>.wav     16 kHz mono PCM16
    OUT/{train,dev,test}.jsonl       merged manifests
    OUT/summary.json                 hours per split, engine and voice; build speed

Splits are deterministic from the seed. dev and test hold out whole speakers *and*
whole sentences: a test sentence is only ever spoken by a test voice and never
appears in train text, and no test speaker is used for training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr.audio import AudioError, load_audio, write_wav
from asr.corpus.augment import CLEAN, AugmentConfig, augment
from asr.corpus.config import CorpusConfig
from asr.corpus.kokoro import kokoro_voices, style_split
from asr.corpus.text_sources import TEXT_PACKAGES, collect_sentences
from asr.corpus.voices import (
    FESTIVAL_ENGINES,
    Prosody,
    Voice,
    available_voices,
    synthesize,
    synthesize_festival_batch,
)
from asr.manifest import read_manifest, write_manifest

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
# Recorded-voice speakers held out by name. espeak variants are held out by hash.
# pico-kh0 (SVOX Pico en-GB) is in no corpus split (its engine is off in the default mix and the
# supplements build no test split); holding it out keeps it out of every training set, so the
# held-out-voice Pico set (scripts/piper_eval_set.py --voice pico:en-GB) stays held out.
HELD_OUT_SPEAKERS = {
    "test": ("rms", "ked", "mb-us3", "mb-de4-en", "mb-pl1-en", "pico-kh0"),
    "dev": ("mb-us2", "mb-nl2-en"),
}
ESPEAK_HOLDOUT_PERMILLE = {"test": 100, "dev": 60}
SENTENCE_HOLDOUT_PERMILLE = {"test": 20, "dev": 15}
AVG_UTTERANCE_SECONDS = 4.0  # first guess, replaced by the measured mean once shards exist


def _bucket(seed: int, key: str) -> int:
    """A stable 0..999 bucket for a key (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % 1000


def _split_of(seed: int, key: str, permille: dict[str, int]) -> str:
    b = _bucket(seed, key)
    if b < permille["test"]:
        return "test"
    if b < permille["test"] + permille["dev"]:
        return "dev"
    return "train"


def split_sentences(sentences: Sequence[str], seed: int) -> dict[str, list[str]]:
    """Hold out whole sentences for dev and test, deterministically."""
    splits: dict[str, list[str]] = {s: [] for s in SPLITS}
    for sentence in sentences:
        splits[_split_of(seed, "sentence:" + sentence, SENTENCE_HOLDOUT_PERMILLE)].append(sentence)
    return splits


def split_voices(voices: Sequence[Voice], seed: int) -> dict[str, list[Voice]]:
    """Hold out whole speakers for dev and test, deterministically."""
    named = {spk: split for split, spks in HELD_OUT_SPEAKERS.items() for spk in spks}
    splits: dict[str, list[Voice]] = {s: [] for s in SPLITS}
    for voice in voices:
        if voice.speaker in named:
            split = named[voice.speaker]
        elif voice.speaker.startswith("espeak+"):
            split = _split_of(seed, "speaker:" + voice.speaker, ESPEAK_HOLDOUT_PERMILLE)
        elif voice.engine == "kokoro":  # whole styles, the same in every corpus
            split = style_split(voice.name)
        else:
            split = "train"
        splits[split].append(voice)
    return splits


_MISSING_TEXT = f"install {' '.join(TEXT_PACKAGES)} with `make corpus-deps`"


def prepare_text(out: Path, seed: int) -> dict[str, list[str]]:
    """Collect, clean and split the sentences once; later builds reuse the files."""
    text_dir = out / "text"
    if all((text_dir / f"{s}.txt").exists() for s in SPLITS):
        return {s: (text_dir / f"{s}.txt").read_text(encoding="utf-8").splitlines() for s in SPLITS}
    per_source = collect_sentences()
    everything = [s for sentences in per_source.values() for s in sentences]
    if not everything:
        raise ValueError(f"expected English sentences from Debian's text packages, got none: {_MISSING_TEXT}")
    splits = split_sentences(everything, seed)
    text_dir.mkdir(parents=True, exist_ok=True)
    for name, sentences in splits.items():
        (text_dir / f"{name}.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    (text_dir / "sources.json").write_text(
        json.dumps({k: len(v) for k, v in per_source.items()}, indent=1), encoding="utf-8"
    )
    return splits


def prepare_voices(out: Path, seed: int, kokoro: bool = False) -> dict[str, list[Voice]]:
    """Split the available voices once (``OUT/voices.json``); ``kokoro`` adds the Kokoro styles
    that pass their intelligibility filter (run here, once)."""
    path = out / "voices.json"
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        return {s: [Voice(**v) for v in data[s]] for s in SPLITS}
    voices = available_voices()
    if kokoro:
        voices += kokoro_voices(out)
    splits = split_voices(voices, seed)
    if not splits["train"]:
        raise RuntimeError("no TTS voices found: install espeak-ng, flite or festival (see README)")
    path.write_text(json.dumps({s: [asdict(v) for v in vs] for s, vs in splits.items()}, indent=1))
    return splits


@dataclass(frozen=True)
class UtterancePlan:
    utt_id: str
    text: str
    voice: Voice
    prosody: Prosody
    augment: AugmentConfig
    seed: int


def plan_shard(
    split: str,
    k: int,
    config: CorpusConfig,
    sentences: Sequence[str],
    voices: Sequence[Voice],
) -> list[UtterancePlan]:
    """Choose the utterances of shard ``k`` of a split; pure function of the seed."""
    rng = np.random.default_rng([config.seed, SPLITS.index(split), k])
    by_engine: dict[str, list[Voice]] = defaultdict(list)
    for v in voices:
        by_engine[v.engine].append(v)
    engines = sorted(e for e in by_engine if config.engine_weights.get(e, 0) > 0)
    if not engines:
        raise ValueError(
            f"expected {split} voices from an engine with weight > 0 ({config.engine_weights}), "
            f"got voices of {sorted(by_engine)}"
        )
    weights = np.array([config.engine_weights[e] for e in engines])
    weights /= weights.sum()
    cycle = None
    if config.text_order == "cycle":
        cycle = np.random.default_rng([config.seed, SPLITS.index(split), 1 << 20]).permutation(len(sentences))
    plans = []
    for i in range(config.shard_size):
        engine = engines[int(rng.choice(len(engines), p=weights))]
        voice = by_engine[engine][int(rng.integers(len(by_engine[engine])))]
        prosody = Prosody(
            rate=float(rng.uniform(0.8, 1.25)),
            pitch=float(rng.uniform(0.75, 1.3)),
            volume=float(rng.uniform(0.6, 1.4)),
        )
        # Held-out splits: half clean, half augmented like training.
        aug = AugmentConfig() if split == "train" or rng.random() < 0.5 else CLEAN
        drawn = int(rng.integers(len(sentences)))  # drawn in both orders, so the rest stays the same
        if cycle is not None:
            drawn = int(cycle[(k * config.shard_size + i) % len(sentences)])
        plans.append(
            UtterancePlan(
                utt_id=f"{split}-{k:05d}-{i:03d}",
                text=sentences[drawn],
                voice=voice,
                prosody=prosody,
                augment=aug,
                seed=int(rng.integers(2**31)),
            )
        )
    return plans


def run_shard(args: tuple[str, list[UtterancePlan], str]) -> tuple[str, list[dict[str, Any]], int]:
    """Synthesise, augment and write one shard; returns (name, entries, failures)."""
    name, plans, out_str = args
    out = Path(out_str)
    wav_dir = out / "wav" / name
    tmp_dir = out / "tmp" / name
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    wav_dir.mkdir(parents=True, exist_ok=True)

    raw_paths = {p.utt_id: tmp_dir / f"{p.utt_id}.wav" for p in plans}
    festival: dict[Voice, list[UtterancePlan]] = defaultdict(list)
    for p in plans:
        if p.voice.engine in FESTIVAL_ENGINES:
            festival[p.voice].append(p)
            continue
        try:
            synthesize(p.voice, p.text, p.prosody, raw_paths[p.utt_id])
        except (RuntimeError, OSError) as e:
            log.warning("%s: %s", p.utt_id, e)
    for voice, group in festival.items():
        synthesize_festival_batch(voice, [(p.text, p.prosody, raw_paths[p.utt_id]) for p in group])

    clean: dict[str, np.ndarray] = {}
    for p in plans:
        try:
            audio = load_audio(raw_paths[p.utt_id])
        except AudioError as e:
            log.warning("%s: %s", p.utt_id, e)
            continue
        if len(audio) > 1600 and np.max(np.abs(audio)) > 1e-3:
            clean[p.utt_id] = audio
    others = list(clean.values())

    entries = []
    for p in plans:
        if p.utt_id not in clean:
            continue
        rng = np.random.default_rng(p.seed)
        audio, info = augment(clean[p.utt_id], rng, p.augment, others)
        rel = Path("wav") / name / f"{p.utt_id}.wav"
        write_wav(out / rel, audio)
        entries.append(
            {
                "audio_filepath": str(rel),
                "duration": round(len(audio) / 16000, 3),
                "text": p.text,
                "engine": p.voice.engine,
                "voice": p.voice.id,
                "speaker": p.voice.speaker,
                "rate": round(p.prosody.rate, 3),
                "pitch": round(p.prosody.pitch, 3),
                "augment": info,
            }
        )
    shutil.rmtree(tmp_dir, ignore_errors=True)
    write_manifest(out / "shards" / f"{name}.jsonl", entries)
    return name, entries, len(plans) - len(entries)


def _done_shards(out: Path) -> dict[str, list[dict[str, Any]]]:
    shard_dir = out / "shards"
    if not shard_dir.is_dir():
        return {}
    return {p.stem: read_manifest(p, resolve=False) for p in sorted(shard_dir.glob("*.jsonl"))}


def build_corpus(config: CorpusConfig, progress: bool = True) -> dict[str, Any]:
    """Build (or resume) the corpus and return its summary."""
    from tqdm import tqdm

    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    sentences = prepare_text(out, config.seed)
    wanted = {"train": config.hours > 0, "dev": config.dev_utts > 0, "test": config.test_utts > 0}
    for split, needed in wanted.items():
        if needed and not any(sentences[split]):
            raise ValueError(
                f"expected {split} sentences in {out / 'text' / split}.txt, got none: {_MISSING_TEXT}, "
                f"then remove {out / 'text'} so that it is written again"
            )
    voices = prepare_voices(out, config.seed, kokoro=config.engine_weights.get("kokoro", 0) > 0)
    for split in SPLITS:
        log.info("%s: %d sentences, %d voices", split, len(sentences[split]), len(voices[split]))

    done = _done_shards(out)
    failures = 0
    held_out_shards = {
        s: math.ceil(n / config.shard_size) for s, n in (("dev", config.dev_utts), ("test", config.test_utts))
    }
    target_s = config.hours * 3600
    new_audio_s = 0.0
    ctx = mp.get_context("spawn")
    with ctx.Pool(config.jobs, initializer=_worker_init) as pool:
        bar = tqdm(
            total=round(target_s / 3600, 2),
            disable=not progress,
            desc="corpus",
            bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} h of train audio [{elapsed}<{remaining}{postfix}]",
        )
        while True:
            train_s = sum(e["duration"] for n, es in done.items() if n.startswith("train") for e in es)
            bar.n = round(train_s / 3600, 2)
            bar.total = max(bar.total, bar.n)  # a corpus resumed with a smaller --hours
            bar.refresh()
            n_train_done = sum(1 for n in done if n.startswith("train"))
            mean_shard_s = (
                train_s / n_train_done if n_train_done else AVG_UTTERANCE_SECONDS * config.shard_size
            )
            shards: dict[str, int] = {
                "train": n_train_done + math.ceil(max(0.0, target_s - train_s) / mean_shard_s)
            }
            shards.update(held_out_shards)
            todo = [
                (split, k) for split, n in shards.items() for k in range(n) if f"{split}-{k:05d}" not in done
            ]
            if not todo:
                break
            jobs = [
                (f"{s}-{k:05d}", plan_shard(s, k, config, sentences[s], voices[s]), str(out)) for s, k in todo
            ]
            for name, entries, failed in pool.imap_unordered(run_shard, jobs):
                done[name] = entries
                failures += failed
                seconds = sum(e["duration"] for e in entries)
                new_audio_s += seconds
                if name.startswith("train"):
                    advance_hours(bar, seconds / 3600)
                bar.set_postfix(speed=f"{new_audio_s / max(time.time() - started, 1e-9):.0f}x")
        bar.close()

    for split in SPLITS:
        entries = [e for n, es in sorted(done.items()) if n.startswith(split + "-") for e in es]
        write_manifest(out / f"{split}.jsonl", entries)
    wall = time.time() - started
    summary = summarize(done, wall_seconds=wall, new_audio_seconds=new_audio_s, failures=failures)
    summary["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def advance_hours(bar: Any, hours: float) -> None:
    """Add ``hours`` to the corpus bar, raising its total when the last shards overshoot.

    The shards in flight when the target is reached still finish, so the train audio
    ends a little past ``--hours``; tqdm drops a total that ``n`` passes by 0.5 or more,
    and the bar's ``{total:.2f}`` then failed and ended the build before its manifests
    were written.
    """
    step = round(hours, 3)
    if bar.total is not None and bar.n + step > bar.total:
        bar.total = round(bar.n + step, 2)
    bar.update(step)


def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.basicConfig(level=logging.WARNING)


def summarize(
    done: dict[str, list[dict[str, Any]]],
    wall_seconds: float,
    new_audio_seconds: float,
    failures: int,
) -> dict[str, Any]:
    """Hours per split, engine and voice, and the build speed of this run."""
    hours: dict[str, Any] = {}
    for split in SPLITS:
        entries = [e for n, es in done.items() if n.startswith(split + "-") for e in es]
        per_engine: dict[str, float] = defaultdict(float)
        per_voice: dict[str, float] = defaultdict(float)
        for e in entries:
            per_engine[e["engine"]] += e["duration"] / 3600
            per_voice[e["voice"]] += e["duration"] / 3600
        hours[split] = {
            "utterances": len(entries),
            "hours": round(sum(per_engine.values()), 3),
            "speakers": len({e["speaker"] for e in entries}),
            "voices": len(per_voice),
            "per_engine": {k: round(v, 3) for k, v in sorted(per_engine.items())},
            "per_voice": {k: round(v, 4) for k, v in sorted(per_voice.items())},
        }
    return {
        "splits": hours,
        "build_wall_seconds": round(wall_seconds, 1),
        "audio_hours_this_run": round(new_audio_seconds / 3600, 3),
        "speed_x_realtime": round(new_audio_seconds / max(wall_seconds, 1e-9), 1),
        "failed_utterances": failures,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable table of the summary (per engine; per voice for recorded voices)."""
    lines = []
    for split, s in summary["splits"].items():
        lines.append(
            f"{split:5s}: {s['hours']:.2f} h, {s['utterances']} utterances, "
            f"{s['voices']} voices, {s['speakers']} speakers"
        )
        for engine, h in s["per_engine"].items():
            lines.append(f"    {engine:9s} {h:7.2f} h")
        recorded = {v: h for v, h in s["per_voice"].items() if not v.startswith("espeak:")}
        for voice, h in recorded.items():
            lines.append(f"        {voice:32s} {h:6.2f} h")
        n_espeak = sum(1 for v in s["per_voice"] if v.startswith("espeak:"))
        if n_espeak:
            lines.append(f"        espeak-ng: {n_espeak} accent+variant voices (per voice in summary.json)")
    lines.append(
        f"this run: {summary['audio_hours_this_run']:.2f} h of audio in "
        f"{summary['build_wall_seconds'] / 60:.1f} min = {summary['speed_x_realtime']:.0f}x real time; "
        f"{summary['failed_utterances']} utterances failed"
    )
    return "\n".join(lines)
