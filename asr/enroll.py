"""Enrollment: reading prompts into the microphone, or importing existing recordings.

Two ways fill a profile (:class:`asr.profiles.ProfileStore`):

* :func:`run_enrollment`: one prompt at a time, each take checked (too quiet, clipped,
  mostly silence, too short or long for its text), with a re-take on a refused take.
  It resumes where it stopped: prompts already recorded are skipped. The recorder and
  the user interface are injected (:class:`MicRecorder` and the CLI's console in
  ``asr enroll --mic``; fakes in tests).
* :func:`import_recordings`: a JSONL manifest (``audio_filepath`` and ``text`` a line) or
  a folder of audio files with same-named ``.txt`` transcripts, in any format the audio
  loader reads. A bad file is reported and the rest are imported.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.profiles import MAX_SECONDS, ProfileStore, TakeError
from asr.prompts import enrollment_prompts, estimated_seconds

log = logging.getLogger(__name__)

DEFAULT_MINUTES = 10.0
MIN_MINUTES = 2.0  # less than this is refused; less than DEFAULT_MINUTES is warned about
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf")


# ---------------------------------------------------------------- imports
@dataclass
class ImportReport:
    """Takes added, and the files (or manifest lines) that failed with why."""

    added: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def minutes(self) -> float:
        return sum(float(e["duration"]) for e in self.added) / 60.0


def _import_one(
    store: ProfileStore, name: str, audio_path: Path, text: str, check: bool, report: ImportReport
) -> None:
    try:
        audio = load_audio(audio_path)
        entry = store.add_recording(name, audio, SAMPLE_RATE, text, source=str(audio_path), check=check)
    except TakeError as e:
        report.failed.append((str(audio_path), f"refused take: {e}"))
    except (AudioError, ValueError) as e:
        report.failed.append((str(audio_path), str(e)))
    else:
        report.added.append(entry)


def import_manifest(
    store: ProfileStore, name: str, manifest: str | os.PathLike[str], check: bool = True
) -> ImportReport:
    """Import the takes of a JSONL manifest (``audio_filepath``, ``text``; relative paths
    are resolved against the manifest's folder). Bad lines and files are reported."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ValueError(f"expected a manifest file or a folder, got {str(manifest)!r} (not found)")
    report = ImportReport()
    store.create(name)
    with manifest.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{manifest}:{lineno}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                report.failed.append((where, f"not a JSON object ({e})"))
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("audio_filepath"), str):
                report.failed.append((where, "expected a JSON object with audio_filepath and text"))
                continue
            if not isinstance(entry.get("text"), str):
                report.failed.append((where, "expected a text field (the transcript)"))
                continue
            audio_path = Path(entry["audio_filepath"])
            if not audio_path.is_absolute():
                audio_path = manifest.parent / audio_path
            _import_one(store, name, audio_path, entry["text"], check, report)
    return report


