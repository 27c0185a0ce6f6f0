"""The real-speech smoke set: the few transcribed human recordings Debian ships.

Sources (evaluation only, never training):

* ``pocketsphinx-testdata``: goforward.raw, cards/00[1-5].wav, librivox/*.wav and
  tidigits/dhd.2934z.raw (raw files are 16 kHz mono PCM16 without a header);
* ``alsa-utils``: the spoken channel names in /usr/share/sounds/alsa.

About 20 clips and 120 words: a smoke test of the synthetic-to-real gap, not a
benchmark. The files are copied as 16 kHz wav next to the manifest.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from asr.audio import AudioError, load_audio, pcm16_to_float, write_wav
from asr.manifest import write_manifest
from asr.text import normalize_text

log = logging.getLogger(__name__)

PS_DATA = Path("/usr/share/pocketsphinx/test/data")
ALSA_SOUNDS = Path("/usr/share/sounds/alsa")
RAW_TRANSCRIPTS = {
    "goforward.raw": "go forward ten meters",
    "tidigits/dhd.2934z.raw": "two nine three four zero",
}


def _transcription_file(path: Path) -> dict[str, str]:
    """Parse CMU Sphinx ``<s> words </s> (utt-id)`` lines."""
    result = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\(([^)]+)\)\s*$", line)
        if m:
            result[m.group(2).strip()] = m.group(1).strip()
    return result


def smoke_sources() -> list[tuple[str, str, np.ndarray]]:
    """(id, transcript, 16 kHz audio) for every clip that is installed."""
    clips: list[tuple[str, str, np.ndarray]] = []
    for rel, text in RAW_TRANSCRIPTS.items():
        path = PS_DATA / rel
        if path.exists():
            clips.append((path.stem, text, pcm16_to_float(path.read_bytes()[: path.stat().st_size // 2 * 2])))
    for folder, listing in (("cards", "cards.transcription"), ("librivox", "transcription")):
        if not (PS_DATA / folder / listing).exists():
            continue
        for utt_id, text in _transcription_file(PS_DATA / folder / listing).items():
            wav = PS_DATA / folder / f"{Path(utt_id).name}.wav"
            try:
                clips.append((f"{folder}-{Path(utt_id).name}", text, load_audio(wav)))
            except AudioError as e:
                log.warning("%s", e)
    if ALSA_SOUNDS.is_dir():
        for wav in sorted(ALSA_SOUNDS.glob("*.wav")):
            if wav.stem.lower() == "noise":
                continue
            clips.append((f"alsa-{wav.stem}", wav.stem.replace("_", " ").lower(), load_audio(wav)))
    if not clips:
        log.warning("no smoke-set sources installed (pocketsphinx-testdata, alsa-utils)")
    return clips


def build_smoke_set(out: str | Path) -> Path:
    """Write the smoke set's wav files and ``manifest.jsonl`` under ``out``."""
    out = Path(out)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    for utt_id, text, audio in smoke_sources():
        rel = Path("wav") / f"{utt_id}.wav"
        write_wav(out / rel, audio)
        entries.append(
            {
                "audio_filepath": str(rel),
                "duration": round(len(audio) / 16000, 3),
                "text": normalize_text(text),
                "source": "pocketsphinx-testdata" if not utt_id.startswith("alsa") else "alsa-utils",
            }
        )
    manifest = out / "manifest.jsonl"
    write_manifest(manifest, entries)
    log.info(
        "smoke set: %d clips, %d words -> %s",
        len(entries),
        sum(len(e["text"].split()) for e in entries),
        manifest,
    )
    return manifest
