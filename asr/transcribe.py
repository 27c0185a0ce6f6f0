"""Batch transcription of files: output formats and the per-file loop of ``asr transcribe``.

A failing file is reported and the others go on; the caller gets the list of failures
to set the exit code.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr.api import Recognizer, Transcript, load_short
from asr.audio import AudioError
from asr.constants import SAMPLE_RATE, Mode
from asr.offline import OfflineBatchRecognizer
from asr.streaming import SessionConfig

log = logging.getLogger(__name__)

FORMATS = ("txt", "json", "srt", "vtt")
BATCH_SECONDS = 120.0  # audio per batched BiLSTM forward in offline mode


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_txt(transcript: Transcript) -> str:
    return "\n".join(r.text for r in transcript.results if r.text) + "\n"


def to_json(transcript: Transcript, path: str = "") -> str:
    segments: list[dict[str, Any]] = []
    for r in transcript.results:
        best = r.alternatives[0] if r.alternatives else None
        segments.append(
            {
                "utterance": r.utterance_index,
                "start": r.start,
                "end": r.end,
                "text": r.text,
                "confidence": best.confidence if best else 0.0,
                "words": [
                    {"word": w.word, "start": w.start, "end": w.end, "confidence": w.confidence}
                    for w in (best.words if best else ())
                ],
                "alternatives": [{"text": a.text, "confidence": a.confidence} for a in r.alternatives[1:]],
            }
        )
    return json.dumps(
        {
            "file": path,
            "duration": round(transcript.duration, 3),
            "text": transcript.text,
            "segments": segments,
        },
        indent=1,
    )


def _cues(transcript: Transcript) -> list[tuple[float, float, str]]:
    cues = []
    for r in transcript.results:
        if not r.text:
            continue
        best = r.alternatives[0]
        # Tighten the cue to the words when times are known.
        start = best.words[0].start if best.words else r.start
        end = best.words[-1].end if best.words else r.end
        cues.append((start, max(end, start + 0.05), r.text))
    return cues


def to_srt(transcript: Transcript) -> str:
    blocks = [
        f"{i}\n{_timestamp(s, ',')} --> {_timestamp(e, ',')}\n{text}\n"
        for i, (s, e, text) in enumerate(_cues(transcript), 1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    blocks = [f"{_timestamp(s, '.')} --> {_timestamp(e, '.')}\n{text}\n" for s, e, text in _cues(transcript)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def render(transcript: Transcript, fmt: str, path: str = "") -> str:
    if fmt == "txt":
        return to_txt(transcript)
    if fmt == "json":
        return to_json(transcript, path)
    if fmt == "srt":
        return to_srt(transcript)
    if fmt == "vtt":
        return to_vtt(transcript)
    raise ValueError(f"expected a format in {FORMATS}, got {fmt!r}")


@dataclass
class BatchReport:
    done: list[str]
    failed: list[tuple[str, str]]  # (path, reason); the reason does not repeat the path
    audio_seconds: float
    seconds: float


def transcribe_files(
    recognizer: Recognizer,
    paths: Sequence[str | os.PathLike[str]],
    mode: str = Mode.OFFLINE,
    fmt: str = "txt",
    output_dir: str | os.PathLike[str] | None = None,
    config: SessionConfig | None = None,
    progress: bool = True,
    write: Any = print,
    jobs: int = 1,
    batch_seconds: float = BATCH_SECONDS,
) -> BatchReport:
    """Transcribe files; failures are collected, not raised.

    In offline mode, files of up to a minute are batched: one BiLSTM forward per batch
    of about ``batch_seconds`` of audio, with beam search in ``jobs`` worker processes
    while the next batch runs through the model. Longer files (and the other modes) go
    one by one through a streaming session, in bounded memory. Output order is input order.

    With ``output_dir``, each file's result goes to ``DIR/<stem>.<fmt>``; otherwise it is
    passed to ``write`` (stdout by default), preceded by the file name when several.
    """
    import time

    from tqdm import tqdm

    if fmt not in FORMATS:
        raise ValueError(f"expected a format in {FORMATS}, got {fmt!r}")
    out_dir = Path(output_dir) if output_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    base = config or SessionConfig()
    report = BatchReport([], [], 0.0, 0.0)
    started = time.perf_counter()
    bar = tqdm(total=len(paths), desc="transcribe", unit="file", disable=not progress)

    def emit(path: str, transcript: Transcript) -> None:
        report.audio_seconds += transcript.duration
        text = render(transcript, fmt, path)
        if out_dir:
            (out_dir / f"{Path(path).stem}.{fmt}").write_text(text, encoding="utf-8")
        else:
            if len(paths) > 1 and fmt in ("txt",):
                write(f"== {path}")
            write(text.rstrip("\n"))
        report.done.append(path)
        bar.update()

    def fail(path: str, error: Exception) -> None:
        log.error("%s", error)
        report.failed.append((path, str(error).removeprefix(f"{path}: ")))  # the reason names no path
        bar.update()

    batched = mode == Mode.OFFLINE and recognizer.offline is not None
    batcher = recognizer.offline_batch(jobs) if batched else None
    group: list[tuple[str, np.ndarray]] = []  # loaded, waiting for the model
    queued: list[tuple[list[tuple[str, np.ndarray]], list[Any]]] = []  # in the beam workers

    def drain(keep: int) -> None:
        while len(queued) > keep:
            items, pending = queued.pop(0)
            for (path, audio), results in zip(items, OfflineBatchRecognizer.collect(pending), strict=True):
                emit(path, Transcript(results=tuple(results), duration=len(audio) / SAMPLE_RATE))

    def run_group() -> None:
        if group:
            assert batcher is not None  # files are grouped only in batched mode
            queued.append((list(group), batcher.submit([a for _, a in group], base)))
            group.clear()
            drain(keep=1)  # decode batch k while the model runs on batch k + 1

    try:
        for p in paths:
            path = str(p)
            bar.set_postfix_str(Path(path).name[:30])
            try:
                audio = load_short(path) if batched else None
                if audio is not None:
                    group.append((path, audio))
                    if sum(len(a) for _, a in group) >= batch_seconds * SAMPLE_RATE:
                        run_group()
                    continue
                run_group()
                drain(keep=0)  # keep the output in input order
                transcript = recognizer.transcribe(path, mode=mode, config=config)
            except (AudioError, ValueError, OSError) as e:
                fail(path, e)
                continue
            emit(path, transcript)
        run_group()
        drain(keep=0)
    finally:
        if batcher is not None:
            batcher.close()
        bar.close()
    report.seconds = time.perf_counter() - started
    return report
