"""Enrollment: importing a manifest or a folder (bad files reported, the rest kept), and the
microphone path driven by a fake capture stream and a scripted user."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr.audio import load_audio, write_wav
from asr.cli import main
from asr.enroll import (
    MicRecorder,
    check_minutes,
    import_folder,
    import_manifest,
    run_enrollment,
)
from asr.profiles import ProfileStore
from tests.enroll_helpers import speechlike, write_takes


def test_import_manifest_normalises_text_and_stores_16k_wavs(tmp_path: Path) -> None:
    manifest = write_takes(tmp_path / "in", n=4)
    store = ProfileStore(tmp_path / "profiles")
    report = import_manifest(store, "anna", manifest)
    assert report.failed == [] and len(report.added) == 4
    entries = store.recordings("anna")
    assert [e["text"] for e in entries] == ["go on now", "stop right here", "yes we can", "no way out"]
    for e in entries:
        assert Path(e["audio_filepath"]).parent == store.path("anna") / "audio"
        assert len(load_audio(e["audio_filepath"])) / 16000 == pytest.approx(e["duration"], abs=1e-3)
    # Paths in the profile's manifest are relative: the profile folder can move.
    stored = [json.loads(line) for line in (store.path("anna") / "enroll.jsonl").read_text().splitlines()]
    assert all(not Path(e["audio_filepath"]).is_absolute() for e in stored)


def test_bad_manifest_lines_and_files_are_reported_and_the_rest_imported(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    manifest = write_takes(folder, n=2)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "garbled.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(200)))
    write_wav(folder / "quiet.wav", speechlike("go on now", level=0.0003))
    write_wav(folder / "digits.wav", speechlike("go on now"))
    with manifest.open("a") as f:
        f.write("this is not json\n")
        f.write(json.dumps({"text": "no audio path"}) + "\n")
        for name, text in [
            ("missing.wav", "go on"),
            ("empty.wav", "go on"),
            ("garbled.wav", "go on"),
            ("quiet.wav", "go on now"),
            ("digits.wav", "!!! ... ???"),
        ]:
            f.write(json.dumps({"audio_filepath": name, "text": text}) + "\n")
    store = ProfileStore(tmp_path / "profiles")
    report = import_manifest(store, "anna", manifest)
    assert len(report.added) == 2 and len(store.recordings("anna")) == 2
    reasons = dict(report.failed)
    assert len(report.failed) == 7
    assert "not a JSON object" in reasons[f"{manifest}:3"]
    assert "audio_filepath" in reasons[f"{manifest}:4"]
    assert "no such file" in reasons[str(folder / "missing.wav")]
    assert "empty" in reasons[str(folder / "empty.wav")]
    assert str(folder / "garbled.wav") in reasons
    assert "too quiet" in reasons[str(folder / "quiet.wav")]
    assert "letters" in reasons[str(folder / "digits.wav")]


def test_import_folder_pairs_audio_with_same_named_txt(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    (folder / "sub").mkdir(parents=True)
    write_wav(folder / "a.wav", speechlike("go on now"))
    (folder / "a.txt").write_text("Go on, now!\n")
    write_wav(folder / "sub" / "b.flac", speechlike("turn left", seed=1))
    (folder / "sub" / "b.txt").write_text("turn left")
    write_wav(folder / "no_text.wav", speechlike("yes we can"))
    (folder / "orphan.txt").write_text("no audio for me")
    store = ProfileStore(tmp_path / "profiles")
    report = import_folder(store, "ben", folder)
    assert sorted(e["text"] for e in report.added) == ["go on now", "turn left"]
    failed = dict(report.failed)
    assert "no transcript" in failed[str(folder / "no_text.wav")]
    assert "no audio file" in failed[str(folder / "orphan.txt")]


def test_enroll_cli_from_manifest_and_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ASR_PROFILES", str(tmp_path / "profiles"))
    manifest = write_takes(tmp_path / "in", n=3)
    assert main(["enroll", "anna", "--from", str(manifest)]) == 0
    assert "imported 3 takes" in capsys.readouterr().out
    assert len(ProfileStore().recordings("anna")) == 3
    # A folder with nothing importable: reported, exit 1, nothing lost.
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.wav").write_bytes(b"not audio")
    (tmp_path / "junk" / "x.txt").write_text("go on")
    assert main(["enroll", "anna", "--from", str(tmp_path / "junk")]) == 1
    assert "FAILED" in capsys.readouterr().err
    assert len(ProfileStore().recordings("anna")) == 3
    assert main(["enroll", "../escape", "--from", str(manifest)]) == 1
    assert "profile name" in capsys.readouterr().err
    assert not (tmp_path / "escape").exists()


# ---------------------------------------------------------------- microphone
class FakeStream:
    """A capture stream (as sounddevice.InputStream) playing prepared int16 takes."""

    def __init__(self, takes: list[np.ndarray], played: threading.Semaphore, **kwargs: Any) -> None:
        self.takes = takes
        self.played = played  # released once the take has been read to its end
        self.blocksize = kwargs["blocksize"]
        self.pos = 0

    def __enter__(self) -> FakeStream:
        self.audio = self.takes.pop(0)
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self, frames: int) -> tuple[np.ndarray, bool]:
        block = self.audio[self.pos : self.pos + frames]
        if len(block) and self.pos + len(block) >= len(self.audio):
            self.played.release()
        self.pos += len(block)
        return block.reshape(-1, 1), False


class ScriptedUser:
    """Answers the enrollment UI: keeps going until told to quit after ``quit_after`` prompts."""

    def __init__(self, refused_choice: str = "retake", quit_after: int | None = None) -> None:
        self.shown: list[tuple[int, int, float, str]] = []
        self.refusals: list[list[str]] = []
        self.refused_choice = refused_choice
        self.quit_after = quit_after

    def show_prompt(self, number: int, total: int, minutes: float, target: float, text: str) -> bool:
        if self.quit_after is not None and len(self.shown) >= self.quit_after:
            return False
        self.shown.append((number, total, minutes, text))
        return True

    def refused(self, problems: list[str]) -> str:
        self.refusals.append(problems)
        return self.refused_choice

    def kept(self, entry: dict[str, Any]) -> None:
        pass


def _recorder(takes: list[np.ndarray]) -> MicRecorder:
    """The user stops each take once its whole audio has been captured."""
    played = threading.Semaphore(0)
    return MicRecorder(
        wait_for_stop=lambda: played.acquire(timeout=10),
        stream_factory=lambda **kw: FakeStream(takes, played, **kw),
        max_seconds=5.0,
    )


def _pcm(audio: np.ndarray) -> np.ndarray:
    return np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)


def test_mic_enrollment_retakes_a_refused_take_and_resumes(tmp_path: Path) -> None:
    prompts = ["go on now", "stop right here", "yes we can", "no way out", "turn left"]
    store = ProfileStore(tmp_path / "profiles")
    # First sitting: the first take is too quiet (re-taken), then one take, then the user stops.
    takes = [
        _pcm(speechlike(prompts[0], level=0.0002)),
        _pcm(speechlike(prompts[0])),
        _pcm(speechlike(prompts[1])),
    ]
    user = ScriptedUser(quit_after=3)
    result = run_enrollment(store, "carl", _recorder(takes), user, minutes=2.0, prompts=prompts)
    assert not result.finished and result.recorded == 2
    assert len(user.refusals) == 1 and "too quiet" in user.refusals[0][0]
    assert [s[3] for s in user.shown] == [prompts[0], prompts[0], prompts[1]]
    assert user.shown[2][0] == 2  # "2 of N"
    assert store.recorded_prompts("carl") == {0, 1}
    # Second sitting resumes at the third prompt; a silent take is skipped; the prompts run out.
    takes = [np.zeros(16000, np.int16)] + [_pcm(speechlike(t)) for t in prompts[3:]]
    user = ScriptedUser(refused_choice="skip")
    result = run_enrollment(store, "carl", _recorder(takes), user, minutes=2.0, prompts=prompts)
    assert [s[3] for s in user.shown] == prompts[2:]
    assert result.finished and result.recorded == 2
    assert store.recorded_prompts("carl") == {0, 1, 3, 4}
    texts = [e["text"] for e in store.recordings("carl")]
    assert texts == [prompts[0], prompts[1], prompts[3], prompts[4]]
    assert all(e["source"] == "mic" for e in store.recordings("carl"))


def test_mic_enrollment_stops_at_the_target_minutes(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "profiles")
    prompts = ["go on now"] * 200
    takes = [_pcm(speechlike("go on now", seed=i)) for i in range(200)]
    result = run_enrollment(store, "dana", _recorder(takes), ScriptedUser(), minutes=2.0, prompts=prompts)
    assert result.finished and 2.0 <= result.minutes < 2.05
    assert len(store.recordings("dana")) == result.recorded


def test_short_enrollment_is_warned_about_and_too_short_refused() -> None:
    assert check_minutes(10) is None
    assert "short" in (check_minutes(2) or "")
    with pytest.raises(ValueError, match="at least 2"):
        check_minutes(1)
