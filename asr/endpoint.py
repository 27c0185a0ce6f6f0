"""Endpoint detection on a stream's CTC output: where an utterance ends.

An utterance ends after a run of blank steps following speech (trailing silence), or at
the maximum utterance length; an initial-silence timeout ends a stream in which nobody
speaks. The rules live in one place, :class:`Endpointer`, which both advances a stream
step by step (:meth:`Endpointer.observe`) and tells ahead of time whether some number
of new steps could reach a boundary (:meth:`Endpointer.may_end_within`): a server uses
the latter to decide whether a chunk may need a slow decode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from asr.decoding import STEP_SECONDS


@dataclass(frozen=True)
class EndpointConfig:
    """When an utterance ends.

    Attributes:
        trailing_silence_ms: blank steps after speech that end an utterance.
        max_utterance_ms: an utterance is cut here even while speech goes on.
        initial_silence_timeout_ms: end the stream if no speech starts by then (0: never).
    """

    trailing_silence_ms: int = 600
    max_utterance_ms: int = 20000
    initial_silence_timeout_ms: int = 0

    def __post_init__(self) -> None:
        if self.trailing_silence_ms < STEP_SECONDS * 1000:
            raise ValueError(f"expected trailing_silence_ms >= 30, got {self.trailing_silence_ms}")
        if self.max_utterance_ms < 1000:
            raise ValueError(f"expected max_utterance_ms >= 1000, got {self.max_utterance_ms}")
        if self.initial_silence_timeout_ms < 0:
            raise ValueError(
                f"expected initial_silence_timeout_ms >= 0, got {self.initial_silence_timeout_ms}"
            )


class Boundary(Enum):
    """What one step did to the stream."""

    NONE = "none"
    UTTERANCE_END = "utterance_end"  # trailing silence or maximum length
    INITIAL_SILENCE_TIMEOUT = "initial_silence_timeout"


class Endpointer:
    """The endpoint state of one stream, advanced one model step at a time.

    Attributes:
        steps: model steps observed in the whole stream.
        utterance_steps: steps observed in the current utterance.
        speech_started: whether the current utterance has a non-blank step yet.
        blank_run: blank steps since the utterance's last non-blank one.
    """

    def __init__(self, config: EndpointConfig = EndpointConfig(), step_seconds: float = STEP_SECONDS) -> None:
        if step_seconds <= 0:
            raise ValueError(f"expected step_seconds > 0, got {step_seconds}")
        self.config = config
        self.endpoint_steps = max(1, round(config.trailing_silence_ms / 1000 / step_seconds))
        self.max_steps = round(config.max_utterance_ms / 1000 / step_seconds)
        # Never early: the first step at or after the timeout.
        self.initial_timeout_steps = math.ceil(config.initial_silence_timeout_ms / 1000 / step_seconds - 1e-9)
        self.steps = 0
        self.utterance_steps = 0
        self.speech_started = False
        self.blank_run = 0
        self._heard_speech = False  # an earlier utterance held speech: the timeout is off

    def observe(self, speech: bool) -> Boundary:
        """Advance one step (``speech``: its best token is not blank); the boundary it reaches.

        After :attr:`Boundary.UTTERANCE_END` the caller closes the utterance with
        :meth:`next_utterance` before observing the next step.
        """
        local = self.utterance_steps
        self.steps += 1
        self.utterance_steps += 1
        if speech:
            self.speech_started = True
            self.blank_run = 0
        else:
            self.blank_run += 1
        if not self.speech_started and self._timeout_armed() and self.steps >= self.initial_timeout_steps:
            return Boundary.INITIAL_SILENCE_TIMEOUT
        if (self.speech_started and self.blank_run >= self.endpoint_steps) or local + 1 >= self.max_steps:
            return Boundary.UTTERANCE_END
        return Boundary.NONE

    def next_utterance(self) -> None:
        """Close the current utterance (at an endpoint or when forced); a new one starts."""
        self._heard_speech = self._heard_speech or self.speech_started
        self.utterance_steps = 0
        self.speech_started = False
        self.blank_run = 0

    def may_end_within(self, steps: int) -> bool:
        """Whether observing ``steps`` more steps could reach a boundary.

        It errs towards True and never changes what :meth:`observe` returns.
        """
        # An endpoint needs `endpoint_steps` blanks after speech: the run so far plus
        # these steps, or (speech starting within them) these steps alone.
        endpoint = steps >= self.endpoint_steps or (
            self.speech_started and self.blank_run + steps >= self.endpoint_steps
        )
        too_long = self.utterance_steps + steps >= self.max_steps
        timeout = self._timeout_armed() and self.steps + steps >= self.initial_timeout_steps
        return endpoint or too_long or timeout

    def _timeout_armed(self) -> bool:
        return self.initial_timeout_steps > 0 and not self._heard_speech
