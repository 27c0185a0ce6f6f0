"""Decode workers: incremental searches kept open in another process."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from asr.api import load_decoder
from asr.decode_pool import PooledDecoder
from asr.decoding import Decoder
from tests.helpers import noisy_spelling

LM_DIR = Path(__file__).resolve().parent.parent / "models" / "lm"


@pytest.fixture(scope="module")
def local() -> Decoder:
    return load_decoder(LM_DIR)


@pytest.fixture(scope="module")
def pooled(local: Decoder) -> Iterator[PooledDecoder]:
    pool = PooledDecoder(local, workers=2)
    yield pool
    pool.close()


def _hyps(hyps: list) -> list[tuple]:  # type: ignore[type-arg]
    # Scores to within 1e-3: the dropped blank frames' log-probs are summed per chunk, in float32.
    return [(h.text, pytest.approx(h.score, abs=1e-3), h.confidence, h.words) for h in hyps]


def test_remote_search_equals_local(local: Decoder, pooled: PooledDecoder) -> None:
    """Streams interleaved over two workers give what one in-process search gives."""
    rng = np.random.default_rng(5)
    inputs = [noisy_spelling(rng, "the good book is all", noise) for noise in (0.3, 1.5, 0.8, 1.2)]
    searches = [pooled.search(hotwords=["book"] if k == 2 else None, n_best=2) for k in range(len(inputs))]
    position = 0
    while position < max(len(lp) for lp in inputs):
        for lp, search in zip(inputs, searches, strict=True):
            search.extend(lp[position : position + 4])
        position += 4
        if position == 20:  # a partial midway, while other frames are in flight
            midway = searches[1].result(time_offset=1.0)
            assert _hyps(midway) == _hyps(local.beam(inputs[1][:20], n_best=2, time_offset=1.0))
    for k, (lp, search) in enumerate(zip(inputs, searches, strict=True)):
        want = local.beam(lp, hotwords=["book"] if k == 2 else None, n_best=2, time_offset=2.0)
        assert _hyps(search.result(time_offset=2.0)) == _hyps(want)
        search.close()
    assert _hyps(pooled.beam(inputs[0], n_best=3)) == _hyps(local.beam(inputs[0], n_best=3))
    assert pooled.open_searches() == 0


def test_closed_and_dropped_searches_are_freed(pooled: PooledDecoder) -> None:
    rng = np.random.default_rng(6)
    lp = noisy_spelling(rng, "all is good", 0.5)
    kept = []
    for k in range(6):
        search = pooled.search()
        search.extend(lp)
        if k % 2:
            search.close()
            search.close()  # twice is fine
        else:
            kept.append(search)
    assert pooled.open_searches() == 3
    kept.clear()  # dropped without close(): garbage collection frees the worker's copy
    gc.collect()
    assert pooled.open_searches() == 0


def test_a_dead_worker_fails_the_caller_instead_of_hanging(local: Decoder) -> None:
    pool = PooledDecoder(local, workers=1)
    try:
        search = pool.search()
        search.extend(noisy_spelling(np.random.default_rng(7), "go", 0.5))
        pool._workers[0].process.kill()  # noqa: SLF001
        with pytest.raises(RuntimeError, match="decode worker"):
            search.result()
    finally:
        pool.close()


def test_workers_must_be_positive(local: Decoder) -> None:
    with pytest.raises(ValueError, match="workers"):
        PooledDecoder(local, workers=0)
