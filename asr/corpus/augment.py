"""Audio augmentation for the synthetic corpus (numpy/scipy only).

Each transform takes and returns 16 kHz mono float32 audio and a dict describing
what was done, so that a manifest can record it. :func:`augment` draws a random
chain from an :class:`AugmentConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr
from scipy import signal

from asr.audio import SAMPLE_RATE, float_to_mulaw, mulaw_to_float


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation."""

    p_speed: float = 0.4
    speed_range: tuple[float, float] = (0.9, 1.1)
    p_reverb: float = 0.35
    rt60_range: tuple[float, float] = (0.15, 0.9)
    p_noise: float = 0.45
    p_babble: float = 0.15
    snr_range: tuple[float, float] = (5.0, 30.0)
    babble_snr_range: tuple[float, float] = (5.0, 20.0)
    p_telephone: float = 0.12
    gain_db_range: tuple[float, float] = (-18.0, 3.0)
    pad_range: tuple[float, float] = (0.05, 0.6)  # silence added before and after, seconds


CLEAN = AugmentConfig(
    p_speed=0.0, p_reverb=0.0, p_noise=0.0, p_babble=0.0, p_telephone=0.0, gain_db_range=(0.0, 0.0)
)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """Kaldi-style speed perturbation: tempo and pitch both scale by ``factor``."""
    return soxr.resample(x, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)


def synthetic_rir(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """A room impulse response: direct path plus exponentially decaying diffuse tail."""
    n = max(int(rt60 * SAMPLE_RATE), 64)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    # Early reflections are denser and brighter; a gentle low-pass darkens the tail.
    b, a = signal.butter(1, rng.uniform(2000, 7000) / (SAMPLE_RATE / 2))
    tail = signal.lfilter(b, a, tail)
    predelay = int(rng.uniform(0.002, 0.02) * SAMPLE_RATE)
    tail[:predelay] = 0.0
    drr_db = rng.uniform(-3.0, 10.0)  # direct-to-reverberant ratio
    tail *= 10 ** (-drr_db / 20) / (np.linalg.norm(tail) + 1e-9)
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    y = signal.fftconvolve(x, rir)[: len(x)]
    return (y * (_rms(x) / _rms(y))).astype(np.float32)


def coloured_noise(rng: np.random.Generator, n: int, colour: str) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) noise of unit RMS."""
    white = rng.standard_normal(n)
    if colour == "white":
        noise = white
    else:
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        freqs[0] = freqs[1] if n > 1 else 1.0
        power = 1.0 if colour == "pink" else 2.0
        noise = np.fft.irfft(spectrum / freqs ** (power / 2), n)
    return (noise / _rms(noise)).astype(np.float32)


def add_at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    scale = _rms(x) / (_rms(noise) * 10 ** (snr_db / 20))
    return (x + scale * noise).astype(np.float32)


def babble(rng: np.random.Generator, n: int, others: list[np.ndarray]) -> np.ndarray:
    """Sum of 3-6 other utterances, looped and randomly offset, to length ``n``."""
    mix = np.zeros(n, np.float32)
    for k in rng.choice(len(others), size=min(len(others), int(rng.integers(3, 7))), replace=False):
        other = others[int(k)]
        if len(other) == 0:
            continue
        reps = int(np.ceil((n + len(other)) / len(other)))
        looped = np.tile(other, reps)
        start = int(rng.integers(0, len(other)))
        mix += looped[start : start + n] / _rms(other)
    return mix


def telephone(x: np.ndarray) -> np.ndarray:
    """300-3400 Hz band, 8 kHz G.711 mu-law round trip, back to 16 kHz."""
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    band = signal.sosfilt(sos, x).astype(np.float32)
    narrow = soxr.resample(band, SAMPLE_RATE, 8000)
    peak = float(np.max(np.abs(narrow))) or 1.0
    coded = mulaw_to_float(float_to_mulaw(narrow / peak * 0.9)) * (peak / 0.9)
    return soxr.resample(coded, 8000, SAMPLE_RATE).astype(np.float32)


def pad_silence(rng: np.random.Generator, x: np.ndarray, pad_range: tuple[float, float]) -> np.ndarray:
    before = int(rng.uniform(*pad_range) * SAMPLE_RATE)
    after = int(rng.uniform(*pad_range) * SAMPLE_RATE)
    return np.concatenate([np.zeros(before, np.float32), x, np.zeros(after, np.float32)])


def augment(
    x: np.ndarray,
    rng: np.random.Generator,
    config: AugmentConfig,
    others: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Apply a random augmentation chain.

    Args:
        x: clean 16 kHz speech.
        rng: the utterance's own generator (keeps builds deterministic).
        config: probabilities and ranges.
        others: other clean utterances for babble noise.

    Returns:
        The augmented audio (peak at most 0.99) and a JSON-able description.
    """
    info: dict[str, Any] = {}
    if rng.random() < config.p_speed:
        factor = float(rng.uniform(*config.speed_range))
        x = speed_perturb(x, factor)
        info["speed"] = round(factor, 3)
    x = pad_silence(rng, x, config.pad_range)
    if rng.random() < config.p_reverb:
        rt60 = float(rng.uniform(*config.rt60_range))
        x = reverberate(x, synthetic_rir(rng, rt60))
        info["reverb_rt60"] = round(rt60, 3)
    if others and rng.random() < config.p_babble:
        snr = float(rng.uniform(*config.babble_snr_range))
        x = add_at_snr(x, babble(rng, len(x), others), snr)
        info["babble_snr"] = round(snr, 1)
    elif rng.random() < config.p_noise:
        colour = str(rng.choice(["white", "pink", "brown"]))
        snr = float(rng.uniform(*config.snr_range))
        x = add_at_snr(x, coloured_noise(rng, len(x), colour), snr)
        info["noise"] = colour
        info["snr"] = round(snr, 1)
    if rng.random() < config.p_telephone:
        x = telephone(x)
        info["telephone"] = True
    gain_db = float(rng.uniform(*config.gain_db_range))
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0:
        # Gain is relative to a 0.5 peak; never clip.
        x = x * min(0.5 * 10 ** (gain_db / 20) / peak, 0.99 / peak)
    if gain_db:
        info["gain_db"] = round(gain_db, 1)
    return x.astype(np.float32), info
