"""NeMo-style JSONL manifests: one JSON object per line.

Required keys are ``audio_filepath``, ``duration`` (seconds) and ``text``; anything
else (``engine``, ``voice``, augmentation info ...) is carried along. Relative audio
paths are resolved against the manifest's own directory, so a corpus folder can be
moved as a whole.
"""

from __future__ import annotations

import json
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
