"""Shared fixtures: tiny models and a tiny synthetic manifest (no downloads)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.audio import write_wav
from asr.model import CTCModel, ModelConfig

TINY_TEXTS = ["go on", "stop now", "yes", "no way", "left turn", "right here"]


def tiny_config(bidirectional: bool = False) -> ModelConfig:
    return ModelConfig(proj_dim=24, hidden=16, layers=2, bidirectional=bidirectional, dropout=0.0)


@pytest.fixture
def tiny_model() -> CTCModel:
    torch.manual_seed(0)
    return CTCModel(tiny_config()).eval()


@pytest.fixture
def tiny_offline_model() -> CTCModel:
    torch.manual_seed(1)
    return CTCModel(tiny_config(bidirectional=True)).eval()


def write_tiny_checkpoints(folder: Path, seed: int, blank_share: float) -> tuple[Path, Path]:
    """Tiny streaming (blank-biased, so noise gives some text) and offline checkpoints on disk."""
    from asr import checkpoint
    from asr.features import FeatureConfig, Normalizer
    from asr.text import Vocabulary
    from tests.test_streaming import _blank_biased

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, bidirectional in (("stream.pt", False), ("offline.pt", True)):
        torch.manual_seed(seed)
        model = CTCModel(tiny_config(bidirectional)).eval()
        if not bidirectional:
            _blank_biased(model, blank_share=blank_share)
        ckpt = checkpoint.make_checkpoint(
            model, Vocabulary(), FeatureConfig(), Normalizer.identity(80), {}, {}
        )
        checkpoint.save(ckpt, folder / name)
        paths.append(folder / name)
    return paths[0], paths[1]


# Voice fields like a corpus manifest's (asr eval --by voice pools the espeak-ng variants).
TINY_VOICES = [("espeak", "espeak:en-us+m3"), ("flite", "flite:awb"), ("espeak", "espeak:en-gb+f2")]


def write_tiny_manifest(folder: Path, n: int = 12, seed: int = 0) -> Path:
    """n short noisy 'utterances' whose spectra depend on their text; enough to train on."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        text = TINY_TEXTS[i % len(TINY_TEXTS)]
        seconds = 0.6 + 0.1 * len(text) / 4
        t = np.arange(int(16000 * seconds)) / 16000
        tone = sum(np.sin(2 * np.pi * (200 + 40 * (ord(c) - 96)) * t) for c in text if c != " ")
        audio = (0.05 * tone + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
        audio /= max(1.0, float(np.abs(audio).max()) / 0.9)
        path = folder / f"utt{i:03d}.wav"
        write_wav(path, audio)
        engine, voice = TINY_VOICES[i % len(TINY_VOICES)]
        entry = {"audio_filepath": path.name, "duration": seconds, "text": text, "engine": engine}
        entry |= {"voice": voice, "augment": {"gain_db": -3.0} if i % 2 else {}}
        lines.append(json.dumps(entry))
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


@pytest.fixture
def tiny_manifest(tmp_path: Path) -> Path:
    return write_tiny_manifest(tmp_path / "tiny")


def run_unguarded_script(folder: Path, source: str) -> list[str]:
    """Run ``source`` as a script with no ``__main__`` guard (how embedding apps often
    start); its stdout lines. Fails the test on a non-zero exit, with the script's stderr."""
    script = folder / "app.py"
    script.write_text(source)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240, cwd=folder
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()
