"""Streaming session behaviour with tiny models (no trained weights needed)."""

from __future__ import annotations

import numpy as np
import pytest

from asr.model import CTCModel
from asr.streaming import EndpointConfig, EventType, SessionConfig, StreamingSession
from tests.helpers import blank_biased, tiny_session


def _run(session: StreamingSession, audio: np.ndarray, sizes: list[int]) -> list:  # type: ignore[type-arg]
    results, i = [], 0
    for n in sizes:
        results += session.accept_audio(audio[i : i + n])
        i += n
    results += session.accept_audio(audio[i:])
    return results + session.finish()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finals_do_not_depend_on_chunking(tiny_model: CTCModel, seed: int) -> None:
    model = blank_biased(tiny_model)
    rng = np.random.default_rng(seed)
    audio = (0.3 * rng.standard_normal(16000 * 6)).astype(np.float32)
    cfg = {"endpoint": EndpointConfig(trailing_silence_ms=90, max_utterance_ms=2000)}
    whole = [r for r in _run(tiny_session(model, **cfg), audio, []) if r.is_final]
    sizes = [int(s) for s in rng.integers(1, 4000, size=60)]
    chunked = [r for r in _run(tiny_session(model, **cfg), audio, sizes) if r.is_final]
    assert [(r.text, r.start, r.end) for r in chunked] == [(r.text, r.start, r.end) for r in whole]
    assert len(whole) >= 2  # the 2 s cap alone forces several utterances
    ends = [r.end for r in whole]
    assert ends == sorted(ends) and ends[-1] <= 6.0 + 1e-6
    assert [r.utterance_index for r in whole] == list(range(len(whole)))


def test_partials_never_repeat_or_regress(tiny_model: CTCModel) -> None:
    model = blank_biased(tiny_model, blank_share=0.4)
    rng = np.random.default_rng(5)
    audio = (0.3 * rng.standard_normal(16000 * 4)).astype(np.float32)
    session = tiny_session(model, endpoint=EndpointConfig(trailing_silence_ms=300, max_utterance_ms=3000))
    results = _run(session, audio, [1600] * 39)
    last: dict[int, str] = {}
    for r in results:
        if r.is_final or not r.alternatives:
            continue
        prev = last.get(r.utterance_index, "")
        assert r.text != prev and r.text.startswith(prev)  # greedy partials only grow
        assert 0.0 <= r.stability <= 1.0
        last[r.utterance_index] = r.text


def test_forced_endpoint(tiny_model: CTCModel) -> None:
    model = blank_biased(tiny_model, blank_share=0.0)  # letters everywhere: never a natural endpoint
    session = tiny_session(model, endpoint=EndpointConfig(trailing_silence_ms=3000, max_utterance_ms=60000))
    rng = np.random.default_rng(0)
    first = session.accept_audio((0.3 * rng.standard_normal(16000)).astype(np.float32))
    assert not any(r.is_final for r in first)
    forced = session.force_endpoint()
    assert len(forced) == 1 and forced[0].is_final and forced[0].utterance_index == 0
    more = session.accept_audio((0.3 * rng.standard_normal(16000)).astype(np.float32))
    more += session.finish()
    finals = [r for r in more if r.is_final]
    assert finals and finals[0].utterance_index == 1 and finals[0].start >= forced[0].end


def test_initial_silence_timeout(tiny_model: CTCModel) -> None:
    model = blank_biased(tiny_model, blank_share=1.0)  # only blanks: nobody speaks
    session = tiny_session(model, endpoint=EndpointConfig(initial_silence_timeout_ms=1000))
    results = session.accept_audio(np.zeros(16000 * 2, np.float32))
    assert session.finished
    timeouts = [r for r in results if EventType.INITIAL_SILENCE_TIMEOUT in r.events]
    assert len(timeouts) == 1 and 1.0 <= timeouts[0].end < 1.0 + 0.03  # at the first step past 1 s
    with pytest.raises(RuntimeError):
        session.accept_audio(np.zeros(160, np.float32))


def test_resampling_input_rate(tiny_model: CTCModel) -> None:
    model = blank_biased(tiny_model)
    session = tiny_session(model, sample_rate=8000)
    session.accept_audio(np.zeros(8000, np.float32))
    assert session.step <= 32  # the resampler may hold a few samples back until the end
    session.finish()
    assert session.step == 32  # 1 s at 8 kHz -> 16000 samples at 16 kHz -> 98 frames -> 32 steps


def test_bad_configs() -> None:
    with pytest.raises(ValueError, match="mode"):
        SessionConfig(mode="fast")
    with pytest.raises(ValueError, match="trailing_silence_ms"):
        EndpointConfig(trailing_silence_ms=0)
