"""NeMo-style JSONL manifests: one JSON object per line.

Required keys are ``audio_filepath``, ``duration`` (seconds) and ``text``; anything
else (``engine``, ``voice``, augmentation info ...) is carried along. Relative audio
paths are resolved against the manifest's own directory, so a corpus folder can be
moved as a whole.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REQUIRED_KEYS = ("audio_filepath", "duration", "text")


def read_manifest(path: str | os.PathLike[str], resolve: bool = True) -> list[dict[str, Any]]:
    """Read a JSONL manifest.

    Args:
        path: the manifest file.
        resolve: make ``audio_filepath`` absolute (relative to the manifest's folder).

    Raises:
        ValueError: a line is not JSON or lacks a required key (the line number is named).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"expected a manifest file, got {str(path)!r} (not found)")
    entries = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {e}") from None
            if not isinstance(entry, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(entry).__name__}")
            missing = [k for k in REQUIRED_KEYS if k not in entry]
            if missing:
                raise ValueError(f"{path}:{lineno}: expected keys {REQUIRED_KEYS}, missing {missing}")
            if resolve and not os.path.isabs(entry["audio_filepath"]):
                entry["audio_filepath"] = str(path.parent / entry["audio_filepath"])
            entries.append(entry)
    return entries


def write_manifest(path: str | os.PathLike[str], entries: Iterable[dict[str, Any]]) -> None:
    """Write entries atomically (to a temporary file, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for entry in entries:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    tmp.replace(path)


def total_hours(entries: Iterable[dict[str, Any]]) -> float:
    return sum(float(e["duration"]) for e in entries) / 3600.0


HARSH_AUGMENTS = ("reverb_rt60", "babble_snr", "telephone")


def is_clean(entry: dict[str, Any], min_snr: float = 15.0) -> bool:
    """No reverb, babble or telephone band, and added noise (if any) at ``min_snr`` dB or more."""
    augment = entry.get("augment") or {}
    if any(key in augment for key in HARSH_AUGMENTS):
        return False
    return float(augment.get("snr", math.inf)) >= min_snr


def clean_subset(
    manifest: str | os.PathLike[str], out: str | os.PathLike[str], min_snr: float = 15.0
) -> tuple[int, float]:
    """Write the clean part of a corpus manifest (the streaming model's warm-up curriculum).

    Paths stay relative when ``out`` is in the manifest's folder. Returns (utterances, hours).
    """
    same_folder = Path(out).resolve().parent == Path(manifest).resolve().parent
    entries = [e for e in read_manifest(manifest, resolve=not same_folder) if is_clean(e, min_snr)]
    write_manifest(out, entries)
    return len(entries), total_hours(entries)


def librispeech_entries(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Entries of a LibriSpeech-style folder: ``*.trans.txt`` + ``<utt-id>.flac`` (or .wav).

    Durations come from the audio headers. Utterances whose audio is missing are skipped
    with a warning.
    """
    import logging

    import soundfile as sf

    log = logging.getLogger(__name__)
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"expected a LibriSpeech-style folder, got {str(root)!r}")
    entries = []
    for trans in sorted(root.rglob("*.trans.txt")):
        for line in trans.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            audio = next(
                (p for ext in (".flac", ".wav") if (p := trans.parent / f"{utt_id}{ext}").exists()), None
            )
            if audio is None:
                log.warning("%s: no audio for %s", trans, utt_id)
                continue
            try:
                duration = sf.info(str(audio)).duration
            except RuntimeError as e:
                log.warning("%s: %s", audio, e)
                continue
            entries.append(
                {"audio_filepath": str(audio.resolve()), "duration": round(duration, 3), "text": text}
            )
    return entries


def librispeech_manifest(root: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Write the manifest of a LibriSpeech-style folder; returns the utterance count."""
    entries = librispeech_entries(root)
    write_manifest(out, entries)
    return len(entries)
