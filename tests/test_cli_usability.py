"""What a user sees: one line per failed file, quiet decoders, a default thread count that
holds up on a busy machine, and set-up errors that say what to install."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr import audio
from asr.audio import load_audio, write_wav
from asr.cli import main
from asr.decoding import Decoder


def _tone(seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_failed_file_is_named_once(model_paths: tuple[Path, Path], tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    args = ["transcribe", str(bad), "--mode", "stream", "--streaming-model", str(model_paths[0]), "--no-lm",
            "--quiet"]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"FAILED {bad}: not a readable audio file" in err
    assert f"{bad}: {bad}" not in err


def test_transcribe_uses_one_thread_unless_asked(model_paths: tuple[Path, Path], tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", _tone())
    before = torch.get_num_threads()
    base = ["transcribe", str(tmp_path / "a.wav"), "--mode", "stream", "--streaming-model", str(model_paths[0]),
            "--no-lm", "--quiet"]  # fmt: skip
    try:
        torch.set_num_threads(2)
        assert main(base) == 0
        assert torch.get_num_threads() == 1
        assert main([*base, "--threads", "2"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_building_a_decoder_logs_no_alphabet_notice(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        Decoder()
    assert not [r for r in caplog.records if r.name.startswith("pyctcdecode")]


@pytest.fixture
def mp3_with_padding(tmp_path: Path) -> Path:
    """An MP3 whose trailing padding makes libmpg123 print a warning, although it decodes."""
    if "MP3" not in sf.available_formats():
        pytest.skip("libsndfile without MP3")
    path = tmp_path / "tone.mp3"
    sf.write(path, _tone(2.0), 16000, format="MP3")
    path.write_bytes(path.read_bytes() + bytes(3000))
    return path


def test_mp3_decoder_chatter_is_held_back(mp3_with_padding: Path, capfd: pytest.CaptureFixture[str]) -> None:
    samples = load_audio(mp3_with_padding)
    assert abs(len(samples) - 32000) < 2000
    assert capfd.readouterr().err == ""


def test_other_stderr_output_passes_while_an_mp3_decodes(
    mp3_with_padding: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    decode = audio._decode_frames

    def chatty(*args, **kwargs):  # type: ignore[no-untyped-def]
        os.write(2, b"Note: decoder chatter\nanother thread's line\n")
        return decode(*args, **kwargs)

    monkeypatch.setattr(audio, "_decode_frames", chatty)
    load_audio(mp3_with_padding)
    err = capfd.readouterr().err
    assert "another thread's line" in err and "decoder chatter" not in err


def test_failed_mp3_decode_shows_what_the_decoder_said(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        os.write(2, b"[src/libmpg123/parse.c:1] error: the reason\n")
        raise audio.AudioError("x.mp3: not a readable audio file")

    monkeypatch.setattr(audio, "_decode_frames", failing)
    fake = tmp_path / "x.mp3"
    fake.write_bytes(b"ID3" + bytes(100))
    with pytest.raises(audio.AudioError):
        load_audio(fake)
    assert "error: the reason" in capfd.readouterr().err


def test_corpus_build_without_text_packages_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("asr.corpus.build.collect_sentences", lambda: {"fortunes": [], "bible": []})
    out = tmp_path / "corpus"
    assert main(["corpus", "build", "--out", str(out), "--hours", "0.01", "--jobs", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "make corpus-deps" in err and "fortunes" in err and "high <= 0" not in err
    assert not (out / "text").exists()  # nothing empty is cached for the next run
