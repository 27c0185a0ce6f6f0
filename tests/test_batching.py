"""The server's batched model step and its inline-consume guard, with tiny models."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from asr.server.batcher import StreamBatcher

from asr.decoding import Decoder, Hypothesis, UtteranceSearch
from asr.features import Normalizer
from asr.model import CTCModel, LSTMState
from asr.streaming import EndpointConfig, SessionConfig, StreamingSession
from tests.helpers import blank_biased, tiny_session


@pytest.mark.parametrize("front_end", ["session", "batched"])
def test_one_batched_call_matches_each_session_alone(tiny_model: CTCModel, front_end: str) -> None:
    """Chunks of different lengths share one model call; outputs and states match solo runs.

    ``session``: each stream computes its log-mel (push_audio), the batcher runs the LSTM
    (step). ``batched``: the batcher also computes every stream's log-mel in one call
    (step_audio), which must equal push_audio.
    """
    model = blank_biased(tiny_model)
    calls: list[int] = []
    model.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    batcher = StreamBatcher(model, max_batch=16, max_wait_ms=50.0)
    rng = np.random.default_rng(0)
    solo = [tiny_session(model) for _ in range(6)]
    batched = [tiny_session(model) for _ in range(6)]

    async def step_all(chunks: list[np.ndarray]) -> list[tuple[torch.Tensor, np.ndarray, LSTMState | None]]:
        if front_end == "batched":
            steps = (
                batcher.step_audio(s.frontend, s.take_audio(c), s.state)
                for s, c in zip(batched, chunks, strict=True)
            )
            return list(await asyncio.gather(*steps))
        frames = [s.push_audio(c) for s, c in zip(batched, chunks, strict=True)]
        outputs = await asyncio.gather(
            *(batcher.step(f, s.state) for s, f in zip(batched, frames, strict=True))
        )
        return [(f, lp, state) for f, (lp, state) in zip(frames, outputs, strict=True)]

    async def rounds() -> None:
        for _ in range(6):
            # 0.006 s to 0.25 s: some chunks complete no frame or no full stack, and
            # lengths differ within a batch (0 to 8 steps).
            chunks = [
                (0.3 * rng.standard_normal(int(rng.integers(100, 4000)))).astype(np.float32) for _ in solo
            ]
            calls.clear()
            stepped = await step_all(chunks)
            assert len({len(f) for f, _, _ in stepped}) > 1
            running = sum(1 for f, _, _ in stepped if len(f))
            assert calls == ([running] if running else [])  # one call for the whole batch
            for s_solo, s_batched, chunk, (f, out, state) in zip(solo, batched, chunks, stepped, strict=True):
                f_solo = s_solo.push_audio(chunk)
                assert f.shape == f_solo.shape
                torch.testing.assert_close(f, f_solo, atol=1e-4, rtol=0)
                ref, ref_state = s_solo.run_model(f_solo)
                assert out.shape == ref.shape == (len(f) // model.config.stack, model.config.vocab_size)
                np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)
                if ref_state is not None:
                    assert state is not None
                    for a, b in zip(state, ref_state, strict=True):
                        assert a.shape == b.shape
                        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
                s_solo.consume(f_solo, ref, ref_state)
                s_batched.consume(f, out, state)
        await batcher.stop()

    asyncio.run(rounds())
    assert [s.step for s in batched] == [s.step for s in solo]


class _CountingDecoder(Decoder):
    """Counts the beam-search results asked for (whole-utterance or incremental)."""

    def __init__(self) -> None:
        super().__init__()
        self.beams = 0

    def search(self, *args, **kwargs) -> UtteranceSearch:  # type: ignore[no-untyped-def]
        search = super().search(*args, **kwargs)
        counter = self
        real = search.result

        def counted(*a, **k) -> list[Hypothesis]:  # type: ignore[no-untyped-def]
            counter.beams += 1
            return real(*a, **k)

        search.result = counted  # type: ignore[method-assign]
        return search


@pytest.mark.parametrize(
    ("blank_share", "endpoint"),
    [
        (0.0, EndpointConfig(trailing_silence_ms=3000, max_utterance_ms=1000)),  # cut at max length
        (0.3, EndpointConfig(trailing_silence_ms=90, max_utterance_ms=1000)),
        (0.7, EndpointConfig(trailing_silence_ms=150, max_utterance_ms=2000)),
        (0.9, EndpointConfig(trailing_silence_ms=600, max_utterance_ms=1500)),
        (1.0, EndpointConfig(initial_silence_timeout_ms=1000)),  # nobody speaks
    ],
)
def test_may_decode_whenever_consume_decodes(
    tiny_model: CTCModel, blank_share: float, endpoint: EndpointConfig
) -> None:
    """The server runs consume() on its event loop only when may_decode() says no slow decode is due."""
    model = blank_biased(tiny_model, blank_share)
    decoder = _CountingDecoder()
    session = StreamingSession(model, Normalizer.identity(80), decoder, SessionConfig(endpoint=endpoint))
    rng = np.random.default_rng(1)
    light = decoded = 0
    while not session.finished and session.step < 400:
        chunk = (0.3 * rng.standard_normal(int(rng.integers(160, 4000)))).astype(np.float32)
        frames = session.push_audio(chunk)
        log_probs, state = session.run_model(frames)
        predicted = session.may_decode(len(log_probs))
        beams, utterance = decoder.beams, session.utterance_index
        results = session.consume(frames, log_probs, state)
        slow = decoder.beams > beams or session.utterance_index > utterance or session.finished
        slow = slow or any(r.is_final for r in results)
        if slow:
            decoded += 1
            assert predicted, f"consume decoded at step {session.step} but may_decode said no"
        light += not predicted
    assert decoded and light  # both paths were taken


def test_may_decode_always_for_beam_partials(tiny_model: CTCModel) -> None:
    session = tiny_session(blank_biased(tiny_model), partial_decoder="beam")
    assert session.may_decode(0) and session.may_decode(3)
    assert not tiny_session(blank_biased(tiny_model)).may_decode(3)
