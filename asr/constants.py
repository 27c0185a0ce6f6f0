"""Names and numbers the whole engine shares: recognition modes, the sample rate, the model step.

Light on purpose (no numpy, no torch), so the client and the command line can import it.
"""

from __future__ import annotations

from enum import StrEnum

SAMPLE_RATE = 16000  # Hz: everything the recogniser consumes is mono float32 at this rate
HOP_LENGTH = 160  # samples between log-mel frames: 10 ms at SAMPLE_RATE
STACK = 3  # log-mel frames the model stacks into one step
CORPUS_SEED = 1234  # seed of the corpus split (train/dev/test) the shipped models were trained on


class Mode(StrEnum):
    """How a stream or a file is recognised. Members are their wire and flag strings."""

    STREAM = "stream"  # the uni-LSTM gives partials and finals
    TWO_PASS = "two-pass"  # uni-LSTM partials; the BiLSTM re-decodes each utterance for its final
    OFFLINE = "offline"  # the BiLSTM over each whole utterance; finals only


MODES: tuple[Mode, ...] = tuple(Mode)


def step_seconds(hop_length: int = HOP_LENGTH, sample_rate: int = SAMPLE_RATE, stack: int = STACK) -> float:
    """Seconds of audio per model step (per CTC output frame): frame shift x stacked frames.

    Args:
        hop_length: samples between log-mel frames (``FeatureConfig.hop_length``).
        sample_rate: the features' sample rate (``FeatureConfig.sample_rate``).
        stack: frames per step (``ModelConfig.stack``).
    """
    if hop_length <= 0 or sample_rate <= 0 or stack <= 0:
        raise ValueError(
            f"expected positive hop_length, sample_rate and stack, got {hop_length}, {sample_rate}, {stack}"
        )
    return hop_length * stack / sample_rate