def import_folder(
    store: ProfileStore, name: str, folder: str | os.PathLike[str], check: bool = True
) -> ImportReport:
    """Import every audio file of ``folder`` (recursively) that has a same-named ``.txt``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"expected a folder, got {str(folder)!r}")
    report = ImportReport()
    store.create(name)
    audio_files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    stems = {p.with_suffix("") for p in audio_files}
    for txt in sorted(folder.rglob("*.txt")):
        if txt.with_suffix("") not in stems:
            report.failed.append((str(txt), "no audio file of the same name"))
    for audio_path in audio_files:
        txt = audio_path.with_suffix(".txt")
        if not txt.is_file():
            report.failed.append((str(audio_path), f"no transcript ({txt.name})"))
            continue
        try:
            text = txt.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            report.failed.append((str(audio_path), f"unreadable transcript {txt.name} ({e})"))
            continue
        _import_one(store, name, audio_path, text, check, report)
    return report


def import_recordings(
    store: ProfileStore, name: str, source: str | os.PathLike[str], check: bool = True
) -> ImportReport:
    """:func:`import_folder` for a folder, :func:`import_manifest` for a file."""
    return (import_folder if Path(source).is_dir() else import_manifest)(store, name, source, check)


# ---------------------------------------------------------------- microphone
class TakeRecorder(Protocol):
    """Records one take (blocking until the speaker is done)."""

    sample_rate: int

    def record(self) -> np.ndarray:
        """Mono samples of one take (float or int16); empty when nothing was captured."""
        ...


class MicRecorder:
    """One take from the microphone: capture runs until ``wait_for_stop`` returns.

    ``stream_factory`` replaces sounddevice's ``InputStream`` (see
    :class:`asr.client.sources.MicrophoneSource`); a take stops by itself after
    ``max_seconds``.
    """

    def __init__(
        self,
        wait_for_stop: Callable[[], object],
        sample_rate: int = SAMPLE_RATE,
        device: int | str | None = None,
        max_seconds: float = MAX_SECONDS,
        stream_factory: Callable[..., Any] | None = None,
    ) -> None:
        from asr.client.sources import default_stream_factory

        self.wait_for_stop = wait_for_stop
        self.sample_rate = sample_rate
        self.device = device
        self.max_seconds = max_seconds
        self._factory = stream_factory if stream_factory is not None else default_stream_factory()

    def record(self) -> np.ndarray:
        from asr.client.sources import MicrophoneSource

        mic = MicrophoneSource(
            self.sample_rate, device=self.device, max_seconds=self.max_seconds, stream_factory=self._factory
        )
        chunks: list[bytes] = []
        errors: list[BaseException] = []

        def capture() -> None:
            try:
                chunks.extend(mic)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(e)

        thread = threading.Thread(target=capture, daemon=True, name="enroll-mic")
        thread.start()
        self.wait_for_stop()
        mic.stop()
        thread.join()
        if errors:
            raise errors[0]
        return np.frombuffer(b"".join(chunks), dtype="<i2").copy()


class EnrollUI(Protocol):
    """What :func:`run_enrollment` asks of its user interface."""

    def show_prompt(self, number: int, total: int, minutes: float, target: float, text: str) -> bool:
        """Show prompt ``number`` of ``total`` and the minutes so far; False: the user quits."""
        ...

    def refused(self, problems: list[str]) -> str:
        """A take failed its checks: ``retake``, ``skip`` (next prompt) or ``quit``."""
        ...

    def kept(self, entry: dict[str, Any]) -> None:
        """A take was kept."""
        ...


@dataclass
class EnrollResult:
    recorded: int  # takes kept in this run
    minutes: float  # the profile's minutes now
    target: float
    finished: bool  # the target was reached (or the prompts ran out)


def check_minutes(minutes: float) -> str | None:
    """A warning for a short enrollment, ValueError for one under :data:`MIN_MINUTES`."""
    if not minutes >= MIN_MINUTES:
        raise ValueError(f"expected at least {MIN_MINUTES:g} minutes of enrollment, got {minutes:g}")
    if minutes < DEFAULT_MINUTES:
        return (
            f"{minutes:g} minutes is short: adaptation gains grow with enrollment up to about "
            f"{DEFAULT_MINUTES:g} minutes (docs/profiles.md)"
        )
    return None


def run_enrollment(
    store: ProfileStore,
    name: str,
    recorder: TakeRecorder,
    ui: EnrollUI,
    minutes: float = DEFAULT_MINUTES,
    prompts: list[str] | None = None,
) -> EnrollResult:
    """Read prompts until the profile holds ``minutes`` of takes (resuming a started one)."""
    check_minutes(minutes)
    prompts = enrollment_prompts() if prompts is None else prompts
    store.create(name)
    done = store.recorded_prompts(name)
    have = store.minutes(name) * 60
    target = minutes * 60
    todo = [i for i in range(len(prompts)) if i not in done]
    # The number of prompts this run plans for: enough to reach the target at a usual pace.
    planned, seconds = 0, have
    for i in todo:
        if seconds >= target:
            break
        seconds += estimated_seconds(prompts[i])
        planned += 1
    recorded = 0
    for i in todo:
        if have >= target:
            break
        while True:
            total = max(planned, recorded + 1)
            if not ui.show_prompt(recorded + 1, total, have / 60, minutes, prompts[i]):
                return EnrollResult(recorded, have / 60, minutes, False)
            audio = recorder.record()
            try:
                entry = store.add_recording(
                    name, audio, recorder.sample_rate, prompts[i], prompt=i, source="mic"
                )
            except TakeError as e:
                choice = ui.refused(e.problems)
                if choice == "retake":
                    continue
                if choice == "quit":
                    return EnrollResult(recorded, have / 60, minutes, False)
                break  # skip this prompt
            ui.kept(entry)
            recorded += 1
            have += float(entry["duration"])
            break
    return EnrollResult(recorded, have / 60, minutes, True)
