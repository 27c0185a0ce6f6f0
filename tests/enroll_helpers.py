"""Speech-like takes and tiny adapted profiles for the profile, enrollment and adaptation tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from asr.audio import write_wav
from asr.profiles import ProfileStore
from tests.helpers import write_tiny_checkpoints

TAKE_TEXTS = ["go on now", "stop right here", "yes we can", "no way out", "turn left", "come back soon"]


def speechlike(text: str, seed: int = 0, rate: int = 16000, level: float = 0.3) -> np.ndarray:
    """A take that passes the take checks: a 70 ms tone burst per letter (its pitch set by
    the letter), pauses between words, quiet lead-in and tail, a little noise."""
    rng = np.random.default_rng(seed)
    burst = int(0.07 * rate)
    pieces = [np.zeros(int(0.2 * rate))]
    for word in text.split():
        for ch in word:
            t = np.arange(burst) / rate
            freq = 200 + 35 * (ord(ch) - 96)
            pieces.append(level * np.sin(2 * np.pi * freq * t) * np.hanning(burst))
        pieces.append(np.zeros(int(0.06 * rate)))
    pieces.append(np.zeros(int(0.2 * rate)))
    audio = np.concatenate(pieces)
    return (audio + 0.001 * rng.standard_normal(len(audio))).astype(np.float32)


def write_takes(folder: Path, n: int = 12, seed: int = 0) -> Path:
    """n speech-like wavs and a JSONL manifest (audio_filepath relative, text) of them."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        text = TAKE_TEXTS[i % len(TAKE_TEXTS)]
        write_wav(folder / f"take{i:02d}.wav", speechlike(text, seed + i))
        lines.append(json.dumps({"audio_filepath": f"take{i:02d}.wav", "text": text.upper() + "."}))
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def fake_adapted_profile(store: ProfileStore, name: str, seed: int, blank_share: float) -> None:
    """A profile holding tiny checkpoints in the adapted models' places (for serving tests)."""
    streaming, offline = write_tiny_checkpoints(store.root / f".models-{name}", seed, blank_share)
    store.create(name)
    for kind, path in (("streaming", streaming), ("offline", offline)):
        target = store.model_path(name, kind)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
