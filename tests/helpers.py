"""Helpers shared by the test modules: tiny models, synthetic audio and manifests, gRPC
requests, and runners for scripts. Fixtures built on them live in ``conftest.py``.

Test modules import shared code from here only, never from each other.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch

from asr import checkpoint
from asr.audio import write_wav
from asr.decoding import Decoder
from asr.features import FeatureConfig, Normalizer, log_mel
from asr.model import CTCModel, ModelConfig
from asr.streaming import SessionConfig, StreamingSession
from asr.text import LABELS, Vocabulary
from asr.v1 import asr_pb2

if TYPE_CHECKING:
    from asr.api import Recognizer
    from asr.corpus.build import CorpusConfig
    from asr.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
TINY_TEXTS = ["go on", "stop now", "yes", "no way", "left turn", "right here"]
# Voice fields like a corpus manifest's (asr eval --by voice pools the espeak-ng variants).
TINY_VOICES = [("espeak", "espeak:en-us+m3"), ("flite", "flite:awb"), ("espeak", "espeak:en-gb+f2")]

Request = asr_pb2.StreamingRecognizeRequest


# ------------------------------------------------------------------ tiny models
def tiny_config(bidirectional: bool = False) -> ModelConfig:
    return ModelConfig(proj_dim=24, hidden=16, layers=2, bidirectional=bidirectional, dropout=0.0)


def blank_biased(model: CTCModel, blank_share: float = 0.7) -> CTCModel:
    """Make the random tiny model emit blanks on about ``blank_share`` of the steps of noise.

    Its raw output barely depends on the input, so the head is amplified and the blank
    bias set at the matching quantile of the blank-vs-best-letter margin.
    """
    rng = np.random.default_rng(123)
    feats = log_mel((0.3 * rng.standard_normal(16000 * 4)).astype(np.float32))[None]
    with torch.no_grad():
        model.head[1].weight.mul_(40.0)
        model.head[1].bias.mul_(40.0)
        model.head[1].bias[0] = 0.0
        lp, _, _ = model(feats, torch.tensor([feats.shape[1]]))
        margin = lp[0, :, 1:].max(-1).values - lp[0, :, 0]  # > 0: a letter wins
        model.head[1].bias[0] = float(torch.quantile(margin, blank_share))
    return model


def tiny_session(model: CTCModel, **config: Any) -> StreamingSession:
    """A stream-mode session on ``model`` with an identity normaliser and no LM."""
    return StreamingSession(model, Normalizer.identity(80), Decoder(), SessionConfig(**config))


def write_tiny_checkpoints(folder: Path, seed: int, blank_share: float) -> tuple[Path, Path]:
    """Tiny streaming (blank-biased, so noise gives some text) and offline checkpoints on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, bidirectional in (("stream.pt", False), ("offline.pt", True)):
        torch.manual_seed(seed)
        model = CTCModel(tiny_config(bidirectional)).eval()
        if not bidirectional:
            blank_biased(model, blank_share=blank_share)
        ckpt = checkpoint.make_checkpoint(
            model, Vocabulary(), FeatureConfig(), Normalizer.identity(80), {}, {}
        )
        checkpoint.save(ckpt, folder / name)
        paths.append(folder / name)
    return paths[0], paths[1]


def make_tiny_recognizer(folder: Path, blank_share: float = 0.5) -> Recognizer:
    """Tiny streaming + offline models (hidden 16) saved and loaded as checkpoints.

    The streaming head is biased so that noise gives letters on about half the steps
    (partials and finals then have text, though meaningless).
    """
    from asr.api import Recognizer

    folder.mkdir(parents=True, exist_ok=True)

    def make(bidirectional: bool, path: Path) -> checkpoint.LoadedModel:
        torch.manual_seed(0)
        model = CTCModel(tiny_config(bidirectional))
        ckpt = checkpoint.make_checkpoint(
            model, Vocabulary(), FeatureConfig(), Normalizer.identity(80), {}, {}
        )
        checkpoint.save(ckpt, path)
        return checkpoint.load_model(path)

    streaming = make(False, folder / "stream.pt")
    blank_biased(streaming.model, blank_share)
    return Recognizer(streaming, make(True, folder / "offline.pt"), Decoder())


