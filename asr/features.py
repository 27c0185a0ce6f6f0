"""80-dim log-mel features: whole-utterance, streaming, and global normalisation.

Frames are 25 ms windows every 10 ms with no centre padding, so frame ``t`` covers
samples ``[160 t, 160 t + 400)``. That makes streaming trivial and exact: the streaming
extractor keeps the samples that do not yet fill a window and emits the same frames as
the whole-utterance path, whatever the chunking.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import librosa
import numpy as np
import torch

from asr.constants import HOP_LENGTH, SAMPLE_RATE


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel parameters (saved in every checkpoint)."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = HOP_LENGTH  # 10 ms
    n_mels: int = 80
    f_min: float = 20.0
    f_max: float = 7600.0
    log_floor: float = 1e-6

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        return cls(**d)


@lru_cache(maxsize=8)
def _mel_basis(config: FeatureConfig) -> torch.Tensor:
    fb = librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        n_mels=config.n_mels,
        fmin=config.f_min,
        fmax=config.f_max,
    )
    return torch.from_numpy(fb.T.astype(np.float32)).contiguous()  # (F, M)


@lru_cache(maxsize=8)
def _window(config: FeatureConfig) -> torch.Tensor:
    return torch.hann_window(config.win_length, periodic=True, dtype=torch.float32)


def num_frames(num_samples: int, config: FeatureConfig = FeatureConfig()) -> int:
    """Frames produced by ``num_samples`` samples (0 when shorter than one window)."""
    if num_samples < config.win_length:
        return 0
    return 1 + (num_samples - config.win_length) // config.hop_length


def log_mel(audio: np.ndarray | torch.Tensor, config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Log-mel features of a whole utterance.

    Args:
        audio: 1-D float waveform at ``config.sample_rate``.

    Returns:
        ``(T, n_mels)`` float32 tensor, ``T = num_frames(len(audio))``.
    """
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not torch.is_tensor(audio) else audio)
    if x.dim() != 1:
        raise ValueError(f"expected 1-D audio, got shape {tuple(x.shape)}")
    x = x.to(torch.float32)
    n = num_frames(x.numel(), config)
    if n == 0:
        return torch.zeros(0, config.n_mels)
    return _log_mel_frames(x.unfold(0, config.win_length, config.hop_length)[:n], config)


def _log_mel_frames(frames: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """``(T, win_length)`` raw sample frames -> ``(T, n_mels)`` log-mel, each row on its own.

    torch.stft would do the same; explicit framing keeps each frame independent of how
    many frames are computed together (one utterance, or many streams' chunks at once).
    """
    spec = torch.fft.rfft(frames * _window(config), n=config.n_fft)  # (T, F)
    power = spec.real.square() + spec.imag.square()
    mel = power @ _mel_basis(config)  # (T, M)
    return torch.log(mel + config.log_floor)


def log_mel_many(
    segments: list[np.ndarray],
    config: FeatureConfig = FeatureConfig(),
    normalizer: Normalizer | None = None,
) -> list[torch.Tensor]:
    """:func:`log_mel` of several waveforms in one batched computation.

    One call costs a few torch operations whatever the number of segments, where a
    call per segment costs them per segment: what a server with hundreds of streams
    sending 100 ms chunks needs. Each result equals ``log_mel(segment)`` (rows are
    computed independently).
    """
    hop, win = config.hop_length, config.win_length
    counts = [num_frames(len(seg), config) for seg in segments]
    total = sum(counts)
    if total == 0:
        return [torch.zeros(0, config.n_mels) for _ in segments]
    # Lay the segments out end to end, each padded to a whole number of hops, so that
    # every frame starts on a hop boundary of the joined buffer: one strided view then
    # holds all frames (plus a few spanning two segments, which are skipped).
    blocks = [-(-((n - 1) * hop + win) // hop) if n else 0 for n in counts]  # hops per segment
    joined = np.zeros(sum(blocks) * hop + win, np.float32)
    rows = np.empty(total, np.int64)
    base = row = 0
    for seg, n, hops in zip(segments, counts, blocks, strict=True):
        if n:
            used = (n - 1) * hop + win
            joined[base * hop : base * hop + used] = seg[:used]
            rows[row : row + n] = np.arange(base, base + n)
            base += hops
            row += n
    frames = torch.from_numpy(joined).unfold(0, win, hop)[torch.from_numpy(rows)]  # (total, win)
    mels = _log_mel_frames(frames, config)
    if normalizer is not None:
        mels = normalizer(mels)
    return list(mels.split(counts))


class StreamingFeatureExtractor:
    """Log-mel for audio arriving in chunks of any size.

    ``accept(chunk)`` returns the frames completed by that chunk; concatenated, they
    equal :func:`log_mel` of the concatenated audio. ``take(chunk)`` is the same split
    in two: it returns the samples whose log-mel are those frames, for a caller that
    computes many streams' features together (:func:`log_mel_many`).
    """

    def __init__(self, config: FeatureConfig = FeatureConfig()) -> None:
        self.config = config
        self._buffer = np.zeros(0, np.float32)
        self.frames_emitted = 0

    def take(self, chunk: np.ndarray) -> np.ndarray:
        """Samples covering the frames this chunk completes (empty when none)."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        buf = np.concatenate([self._buffer, chunk]) if len(self._buffer) else chunk
        n = num_frames(len(buf), self.config)
        if n == 0:
            self._buffer = buf.copy()
            return np.zeros(0, np.float32)
        self._buffer = buf[n * self.config.hop_length :].copy()
        self.frames_emitted += n
        return buf[: (n - 1) * self.config.hop_length + self.config.win_length]

    def accept(self, chunk: np.ndarray) -> torch.Tensor:
        return log_mel(self.take(chunk), self.config)

    def reset(self) -> None:
        self._buffer = np.zeros(0, np.float32)
        self.frames_emitted = 0


class Normalizer:
    """Global per-dimension mean/std normalisation (never per utterance)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        if mean.shape != std.shape or mean.dim() != 1:
            raise ValueError(f"expected 1-D mean and std of one shape, got {mean.shape}, {std.shape}")
        self.mean = mean.float()
        self.std = std.float().clamp_min(1e-5)

    def __call__(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) / self.std

    @classmethod
    def identity(cls, dim: int) -> Normalizer:
        return cls(torch.zeros(dim), torch.ones(dim))

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.clone(), "std": self.std.clone()}

    @classmethod
    def from_dict(cls, d: dict[str, torch.Tensor]) -> Normalizer:
        return cls(torch.as_tensor(d["mean"]), torch.as_tensor(d["std"]))


class NormalizerStats:
    """Running sums for fitting a :class:`Normalizer` over many utterances."""

    def __init__(self, dim: int) -> None:
        self.count = 0
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.sum_sq = torch.zeros(dim, dtype=torch.float64)

    def update(self, feats: torch.Tensor) -> None:
        f = feats.to(torch.float64)
        self.count += f.shape[0]
        self.sum += f.sum(0)
        self.sum_sq += f.square().sum(0)

    def normalizer(self) -> Normalizer:
        if self.count == 0:
            raise ValueError("expected at least one frame to fit the normaliser, got none")
        mean = self.sum / self.count
        var = (self.sum_sq / self.count - mean.square()).clamp_min(1e-10)
        return Normalizer(mean.float(), var.sqrt().float())
