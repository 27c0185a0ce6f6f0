"""Latency measurement for `asr bench`: simulated real-time streams on the audio clock.

Chunk ``k`` arrives at the audio time of its last sample, ``t_k``; the session needs
``c_k`` seconds (wall clock) for it, and results of that chunk are available at
``done_k = max(t_k, done_{k-1}) + c_k``. Speech start and end come from an energy
detector (:func:`speech_bounds`); a reference word's end comes from a CTC forced
alignment (:func:`forced_word_ends`). :func:`utterance_timing` turns a :class:`Trace`
into the latencies :mod:`asr.bench` reports.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from asr.api import Recognizer
from asr.audio import SAMPLE_RATE
from asr.checkpoint import LoadedModel
from asr.decoding import STEP_SECONDS, Decoder
from asr.features import log_mel
from asr.fusion import Fusion
from asr.metrics import error_rates
from asr.streaming import Result, SessionConfig, results_text
from asr.text import Vocabulary


def speech_bounds(audio: np.ndarray, rate: int = SAMPLE_RATE) -> tuple[float, float]:
    """(start, end) of speech in seconds from 25 ms / 10 ms frame energies.

    A frame is speech when its energy is above ``floor + 0.3 (peak - floor)`` (dB), with the
    floor and peak the 10th and 99th percentiles of the file's frame energies.
    """
    win, hop = int(0.025 * rate), int(0.010 * rate)
    if len(audio) < win:
        return 0.0, len(audio) / rate
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), win)[::hop]
    energy = 10 * np.log10((frames**2).mean(axis=1) + 1e-10)  # (T,) dB
    floor, peak = np.percentile(energy, [10, 99])
    active = np.flatnonzero(energy >= floor + 0.3 * (peak - floor))
    if len(active) == 0:
        return 0.0, len(audio) / rate
    return active[0] * hop / rate, (active[-1] * hop + win) / rate


@dataclass
class Trace:
    """A simulated real-time stream: each result with the audio-clock time it became available."""

    events: list[tuple[float, Result]]
    compute: float  # seconds of processing (wall clock)
    audio_seconds: float

    @property
    def finals(self) -> list[tuple[float, Result]]:
        return [(t, r) for t, r in self.events if r.is_final]

    def final_text(self) -> str:
        return results_text([r for _, r in self.events])

    def displayed(self) -> list[tuple[float, list[str]]]:
        """The partial transcript on screen after each partial: the latest partial per utterance."""
        latest: dict[int, str] = {}
        shown = []
        for t, r in self.events:
            if not r.is_final and r.text:
                latest[r.utterance_index] = r.text
                shown.append((t, " ".join(latest[u] for u in sorted(latest)).split()))
        return shown


def simulate_session(
    recognizer: Recognizer, config: SessionConfig, audio: np.ndarray, chunk_ms: int
) -> Trace:
    """Feed ``audio`` in ``chunk_ms`` chunks as if in real time, timing every call."""
    session = recognizer.stream(config)
    step = max(1, round(SAMPLE_RATE * chunk_ms / 1000))
    end = len(audio) / SAMPLE_RATE
    events: list[tuple[float, Result]] = []
    done = compute = 0.0
    for a in range(0, len(audio), step):
        chunk = audio[a : a + step]
        started = time.perf_counter()
        results = session.accept_audio(chunk)
        took = time.perf_counter() - started
        done, compute = max((a + len(chunk)) / SAMPLE_RATE, done) + took, compute + took
        events += [(done, r) for r in results]
    started = time.perf_counter()
    results = session.finish()
    took = time.perf_counter() - started
    done, compute = max(end, done) + took, compute + took
    events += [(done, r) for r in results]
    return Trace(events, compute, end)


def simulate_offline(
    loaded: LoadedModel,
    decoder: Decoder,
    audio: np.ndarray,
    streaming: LoadedModel | None = None,
    fusion: Fusion | None = None,
) -> tuple[Trace, np.ndarray]:
    """Whole utterance after its last sample: features, BiLSTM (and, with a fusion, the
    uni-LSTM), beam. Returns the trace and the BiLSTM's log-probs."""
    end = len(audio) / SAMPLE_RATE
    started = time.perf_counter()
    mel = log_mel(audio, loaded.features)
    lp = loaded.log_probs(mel)  # (T', V)
    searched = lp
    if fusion is not None and streaming is not None:
        uni = streaming.log_probs(mel)
        searched = fusion(lp, uni)
    hyp = decoder.beam(searched)[0]
    took = time.perf_counter() - started
    final = Result(True, (hyp,), 0, 0.0, round(end, 3))
    return Trace([(end + took, final)], took, end), lp


RefWord = tuple[str, float]  # (word, end in seconds)
LAG_WINDOW_S = (-0.5, 2.0)  # a partial word is matched to a reference word this far from its end


