"""In-process API and batch transcription with tiny models (behaviour, not accuracy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr import checkpoint
from asr.api import Recognizer
from asr.audio import load_audio, write_wav
from asr.cli import main
from asr.decoding import OFFLINE_BEAM_WIDTH, Decoder
from asr.streaming import EndpointConfig, SessionConfig, StreamingSession
from tests.helpers import noise


def test_path_and_array_agree(recognizer: Recognizer, tmp_path: Path) -> None:
    audio = noise(4)
    write_wav(tmp_path / "a.wav", audio)
    config = SessionConfig(endpoint=EndpointConfig(trailing_silence_ms=90, max_utterance_ms=1500))
    from_file = recognizer.transcribe(tmp_path / "a.wav", config=config)
    from_array = recognizer.transcribe(load_audio(tmp_path / "a.wav"), config=config)  # PCM16-quantised twin
    assert [r.text for r in from_file.results] == [r.text for r in from_array.results]
    assert from_file.duration == pytest.approx(4.0)


def test_long_file_is_segmented_with_global_times(recognizer: Recognizer, tmp_path: Path) -> None:
    """Over a minute: read in blocks at the file's own rate; times are global and monotonic."""
    audio = noise(75, seed=1, rate=8000)
    write_wav(tmp_path / "long.wav", audio, sample_rate=8000)
    config = SessionConfig(endpoint=EndpointConfig(trailing_silence_ms=90, max_utterance_ms=5000))
    transcript = recognizer.transcribe(tmp_path / "long.wav", mode="stream", config=config)
    assert transcript.duration == pytest.approx(75.0)
    assert len(transcript.results) >= 15  # the 5 s cap alone forces that many
    starts = [r.start for r in transcript.results]
    ends = [r.end for r in transcript.results]
    assert starts == sorted(starts) and ends == sorted(ends)
    assert all(s < e for s, e in zip(starts, ends, strict=True))
    assert all(a <= b for a, b in zip(ends, starts[1:], strict=False))  # no overlap
    assert ends[-1] <= 75.0 + 1e-6
    assert [r.utterance_index for r in transcript.results] == list(range(len(transcript.results)))


def test_modes(recognizer: Recognizer) -> None:
    audio = noise(2, seed=4)
    for mode in ("stream", "two-pass", "offline"):
        assert recognizer.transcribe(audio, mode=mode).duration == pytest.approx(2.0)
    with pytest.raises(ValueError, match="mode"):
        recognizer.transcribe(audio, mode="fast")


def test_in_process_stream_searches_as_audio_arrives(recognizer: Recognizer) -> None:
    audio = noise(3, seed=5)
    config = SessionConfig(mode="stream", endpoint=EndpointConfig(max_utterance_ms=60000))
    session = recognizer.stream(config)
    lazy = StreamingSession(
        recognizer.streaming.model, recognizer.streaming.normalizer, recognizer.decoder, config
    )
    for chunk in np.array_split(audio, 7):
        session.accept_audio(chunk)
        lazy.accept_audio(chunk)
        search = session._utt.search
        assert search is not None and search.pending_frames == 0  # searched already
    assert lazy._utt.search is not None and lazy._utt.search.pending_frames > 0
    finals = [r for r in session.finish() if r.is_final]
    lazy_finals = [r for r in lazy.finish() if r.is_final]
    assert finals and [r.alternatives for r in finals] == [r.alternatives for r in lazy_finals]


