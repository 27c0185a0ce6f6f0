"""The endpoint rules (asr.endpoint.Endpointer) step by step, and their look-ahead."""

from __future__ import annotations

import numpy as np
import pytest

from asr.endpoint import Boundary, EndpointConfig, Endpointer


def _feed(endpointer: Endpointer, speech: list[bool]) -> list[tuple[int, Boundary]]:
    """(global step, boundary) for every step that reached one; utterances close at once,
    and a timeout ends the stream."""
    out = []
    for s in speech:
        boundary = endpointer.observe(s)
        if boundary is not Boundary.NONE:
            out.append((endpointer.steps, boundary))
            if boundary is Boundary.INITIAL_SILENCE_TIMEOUT:
                break
            endpointer.next_utterance()
    return out


def test_trailing_silence_ends_an_utterance_only_after_speech() -> None:
    ep = Endpointer(EndpointConfig(trailing_silence_ms=90, max_utterance_ms=10_000))  # 3 steps
    assert ep.endpoint_steps == 3
    # Silence before speech never ends anything; 3 blanks after speech do.
    assert _feed(ep, [False] * 20 + [True, True, False, False, False, False]) == [
        (25, Boundary.UTTERANCE_END)
    ]
    assert not ep.speech_started and ep.utterance_steps == 1 and ep.steps == 26


def test_maximum_length_cuts_running_speech() -> None:
    ep = Endpointer(EndpointConfig(trailing_silence_ms=600, max_utterance_ms=1500))  # 50 steps
    assert _feed(ep, [True] * 120) == [(50, Boundary.UTTERANCE_END), (100, Boundary.UTTERANCE_END)]


def test_initial_silence_timeout_only_before_the_first_speech() -> None:
    config = EndpointConfig(trailing_silence_ms=90, initial_silence_timeout_ms=1000)
    ep = Endpointer(config)
    assert ep.initial_timeout_steps == 34  # the first step at or after 1 s (33.3 steps)
    assert _feed(ep, [False] * 40) == [(34, Boundary.INITIAL_SILENCE_TIMEOUT)]
    ep = Endpointer(config)
    events = _feed(ep, [False] * 5 + [True] + [False] * 60)
    assert events == [(9, Boundary.UTTERANCE_END)]  # speech came in time: no timeout after it


@pytest.mark.parametrize("seed", range(4))
def test_look_ahead_never_misses_a_boundary(seed: int) -> None:
    """may_end_within(k) is True whenever one of the next k steps reaches a boundary."""
    rng = np.random.default_rng(seed)
    config = EndpointConfig(
        trailing_silence_ms=150, max_utterance_ms=2000, initial_silence_timeout_ms=600 * seed
    )
    ep = Endpointer(config)
    speech = (rng.random(3000) < [0.0, 0.3, 0.6, 0.9][seed]).tolist()
    position = ended = quiet = 0
    while position < len(speech):
        k = int(rng.integers(1, 12))
        predicted = ep.may_end_within(k)
        reached = _feed(ep, speech[position : position + k])
        if any(b is Boundary.INITIAL_SILENCE_TIMEOUT for _, b in reached):
            assert predicted
            break
        if reached:
            assert predicted, f"a boundary at step {reached[0][0]} that may_end_within({k}) did not foresee"
            ended += 1
        quiet += not predicted
        position += k
    assert ended or seed == 0  # the all-silent stream times out or never ends an utterance
    assert quiet or seed == 0


def test_rejects_a_bad_step() -> None:
    with pytest.raises(ValueError, match="step_seconds"):
        Endpointer(EndpointConfig(), step_seconds=0.0)
