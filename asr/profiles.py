"""Speaker profiles: one person's enrollment recordings and their adapted models.

A profile is a folder named after the person under the profiles root
(:func:`default_profiles_dir`)::

    NAME/enroll.jsonl          one take a line: audio_filepath (relative), duration, text,
                               prompt (the shipped prompt's index, when read from the list), source
    NAME/audio/NNNNN.wav       16 kHz mono PCM16
    NAME/streaming/model.pt    adapted checkpoints, the shipped format (``asr adapt``)
    NAME/offline/model.pt
    NAME/fusion.json           two-pass fusion for the adapted pair
    NAME/card.json             the before/after figures of the last adaptation

Names are plain identifiers (letters, digits, ``_`` and ``-``, starting with a letter or
digit, at most 64 characters): a name can never reach outside the root.

Every take is checked before it is kept (:func:`check_take`): too quiet, clipped, mostly
silence, or too short or too long for its text. A refused take raises :class:`TakeError`
with the reasons and leaves the profile as it was.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr.audio import SAMPLE_RATE, resample, write_wav
from asr.manifest import read_manifest
from asr.prompts import enrollment_prompts
from asr.text import join_split_compounds, normalize_text

log = logging.getLogger(__name__)

__all__ = [
    "ProfileNotFound",
    "ProfileStore",
    "TakeError",
    "TakeStats",
    "check_take",
    "default_profiles_dir",
    "enrollment_prompts",
    "normalize_transcript",
    "validate_profile_name",
]

PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MANIFEST = "enroll.jsonl"
CARD = "card.json"
FUSION = "fusion.json"
KINDS = ("streaming", "offline")

# Take checks (levels in dBFS of 20 ms frames).
FRAME_SECONDS = 0.02
MIN_SECONDS = 0.3
MAX_SECONDS = 60.0
QUIET_DBFS = -40.0  # the loudest 1% of frames must reach this
SPEECH_ABOVE_FLOOR_DB = 15.0  # a frame is speech when this far above the quietest frames
STEADY_RANGE_DB = 6.0  # speech rises and falls more than this between syllables
MIN_SPEECH_SHARE = 0.2  # at least this share of a take must be speech
CLIP_LEVEL = 0.99
MAX_CLIPPED_SHARE = 0.002  # of samples at or beyond CLIP_LEVEL, in runs of two or more
MAX_CHARS_PER_SECOND = 30.0  # faster than this for its text: the take is cut short
MIN_CHARS_PER_SECOND = 3.0  # slower than this: too long for its text (other talk, long pauses)


class ProfileNotFound(LookupError):
    """No profile of that name under the root."""

    def __init__(self, name: str, root: Path) -> None:
        super().__init__(f"profile {name!r} not found in {root}")
        self.name = name
        self.root = root


class TakeError(ValueError):
    """A recording refused by the take checks; ``problems`` lists why, one phrase each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def validate_profile_name(name: str) -> str:
    """``name`` when it is a plain identifier, else ValueError (path parts included)."""
    if not isinstance(name, str):
        raise ValueError(f"expected a profile name (str), got {type(name).__name__}")
    if not PROFILE_NAME.fullmatch(name):
        raise ValueError(
            "expected a profile name of letters, digits, '_' and '-' (starting with a letter or "
            f"digit, at most 64 characters), got {name!r}"
        )
    return name


def default_profiles_dir() -> Path:
    """``$ASR_PROFILES``, else ``$XDG_DATA_HOME/lstm-asr/profiles``, else
    ``~/.local/share/lstm-asr/profiles``."""
    env = os.environ.get("ASR_PROFILES")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "lstm-asr" / "profiles"


def normalize_transcript(text: str) -> str:
    """A transcript as training labels are normalised; ValueError when no letter is left."""
    if not isinstance(text, str):
        raise ValueError(f"expected the transcript as str, got {type(text).__name__}")
    normalized = join_split_compounds(normalize_text(text))
    if not re.search("[a-z]", normalized):
        raise ValueError(f"expected a transcript with letters, got {text!r}")
    return normalized


