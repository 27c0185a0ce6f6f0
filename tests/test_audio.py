"""Tests for asr.audio: decoding, resampling, PCM16/G.711 codecs, streaming."""

from __future__ import annotations

import io
import logging
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import (
    SAMPLE_RATE,
    AudioError,
    StreamResampler,
    alaw_to_float,
    audio_duration,
    decode_audio_bytes,
    float_to_alaw,
    float_to_mulaw,
    float_to_pcm16,
    load_audio,
    mulaw_to_float,
    pcm16_to_float,
    resample,
    write_wav,
)

FORMATS = [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS")]


def sine(freq: float, sr: int, seconds: float = 0.5, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    noise = ref.astype(np.float64) - test.astype(np.float64)
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum(noise**2)))


def wav_bytes(x: np.ndarray, sr: int = SAMPLE_RATE) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("ext,fmt,subtype", FORMATS)
@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_load_audio_formats_and_rates(tmp_path: Path, ext: str, fmt: str, subtype: str, sr: int) -> None:
    path = tmp_path / f"tone.{ext}"
    sf.write(path, sine(440, sr), sr, format=fmt, subtype=subtype)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - SAMPLE_RATE // 2) <= 2
    assert np.isfinite(y).all()
    assert abs(peak_hz(y, SAMPLE_RATE) - 440) < 5


def test_load_audio_stereo_is_downmixed_to_the_mean(tmp_path: Path) -> None:
    left, right = sine(440, SAMPLE_RATE), sine(1000, SAMPLE_RATE, amplitude=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    y = load_audio(str(path))
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)


