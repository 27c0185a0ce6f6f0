"""The README's main job runs end to end on the shipped models (behaviour, not accuracy)."""

from __future__ import annotations

import io

import pytest

from asr.checkpoint import resolve_model_path
from asr.demo import run_demo

pytestmark = pytest.mark.skipif(
    not (resolve_model_path("streaming").exists() and resolve_model_path("offline").exists()),
    reason="shipped models missing",
)


def test_demo_streams_samples_and_stops() -> None:
    out = io.StringIO()
    assert run_demo(port=0, realtime=False, out=out) == 0
    text = out.getvalue()
    assert text.count("== sample") == 3
    assert "server stats: 3 streams" in text
    assert text.rstrip().endswith("server stopped")
