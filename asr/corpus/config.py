"""What ``asr corpus build`` builds: the one home of its settings and their defaults.

A light module (no audio or synthesis imports), so the command line takes its defaults from
here without loading the corpus builder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from asr.constants import CORPUS_SEED

DEFAULT_ENGINE_WEIGHTS = {"espeak": 0.40, "mbrola": 0.28, "flite": 0.20, "festival": 0.12}
# Off in the default mix (so data/corpus stays as it was); make corpus builds training-only
# supplements from them with --engines.
SUPPLEMENT_ENGINES = ("piper", "mbrola-x", "rhvoice", "pico", "festival-x", "kokoro")
TEXT_ORDERS = ("random", "cycle")


@dataclass(frozen=True)
class CorpusConfig:
    """What to build.

    Attributes:
        out: output folder.
        hours: hours of *training* audio (dev/test come on top).
        dev_utts / test_utts: utterances in the held-out splits.
        seed: drives every random choice; same seed, same corpus.
        shard_size: utterances per shard (unit of work and of resume).
        jobs: worker processes.
        text_order: "random" draws each utterance's sentence independently (with
            replacement: the default, how every shipped corpus was built); "cycle" walks a
            seeded permutation of the split's sentences, so each is spoken once before any
            is spoken twice (for a supplement whose sentences were chosen one by one).
            Voices, prosody and augmentation are the same either way.
    """

    out: Path
    hours: float = 10.0
    dev_utts: int = 400
    test_utts: int = 1000
    seed: int = CORPUS_SEED
    shard_size: int = 120
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    engine_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ENGINE_WEIGHTS))
    text_order: str = "random"

    def __post_init__(self) -> None:
        if self.text_order not in TEXT_ORDERS:
            raise ValueError(f"text_order: expected one of {TEXT_ORDERS}, got {self.text_order!r}")