def test_load_audio_other_sample_rate(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    sf.write(path, sine(440, 44100), 44100)
    y = load_audio(path, sample_rate=8000)
    assert abs(len(y) - 4000) <= 2
    assert abs(peak_hz(y, 8000) - 440) < 5
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(path, sample_rate=0)


def test_audio_duration(tmp_path: Path) -> None:
    path = tmp_path / "tone.flac"
    sf.write(path, sine(440, 22050, seconds=1.5), 22050)
    assert audio_duration(path) == pytest.approx(1.5)
    with pytest.raises(AudioError, match="missing.wav"):
        audio_duration(tmp_path / "missing.wav")


def test_write_wav_round_trip_and_clipping(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    x = np.array([0.0, 0.5, -0.5, 2.0, -2.0], dtype=np.float32)
    write_wav(path, x)
    info = sf.info(path)
    assert (info.samplerate, info.subtype) == (SAMPLE_RATE, "PCM_16")
    y = load_audio(path)
    np.testing.assert_allclose(y, np.clip(x, -1, 1), atol=1 / 32768)


def test_nan_and_inf_never_come_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    x = sine(440, 22050)
    x[100], x[200], x[300] = np.nan, np.inf, -np.inf
    path = tmp_path / "bad.wav"
    sf.write(path, x, 22050, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="asr.audio"):
        y = load_audio(path)
    assert np.isfinite(y).all()
    assert "bad.wav" in caplog.text


# ---------------------------------------------------------------------------
# Errors and truncation
# ---------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"nothere\.wav: no such file"):
        load_audio(tmp_path / "nothere.wav")


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav.*empty"):
        load_audio(path)


def test_text_file_renamed_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError, match=r"notes\.wav: not a readable audio file"):
        load_audio(path)


@pytest.mark.parametrize("cut", [4, 10, 30])
def test_file_cut_inside_header(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(wav_bytes(sine(440, SAMPLE_RATE))[:cut])
    with pytest.raises(AudioError, match=r"cut\.wav"):
        load_audio(path)


def test_header_only_wav_contains_no_audio(tmp_path: Path) -> None:
    path = tmp_path / "header.wav"
    path.write_bytes(wav_bytes(np.zeros(100, np.float32))[:44])
    with pytest.raises(AudioError, match=r"header\.wav: contains no audio"):
        load_audio(path)


def test_flac_cut_inside_header(tmp_path: Path) -> None:
    buf = io.BytesIO()
    sf.write(buf, sine(440, SAMPLE_RATE), SAMPLE_RATE, format="FLAC")
    path = tmp_path / "cut.flac"
    path.write_bytes(buf.getvalue()[:30])
    with pytest.raises(AudioError, match=r"cut\.flac"):
        load_audio(path)


def test_data_truncated_wav_loads_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    x = sine(440, SAMPLE_RATE)
    data = wav_bytes(x)
    assert struct.unpack("<I", data[40:44])[0] == 2 * len(x)  # the data chunk size
    path = tmp_path / "short.wav"
    path.write_bytes(data[: 44 + 2 * 1000 + 1])  # 1000 whole samples and half of one
    with caplog.at_level(logging.WARNING, logger="asr.audio"):
        y = load_audio(path)
    np.testing.assert_allclose(y, x[:1000], atol=1 / 32768)
    assert "short.wav" in caplog.text and "truncated" in caplog.text


def test_complete_wav_logs_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ok.wav"
    path.write_bytes(wav_bytes(sine(440, SAMPLE_RATE)) + b"LIST\x04\x00\x00\x00INFO")
    with caplog.at_level(logging.WARNING, logger="asr.audio"):
        load_audio(path)
    assert caplog.text == ""


# ---------------------------------------------------------------------------
# In-memory containers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("ext,fmt,subtype", FORMATS)
def test_decode_audio_bytes(ext: str, fmt: str, subtype: str) -> None:
    buf = io.BytesIO()
    sf.write(buf, np.stack([sine(440, 48000)] * 2, axis=1), 48000, format=fmt, subtype=subtype)
    y = decode_audio_bytes(buf.getvalue(), name=f"upload.{ext}")
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - SAMPLE_RATE // 2) <= 2
    assert abs(peak_hz(y, SAMPLE_RATE) - 440) < 5


def test_decode_audio_bytes_errors(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AudioError, match=r"req-1.*empty"):
        decode_audio_bytes(b"", name="req-1")
    with pytest.raises(AudioError, match=r"req-2: not a readable audio file"):
        decode_audio_bytes(b"hello world, not audio" * 10, name="req-2")
    with pytest.raises(AudioError, match=r"<bytes>"):
        decode_audio_bytes(wav_bytes(sine(440, SAMPLE_RATE))[:20])
    with caplog.at_level(logging.WARNING, logger="asr.audio"):
        y = decode_audio_bytes(wav_bytes(sine(440, SAMPLE_RATE))[:1044], name="req-3")
    assert len(y) == 500 and "req-3" in caplog.text


# ---------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sr_in,sr_out", [(8000, 16000), (44100, 16000), (48000, 16000), (16000, 8000)])
def test_resample_preserves_frequency(sr_in: int, sr_out: int) -> None:
    y = resample(sine(440, sr_in), sr_in, sr_out)
    assert y.dtype == np.float32
    assert abs(len(y) - sr_out // 2) <= 1
    assert abs(peak_hz(y, sr_out) - 440) < 5


def test_resample_equal_rates_copies_and_validates() -> None:
    x = sine(440, SAMPLE_RATE)
    y = resample(x, SAMPLE_RATE, SAMPLE_RATE)
    np.testing.assert_array_equal(x, y)
    assert y is not x
    assert resample(np.zeros(0, np.float32), 8000, 16000).shape == (0,)
    for bad in (0, -16000):
        with pytest.raises(ValueError, match="expected a positive integer"):
            resample(x, bad, SAMPLE_RATE)


@pytest.mark.parametrize("sr_in", [8000, 11025, 22050, 44100, 48000])
def test_stream_resampler_matches_one_shot(sr_in: int) -> None:
    rng = np.random.default_rng(sr_in)
    x = (0.1 * rng.standard_normal(sr_in // 2 + 123)).astype(np.float32)
    stream = StreamResampler(sr_in)
    pieces, start = [], 0
    while start < len(x):
        size = int(rng.choice([1, 2, 7, 160, 1000, 3000]))
        pieces.append(stream.process(x[start : start + size]))
        start += size
    pieces.append(stream.process(np.zeros(0, np.float32), last=True))
    streamed = np.concatenate(pieces)
    whole = resample(x, sr_in, SAMPLE_RATE)
    # libsoxr's output does not depend on how the input is chunked (bit-exact with
    # soxr 1.1); allow float32 rounding in case a future version reorders sums.
    assert len(streamed) == len(whole)
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-5)
    with pytest.raises(RuntimeError, match="finished"):
        stream.process(x[:10])


def test_stream_resampler_passthrough_and_validation() -> None:
    stream = StreamResampler(SAMPLE_RATE)
    x = sine(440, SAMPLE_RATE)
    np.testing.assert_array_equal(stream.process(x[:1]), x[:1])
    np.testing.assert_array_equal(stream.process(x[1:], last=True), x[1:])
    for bad in (7999, 192001, 0):
        with pytest.raises(ValueError, match=str(bad)):
            StreamResampler(bad)
    with pytest.raises(ValueError, match="out_rate"):
        StreamResampler(16000, 4000)
    with pytest.raises(ValueError, match="1-D"):
        StreamResampler(8000).process(np.zeros((4, 2), np.float32))


# ---------------------------------------------------------------------------
# PCM16 and G.711
# ---------------------------------------------------------------------------


def test_pcm16_round_trip() -> None:
    data = struct.pack("<4h", 0, 16384, -32768, 32767)
    np.testing.assert_array_equal(pcm16_to_float(data), [0.0, 0.5, -1.0, 32767 / 32768])
    assert float_to_pcm16(pcm16_to_float(data)) == data
    assert float_to_pcm16(np.array([2.0, -2.0])) == struct.pack("<2h", 32767, -32768)


def test_pcm16_odd_length() -> None:
    with pytest.raises(ValueError, match="even number of PCM16 bytes, got 3"):
        pcm16_to_float(b"\x00\x01\x02")


def test_g711_known_values() -> None:
    assert mulaw_to_float(b"\xff")[0] == 0.0
    assert mulaw_to_float(b"\x00")[0] == -32124 / 32768
    assert mulaw_to_float(b"\x80")[0] == 32124 / 32768
    assert alaw_to_float(b"\xd5")[0] == 8 / 32768
    assert alaw_to_float(b"\x55")[0] == -8 / 32768
    assert alaw_to_float(b"\xaa")[0] == 32256 / 32768
    assert float_to_mulaw(np.array([0.0, 1.0, -1.0])) == b"\xff\x80\x00"
    assert float_to_alaw(np.array([0.0, 1.0, -1.0])) == b"\xd5\xaa\x2a"


def test_g711_codes_survive_decode_encode() -> None:
    codes = bytes(range(256))
    assert float_to_alaw(alaw_to_float(codes)) == codes
    # 0x7F is mu-law's negative zero; it decodes to 0, which encodes as 0xFF.
    expected = bytes(0xFF if c == 0x7F else c for c in range(256))
    assert float_to_mulaw(mulaw_to_float(codes)) == expected


@pytest.mark.parametrize("encode,decode", [(float_to_mulaw, mulaw_to_float), (float_to_alaw, alaw_to_float)])
def test_g711_sine_round_trip(
    encode: Callable[[np.ndarray], bytes], decode: Callable[[bytes], np.ndarray]
) -> None:
    x = sine(440, 8000, seconds=1.0, amplitude=0.5)
    encoded = encode(x)
    assert isinstance(encoded, bytes) and len(encoded) == len(x)
    assert snr_db(x, decode(encoded)) > 30


def test_g711_matches_audioop_when_available() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    codes = bytes(range(256))
    every_int16 = np.arange(-32768, 32768, dtype=np.int16)
    pcm = every_int16.astype("<i2").tobytes()
    x = every_int16 / 32768
    assert float_to_pcm16(mulaw_to_float(codes)) == audioop.ulaw2lin(codes, 2)
    assert float_to_pcm16(alaw_to_float(codes)) == audioop.alaw2lin(codes, 2)
    assert float_to_mulaw(x) == audioop.lin2ulaw(pcm, 2)
    assert float_to_alaw(x) == audioop.lin2alaw(pcm, 2)
