"""Two-pass finals from both models: the BiLSTM's log-probs fused with the uni-LSTM's.

In two-pass mode the streaming (uni-LSTM) log-probs of an utterance exist anyway: they
gave its partials and its endpoint. The final re-decodes the buffered audio with the
BiLSTM. Both are CTC outputs over the same 30 ms steps and the same characters, and they
err differently, so the final searches their weighted mean instead of the BiLSTM's alone:

    fused[t] = (1 - weight) * bilstm[t] + weight * unilstm[t + shift]

A uni-LSTM sees no future, so it learns to emit each character a few steps after the
BiLSTM does: ``shift`` moves its output back into line. Without it the mean hurts, and
with the wrong shift it hurts too. The delay is not one number: for the shipped pair it is
4 steps (120 ms) on most dev utterances and 5 on many others, and on held-out voices
more often 5 (half of flite rms's test utterances). So by default (``shift=None``) each
utterance gets its own: the lag, within ``MAX_SHIFT`` steps, at which the two models'
non-blank probabilities line up best. Both were measured on the dev split and on
held-out sets (test, the Pico voice, the real-speech smoke clips): a fixed shift of 4, the
best on dev, gained 1.2 WER points there but lost CER on every held-out set; the
per-utterance shift lowered WER on all of them, by less than on dev (README, "Two-pass
fusion").

Offline mode (``asr transcribe``, ``Recognize`` with model ``offline``) fuses too: files
of up to a minute get a whole-file uni-LSTM pass of their own (1.6x the batch time of
the BiLSTM alone on the test split: RTF 0.010 -> 0.017), longer ones go through two-pass
sessions.

``asr fusion tune`` tunes the weight (and a fixed shift, if asked) on dev and stores it
with the two checkpoints' hashes in ``models/fusion.json``. A recogniser whose
checkpoints differ from those ignores the file and decodes with the BiLSTM alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr.checkpoint import MODELS_DIR, LoadedModel

log = logging.getLogger(__name__)

FUSION_FILE = MODELS_DIR / "fusion.json"
MAX_SHIFT = 10  # the longest lag an automatic shift considers (300 ms)


def best_lag(offline: np.ndarray, streaming: np.ndarray, max_shift: int = MAX_SHIFT) -> int:
    """The lag ``s`` in ``0..max_shift`` maximising ``sum_t P_uni(speech, t + s) * P_bi(speech, t)``.

    Speech is the non-blank probability, ``1 - P(blank)`` (blank is label 0).
    """
    if len(offline) < 2:
        return 0
    bi = -np.expm1(offline[:, 0].astype(np.float64))
    uni = -np.expm1(streaming[:, 0].astype(np.float64))
    lags = range(min(max_shift, len(bi) - 1) + 1)
    return int(np.argmax([np.dot(uni[s:], bi[: len(bi) - s]) for s in lags]))


@dataclass(frozen=True)
class Fusion:
    """``weight``: the uni-LSTM's share (0..1); ``shift``: steps its output is moved back
    (None: each utterance's own, :func:`best_lag`)."""

    weight: float
    shift: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight < 1.0:
            raise ValueError(f"expected 0 <= weight < 1, got {self.weight}")
        if self.shift is not None and self.shift < 0:
            raise ValueError(f"expected shift >= 0, got {self.shift}")

    def to_json(self) -> dict[str, Any]:
        return {"weight": self.weight, "shift": "auto" if self.shift is None else self.shift}

    def __call__(self, offline: np.ndarray, streaming: np.ndarray) -> np.ndarray:
        """Fused ``(T, V)`` log-scores for an utterance's two ``(T, V)`` log-prob arrays.

        The uni-LSTM's last ``shift`` steps have no successor inside the utterance; they
        repeat its last step (a blank, at an endpoint).
        """
        if offline.shape != streaming.shape:
            raise ValueError(f"expected log-probs of one shape, got {offline.shape} and {streaming.shape}")
        if self.weight == 0.0 or len(offline) == 0:
            return offline
        shift = best_lag(offline, streaming) if self.shift is None else self.shift
        shifted = streaming
        if shift:
            tail = np.repeat(streaming[-1:], min(shift, len(streaming)), axis=0)
            shifted = np.concatenate([streaming[shift:], tail])[: len(streaming)]
        fused: np.ndarray = (1.0 - self.weight) * offline + self.weight * shifted
        return fused.astype(np.float32, copy=False)


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_fusion(
    streaming: LoadedModel, offline: LoadedModel | None, path: str | os.PathLike[str] = FUSION_FILE
) -> Fusion | None:
    """The tuned fusion for these two checkpoints, or None (no file, or tuned for others)."""
    path = Path(path)
    if offline is None or not path.is_file():
        return None
    meta = json.loads(path.read_text())
    if (meta.get("streaming_sha256"), meta.get("offline_sha256")) != (
        file_sha256(streaming.path),
        file_sha256(offline.path),
    ):
        log.warning(
            "%s was tuned for other checkpoints than %s and %s: two-pass finals use the BiLSTM alone "
            "(re-tune with `asr fusion tune`)",
            path,
            streaming.path,
            offline.path,
        )
        return None
    return Fusion(float(meta["weight"]), _shift_from_json(meta.get("shift", "auto")))


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (for a committed file)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _shift_from_json(value: Any) -> int | None:
    return None if value in (None, "auto") else int(value)


# ------------------------------------------------------------------ tuning
def tune(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    refs: Sequence[str],
    decode: Callable[[np.ndarray], str],
    weights: Sequence[float],
    shifts: Sequence[int | None],
    score: Callable[[Sequence[str], Sequence[str]], float],
    progress: str | None = None,
) -> tuple[Fusion, list[dict[str, Any]]]:
    """The (weight, shift) with the lowest ``score(refs, hyps)`` over a grid; and the grid.

    ``pairs`` are each utterance's (BiLSTM, uni-LSTM) log-probs. Weight 0 (the BiLSTM
    alone) is always in the grid, so the result is never worse than no fusion on this set.
    ``progress``: a progress bar with this label.
    """
    from tqdm import tqdm

    grid: list[dict[str, Any]] = []
    best: tuple[float, Fusion] | None = None
    candidates = [Fusion(0.0, 0)] + [Fusion(w, s) for w in weights if w > 0 for s in shifts]
    for fusion in tqdm(candidates, desc=progress, disable=progress is None):
        hyps = [decode(fusion(b, u)) for b, u in pairs]
        value = score(refs, hyps)
        grid.append({**fusion.to_json(), "score": round(value, 5)})
        if best is None or value < best[0] - 1e-12:
            best = (value, fusion)
    assert best is not None
    return best[1], grid


def manifest_log_probs(
    models: Sequence[LoadedModel],
    manifest: str | os.PathLike[str],
    limit: int | None = None,
    progress: bool = False,
) -> tuple[list[str], list[list[np.ndarray]]]:
    """Normalised references and each model's whole-utterance log-probs, per readable utterance.

    A uni-LSTM's whole-utterance output equals its chunked streaming output
    (``tests/test_model.py``'s parity test), so these are what a two-pass session sees.
    """
    import torch
    from tqdm import tqdm

    from asr.audio import AudioError, load_audio
    from asr.features import log_mel
    from asr.manifest import read_manifest
    from asr.text import normalize_text

    for m in models:
        if m.features != models[0].features:
            raise ValueError(f"expected one feature configuration, got {m.features} and {models[0].features}")
    refs: list[str] = []
    mels: list[torch.Tensor] = []
    for e in tqdm(read_manifest(manifest)[:limit], desc="features", disable=not progress):
        try:
            audio = load_audio(e["audio_filepath"], models[0].features.sample_rate)
        except AudioError as err:
            log.warning("%s", err)
            continue
        mels.append(log_mel(audio, models[0].features))
        refs.append(normalize_text(str(e["text"])))
    per_model = [m.log_probs_many(mels, progress=m.kind if progress else None) for m in models]
    out = [list(lps) for lps in zip(*per_model, strict=True)] if mels else []
    return refs, out


def tune_on_manifest(
    streaming: LoadedModel,
    offline: LoadedModel,
    decoder: Any,
    manifest: str | os.PathLike[str],
    limit: int | None = None,
    weights: Sequence[float] = (0.1, 0.2, 0.3, 0.4),
    shifts: Sequence[int | None] = (None,),
    progress: bool = False,
) -> dict[str, Any]:
    """Tune the weight (and shift) on a dev manifest: what ``models/fusion.json`` holds.

    ``shifts``: None is the per-utterance shift. With fixed shifts among them, the shift
    is chosen first by greedy WER over ``shifts`` x ``weights`` (beam search is slow),
    then the weight by WER of ``decoder`` (beam + LM) at that shift and, for a fixed one,
    its two neighbours. Weight 0 (the BiLSTM alone) is in every grid.
    """
    from asr.metrics import error_rates
    from asr.text import greedy_decode

    refs, lps = manifest_log_probs([offline, streaming], manifest, limit, progress)
    if not refs:
        raise ValueError(f"expected readable utterances in {manifest}, got none")
    pairs = [(b, u) for b, u in lps]

    def wer(r: Sequence[str], h: Sequence[str]) -> float:
        return error_rates(zip(r, h, strict=True)).wer

    greedy_grid: list[dict[str, Any]] = []
    near: list[int | None] = [None]
    if any(s is not None for s in shifts):
        greedy_best, greedy_grid = tune(
            pairs, refs, greedy_decode, weights, shifts, wer, "greedy grid" if progress else None
        )
        if greedy_best.shift is not None:
            near = [s for s in range(greedy_best.shift - 1, greedy_best.shift + 2) if s >= 0]
    beam_best, beam_grid = tune(
        pairs,
        refs,
        lambda lp: decoder.beam(lp)[0].text,
        weights,
        near,
        wer,
        "beam grid" if progress else None,
    )
    return {
        **beam_best.to_json(),
        "streaming": _shown(streaming.path),
        "offline": _shown(offline.path),
        "streaming_sha256": file_sha256(streaming.path),
        "offline_sha256": file_sha256(offline.path),
        "tuned_on": {"manifest": str(manifest), "utterances": len(refs)},
        "dev_wer": {"bilstm_alone": beam_grid[0]["score"], "fused": min(g["score"] for g in beam_grid)},
        "greedy_grid": greedy_grid,
        "beam_grid": beam_grid,
    }
