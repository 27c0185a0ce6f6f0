"""Tests for asr.features: log-mel shape, streaming parity, global normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.features import (
    FeatureConfig,
    Normalizer,
    NormalizerStats,
    StreamingFeatureExtractor,
    log_mel,
    log_mel_many,
    num_frames,
)

CONFIG = FeatureConfig()
N_MELS = CONFIG.n_mels
# Streaming and whole-utterance frames differ only by float32 rounding in the mel
# matmul (blocked differently for different frame counts). The worst difference seen
# over many seeds and levels is 1 ulp of a log value (~9.5e-7 at |log| in [8, 16]);
# log values stay within about +-16, so a few ulps is an honest bound.
PARITY_ATOL = 5e-6


def noise(seed: int, n: int, amplitude: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.standard_normal(n) * amplitude, -1.0, 1.0).astype(np.float32)


def stream(audio: np.ndarray, sizes: list[int]) -> torch.Tensor:
    """Feed ``audio`` in chunks of ``sizes`` (the remainder as a last chunk)."""
    extractor = StreamingFeatureExtractor()
    frames = []
    start = 0
    for size in sizes:
        frames.append(extractor.accept(audio[start : start + size]))
        start += size
    frames.append(extractor.accept(audio[start:]))
    for f in frames:
        assert f.dtype == torch.float32 and f.shape[1:] == (N_MELS,)
    return torch.cat(frames)


# ---------------------------------------------------------------------------
# log_mel
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 399, 400, 401, 559, 560, 561, 16000, 16123])
def test_log_mel_shape_and_dtype(n: int) -> None:
    feats = log_mel(noise(0, n))
    expected = 0 if n < 400 else 1 + (n - 400) // 160
    assert feats.shape == (expected, N_MELS)
    assert feats.dtype == torch.float32
    assert num_frames(n) == expected


def test_log_mel_accepts_tensor_and_float64() -> None:
    x = noise(1, 4000)
    ref = log_mel(x)
    torch.testing.assert_close(log_mel(torch.from_numpy(x)), ref)
    torch.testing.assert_close(log_mel(x.astype(np.float64)), ref, atol=PARITY_ATOL, rtol=0)


def test_log_mel_silence_is_finite_floor() -> None:
    feats = log_mel(np.zeros(16000, np.float32))
    assert torch.isfinite(feats).all()
    torch.testing.assert_close(feats, torch.full_like(feats, float(np.log(CONFIG.log_floor))))


def test_log_mel_full_scale_noise_is_finite() -> None:
    rng = np.random.default_rng(2)
    x = rng.choice([-1.0, 1.0], size=16000).astype(np.float32)  # square-ish, full scale
    feats = log_mel(x)
    assert torch.isfinite(feats).all()
    assert feats.max() > log_mel(noise(2, 16000, 0.01)).max()


@pytest.mark.parametrize("shape", [(2, 800), (800, 1), (1, 1, 800)])
def test_log_mel_rejects_non_1d(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="1-D"):
        log_mel(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match="1-D"):
        log_mel(torch.zeros(shape))


def test_feature_config_round_trip() -> None:
    config = FeatureConfig(n_mels=40, f_max=7000.0)
    assert FeatureConfig.from_dict(config.to_dict()) == config


# ---------------------------------------------------------------------------
# Streaming parity
# ---------------------------------------------------------------------------


def random_sizes(rng: np.random.Generator, total: int) -> list[int]:
    """Chunk sizes mixing 0, 1, small, odd and > 1 s chunks, summing to >= total."""
    sizes = [0, 1, 1, 399, 0, 17000]  # always exercise the edge cases
    while sum(sizes) < total:
        kind = rng.integers(4)
        if kind == 0:
            sizes.append(int(rng.integers(0, 2)))
        elif kind == 1:
            sizes.append(int(rng.integers(2, 400)))
        elif kind == 2:
            sizes.append(int(rng.integers(400, 4000)))
        else:
            sizes.append(int(rng.integers(16001, 24000)))
    rng.shuffle(sizes)
    return sizes


@pytest.mark.parametrize("seed", range(6))
def test_streaming_matches_whole(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30000, 60000))
    amplitude = [1e-4, 1e-2, 0.3, 1.0][seed % 4]
    audio = noise(seed, n, amplitude)
    audio[: n // 5] = 0.0  # a stretch of digital silence
    whole = log_mel(audio)
    streamed = stream(audio, random_sizes(rng, n))
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, atol=PARITY_ATOL, rtol=0)


def test_streaming_one_sample_at_a_time() -> None:
    audio = noise(7, 1200)
    streamed = stream(audio, [1] * len(audio))
    whole = log_mel(audio)
    assert streamed.shape == whole.shape == (num_frames(1200), N_MELS)
    torch.testing.assert_close(streamed, whole, atol=PARITY_ATOL, rtol=0)


def test_streaming_counts_frames_and_resets() -> None:
    audio = noise(8, 5000)
    extractor = StreamingFeatureExtractor()
    assert extractor.accept(audio[:399]).shape == (0, N_MELS)
    assert extractor.accept(audio[399:400]).shape == (1, N_MELS)
    extractor.accept(audio[400:])
    assert extractor.frames_emitted == num_frames(len(audio))
    extractor.reset()
    assert extractor.frames_emitted == 0
    again = extractor.accept(audio)
    torch.testing.assert_close(again, log_mel(audio), atol=PARITY_ATOL, rtol=0)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=18000), min_size=1, max_size=8),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_streaming_parity_any_chunking(sizes: list[int], seed: int) -> None:
    audio = noise(seed, sum(sizes))
    extractor = StreamingFeatureExtractor()
    frames = []
    start = 0
    for size in sizes:
        frames.append(extractor.accept(audio[start : start + size]))
        start += size
    streamed = torch.cat(frames)
    whole = log_mel(audio)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, atol=PARITY_ATOL, rtol=0)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=12),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_log_mel_many_equals_one_call_per_segment(sizes: list[int], seed: int) -> None:
    """The server's batched front end: many streams' segments in one call, each as if alone."""
    segments = [noise(seed + k, size) for k, size in enumerate(sizes)]
    batched = log_mel_many(segments)
    assert len(batched) == len(segments)
    for segment, feats in zip(segments, batched, strict=True):
        alone = log_mel(segment)
        assert feats.shape == alone.shape == (num_frames(len(segment)), N_MELS)
        torch.testing.assert_close(feats, alone, atol=PARITY_ATOL, rtol=0)


def test_take_then_batched_log_mel_equals_accept() -> None:
    audio = noise(11, 9000)
    a, b = StreamingFeatureExtractor(), StreamingFeatureExtractor()
    for start in range(0, len(audio), 1234):
        chunk = audio[start : start + 1234]
        (taken,) = log_mel_many([b.take(chunk)])
        torch.testing.assert_close(taken, a.accept(chunk), atol=PARITY_ATOL, rtol=0)
    assert a.frames_emitted == b.frames_emitted == num_frames(len(audio))


# ---------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------


@pytest.fixture
def utterances() -> list[torch.Tensor]:
    return [log_mel(noise(seed, 4000 + 1000 * seed, 0.05 * (seed + 1))) for seed in range(4)]


def fit(utterances: list[torch.Tensor]) -> Normalizer:
    stats = NormalizerStats(N_MELS)
    for feats in utterances:
        stats.update(feats)
    return stats.normalizer()


def test_normalizer_matches_numpy(utterances: list[torch.Tensor]) -> None:
    norm = fit(utterances)
    frames = torch.cat(utterances).double().numpy()
    np.testing.assert_allclose(norm.mean.numpy(), frames.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.std.numpy(), frames.std(0), rtol=1e-4, atol=1e-5)
    assert norm.mean.dtype == norm.std.dtype == torch.float32


def test_normalized_fit_data_is_standard(utterances: list[torch.Tensor]) -> None:
    norm = fit(utterances)
    out = norm(torch.cat(utterances)).double()
    torch.testing.assert_close(out.mean(0), torch.zeros(N_MELS, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        out.std(0, correction=0), torch.ones(N_MELS, dtype=torch.float64), atol=1e-3, rtol=0
    )


def test_normalizer_dict_round_trip(utterances: list[torch.Tensor], tmp_path: Path) -> None:
    norm = fit(utterances)
    again = Normalizer.from_dict(norm.to_dict())
    torch.testing.assert_close(again.mean, norm.mean, rtol=0, atol=0)
    torch.testing.assert_close(again.std, norm.std, rtol=0, atol=0)

    path = tmp_path / "norm.pt"
    torch.save(norm.to_dict(), path)
    loaded = Normalizer.from_dict(torch.load(path, weights_only=True))
    feats = utterances[0]
    torch.testing.assert_close(loaded(feats), norm(feats), rtol=0, atol=0)


def test_normalizer_constant_dimension_stays_finite() -> None:
    feats = torch.zeros(10, 3)
    feats[:, 1] = torch.arange(10.0)
    stats = NormalizerStats(3)
    stats.update(feats)
    assert torch.isfinite(stats.normalizer()(feats)).all()


def test_normalizer_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        NormalizerStats(4).normalizer()
    with pytest.raises(ValueError):
        Normalizer(torch.zeros(3), torch.ones(4))
    with pytest.raises(ValueError):
        Normalizer(torch.zeros(2, 3), torch.ones(2, 3))


def test_identity_normalizer() -> None:
    feats = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(Normalizer.identity(4)(feats), feats)