def test_cli_batch_reports_failures_and_goes_on(
    model_paths: tuple[Path, Path], tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.wav"
    write_wav(good, noise(2))
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all")
    out = tmp_path / "out"
    args = [
        "transcribe", str(tmp_path / "empty.wav"), str(good), str(tmp_path / "text.wav"), str(tmp_path / "missing.flac"),
        "--streaming-model", str(model_paths[0]), "--offline-model", str(model_paths[1]), "--no-lm",
        "--format", "srt", "--output-dir", str(out), "--quiet",
    ]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 transcribed, 3 failed" in err
    for name in ("empty.wav", "text.wav", "missing.flac"):
        assert f"FAILED {tmp_path / name}" in err
    assert (out / "good.srt").exists() and not (out / "empty.srt").exists()


def test_cli_all_good_exits_zero(model_paths: tuple[Path, Path], tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    write_wav(tmp_path / "a.wav", noise(1))
    args = ["transcribe", str(tmp_path / "a.wav"), "--streaming-model", str(model_paths[0]),
            "--offline-model", str(model_paths[1]), "--no-lm", "--format", "json", "--quiet"]  # fmt: skip
    assert main(args) == 0
    assert '"duration": 1.0' in capsys.readouterr().out


def test_offline_mode_searches_with_its_own_beam_width(model_paths: tuple[Path, Path]) -> None:
    """Whole-file finals may search wider than live finals, whose width latency pays for."""
    streaming, offline = (checkpoint.load_model(p) for p in model_paths)
    wide = Recognizer(streaming, offline, Decoder(), offline_beam_width=96)
    assert wide.offline_batch().decoder.options.beam_width == 96
    assert wide.offline_batch(beam_width=8).decoder.options.beam_width == 8
    assert wide.stream(SessionConfig(mode="offline")).decoder.options.beam_width == 96  # long files
    assert wide.stream(SessionConfig(mode="two-pass")).decoder.options.beam_width == 32  # live finals
    assert wide.stream(SessionConfig(mode="stream")).decoder.options.beam_width == 32
    wide.transcribe(noise(1))
    assert wide._direct is not None and wide._direct.decoder.options.beam_width == 96
    plain = Recognizer(streaming, offline, Decoder())
    assert plain.offline_batch().decoder is plain.decoder
    with pytest.raises(ValueError, match="offline_beam_width"):
        Recognizer(streaming, offline, Decoder(), offline_beam_width=0)
    loaded = Recognizer.load(model_paths[0], model_paths[1], lm=None, fusion=None)
    assert loaded.offline_beam_width == OFFLINE_BEAM_WIDTH


def test_server_finals_keep_its_own_beam_width(model_paths: tuple[Path, Path]) -> None:
    """The server's finals, offline Recognize included, search at --beam-width (its measured capacity)."""
    from asr.server.app import ServerConfig, _serving_recognizer

    streaming, offline = (checkpoint.load_model(p) for p in model_paths)
    wide = Recognizer(streaming, offline, Decoder(), offline_beam_width=96)
    served = _serving_recognizer(ServerConfig(decode_workers=0), wide)
    assert served.offline_beam_width is None
    assert served.offline_batch().decoder.options.beam_width == 32
    served = _serving_recognizer(ServerConfig(decode_workers=0, beam_width=12), wide)
    assert served.offline_batch().decoder.options.beam_width == 12


@pytest.mark.parametrize(("mode", "flag", "offline_width", "live_width"), [
    ("offline", [], OFFLINE_BEAM_WIDTH, 32),
    ("offline", ["--beam-width", "7"], 7, 32),
    ("two-pass", ["--beam-width", "7"], 7, 7),
])  # fmt: skip
def test_cli_beam_width(  # type: ignore[no-untyped-def]
    model_paths: tuple[Path, Path], tmp_path: Path, monkeypatch, mode, flag, offline_width, live_width
) -> None:
    import asr.transcribe

    seen: list[Recognizer] = []

    def fake(recognizer: Recognizer, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(recognizer)
        return asr.transcribe.BatchReport([], [], 0.0, 0.0)

    monkeypatch.setattr(asr.transcribe, "transcribe_files", fake)
    write_wav(tmp_path / "a.wav", noise(1))
    args = ["transcribe", str(tmp_path / "a.wav"), "--streaming-model", str(model_paths[0]),
            "--offline-model", str(model_paths[1]), "--no-lm", "--mode", mode, "--quiet", *flag]  # fmt: skip
    assert main(args) == 0
    assert seen[0].offline_batch().decoder.options.beam_width == offline_width
    assert seen[0].decoder.options.beam_width == live_width


def test_cli_rejects_a_beam_width_below_one(model_paths: tuple[Path, Path], tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exit_info:
        main(["transcribe", str(tmp_path / "a.wav"), "--beam-width", "0"])
    assert exit_info.value.code == 2
    assert "expected a number >= 1, got 0" in capsys.readouterr().err
