"""Behaviour of the shipped models on real (synthetic, held-out-voice) speech: segmentation and times.

Accuracy is measured by `asr eval` / `asr bench` and reported in the model cards; these
tests check what holds whatever the accuracy: one final per sentence, with times that are
monotonic, inside the audio, and on the right side of the pause.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr.api import Recognizer
from asr.audio import SAMPLE_RATE, load_audio
from asr.checkpoint import MODELS_DIR

SAMPLES = Path(__file__).parent / "data" / "samples"
GAP_SECONDS = 1.5

pytestmark = pytest.mark.skipif(
    not (MODELS_DIR / "streaming" / "model.pt").exists()
    or not (MODELS_DIR / "offline" / "model.pt").exists(),
    reason="shipped models missing",
)


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@pytest.fixture(scope="module")
def two_sentences() -> tuple[np.ndarray, float, float]:
    """sample1 (flite rms), 1.5 s of silence, sample2 (festival ked): both held-out voices."""
    first = load_audio(SAMPLES / "sample1-rms.wav")
    second = load_audio(SAMPLES / "sample2-ked.wav")
    audio = np.concatenate([first, np.zeros(int(GAP_SECONDS * SAMPLE_RATE), np.float32), second])
    gap_start = len(first) / SAMPLE_RATE
    return audio, gap_start, gap_start + GAP_SECONDS


@pytest.mark.parametrize("mode", ["offline", "two-pass", "stream"])
def test_two_sentences_give_two_finals_with_monotonic_times(
    recognizer: Recognizer, two_sentences: tuple[np.ndarray, float, float], mode: str
) -> None:
    audio, gap_start, gap_end = two_sentences
    duration = len(audio) / SAMPLE_RATE
    results = recognizer.transcribe(audio, mode=mode).results
    assert len(results) == 2, [(r.start, r.end, r.text) for r in results]
    first, second = results
    assert all(r.is_final and r.text for r in results)
    assert [r.utterance_index for r in results] == [0, 1]
    assert 0.0 <= first.start < first.end <= second.start < second.end <= duration + 1e-6
    # Each final lies on its own side of the pause: the first ends before the second
    # sentence starts, the second reaches past the pause.
    assert first.end <= gap_end and second.end > gap_end
    words = [w for r in results for w in r.alternatives[0].words]
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(0.0 <= w.start <= w.end <= duration + 1e-6 for w in words)
    assert all(w.end <= gap_end for w in first.alternatives[0].words)
    assert all(w.start >= gap_start for w in second.alternatives[0].words)


def test_shipped_fusion_was_tuned_for_the_shipped_checkpoints(recognizer: Recognizer) -> None:
    """models/fusion.json names the shipped pair's hashes: shipping a model without
    re-running `asr fusion tune` would silently drop the fusion from two-pass finals."""
    assert (MODELS_DIR / "fusion.json").is_file()
    assert recognizer.fusion is not None and 0 < recognizer.fusion.weight < 1
