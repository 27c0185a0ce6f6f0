"""The client library, its audio sources and the ``asr stream`` command (loopback, tiny models)."""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import grpc
import numpy as np
import pytest
from asr.client import (
    ArraySource,
    FileSource,
    MicrophoneError,
    MicrophoneSource,
    RecognizerClient,
    RecognizerError,
    StreamOptions,
    pace,
)
from asr.client import cli as client_cli
from asr.client import sources as client_sources
from asr.client.cli import CLEAR_LINE, LivePrinter, add_stream_parser
from asr.client.client import StreamEvent, events_from_response
from asr.server.app import RunningServer, ServerConfig, start_in_thread

from asr.api import Recognizer
from asr.audio import AudioError, float_to_pcm16, write_wav
from asr.v1 import asr_pb2
from tests.helpers import make_tiny_recognizer, noise, self_signed_cert, wait_for

FINAL_LINE = re.compile(r"\[\d+\.\d\d-\d+\.\d\d\] \S.*\n")


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory: pytest.TempPathFactory) -> Recognizer:
    return make_tiny_recognizer(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def server(recognizer: Recognizer) -> Iterator[RunningServer]:
    running = start_in_thread(ServerConfig(host="127.0.0.1", port=0, grace_s=0.5), recognizer)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def target(server: RunningServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture
def client(target: str) -> Iterator[RecognizerClient]:
    with RecognizerClient(target, timeout=30) as c:
        yield c


class FakeCapture:
    """Stands in for sounddevice.InputStream: a factory, a context manager and a reader."""

    def __init__(self, audio: np.ndarray, overflow_on_read: int | None = None) -> None:
        self.audio = audio.astype(np.int16)
        self.overflow_on_read = overflow_on_read
        self.kwargs: dict[str, object] = {}
        self.reads: list[int] = []
        self.entered = self.exited = False
        self._pos = 0

    def __call__(self, **kwargs: object) -> FakeCapture:
        self.kwargs = kwargs
        return self

    def __enter__(self) -> FakeCapture:
        self.entered = True
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.exited = True

    def read(self, frames: int) -> tuple[np.ndarray, bool]:
        self.reads.append(frames)
        block = self.audio[self._pos : self._pos + frames].reshape(-1, 1)  # (frames, channels)
        self._pos += frames
        return block, len(self.reads) == self.overflow_on_read


def int16_noise(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.round(noise(seconds, rate=rate) * 32767).clip(-32768, 32767).astype(np.int16)


# --------------------------------------------------------------------- sources
def test_array_source_chunks_float_and_int16() -> None:
    audio = noise(0.35)
    source = ArraySource(audio)
    chunks = list(source)
    assert [len(c) for c in chunks] == [3200, 3200, 3200, 1600]  # 100 ms of int16, then the rest
    assert b"".join(chunks) == float_to_pcm16(audio)
    assert source.duration == pytest.approx(0.35) and source.sample_rate == 16000 and not source.live
    pcm = int16_noise(0.1)
    assert b"".join(ArraySource(pcm)) == pcm.astype("<i2").tobytes()  # int16 passes unchanged
    assert [len(c) for c in ArraySource(noise(0.1, rate=8000), 8000, chunk_ms=20)] == [320] * 5


def test_array_source_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="mono"):
        ArraySource(np.zeros((100, 2), np.float32))
    with pytest.raises(ValueError, match="int16"):
        ArraySource(np.zeros(100, np.int32))
    with pytest.raises(ValueError, match="chunk_ms"):
        ArraySource(np.zeros(100, np.float32), chunk_ms=0)


def test_file_source_decodes_to_16k(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    write_wav(path, noise(0.25, rate=8000), 8000)
    source = FileSource(path, chunk_ms=50)
    chunks = list(source)
    assert source.sample_rate == 16000
    assert sum(len(c) for c in chunks) == 2 * 4000  # 0.25 s at 16 kHz, int16
    assert [len(c) for c in chunks] == [1600] * 5
    samples = np.frombuffer(b"".join(chunks), "<i2")
    assert np.abs(samples).max() > 1000  # real audio, not silence
    with pytest.raises(AudioError):
        FileSource(tmp_path / "missing.wav")


def test_pace_sends_chunks_at_audio_speed() -> None:
    now = [0.0]
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    sent_at = []
    for _chunk in pace([b"\0" * 3200] * 4, 16000, clock=lambda: now[0], wait=wait):
        sent_at.append(now[0])
    assert sent_at == pytest.approx([0.1, 0.2, 0.3, 0.4])  # each chunk when its audio has ended
    # A consumer that falls behind is not slowed further.
    now[0], waits[:] = 0.0, []
    for _chunk in pace([b"\0" * 3200] * 3, 16000, clock=lambda: now[0], wait=wait):
        now[0] += 0.5
    assert waits == pytest.approx([0.1])


def test_microphone_source_with_fake_capture(caplog: pytest.LogCaptureFixture) -> None:
    audio = int16_noise(0.35)
    fake = FakeCapture(audio, overflow_on_read=2)
    mic = MicrophoneSource(chunk_ms=100, device="fake", stream_factory=fake)
    assert mic.live
    with caplog.at_level(logging.WARNING):
        chunks = list(mic)
    assert fake.kwargs == {
        "samplerate": 16000,
        "blocksize": 1600,
        "channels": 1,
        "dtype": "int16",
        "device": "fake",
    }
    assert fake.entered and fake.exited
    assert [len(c) for c in chunks] == [3200, 3200, 3200, 1600]  # stops at the empty read
    assert b"".join(chunks) == audio.tobytes()
    assert "overflowed" in caplog.text


def test_microphone_source_stops() -> None:
    fake = FakeCapture(int16_noise(2.0, rate=8000))
    chunks = list(MicrophoneSource(8000, chunk_ms=100, max_seconds=0.25, stream_factory=fake))
    assert [len(c) for c in chunks] == [1600, 1600, 800]  # 0.25 s at 8 kHz, the last read cut short
    mic = MicrophoneSource(stream_factory=FakeCapture(int16_noise(2.0)))
    taken = []
    for chunk in mic:
        taken.append(chunk)
        mic.stop()
    assert len(taken) == 1


def test_microphone_without_sounddevice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import now raises ImportError
    with pytest.raises(MicrophoneError, match="pip install sounddevice; apt install libportaudio2"):
        MicrophoneSource()


# --------------------------------------------------------------------- options
def test_stream_options_to_proto() -> None:
    options = StreamOptions(
        model="two-pass",
        sample_rate=8000,
        encoding="MULAW",
        interim_results=False,
        max_alternatives=3,
        word_time_offsets=True,
        word_confidence=True,
        hotwords=["turn left", "stop"],  # type: ignore[arg-type]
        hotword_boost=7.5,
        trailing_silence_ms=400,
        max_utterance_ms=9000,
        initial_silence_timeout_ms=2500,
        single_utterance=True,
        partial_decoder="beam",
    )
    msg = options.to_proto()
    assert msg.interim_results is False and msg.single_utterance is True
    c = msg.config
    assert (c.model, c.sample_rate_hertz, c.encoding, c.max_alternatives) == (
        "two-pass",
        8000,
        asr_pb2.MULAW,
        3,
    )
    assert c.enable_word_time_offsets and c.enable_word_confidence and c.partial_decoder == "beam"
    assert [(list(s.phrases), s.boost) for s in c.speech_contexts] == [(["turn left", "stop"], 7.5)]
    ep = c.endpointing
    assert (ep.trailing_silence_ms, ep.max_utterance_ms, ep.initial_silence_timeout_ms) == (400, 9000, 2500)
    assert options.hotwords == ("turn left", "stop")
    default = StreamOptions().to_proto()
    assert default.interim_results and not default.config.speech_contexts
    assert (default.config.encoding, default.config.sample_rate_hertz) == (asr_pb2.LINEAR16, 16000)


@pytest.mark.parametrize(
    "changes",
    [
        {"encoding": "MP3"},
        {"partial_decoder": "fancy"},
        {"max_alternatives": 0},
        {"trailing_silence_ms": -1},
        {"sample_rate": 0},
        {"hotwords": "stop"},
    ],
)
def test_stream_options_validation(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="expected"):
        StreamOptions(**changes)  # type: ignore[arg-type]


def test_events_from_response() -> None:
    only_events = asr_pb2.StreamingRecognizeResponse(
        speech_events=[asr_pb2.SpeechEvent(type=asr_pb2.SPEECH_START, time=0.3)]
    )
    [event] = events_from_response(only_events, 0.5, next_utterance=2)
    assert (event.text, event.has_result, event.utterance_index, event.start) == (
        "",
        False,
        2,
        pytest.approx(0.3),
    )
    assert [e.type for e in event.events] == ["SPEECH_START"]
    response = asr_pb2.StreamingRecognizeResponse(
        results=[
            asr_pb2.StreamingRecognitionResult(
                alternatives=[
                    asr_pb2.SpeechRecognitionAlternative(
                        transcript="go on", confidence=0.9, words=[asr_pb2.WordInfo(word="go", end_time=0.2)]
                    ),
                    asr_pb2.SpeechRecognitionAlternative(transcript="go in"),
                ],
                is_final=True,
                result_end_time=1.5,
                utterance_index=1,
            )
        ],
        speech_events=[asr_pb2.SpeechEvent(type=asr_pb2.SPEECH_END, time=1.5)],
    )
    [final] = events_from_response(response, 2.0)
    assert final.is_final and final.text == "go on" and final.alternatives == ("go on", "go in")
    assert final.words[0].word == "go" and final.sent_audio_seconds == 2.0
    assert [e.type for e in final.events] == ["SPEECH_END"]


# ---------------------------------------------------------------- round trips
def test_stream_round_trip(client: RecognizerClient) -> None:
    events = list(client.stream(noise(2.0), StreamOptions(word_time_offsets=True, word_confidence=True)))
    results = [e for e in events if e.has_result]
    finals = [e for e in results if e.is_final]
    assert finals and [e.utterance_index for e in finals] == list(range(len(finals)))
    assert any(not e.is_final for e in results)  # interim results are on by default
    assert all(e.sent_audio_seconds <= 2.0 + 1e-9 for e in events)
    assert events[-1].sent_audio_seconds == pytest.approx(2.0)
    assert all(0.0 <= e.start <= e.end <= 2.0 + 1e-6 for e in results)
    assert any(w.end >= w.start > 0 or w.confidence > 0 for e in finals for w in e.words)
    assert any(s.type == "SPEECH_START" for e in events for s in e.events)


def test_realtime_stream_takes_the_audio_time(client: RecognizerClient) -> None:
    started = time.monotonic()
    events = list(client.stream(noise(0.6), StreamOptions(), realtime=True))
    elapsed = time.monotonic() - started
    assert 0.55 <= elapsed < 5.0
    sent = [e.sent_audio_seconds for e in events]
    assert sent == sorted(sent) and sent[-1] == pytest.approx(0.6)


def test_force_endpoint_and_end_audio(client: RecognizerClient) -> None:
    options = StreamOptions(trailing_silence_ms=5000, interim_results=False)  # no natural endpoints
    chunks = list(ArraySource(noise(2.0)))

    def source() -> Iterator[bytes]:
        for i, chunk in enumerate(chunks):
            if i == 10:
                call.force_endpoint()  # goes out before this chunk
            yield chunk

    call = client.stream(source(), options)
    finals = [e for e in call if e.is_final]
    assert [e.utterance_index for e in finals] == [0, 1]
    assert finals[0].end == pytest.approx(1.0, abs=0.1) and finals[1].start == pytest.approx(finals[0].end)

    call = client.stream(noise(10.0), StreamOptions(), realtime=True)
    next(iter(call))
    call.end_audio()  # stop sending: the rest of the results still come, then a clean end
    rest = list(call)
    assert rest and rest[-1].is_final and rest[-1].sent_audio_seconds < 5.0


def test_source_errors_reach_the_caller(client: RecognizerClient) -> None:
    def broken() -> Iterator[bytes]:
        yield b"\0\0" * 1600
        raise MicrophoneError("could not open the microphone: device unplugged")

    with pytest.raises(MicrophoneError, match="unplugged"):
        list(client.stream(broken()))
    assert wait_for(lambda: client.stats().active_streams == 0)


def test_unary_calls(client: RecognizerClient, tmp_path: Path) -> None:
    assert client.health() == "SERVING"
    assert [m.name for m in client.list_models()] == ["stream", "two-pass", "offline"]
    path = tmp_path / "b.wav"
    write_wav(path, noise(1.0, rate=22050), 22050)
    for audio in (path, noise(1.0), float_to_pcm16(noise(1.0))):
        finals = client.recognize(audio, StreamOptions(model="offline"))
        assert finals and all(e.is_final for e in finals)
        assert finals[0].sent_audio_seconds == pytest.approx(1.0, abs=0.01)  # the decoded duration
    stats = client.stats()
    assert stats.active_streams == 0 and stats.audio_seconds >= 3.0
    with pytest.raises(RecognizerError) as info:
        client.recognize(noise(0.5), StreamOptions(model="nope"))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_tls_round_trip(recognizer: Recognizer, tmp_path: Path) -> None:
    key, cert = self_signed_cert(tmp_path)
    config = ServerConfig(host="127.0.0.1", port=0, tls_cert=str(cert), tls_key=str(key), grace_s=0.5)
    running = start_in_thread(config, recognizer)
    try:
        with RecognizerClient(f"127.0.0.1:{running.port}", tls_ca=cert, timeout=10) as c:
            assert c.health() == "SERVING"
            assert any(e.is_final for e in c.stream(noise(0.5)))
        with RecognizerClient(f"127.0.0.1:{running.port}", timeout=5) as plain:
            with pytest.raises(RecognizerError) as info:
                plain.list_models()
            assert info.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop()


# ------------------------------------------------------------------------ CLI
def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="asr")
    add_stream_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run_cli(["stream", "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in ("--mic", "--server HOST:PORT", "--fast", "--token", "--tls-ca", "--chunk-ms", "--hotword"):
        assert text in out
    assert "rewrites one line" in out and "[start-end] text" in out
    assert client_cli.CHUNK_MS == client_sources.CHUNK_MS
    # Building the parser (what `asr --help` does) must not import grpc or numpy.
    check = "import sys, asr.client.cli; assert not {'grpc', 'numpy'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", check], check=True)


def test_cli_streams_a_file(target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.wav"
    write_wav(path, noise(2.0))
    assert run_cli(["stream", str(path), "--server", target, "--fast", "--interim", "--chunk-ms", "50"]) == 0
    out = capsys.readouterr().out
    assert CLEAR_LINE in out  # the live partial line was rewritten
    assert FINAL_LINE.search(out)
    assert out.endswith("\n")
    assert run_cli(["stream", str(path), "--server", target, "--fast", "--no-interim", "--words"]) == 0
    out = capsys.readouterr().out
    assert "\r" not in out and FINAL_LINE.search(out)


def test_cli_microphone_with_fake_capture(
    target: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeCapture(int16_noise(1.5))
    monkeypatch.setattr(client_sources, "default_stream_factory", lambda: fake)
    assert run_cli(["stream", "--mic", "--server", target, "--seconds", "1", "--interim"]) == 0
    captured = capsys.readouterr()
    assert fake.exited and sum(fake.reads) == 16000  # one second, then the capture closed
    assert FINAL_LINE.search(captured.out) and "listening" in captured.err


def test_cli_microphone_that_fails_to_open(
    target: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def factory(**kwargs: object) -> FakeCapture:
        raise MicrophoneError("could not open the microphone: no input device")

    monkeypatch.setattr(client_sources, "default_stream_factory", lambda: factory)
    assert run_cli(["stream", "--mic", "--server", target]) == 1
    assert "no input device" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d.wav"
    write_wav(path, noise(0.3))
    assert run_cli(["stream", str(path), "--server", f"127.0.0.1:{free_port()}", "--fast"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err
    assert run_cli(["stream", str(tmp_path / "missing.wav"), "--fast"]) == 1
    assert "no such file" in capsys.readouterr().err
    assert run_cli(["stream"]) == 2
    assert run_cli(["stream", str(path), "--mic"]) == 2
    assert "FILE or --mic" in capsys.readouterr().err


def test_cli_reports_server_status(target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "e.wav"
    write_wav(path, noise(0.3))
    assert run_cli(["stream", str(path), "--server", target, "--fast", "--trailing-silence-ms", "5"]) == 1
    err = capsys.readouterr().err
    assert "INVALID_ARGUMENT" in err and "trailing_silence_ms" in err


def test_live_printer_keeps_partials_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_cli.shutil, "get_terminal_size", lambda fallback: os.terminal_size((40, 24)))
    out = io.StringIO()
    printer = LivePrinter(out, partials=True)
    printer.show(StreamEvent(False, "x" * 100, 0.5, 0.0, 1.0, 0))
    printer.show(StreamEvent(True, "done", 1.0, 0.0, 1.25, 0))
    printer.show(StreamEvent(False, "", 0.0, 1.3, 1.3, 1))  # speech event only: nothing shown
    printer.close()
    text = out.getvalue()
    partial, final = text.split(CLEAR_LINE)[1:]
    assert len(partial) == 39 and partial.startswith("...")  # fits the terminal: \r can rewrite it
    assert final == "[0.00-1.25] done\n"