@dataclass(frozen=True)
class TakeStats:
    """Measurements of one take (16 kHz mono)."""

    seconds: float
    peak_dbfs: float  # level of the loudest 1% of frames
    range_db: float  # from the quietest 10% of frames to the loudest 1%
    speech_share: float  # share of frames that are speech
    speech_seconds: float  # first to last speech frame
    clipped_share: float


def _as_mono_float(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio)
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    elif not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"expected float or int16 samples, got dtype {x.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise ValueError(f"expected mono samples (1-D or (frames, channels)), got shape {x.shape}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError("expected finite samples, got NaN or inf")
    return x


def measure_take(audio16: np.ndarray) -> TakeStats:
    """Level, speech share and clipping of 16 kHz mono float samples."""
    n = int(FRAME_SECONDS * SAMPLE_RATE)
    frames = len(audio16) // n
    if frames == 0:
        return TakeStats(len(audio16) / SAMPLE_RATE, -120.0, 0.0, 0.0, 0.0, 0.0)
    x = audio16[: frames * n].reshape(frames, n).astype(np.float64)  # (F, n)
    rms = np.sqrt(np.mean(x**2, axis=1))
    db = 20 * np.log10(np.maximum(rms, 1e-6))  # (F,)
    peak = float(np.percentile(db, 99))
    floor = float(np.percentile(db, 10))
    # Speech: well above the quietest frames, or near the peak when the take has no pauses.
    threshold = max(min(floor + SPEECH_ABOVE_FLOOR_DB, peak - 10.0), peak - 40.0, -60.0)
    speech = db >= threshold
    if speech.any():
        idx = np.flatnonzero(speech)
        span = (idx[-1] - idx[0] + 1) * FRAME_SECONDS
    else:
        span = 0.0
    # Clipping flattens the wave at full scale: count samples in runs of two or more there
    # (a lone full-scale peak is no clipping).
    full = np.abs(audio16) >= CLIP_LEVEL
    clipped = float(np.mean(full[1:] & full[:-1])) if len(full) > 1 else 0.0
    return TakeStats(
        len(audio16) / SAMPLE_RATE, peak, peak - floor, float(speech.mean()), float(span), clipped
    )


def check_take(audio16: np.ndarray, text: str) -> TakeStats:
    """Check a take of ``text`` (normalised) and return its measurements.

    Raises:
        TakeError: empty or too short, too long, too quiet, clipped, mostly silence, or
            too short or too long for its text.
    """
    stats = measure_take(audio16)
    problems: list[str] = []
    if stats.seconds < MIN_SECONDS:
        raise TakeError([f"too short: {stats.seconds:.2f} s of audio (at least {MIN_SECONDS} s)"])
    if stats.seconds > MAX_SECONDS:
        problems.append(f"too long: {stats.seconds:.0f} s (at most {MAX_SECONDS:.0f} s a take)")
    if stats.peak_dbfs < QUIET_DBFS:
        problems.append(
            f"too quiet: speech peaks at {stats.peak_dbfs:.0f} dBFS (needs {QUIET_DBFS:.0f}); "
            "move closer or raise the input gain"
        )
    if stats.clipped_share > MAX_CLIPPED_SHARE:
        problems.append(
            f"clipped: {100 * stats.clipped_share:.1f}% of samples at full scale; lower the input gain"
        )
    if not problems and stats.range_db < STEADY_RANGE_DB:
        problems.append("no speech heard: a steady sound (noise or hum) without pauses")
    if not problems:
        if stats.speech_share < MIN_SPEECH_SHARE:
            problems.append(f"mostly silence: speech in {100 * stats.speech_share:.0f}% of the take")
        chars = len(text)
        if stats.speech_seconds > 0 and chars / stats.speech_seconds > MAX_CHARS_PER_SECOND:
            problems.append(
                f"too short for its text: {stats.speech_seconds:.1f} s of speech for {chars} characters"
            )
        if chars / max(stats.speech_seconds, 1e-3) < MIN_CHARS_PER_SECOND and stats.speech_seconds > 2:
            problems.append(
                f"too long for its text: {stats.speech_seconds:.1f} s of speech for {chars} characters"
            )
    if problems:
        raise TakeError(problems)
    return stats


