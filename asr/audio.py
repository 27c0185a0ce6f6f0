"""Audio input and output: file decoding, resampling, PCM16 and G.711 codecs.

Everything the recogniser consumes is mono float32 at :data:`SAMPLE_RATE`.
Files and in-memory containers are decoded with libsndfile (via ``soundfile``)
and resampled with ``soxr``; telephony payloads (PCM16, mu-law, A-law) are
converted with the pure-numpy codecs below.

libsndfile is silent about a WAV whose data chunk is cut short: it shrinks the
frame count to what the file holds. :func:`load_audio` checks the RIFF header
itself and logs a warning in that case; a file cut inside its header fails to
open and raises :class:`AudioError`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from asr.constants import SAMPLE_RATE

logger = logging.getLogger(__name__)

MIN_STREAM_RATE = 8000
MAX_STREAM_RATE = 192000
RESAMPLE_QUALITY = "HQ"
_READ_BLOCK = 4096  # frames per libsndfile read; small so a corrupt tail loses little
_UNKNOWN_FRAMES = 2**62  # libsndfile reports SF_COUNT_MAX when a header leaves the length open


class AudioError(ValueError):
    """Input that cannot be decoded as audio (missing, empty, truncated, corrupt)."""


class AudioTooLongError(AudioError):
    """Audio longer than the ``max_seconds`` a caller allows (found before decoding it all)."""


# ---------------------------------------------------------------------------
# Decoding files and containers
# ---------------------------------------------------------------------------


def _check_rate(rate: int, name: str) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
        raise ValueError(f"expected a positive integer {name}, got {rate!r}")


def _wav_data_shortfall(f: BinaryIO, size: int) -> tuple[int, int] | None:
    """Compare a RIFF/WAVE data chunk's declared size with the bytes present.

    Returns:
        ``(declared, available)`` byte counts when the data chunk is cut short,
        otherwise ``None`` (also for non-WAV input and streaming placeholders).
    """
    head = f.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        return None
    endian = "<" if head[:4] == b"RIFF" else ">"
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        (length,) = struct.unpack(endian + "I", chunk[4:])
        if chunk[:4] == b"data":
            if length in (0, 0xFFFFFFFF):  # written by a stream that never finalised
                return None
            available = size - (pos + 8)
            return (length, available) if available < length else None
        pos += 8 + length + (length & 1)
    return None


def _reason(exc: BaseException) -> str:
    """libsndfile's own words, without soundfile's "Error opening <repr of the source>" prefix."""
    return str(getattr(exc, "error_string", "") or exc)


def _sanitize(x: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(x).all():
        logger.warning("%s: replacing NaN/inf samples with finite values", name)
        x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    return x


def _read_frames(snd: sf.SoundFile, name: str, max_frames: int | None = None) -> tuple[np.ndarray, bool]:
    """Read all frames of an open file in blocks, keeping what decodes before an error.

    Raises:
        AudioTooLongError: more than ``max_frames`` frames decode (a header may lie).

    Returns:
        The (frames, channels) samples, and whether decoding reached the end
        without an error.
    """
    blocks: list[np.ndarray] = []
    decoded = 0
    while True:
        try:
            block = snd.read(_READ_BLOCK, dtype="float32", always_2d=True)  # (n, channels)
        except (sf.SoundFileError, RuntimeError, OSError, EOFError) as exc:
            if decoded == 0:
                raise AudioError(
                    f"{name}: cannot decode audio, truncated or corrupt ({_reason(exc)})"
                ) from exc
            logger.warning(
                "%s: decoding failed after %d frames (%s); keeping the frames decoded so far",
                name,
                decoded,
                _reason(exc),
            )
            return np.concatenate(blocks, axis=0), False
        if block.shape[0] == 0:
            break
        blocks.append(block)
        decoded += block.shape[0]
        if max_frames is not None and decoded > max_frames:
            raise AudioTooLongError(
                f"{name}: audio longer than the {max_frames / snd.samplerate:g} s maximum"
            )
    if not blocks:
        return np.zeros((0, snd.channels), dtype=np.float32), True
    return np.concatenate(blocks, axis=0), True


# libmpg123 (libsndfile's MP3 decoder) writes notes and recoverable errors straight to
# stderr, e.g. about an encoder's Xing/ID3 headers, even for files that decode fine.
_MPG123_PREFIXES = ("[src/libmpg123", "[", "Note:", "Warning:", "error:", "Big frame", "Frame ")
_stderr_lock = threading.Lock()


def _looks_like_mpeg(source: str | io.BytesIO) -> bool:
    if isinstance(source, io.BytesIO):
        head = source.getbuffer()[:3].tobytes()
    else:
        with open(source, "rb") as f:
            head = f.read(3)
    return head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


@contextlib.contextmanager
def _decoder_stderr(quiet: bool) -> Iterator[None]:
    """While decoding MPEG audio, hold back what the decoder writes to stderr (file descriptor 2).

    When the block succeeds, libmpg123's lines go to the debug log and anything else written
    meanwhile (e.g. another thread's log line) is passed on; when it raises, everything is.
    """
    if not quiet:
        yield
        return
    with _stderr_lock, tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no usable stderr: nothing to hold back
            yield
            return
        ok = False
        try:
            os.dup2(held.fileno(), 2)
            yield
            ok = True
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode("utf-8", "replace").splitlines(keepends=True)
            noise = [line for line in lines if ok and line.lstrip().startswith(_MPG123_PREFIXES)]
            for line in noise:
                logger.debug("libmpg123: %s", line.rstrip())
            rest = "".join(line for line in lines if line not in noise)
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


def _decode(
    source: str | io.BytesIO,
    name: str,
    sample_rate: int,
    max_seconds: float | None = None,
    rate_range: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode ``source`` with libsndfile, downmix, resample; errors name ``name``.

    ``max_seconds`` and ``rate_range`` bound the work untrusted input can cause: a
    small container that declares 1 Hz, or hours of compressed silence, would
    otherwise decode and resample to gigabytes.
    """
    with _decoder_stderr(_looks_like_mpeg(source)):
        data, in_rate, declared, complete = _decode_frames(source, name, max_seconds, rate_range)
    known = declared < _UNKNOWN_FRAMES
    if data.shape[0] == 0:
        raise AudioError(f"{name}: contains no audio")
    if complete and known and data.shape[0] < declared:
        logger.warning(
            "%s: truncated audio, header declares %d frames but only %d could be read",
            name,
            declared,
            data.shape[0],
        )
    data = _sanitize(data, name)
    mono = data.mean(axis=1, dtype=np.float64).astype(np.float32)  # (frames,)
    out = resample(mono, in_rate, sample_rate)
    return np.ascontiguousarray(_sanitize(out, name), dtype=np.float32)


def _decode_frames(
    source: str | io.BytesIO,
    name: str,
    max_seconds: float | None,
    rate_range: tuple[int, int] | None,
) -> tuple[np.ndarray, int, int, bool]:
    """libsndfile's part of :func:`_decode`: ``(frames, channels)`` samples, their rate, the
    declared frame count and whether decoding reached the end."""
    try:
        snd = sf.SoundFile(source)
    except (sf.SoundFileError, RuntimeError, OSError, EOFError) as exc:
        raise AudioError(f"{name}: not a readable audio file ({_reason(exc)})") from exc
    with snd:
        declared = snd.frames
        in_rate = snd.samplerate
        if rate_range is not None and not rate_range[0] <= in_rate <= rate_range[1]:
            raise AudioError(
                f"{name}: sample rate {in_rate} Hz is outside {rate_range[0]}..{rate_range[1]} Hz"
            )
        known = declared < _UNKNOWN_FRAMES
        max_frames = None
        if max_seconds is not None:
            max_frames = int(max_seconds * in_rate)
            if known and declared > max_frames:
                raise AudioTooLongError(
                    f"{name}: {declared / in_rate:.1f} s of audio, longer than the {max_seconds:g} s maximum"
                )
        data, complete = _read_frames(snd, name, max_frames)  # (frames, channels)
    return data, in_rate, declared, complete


def _warn_if_wav_truncated(f: BinaryIO, size: int, name: str) -> None:
    shortfall = _wav_data_shortfall(f, size)
    if shortfall is not None:
        declared, available = shortfall
        logger.warning(
            "%s: truncated WAV, data chunk declares %d bytes but the file holds %d; "
            "loading the samples that exist",
            name,
            declared,
            available,
        )


def load_audio(path: str | os.PathLike[str], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Load an audio file as mono float32 at ``sample_rate``.

    Any format libsndfile reads (WAV, FLAC, OGG, MP3, ...) at any rate and
    channel count is accepted. Channels are averaged and the result resampled
    with soxr.

    Args:
        path: The file to read.
        sample_rate: Output sample rate in Hz.

    Returns:
        A 1-D float32 array free of NaN and inf.

    Raises:
        AudioError: If the file is missing, empty, not audio, cut inside its
            header, holds no frames, or fails to decode before any frame. A WAV
            whose data chunk is cut short, or a compressed file whose decoder fails
            part way, loads the frames that exist and logs a warning instead.
    """
    _check_rate(sample_rate, "sample_rate")
    name = os.fspath(path)
    if not os.path.exists(name):
        raise AudioError(f"{name}: no such file")
    if not os.path.isfile(name):
        raise AudioError(f"{name}: not a regular file")
    size = os.path.getsize(name)
    if size == 0:
        raise AudioError(f"{name}: file is empty (0 bytes)")
    with open(name, "rb") as f:
        _warn_if_wav_truncated(f, size, name)
    return _decode(name, name, sample_rate)


def decode_audio_bytes(
    data: bytes,
    name: str = "<bytes>",
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    rate_range: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode an in-memory audio container (WAV, FLAC, OGG, ...) like :func:`load_audio`.

    Args:
        data: The complete container bytes.
        name: How to refer to the data in errors and warnings.
        sample_rate: Output sample rate in Hz.
        max_seconds: Refuse audio longer than this (checked on the header, then
            while decoding), so untrusted bytes cannot expand without bound.
        rate_range: Refuse a container whose own rate is outside ``(low, high)`` Hz.

    Returns:
        A 1-D float32 array free of NaN and inf.

    Raises:
        AudioError: Under the same rules as :func:`load_audio`, or a rate outside
            ``rate_range``.
        AudioTooLongError: The audio is longer than ``max_seconds``.
    """
    _check_rate(sample_rate, "sample_rate")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise AudioError(f"{name}: data is empty (0 bytes)")
    _warn_if_wav_truncated(io.BytesIO(data), len(data), name)
    return _decode(io.BytesIO(data), name, sample_rate, max_seconds, rate_range)


def audio_duration(path: str | os.PathLike[str]) -> float:
    """Duration in seconds as reported by the file header.

    Raises:
        AudioError: If the file is missing or its header cannot be read.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise AudioError(f"{name}: no such file")
    try:
        return float(sf.info(name).duration)
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{name}: not a readable audio file ({_reason(exc)})") from exc


def write_wav(path: str | os.PathLike[str], x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono (or (frames, channels)) audio as a 16-bit PCM WAV, clipping to [-1, 1]."""
    _check_rate(sample_rate, "sample_rate")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"expected a 1-D or (frames, channels) array, got shape {x.shape}")
    clipped = np.clip(np.nan_to_num(x), -1.0, 1.0)
    sf.write(os.fspath(path), clipped, sample_rate, format="WAV", subtype="PCM_16")


# ---------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample float audio with soxr (quality "HQ").

    Args:
        x: Samples, 1-D or (frames, channels).
        sr_in: Input rate in Hz.
        sr_out: Output rate in Hz.

    Returns:
        A float32 array; a copy of ``x`` when the rates are equal.
    """
    _check_rate(sr_in, "sr_in")
    _check_rate(sr_out, "sr_out")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"expected a 1-D or (frames, channels) array, got shape {x.shape}")
    if sr_in == sr_out:
        return x.copy()
    if x.shape[0] == 0:
        return np.zeros((0, *x.shape[1:]), dtype=np.float32)
    return soxr.resample(x, sr_in, sr_out, quality=RESAMPLE_QUALITY)


class StreamResampler:
    """Chunk-by-chunk mono resampler; the concatenated output equals :func:`resample`.

    Feed chunks to :meth:`process` and pass ``last=True`` with the final one (an
    empty chunk is fine) to flush the filter tail.
    """

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE) -> None:
        for rate, label in ((in_rate, "in_rate"), (out_rate, "out_rate")):
            if (
                isinstance(rate, bool)
                or not isinstance(rate, int | np.integer)
                or not MIN_STREAM_RATE <= rate <= MAX_STREAM_RATE
            ):
                raise ValueError(
                    f"expected {label} in [{MIN_STREAM_RATE}, {MAX_STREAM_RATE}] Hz, got {rate!r}"
                )
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self._finished = False
        self._stream: soxr.ResampleStream | None = None
        if self.in_rate != self.out_rate:
            self._stream = soxr.ResampleStream(
                self.in_rate, self.out_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY
            )

    def process(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample one chunk.

        Args:
            x: 1-D float samples at ``in_rate``; may be empty.
            last: True for the final chunk of the stream.

        Returns:
            1-D float32 samples at ``out_rate`` (possibly empty: the resampler
            holds back a filter delay until more input or ``last`` arrives).
        """
        if self._finished:
            raise RuntimeError("process() called after the stream was finished with last=True")
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected a 1-D chunk, got shape {x.shape}")
        self._finished = last
        if self._stream is None:
            return x.copy()
        return self._stream.resample_chunk(np.ascontiguousarray(x), last=last)


# ---------------------------------------------------------------------------
# PCM16 and G.711
# ---------------------------------------------------------------------------


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian signed 16-bit PCM to float32 in [-1, 1)."""
    if len(data) % 2:
        raise ValueError(f"expected an even number of PCM16 bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def _float_to_int16(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.nan_to_num(np.asarray(x, dtype=np.float64)), -1.0, 1.0)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int32)


def float_to_pcm16(x: np.ndarray) -> bytes:
    """Float samples (clipped to [-1, 1]) to little-endian signed 16-bit PCM."""
    return _float_to_int16(x).astype("<i2").tobytes()


def _mulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = ((((u & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (a & 0x70) >> 4
    base = (a & 0x0F) << 4
    magnitude = np.where(segment == 0, base + 8, (base + 0x108) << np.maximum(segment - 1, 0))
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


_MULAW_TABLE = _mulaw_decode_table()
_ALAW_TABLE = _alaw_decode_table()
_MULAW_BIAS = 0x21  # 0x84 >> 2, for 14-bit magnitudes


def mulaw_to_float(data: bytes) -> np.ndarray:
    """ITU G.711 mu-law bytes to float32 in [-1, 1)."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _MULAW_TABLE[codes].astype(np.float32) / 32768.0


def alaw_to_float(data: bytes) -> np.ndarray:
    """ITU G.711 A-law bytes to float32 in [-1, 1)."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _ALAW_TABLE[codes].astype(np.float32) / 32768.0


def float_to_mulaw(x: np.ndarray) -> bytes:
    """Float samples (clipped to [-1, 1]) to ITU G.711 mu-law bytes.

    Bit-exact with the classic Sun ``g711.c`` (and so with the old ``audioop``).
    """
    pcm = _float_to_int16(x) >> 2  # 14-bit
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm) + _MULAW_BIAS, 0x1FFF)  # 33..8191
    exponent = np.floor(np.log2(magnitude >> 5)).astype(np.int32)  # 0..7
    mantissa = (magnitude >> (exponent + 1)) & 0x0F
    return (((exponent << 4) | mantissa) ^ mask).astype(np.uint8).tobytes()


def float_to_alaw(x: np.ndarray) -> bytes:
    """Float samples (clipped to [-1, 1]) to ITU G.711 A-law bytes (Sun ``g711.c``)."""
    pcm = _float_to_int16(x) >> 3  # 13-bit
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1)  # 0..4095
    # Segment 0 covers 0..31; segment s >= 1 covers [16 << s, 32 << s).
    segment = np.maximum(np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 4, 0)
    shift = np.where(segment < 2, 1, segment)
    code = (segment << 4) | ((magnitude >> shift) & 0x0F)
    return ((code ^ mask) & 0xFF).astype(np.uint8).tobytes()
