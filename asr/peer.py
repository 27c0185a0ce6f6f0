"""PocketSphinx as a peer recogniser, scored with the same WER/CER code as our models.

The ``pocketsphinx`` wheel ships its US English acoustic model, dictionary and LM;
nothing is downloaded. Install with ``pip install pocketsphinx``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from asr.audio import AudioError, float_to_pcm16, load_audio
from asr.evaluate import EvalResult
from asr.manifest import read_manifest
from asr.metrics import error_rates
from asr.text import normalize_text


def pocketsphinx_decoder() -> Any:
    """A PocketSphinx decoder with the wheel's default en-us model (quiet logging)."""
    try:
        from pocketsphinx import Config, Decoder
    except ImportError as e:
        raise RuntimeError("PocketSphinx is not installed: pip install pocketsphinx") from e
    config = Config()
    config["logfn"] = os.devnull
    return Decoder(config)


def pocketsphinx_transcribe(decoder: Any, audio: np.ndarray) -> str:
    """Transcribe 16 kHz float32 audio; returns normalised text."""
    decoder.start_utt()
    decoder.process_raw(float_to_pcm16(audio), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return normalize_text(hyp.hypstr) if hyp is not None else ""


def evaluate_pocketsphinx(manifest: str | os.PathLike[str], limit: int | None = None) -> EvalResult:
    """WER/CER/RTF of PocketSphinx on a manifest (RTF excludes audio loading)."""
    decoder = pocketsphinx_decoder()
    pairs: list[tuple[str, str]] = []
    audio_seconds = 0.0
    busy = 0.0
    failed = 0
    for entry in read_manifest(manifest)[:limit]:
        try:
            audio = load_audio(entry["audio_filepath"])
        except AudioError:
            failed += 1
            continue
        started = time.perf_counter()
        hyp = pocketsphinx_transcribe(decoder, audio)
        busy += time.perf_counter() - started
        audio_seconds += len(audio) / 16000
        pairs.append((normalize_text(str(entry["text"])), hyp))
    counts = error_rates(pairs)
    return EvalResult.from_counts(
        "pocketsphinx en-us (wheel default)", manifest, counts, failed, audio_seconds, busy, 1
    )
