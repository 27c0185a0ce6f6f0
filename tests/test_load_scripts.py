"""The load and capacity benchmark scripts' measuring code, on a tiny in-thread server."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from asr.server.app import ServerConfig, start_in_thread

from asr.profiles import ProfileStore
from tests.enroll_helpers import fake_adapted_profile
from tests.helpers import load_script, make_tiny_recognizer, noise


def test_aio_load_client_measures_partials_and_finals(tmp_path: Path) -> None:
    bench_load = load_script("bench_load")
    server = start_in_thread(
        ServerConfig(host="127.0.0.1", port=0, grace_s=0.5), make_tiny_recognizer(tmp_path)
    )
    try:
        clips = [noise(1.2, seed=1), noise(0.8, seed=2)]
        records, start, end, stats = bench_load.run_load_aio(server.port, clips, 3, 1.0, 0.2, "stream", 100.0)
    finally:
        server.stop()
    assert len(records) >= 3 and all(r.status == "OK" for r in records)
    assert end - start >= 1.0
    assert all(r.final_ms is not None and r.final_ms >= 0 for r in records)
    assert sum(len(r.partial_ms) for r in records) > 0
    assert all(0 <= ms < 60_000 for r in records for ms in r.partial_ms)
    assert stats["total_streams"] == len(records)


def test_aio_load_client_takes_turns_with_profiles_and_the_base(tmp_path: Path) -> None:
    bench_load = load_script("bench_load")
    store = ProfileStore(tmp_path / "profiles")
    fake_adapted_profile(store, "anna", seed=5, blank_share=0.4)
    fake_adapted_profile(store, "ben", seed=6, blank_share=0.6)
    config = ServerConfig(
        host="127.0.0.1", port=0, grace_s=0.5, profiles_dir=str(store.root), max_profiles=2, int8=False
    )
    server = start_in_thread(config, make_tiny_recognizer(tmp_path / "base"))
    try:
        clips = [noise(0.8, seed=1)]
        turns = itertools.cycle(["anna", "ben", ""])
        records, _, _, stats = bench_load.run_load_aio(
            server.port, clips, 3, 1.0, 0.2, "stream", 100.0, profiles=turns
        )
        loaded = server.handle.service.engine.profiles.loaded  # type: ignore[union-attr]
    finally:
        server.stop()
    assert len(records) >= 3 and all(r.status == "OK" for r in records)
    assert sorted(loaded) == ["anna", "ben"]
    assert stats["total_streams"] == len(records)


def _run(streams: int, failed: int = 0, p95: float | None = 120.0, f95: float | None = 150.0) -> dict:
    return {
        "streams": streams,
        "mode": "stream",
        "streams_failed": failed,
        "status_codes": {"OK": 10},
        "partial_ms": {"p95": p95},
        "final_ms": {"p95": f95},
    }


@pytest.mark.parametrize(
    ("run", "holds"),
    [
        (_run(10), True),
        (_run(10, failed=1), False),
        (_run(10, p95=351.0), False),
        (_run(10, p95=349.0, f95=301.0), False),
        (_run(10, p95=None), False),
    ],
)
def test_capacity_verdict(run: dict, holds: bool) -> None:
    ok, why = load_script("bench_capacity").verdict(run, chunk_ms=100.0)
    assert ok is holds
    assert bool(why) is not holds


def test_score_arrivals_times_partials_from_the_newest_covered_chunk_and_finals_from_the_last() -> None:
    bench_load = load_script("bench_load")
    ends = np.array([0.1, 0.2, 0.3])
    arrivals = [(10.05, False, 0.1), (10.25, False, 0.2), (10.4, True, 0.3)]
    record = bench_load.score_arrivals(
        bench_load.StreamRecord(audio_seconds=0.3), arrivals, [10.0, 10.1, 10.2], ends, [0.0, 0.001, 0.0]
    )
    assert record.partial_ms == pytest.approx([50.0, 150.0])  # chunks 0 and 1, sent at 10.0 and 10.1
    assert record.final_ms == pytest.approx(200.0) and record.finals == 1
    assert record.lag_ms == pytest.approx([0.0, 1.0, 0.0])
    # A stream cut short (not every chunk sent) has no final latency.
    short = bench_load.score_arrivals(
        bench_load.StreamRecord(audio_seconds=0.3), arrivals, [10.0, 10.1], ends, [0.0, 0.0]
    )
    assert short.final_ms is None and short.finals == 1
