"""The in-process and the pooled decoder both implement DecoderProtocol."""

from __future__ import annotations

import inspect

import numpy as np

from asr.decode_pool import PooledDecoder
from asr.decoding import Decoder, DecoderProtocol


def _log_probs(seed: int, steps: int = 40, vocab: int = 29) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(steps, vocab)).astype(np.float32) * 3
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def test_both_decoders_have_every_protocol_member() -> None:
    members = [name for name in vars(DecoderProtocol) if not name.startswith("_")]
    assert {"greedy", "search", "beam", "with_options", "has_lm", "spec"} <= set(members)
    for cls in (Decoder, PooledDecoder):
        for name in members:
            if callable(getattr(DecoderProtocol, name)):
                wanted = list(inspect.signature(getattr(DecoderProtocol, name)).parameters)
                assert list(inspect.signature(getattr(cls, name)).parameters) == wanted, (cls, name)


def test_pooled_with_options_keeps_the_pool_or_decodes_in_process() -> None:
    local = Decoder()
    pooled = PooledDecoder(local, workers=1)
    try:
        assert pooled.with_options(beam_width=local.options.beam_width) is pooled
        narrow = pooled.with_options(beam_width=2)
        assert isinstance(narrow, Decoder) and narrow.options.beam_width == 2
        lp = _log_probs(3)
        assert narrow.beam(lp, n_best=2) == local.with_options(beam_width=2).beam(lp, n_best=2)
        assert pooled.beam(lp) == local.beam(lp)
    finally:
        pooled.close()
