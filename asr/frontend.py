"""The streaming front end: audio chunks at any rate in, normalised model-ready frames out.

One :class:`FrontEnd` per stream holds everything between the audio and the model:
the resampler to 16 kHz, the streaming log-mel extractor (samples short of a window)
and the normalised frames short of a model step (the 3-frame stack). Whatever the
chunking, the frames it returns, concatenated, equal the whole-audio log-mel
normalised and cut to a multiple of the stack.

The work splits in two for a server that computes the log-mel of many streams at once
(:func:`asr.features.log_mel_many`): :meth:`FrontEnd.take_audio` returns the 16 kHz
samples whose frames are complete, :meth:`FrontEnd.frames_from_mels` takes their
log-mel back.
"""

from __future__ import annotations

import numpy as np
import torch

from asr.audio import StreamResampler
from asr.features import FeatureConfig, Normalizer, StreamingFeatureExtractor, log_mel


class FrontEnd:
    """Resampler, streaming log-mel and pending frames of one stream. Not thread-safe."""

    def __init__(
        self,
        sample_rate: int,
        normalizer: Normalizer,
        stack: int,
        features: FeatureConfig = FeatureConfig(),
    ) -> None:
        """Args:
        sample_rate: rate of the audio the stream sends.
        normalizer: the model's normaliser.
        stack: log-mel frames per model step; frames short of it wait for the next chunk.
        features: log-mel parameters (the model's checkpoint holds them).
        """
        if stack < 1:
            raise ValueError(f"expected stack >= 1, got {stack}")
        self.normalizer = normalizer
        self.stack = stack
        self.resampler = StreamResampler(sample_rate, features.sample_rate)
        self.extractor = StreamingFeatureExtractor(features)
        self.pending = torch.zeros(0, features.n_mels)  # normalised frames short of a stack

    @property
    def features(self) -> FeatureConfig:
        return self.extractor.config

    def push_audio(self, audio: np.ndarray) -> torch.Tensor:
        """Samples at the stream's rate in; normalised frames ready for the model out.

        Returns:
            ``(T, n_mels)`` with ``T`` a multiple of the stack (possibly 0).
        """
        return self.frames_from_mels(log_mel(self.take_audio(audio), self.features))

    def take_audio(self, audio: np.ndarray) -> np.ndarray:
        """First half of :meth:`push_audio`: resample and buffer; the 16 kHz samples whose
        log-mel frames are complete."""
        return self.extractor.take(self.resampler.process(np.asarray(audio, dtype=np.float32)))

    def frames_from_mels(self, mels: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        """Second half of :meth:`push_audio`: normalise (unless the caller already did, with
        this front end's ``normalizer``) and keep what is short of a stack for later."""
        if len(mels):
            frames = torch.cat([self.pending, mels if normalized else self.normalizer(mels)])
        else:
            frames = self.pending
        usable = len(frames) // self.stack * self.stack
        self.pending = frames[usable:]
        return frames[:usable]

    def flush_audio(self) -> torch.Tensor:
        """End of audio: drain the resampler; leftover frames short of a stack are dropped."""
        audio16 = self.resampler.process(np.zeros(0, np.float32), last=True)
        return self.frames_from_mels(self.extractor.accept(audio16))