@dataclass(frozen=True)
class ProfileInfo:
    """What ``asr profile list/show`` print about one profile."""

    name: str
    path: Path
    recordings: int
    minutes: float
    adapted: bool
    card: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "recordings": self.recordings,
            "minutes": round(self.minutes, 2),
            "adapted": self.adapted,
            "card": self.card,
        }


class ProfileStore:
    """The profiles under one root folder (created on first write)."""

    _lock = threading.Lock()  # appends to enroll.jsonl; shared by every store of the process

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_profiles_dir()

    def __repr__(self) -> str:
        return f"ProfileStore({str(self.root)!r})"

    # ----------------------------------------------------------- folders
    def path(self, name: str) -> Path:
        """The folder of profile ``name`` (it need not exist); ValueError for a bad name."""
        return self.root / validate_profile_name(name)

    def exists(self, name: str) -> bool:
        return self.path(name).is_dir()

    def _existing(self, name: str) -> Path:
        path = self.path(name)
        if not path.is_dir():
            raise ProfileNotFound(name, self.root)
        return path

    def names(self) -> list[str]:
        """Profiles under the root, sorted (folders with other names are ignored)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and PROFILE_NAME.fullmatch(p.name))

    def create(self, name: str) -> Path:
        """Create profile ``name`` (no error when it exists); returns its folder."""
        path = self.path(name)
        (path / "audio").mkdir(parents=True, exist_ok=True)
        return path

    def delete(self, name: str) -> None:
        """Remove profile ``name`` and everything in it."""
        shutil.rmtree(self._existing(name))

    # ----------------------------------------------------------- recordings
    def recordings(self, name: str) -> list[dict[str, Any]]:
        """The profile's takes (``audio_filepath`` absolute), oldest first."""
        manifest = self._existing(name) / MANIFEST
        return read_manifest(manifest) if manifest.is_file() else []

    def manifest_path(self, name: str) -> Path:
        return self._existing(name) / MANIFEST

    def minutes(self, name: str) -> float:
        return sum(float(e["duration"]) for e in self.recordings(name)) / 60.0

    def recorded_prompts(self, name: str) -> set[int]:
        """Indices of the shipped prompts this profile has a take of (for resuming)."""
        return {int(e["prompt"]) for e in self.recordings(name) if e.get("prompt") is not None}

    def add_recording(
        self,
        name: str,
        audio: np.ndarray,
        sample_rate: int,
        text: str,
        prompt: int | None = None,
        source: str | None = None,
        check: bool = True,
    ) -> dict[str, Any]:
        """Check a take, write it as a 16 kHz wav and append it to the profile's manifest.

        Args:
            name: the profile (created when missing).
            audio: mono samples (float in [-1, 1], or int16), or ``(frames, channels)``.
            sample_rate: their rate in Hz.
            text: what was said; normalised as training labels are.
            prompt: the index of the shipped prompt that was read, if any.
            source: where the take came from (a file path, "mic", "web").
            check: apply :func:`check_take`.

        Returns:
            The manifest entry: ``audio_filepath`` (absolute), ``duration``, ``text`` and the rest.

        Raises:
            ValueError: a bad name, rate, sample array, or text without letters.
            TakeError: the take failed a check (nothing is written).
        """
        if not isinstance(sample_rate, int | np.integer) or not 1000 <= int(sample_rate) <= 384000:
            raise ValueError(f"expected sample_rate in 1000..384000 Hz, got {sample_rate!r}")
        normalized = normalize_transcript(text)
        x = _as_mono_float(audio)
        audio16 = resample(x, int(sample_rate), SAMPLE_RATE) if sample_rate != SAMPLE_RATE else x
        if check:
            check_take(audio16, normalized)
        elif len(audio16) == 0:
            raise TakeError(["empty: no samples"])
        folder = self.create(name)
        with self._lock:
            wav = self._new_wav(folder)
            write_wav(wav, audio16)
            entry: dict[str, Any] = {
                "audio_filepath": f"audio/{wav.name}",
                "duration": round(len(audio16) / SAMPLE_RATE, 3),
                "text": normalized,
            }
            if prompt is not None:
                entry["prompt"] = int(prompt)
            if source is not None:
                entry["source"] = str(source)
            with (folder / MANIFEST).open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
        log.debug("profile %s: kept %s (%.1f s)", name, wav.name, entry["duration"])
        return {**entry, "audio_filepath": str(wav)}

    @staticmethod
    def _new_wav(folder: Path) -> Path:
        """A fresh audio/NNNNN.wav, claimed atomically (O_EXCL) against other processes."""
        audio = folder / "audio"
        audio.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.stem) for p in audio.glob("*.wav") if p.stem.isdigit()]
        k = max(numbers, default=0) + 1
        while True:
            path = audio / f"{k:05d}.wav"
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return path
            except FileExistsError:
                k += 1

    def remove_recording(self, name: str, audio_filepath: str) -> None:
        """Drop one take (by its ``audio_filepath``, absolute or as stored) and its wav."""
        folder = self._existing(name)
        target = (folder / audio_filepath).resolve()
        with self._lock:
            entries = read_manifest(folder / MANIFEST, resolve=False) if (folder / MANIFEST).is_file() else []
            kept = [e for e in entries if (folder / e["audio_filepath"]).resolve() != target]
            if len(kept) == len(entries):
                raise ValueError(f"expected a recording of profile {name!r}, got {audio_filepath!r}")
            tmp = folder / (MANIFEST + ".tmp")
            tmp.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in kept), encoding="utf-8")
            tmp.replace(folder / MANIFEST)
            if target.parent == (folder / "audio").resolve():
                target.unlink(missing_ok=True)

    # ----------------------------------------------------------- models and card
    def model_path(self, name: str, kind: str) -> Path:
        """Where the adapted ``kind`` (streaming/offline) checkpoint lives (may not exist)."""
        if kind not in KINDS:
            raise ValueError(f"expected kind in {KINDS}, got {kind!r}")
        return self.path(name) / kind / "model.pt"

    def fusion_path(self, name: str) -> Path:
        return self.path(name) / FUSION

    def is_adapted(self, name: str) -> bool:
        """Both adapted checkpoints exist."""
        return all(self.model_path(name, k).is_file() for k in KINDS)

    def adapted_models(self, name: str) -> tuple[Path, Path]:
        """(streaming, offline) checkpoints of an adapted profile.

        Raises:
            ProfileNotFound: no such profile.
            ValueError: the profile exists but has not been adapted (``asr adapt NAME``).
        """
        self._existing(name)
        if not self.is_adapted(name):
            raise ValueError(f"profile {name!r} has no adapted models yet: run `asr adapt {name}`")
        return self.model_path(name, "streaming"), self.model_path(name, "offline")

    def read_card(self, name: str) -> dict[str, Any]:
        """The profile's card (``{}`` before the first adaptation)."""
        path = self._existing(name) / CARD
        if not path.is_file():
            return {}
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            log.warning("%s: unreadable card (%s)", path, e)
            return {}
        return card if isinstance(card, dict) else {}

    def write_card(self, name: str, card: dict[str, Any]) -> None:
        """Write the card atomically."""
        path = self._existing(name) / CARD
        tmp = path.with_name(CARD + ".tmp")
        stamped = {**card, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        tmp.write_text(json.dumps(stamped, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)

    def info(self, name: str) -> ProfileInfo:
        entries = self.recordings(name)
        return ProfileInfo(
            name=name,
            path=self.path(name),
            recordings=len(entries),
            minutes=sum(float(e["duration"]) for e in entries) / 60.0,
            adapted=self.is_adapted(name),
            card=self.read_card(name),
        )
