"""Audio sources for the client: a file, an array or the microphone, as PCM16 chunks.

Every source is an iterable of ``bytes`` (little-endian signed 16-bit mono PCM, one
chunk of ``chunk_ms`` each, the last one possibly shorter) with two attributes:

* ``sample_rate``: the rate of those samples (the server resamples to 16 kHz);
* ``live``: True when the source produces audio in real time by itself (the
  microphone), so the client must not pace it again.

:func:`pace` delays chunks so that they leave at audio speed, as if spoken live.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

from asr.audio import SAMPLE_RATE, float_to_pcm16, load_audio

log = logging.getLogger(__name__)

CHUNK_MS = 100
MIC_INSTALL_HINT = "pip install sounddevice; apt install libportaudio2"


class MicrophoneError(RuntimeError):
    """The microphone cannot be used (no sounddevice/PortAudio, or the device failed to open)."""


def to_pcm16(audio: np.ndarray) -> bytes:
    """Mono samples as little-endian PCM16: int16 passes through, floats in [-1, 1] are scaled.

    Raises:
        ValueError: ``audio`` is not 1-D, or has an integer type other than int16.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"expected mono 1-D samples, got shape {audio.shape}")
    if audio.dtype == np.int16:
        return audio.astype("<i2", copy=False).tobytes()
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"expected float or int16 samples, got {audio.dtype}")
    return float_to_pcm16(audio)


def chunk_samples(sample_rate: int, chunk_ms: float) -> int:
    """Samples in one chunk of ``chunk_ms`` at ``sample_rate`` (at least 1)."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"expected a positive integer sample_rate, got {sample_rate!r}")
    if not chunk_ms > 0:
        raise ValueError(f"expected chunk_ms > 0, got {chunk_ms}")
    return max(1, round(sample_rate * chunk_ms / 1000))


class ArraySource:
    """Samples in memory (float in [-1, 1] or int16, mono) at ``sample_rate``."""

    live = False

    def __init__(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, chunk_ms: float = CHUNK_MS) -> None:
        self.sample_rate = sample_rate
        self.chunk_ms = chunk_ms
        self._chunk_bytes = 2 * chunk_samples(sample_rate, chunk_ms)
        self._pcm = to_pcm16(audio)

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self._pcm) / 2 / self.sample_rate

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self._pcm), self._chunk_bytes):
            yield self._pcm[i : i + self._chunk_bytes]


class FileSource(ArraySource):
    """An audio file (anything libsndfile reads), decoded and resampled to 16 kHz mono.

    Raises:
        asr.audio.AudioError: the file is missing, empty or not audio.
    """

    def __init__(self, path: str | os.PathLike[str], chunk_ms: float = CHUNK_MS) -> None:
        self.path = os.fspath(path)
        super().__init__(load_audio(path, SAMPLE_RATE), SAMPLE_RATE, chunk_ms)


class CaptureStream(Protocol):
    """What :class:`MicrophoneSource` needs from a capture stream (``sounddevice.InputStream``)."""

    def read(self, frames: int) -> tuple[Any, bool]:
        """Block until ``frames`` frames are captured; return ``((frames, channels) array, overflowed)``."""
        ...


#: Opens a capture stream: called with ``samplerate, blocksize, channels, dtype, device``
#: keywords; the result is used as a context manager (started on enter, closed on exit).
StreamFactory = Callable[..., AbstractContextManager[CaptureStream]]


def default_stream_factory() -> StreamFactory:
    """``sounddevice.InputStream``, or :class:`MicrophoneError` saying how to install it."""
    try:
        import sounddevice
    except (ImportError, OSError) as e:  # OSError: the module is there but PortAudio is not
        raise MicrophoneError(
            f"microphone capture needs the sounddevice package and the PortAudio library "
            f"({MIC_INSTALL_HINT}): {e}"
        ) from e

    def factory(**kwargs: Any) -> AbstractContextManager[CaptureStream]:
        try:
            return sounddevice.InputStream(**kwargs)  # type: ignore[no-any-return]
        except sounddevice.PortAudioError as e:
            raise MicrophoneError(f"could not open the microphone: {e}") from e

    return factory


class MicrophoneSource:
    """Live capture from the default (or given) input device, mono int16.

    Iterating opens the device and yields one chunk per ``chunk_ms`` until :meth:`stop`
    is called, ``max_seconds`` of audio were captured or the capture stream returns an
    empty block. Pass ``stream_factory`` to capture from something other than
    sounddevice (tests feed a fake this way).

    Raises:
        MicrophoneError: sounddevice or PortAudio is missing (at construction), or the
            device cannot be opened (when iterating).
    """

    live = True

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        chunk_ms: float = CHUNK_MS,
        device: int | str | None = None,
        max_seconds: float | None = None,
        stream_factory: StreamFactory | None = None,
    ) -> None:
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"expected max_seconds > 0, got {max_seconds}")
        self.sample_rate = sample_rate
        self.chunk_ms = chunk_ms
        self.device = device
        self.max_seconds = max_seconds
        self._frames = chunk_samples(sample_rate, chunk_ms)
        self._factory = stream_factory if stream_factory is not None else default_stream_factory()
        self._stop = threading.Event()

    def stop(self) -> None:
        """End the capture after the chunk being recorded (thread-safe)."""
        self._stop.set()

    def __iter__(self) -> Iterator[bytes]:
        limit = None if self.max_seconds is None else round(self.max_seconds * self.sample_rate)
        captured = 0
        with self._factory(
            samplerate=self.sample_rate,
            blocksize=self._frames,
            channels=1,
            dtype="int16",
            device=self.device,
        ) as stream:
            while not self._stop.is_set() and (limit is None or captured < limit):
                frames = self._frames if limit is None else min(self._frames, limit - captured)
                data, overflowed = stream.read(frames)
                if overflowed:
                    log.warning("microphone input overflowed: some audio was lost")
                block = np.asarray(data)
                if block.ndim == 2:
                    block = block[:, 0]  # (frames, channels) -> first channel
                if block.size == 0:
                    break
                captured += len(block)
                yield to_pcm16(block)


def pace(
    chunks: Iterable[bytes],
    sample_rate: int,
    bytes_per_sample: int = 2,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[float], object] = time.sleep,
) -> Iterator[bytes]:
    """Yield each chunk when its audio would have ended if it were spoken live.

    The first chunk leaves one chunk duration after the first one was requested, the
    n-th when ``n`` chunks' worth of audio time has passed. A slow consumer is not
    made slower: there is no wait once the schedule is behind.

    Args:
        chunks: audio bytes (``bytes_per_sample`` bytes per sample, mono).
        sample_rate: samples per second of ``chunks``.
        clock: seconds, monotonic (injectable for tests).
        wait: sleeps for the given seconds (``threading.Event.wait`` makes it interruptible).
    """
    if sample_rate <= 0 or bytes_per_sample <= 0:
        raise ValueError(
            f"expected positive sample_rate and bytes_per_sample, got {sample_rate}, {bytes_per_sample}"
        )
    start: float | None = None
    seconds = 0.0
    for chunk in chunks:
        if start is None:
            start = clock()
        seconds += len(chunk) / bytes_per_sample / sample_rate
        delay = start + seconds - clock()
        if delay > 0:
            wait(delay)
        yield chunk