def forced_word_ends(
    log_probs: np.ndarray, text: str, vocab: Vocabulary, step_seconds: float = STEP_SECONDS
) -> list[RefWord] | None:
    """CTC Viterbi alignment of the reference ``text`` to ``(T', V)`` log-probs of ``step_seconds`` steps.

    Returns:
        (word, end) per word, the end one step after the frame of its last character;
        None when the utterance has fewer steps than the text needs.
    """
    targets = vocab.encode(text)
    steps = len(log_probs)
    if not targets:
        return []
    ext = np.full(2 * len(targets) + 1, vocab.blank)
    ext[1::2] = targets  # blank, c1, blank, c2, ..., blank
    skip = np.zeros(len(ext), bool)
    skip[2:] = (ext[2:] != vocab.blank) & (ext[2:] != ext[:-2])
    neg = -1e30
    alpha = np.full(len(ext), neg)
    alpha[:2] = log_probs[0, ext[:2]]
    back = np.zeros((steps, len(ext)), np.int8)  # 0: stay, 1: from s-1, 2: from s-2
    for t in range(1, steps):
        prev1 = np.concatenate([[neg], alpha[:-1]])
        prev2 = np.where(skip, np.concatenate([[neg, neg], alpha[:-2]]), neg)
        cands = np.stack([alpha, prev1, prev2])  # (3, S)
        back[t] = cands.argmax(0)
        alpha = cands.max(0) + log_probs[t, ext]
    s = len(ext) - 1 if alpha[-1] >= alpha[-2] else len(ext) - 2
    if alpha[s] < neg / 2:
        return None
    last_frame = np.zeros(len(ext), int)
    for t in range(steps - 1, -1, -1):
        last_frame[s] = max(last_frame[s], t)
        s -= int(back[t, s])
    ends, position = [], 0
    for word in text.split(" "):
        position += len(word)
        ends.append((word, round((last_frame[2 * position - 1] + 1) * step_seconds, 3)))
        position += 1  # the space
    return ends


def match_lags(words: Sequence[str], shown_at: Sequence[float], ref: Sequence[RefWord]) -> list[float]:
    """Lag of each displayed word behind the end of the same reference word.

    Words are matched in order (monotonic), to the nearest unused reference word with the
    same spelling whose end is within :data:`LAG_WINDOW_S` of the time the word was shown.
    """
    lags, start = [], 0
    for word, t in zip(words, shown_at, strict=True):
        cands = [
            j for j in range(start, len(ref))
            if ref[j][0] == word and LAG_WINDOW_S[0] <= t - ref[j][1] <= LAG_WINDOW_S[1]
        ]  # fmt: skip
        if cands:
            j = min(cands, key=lambda j: abs(t - ref[j][1]))
            lags.append(t - ref[j][1])
            start = j + 1
    return lags


@dataclass
class Timing:
    """Latencies of one utterance in seconds (None: nothing to measure)."""

    first_partial: float | None
    final_after_audio: float | None
    final_after_speech: float | None
    partial_lags: list[float]
    final_word_latencies: list[float]


def utterance_timing(trace: Trace, speech: tuple[float, float], ref_words: Sequence[RefWord]) -> Timing:
    """Latencies of one simulated stream (see the module docstring and the report for definitions)."""
    shown = trace.displayed()
    finals = trace.finals
    last_final = finals[-1][0] if finals else None
    lags: list[float] = []
    if shown:
        # A displayed word counts from the first partial whose words up to it equal the last partial's.
        last = shown[-1][1]
        shown_at = [
            next(t for t, words in shown if words[: i + 1] == last[: i + 1]) for i in range(len(last))
        ]
        lags = match_lags(last, shown_at, ref_words)
    word_latencies = []
    for _, end in ref_words if finals else []:
        t = next((t for t, r in finals if r.end >= end - 1e-6), finals[-1][0])
        word_latencies.append(t - end)
    return Timing(
        first_partial=shown[0][0] - speech[0] if shown else None,
        final_after_audio=None if last_final is None else last_final - trace.audio_seconds,
        final_after_speech=None if last_final is None else last_final - speech[1],
        partial_lags=lags,
        final_word_latencies=word_latencies,
    )


def summarize(values: Iterable[float | None]) -> dict[str, float] | None:
    """mean / p50 / p90 / n of the values that are not None (None when there are none)."""
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if len(v) == 0:
        return None
    p50, p90 = np.percentile(v, [50, 90])
    return {
        "mean": round(float(v.mean()), 4),
        "p50": round(float(p50), 4),
        "p90": round(float(p90), 4),
        "n": len(v),
    }


def score(pairs: Iterable[tuple[str, str]]) -> dict[str, float]:
    """WER/CER of (reference, hypothesis) pairs with :func:`asr.metrics.error_rates`."""
    return error_rates(pairs).summary()
