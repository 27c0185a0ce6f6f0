"""Shared names and numbers: the modes, the sample rate, the model step."""

from __future__ import annotations

import pytest

from asr.constants import MODES, SAMPLE_RATE, Mode, step_seconds
from asr.features import FeatureConfig
from asr.model import ModelConfig
from asr.streaming import SessionConfig


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
