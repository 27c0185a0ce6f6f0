"""Tests for asr.corpus.augment: the transforms, their levels and reproducibility."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asr.corpus import augment as aug

SR = 16000


def speechlike(seed: int = 0, seconds: float = 1.0) -> np.ndarray:
    """A harmonic tone with a syllable-rate envelope, peak 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 20 * rng.random()
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 30))
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) + 0.01 * rng.standard_normal(len(t))
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def check_audio(y: np.ndarray) -> None:
    assert y.dtype == np.float32
    assert y.ndim == 1
    assert np.isfinite(y).all()


def test_transforms_return_finite_float32() -> None:
    rng = np.random.default_rng(1)
    x = speechlike()
    for y in (
        aug.speed_perturb(x, 0.9),
        aug.speed_perturb(x, 1.1),
        aug.reverberate(x, aug.synthetic_rir(rng, 0.4)),
        aug.add_at_snr(x, aug.coloured_noise(rng, len(x), "pink"), 10.0),
        aug.babble(rng, len(x), [speechlike(s, 0.3 + 0.2 * s) for s in range(4)]),
        aug.telephone(x),
        aug.pad_silence(rng, x, (0.1, 0.2)),
        aug.synthetic_rir(rng, 0.2),
    ):
        check_audio(y)
    for colour in ("white", "pink", "brown"):
        noise = aug.coloured_noise(rng, 4000, colour)
        check_audio(noise)
        assert np.sqrt(np.mean(noise.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)


EVERYTHING = aug.AugmentConfig(
    p_speed=1.0, p_reverb=1.0, p_noise=1.0, p_babble=0.0, p_telephone=1.0, gain_db_range=(20.0, 20.0)
)
# x * (0.99 / peak) in float32 can land one ulp (6e-8) above 0.99; that is not clipping.
PEAK = 0.99 + 1e-6


@pytest.mark.parametrize("seed", range(4))
def test_augment_never_clips_and_is_reproducible(seed: int) -> None:
    x = speechlike(seed) * 1.9  # peak 0.95: loud input
    others = [speechlike(s, 0.5) for s in range(5)]
    for config in (aug.AugmentConfig(), EVERYTHING, aug.CLEAN):
        y, info = aug.augment(x, np.random.default_rng(seed), config, others)
        check_audio(y)
        assert np.max(np.abs(y)) <= PEAK
        y2, info2 = aug.augment(x, np.random.default_rng(seed), config, others)
        np.testing.assert_array_equal(y, y2)
        assert info == info2
        json.dumps(info)  # goes into the manifest


def test_augment_records_what_it_did() -> None:
    x = speechlike()
    y, info = aug.augment(x, np.random.default_rng(0), EVERYTHING)
    assert set(info) == {"speed", "reverb_rt60", "noise", "snr", "telephone", "gain_db"}
    assert 0.9 <= info["speed"] <= 1.1
    assert info["noise"] in {"white", "pink", "brown"}
    assert info["telephone"] is True
    assert info["gain_db"] == 20.0
    assert np.max(np.abs(y)) == pytest.approx(0.99, abs=1e-6)  # +20 dB is capped below clipping

    babble_only = aug.AugmentConfig(p_speed=0, p_reverb=0, p_babble=1.0, p_telephone=0)
    _, info = aug.augment(x, np.random.default_rng(0), babble_only, [speechlike(s) for s in range(4)])
    assert "babble_snr" in info and "noise" not in info

    y, info = aug.augment(x, np.random.default_rng(0), aug.CLEAN)
    assert info == {}
    # CLEAN only pads silence and sets the peak to 0.5.
    assert len(y) > len(x)
    assert np.max(np.abs(y)) == pytest.approx(0.5, abs=1e-6)


def power_above(x: np.ndarray, hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    return float(spectrum[freqs > hz].sum() / spectrum.sum())


def test_telephone_removes_energy_above_4khz() -> None:
    x = aug.coloured_noise(np.random.default_rng(0), SR, "white") * 0.2
    y = aug.telephone(x)
    assert len(y) == len(x)
    assert power_above(x, 4000) > 0.4
    assert power_above(y, 4000) < 1e-4
    # ... and the band below 300 Hz is attenuated too.
    assert 1 - power_above(y, 200) < 0.1 * (1 - power_above(x, 200))


@pytest.mark.parametrize("factor", [0.9, 0.95, 1.05, 1.1])
def test_speed_perturb_scales_length(factor: float) -> None:
    x = speechlike()
    y = aug.speed_perturb(x, factor)
    assert abs(len(y) - len(x) / factor) <= 1


@pytest.mark.parametrize("snr_db", [0.0, 5.0, 12.5, 30.0])
@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
def test_add_at_snr_hits_the_target(snr_db: float, colour: str) -> None:
    x = speechlike()
    noise = aug.coloured_noise(np.random.default_rng(3), len(x), colour) * 0.37
    y = aug.add_at_snr(x, noise, snr_db)
    added = y.astype(np.float64) - x
    measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(added**2))
    assert measured == pytest.approx(snr_db, abs=0.5)


@pytest.mark.parametrize("rt60", [0.15, 0.5, 0.9])
def test_synthetic_rir_decays(rt60: float) -> None:
    rir = aug.synthetic_rir(np.random.default_rng(4), rt60)
    assert len(rir) == int(rt60 * SR)
    assert rir[0] == 1.0  # direct path
    tail = rir[1:].astype(np.float64) ** 2
    quarters = [q.sum() for q in np.array_split(tail, 4)]
    assert quarters[0] > quarters[1] > quarters[2] > quarters[3]
    assert quarters[3] < 1e-3 * quarters[0]  # ~ -45 dB by the last quarter