def tiny_train_config(tmp_path: Path, manifest: Path, out: str, steps: int) -> TrainConfig:
    """A training run of a tiny model on ``manifest`` for ``steps`` steps, on one thread."""
    from asr.train import TrainConfig

    return TrainConfig(
        out_dir=str(tmp_path / out),
        train_manifests=[str(manifest)],
        dev_manifest=str(manifest),
        hidden=16,
        layers=2,
        proj_dim=24,
        max_steps=steps,
        max_frames=400,
        lr=3e-3,
        warmup_steps=2,
        eval_every=1000,
        save_every=1000,
        log_every=1,
        threads=1,
        feature_jobs=1,
        cache_dir=str(tmp_path / "feats"),
    )


# ------------------------------------------------------------ audio and text
def tiny_corpus_config(out: Path, text: dict[str, list[str]], engine: str) -> CorpusConfig:
    """A corpus of a few seconds from one engine, with its text splits written under ``out/text``
    (so the build reads no Debian text package)."""
    from asr.corpus.build import CorpusConfig

    text_dir = out / "text"
    text_dir.mkdir()
    for split, sentences in text.items():
        (text_dir / f"{split}.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return CorpusConfig(
        out=out, hours=0.003, dev_utts=4, test_utts=4, shard_size=4, jobs=1, engine_weights={engine: 1.0}
    )


def noise(seconds: float, seed: int = 0, rate: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal(int(rate * seconds))).astype(np.float32)


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


def spell(text: str, frames_per_char: int = 2, gap: int = 1, lead: int = 3, p: float = 0.9) -> np.ndarray:
    """Log-probs whose best path spells ``text`` (blanks between characters)."""
    rows = [0] * lead
    for ch in text:
        rows += [LABELS.index(ch)] * frames_per_char + [0] * gap
    rows += [0] * lead
    probs = np.full((len(rows), len(LABELS)), (1 - p) / (len(LABELS) - 1), np.float32)
    probs[np.arange(len(rows)), rows] = p
    return np.log(probs)


def noisy_spelling(rng: np.random.Generator, text: str, noise: float) -> np.ndarray:
    """:func:`spell` with Gaussian noise on the logits, renormalised."""
    lp = spell(text, frames_per_char=2, gap=int(rng.integers(1, 6)), lead=8, p=0.97)
    logits = lp + rng.normal(0, noise, lp.shape).astype(np.float32)
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


# ------------------------------------------------------------- gRPC requests
def config_request(
    rate: int = 16000,
    encoding: int = asr_pb2.LINEAR16,
    model: str = "stream",
    interim: bool = False,
    **endpointing: int,
) -> Request:
    config = asr_pb2.RecognitionConfig(
        encoding=encoding,
        sample_rate_hertz=rate,
        model=model,
        endpointing=asr_pb2.EndpointingConfig(**endpointing),
    )
    return Request(
        streaming_config=asr_pb2.StreamingRecognitionConfig(config=config, interim_results=interim)
    )


def audio_requests(data: bytes, sizes: list[int] | int = 3200) -> list[Request]:
    out, i, k = [], 0, 0
    while i < len(data):
        n = sizes if isinstance(sizes, int) else sizes[k % len(sizes)]
        out.append(Request(audio_content=data[i : i + n]))
        i, k = i + n, k + 1
    return out


def finals(responses: list[asr_pb2.StreamingRecognizeResponse]) -> list[tuple[str, float, float, int]]:
    return [
        (r.alternatives[0].transcript, r.result_start_time, r.result_end_time, r.utterance_index)
        for response in responses
        for r in response.results
        if r.is_final
    ]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A key and a self-signed certificate for localhost and 127.0.0.1 (skips without openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


# ------------------------------------------------------------------ scripts
def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` imported as the module ``name`` (with scripts/ on ``sys.path``, as
    when the script runs, for the helper modules it imports)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.append(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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
