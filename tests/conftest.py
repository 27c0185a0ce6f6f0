"""Shared fixtures: tiny models, a tiny synthetic manifest and checkpoints (no downloads).

The helpers they are built on live in ``tests/helpers.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asr import checkpoint
from asr.api import Recognizer
from asr.decoding import Decoder
from asr.model import CTCModel
from tests.helpers import tiny_config, write_tiny_checkpoints, write_tiny_manifest


@pytest.fixture
def tiny_model() -> CTCModel:
    torch.manual_seed(0)
    return CTCModel(tiny_config()).eval()


@pytest.fixture
def tiny_offline_model() -> CTCModel:
    torch.manual_seed(1)
    return CTCModel(tiny_config(bidirectional=True)).eval()


@pytest.fixture
def tiny_manifest(tmp_path: Path) -> Path:
    return write_tiny_manifest(tmp_path / "tiny")


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Tiny streaming and offline checkpoints on disk (streaming blank-biased to 0.6)."""
    folder = tmp_path_factory.mktemp("models")
    paths = write_tiny_checkpoints(folder, seed=3, blank_share=0.6)
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def recognizer(model_paths: tuple[Path, Path]) -> Recognizer:
    """A recogniser on :func:`model_paths` without an LM (modules may define their own)."""
    return Recognizer(checkpoint.load_model(model_paths[0]), checkpoint.load_model(model_paths[1]), Decoder())
