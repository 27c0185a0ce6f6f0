"""Shared names and numbers: the modes, the sample rate, the model step."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from asr import checkpoint
from asr.api import Recognizer
from asr.checkpoint import LoadedModel
from asr.constants import MODES, SAMPLE_RATE, Mode, step_seconds
from asr.decoding import Decoder
from asr.features import FeatureConfig, Normalizer
from asr.model import CTCModel, ModelConfig
from asr.offline import OfflineBatchRecognizer
from asr.streaming import SessionConfig, StreamingSession
from asr.text import Vocabulary
from tests.helpers import spell, tiny_config


def test_modes_are_their_wire_strings() -> None:
    assert [str(m) for m in MODES] == ["stream", "two-pass", "offline"]
    assert Mode("two-pass") is Mode.TWO_PASS and Mode.TWO_PASS == "two-pass"
    assert SessionConfig(mode="offline").mode == Mode.OFFLINE
    assert SessionConfig().mode == "stream"
    with pytest.raises(ValueError, match="expected mode"):
        SessionConfig(mode="sideways")


def test_step_follows_the_feature_and_model_config() -> None:
    features, model = FeatureConfig(), ModelConfig()
    assert features.sample_rate == SAMPLE_RATE
    assert step_seconds(features.hop_length, features.sample_rate, model.stack) == pytest.approx(0.03)
    assert step_seconds() == pytest.approx(0.03)
    assert step_seconds(160, 16000, 4) == pytest.approx(0.04)
    assert step_seconds(80, 8000, 3) == pytest.approx(0.03)
    with pytest.raises(ValueError, match="expected positive"):
        step_seconds(0, 16000, 3)


def _loaded(folder: Path, stack: int, bidirectional: bool) -> LoadedModel:
    torch.manual_seed(0)
    model = CTCModel(replace(tiny_config(bidirectional), stack=stack)).eval()
    ckpt = checkpoint.make_checkpoint(model, Vocabulary(), FeatureConfig(), Normalizer.identity(80), {}, {})
    path = folder / f"stack{stack}-{'bi' if bidirectional else 'uni'}.pt"
    checkpoint.save(ckpt, path)
    return checkpoint.load_model(path)


def test_times_follow_the_models_step(tmp_path: Path) -> None:
    four = _loaded(tmp_path, 4, bidirectional=False)
    assert four.step_seconds == pytest.approx(0.04)
    recognizer = Recognizer(four, None, Decoder())
    assert recognizer.decoder.options.step_seconds == pytest.approx(0.04)
    first = recognizer.decoder.greedy(spell("go on")).words[0]
    assert first.start == pytest.approx(3 * 0.04)  # after 3 leading blanks
    session = StreamingSession(four.model, four.normalizer, recognizer.decoder)
    assert session.step_seconds == pytest.approx(0.04)
    offline = _loaded(tmp_path, 4, bidirectional=True)
    assert OfflineBatchRecognizer(offline.model, offline.normalizer, Decoder()).step_seconds == pytest.approx(
        0.04
    )
    with pytest.raises(ValueError, match="same step"):
        Recognizer(four, _loaded(tmp_path, 3, bidirectional=True), Decoder())
