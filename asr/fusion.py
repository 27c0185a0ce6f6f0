"""Two-pass finals from both models: the BiLSTM's log-probs fused with the uni-LSTM's.

In two-pass mode the streaming (uni-LSTM) log-probs of an utterance exist anyway: they
gave its partials and its endpoint. The final re-decodes the buffered audio with the
BiLSTM. Both are CTC outputs over the same 30 ms steps and the same characters, and they
err differently, so the final searches their weighted mean instead of the BiLSTM's alone:

    fused[t] = (1 - weight) * bilstm[t] + weight * unilstm[t + shift]

A uni-LSTM sees no future, so it learns to emit each character a few steps after the
BiLSTM does (about 4 steps, 120 ms, for the shipped pair): ``shift`` moves its output back
into line. Without it the mean hurts; with the wrong shift it hurts too, so both numbers
are tuned together on dev (``asr fusion tune``) and stored with the two checkpoints'
hashes in ``models/fusion.json``. A recogniser whose checkpoints differ from those
ignores the file and decodes two-pass finals with the BiLSTM alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr.checkpoint import MODELS_DIR, LoadedModel

log = logging.getLogger(__name__)

FUSION_FILE = MODELS_DIR / "fusion.json"


@dataclass(frozen=True)
class Fusion:
    """``weight``: the uni-LSTM's share (0..1); ``shift``: steps its output is moved back."""

    weight: float
    shift: int

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight < 1.0:
            raise ValueError(f"expected 0 <= weight < 1, got {self.weight}")
        if self.shift < 0:
            raise ValueError(f"expected shift >= 0, got {self.shift}")

    def __call__(self, offline: np.ndarray, streaming: np.ndarray) -> np.ndarray:
        """Fused ``(T, V)`` log-scores for an utterance's two ``(T, V)`` log-prob arrays.

        The uni-LSTM's last ``shift`` steps have no successor inside the utterance; they
        repeat its last step (a blank, at an endpoint).
        """
        if offline.shape != streaming.shape:
            raise ValueError(f"expected log-probs of one shape, got {offline.shape} and {streaming.shape}")
        if self.weight == 0.0 or len(offline) == 0:
            return offline
        shifted = streaming
        if self.shift:
            tail = np.repeat(streaming[-1:], min(self.shift, len(streaming)), axis=0)
            shifted = np.concatenate([streaming[self.shift :], tail])[: len(streaming)]
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
    return Fusion(float(meta["weight"]), int(meta["shift"]))


# ------------------------------------------------------------------ tuning
def tune(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    refs: Sequence[str],
    decode: Callable[[np.ndarray], str],
    weights: Sequence[float],
    shifts: Sequence[int],
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
        grid.append({**asdict(fusion), "score": round(value, 5)})
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
    from asr.evaluate import _length_batches, batch_log_probs
    from asr.features import log_mel
    from asr.manifest import read_manifest
    from asr.text import normalize_text

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
    out: list[list[np.ndarray]] = [[] for _ in mels]
    for m in models:
        if m.features != models[0].features:
            raise ValueError(f"expected one feature configuration, got {m.features} and {models[0].features}")
        feats = [m.normalizer(x) for x in mels]
        for batch in tqdm(
            _length_batches([len(f) for f in feats], 60_000), desc=m.kind, disable=not progress
        ):
            for i, lp in zip(batch, batch_log_probs(m.model, [feats[i] for i in batch]), strict=True):
                out[i].append(lp.numpy())
    return refs, out


def tune_on_manifest(
    streaming: LoadedModel,
    offline: LoadedModel,
    decoder: Any,
    manifest: str | os.PathLike[str],
    limit: int | None = None,
    weights: Sequence[float] = (0.1, 0.2, 0.3, 0.4),
    shifts: Sequence[int] = tuple(range(9)),
    progress: bool = False,
) -> dict[str, Any]:
    """Tune (weight, shift) on a dev manifest: what ``models/fusion.json`` holds.

    Two stages, as beam search is slow: the shift by greedy WER over ``shifts`` ×
    ``weights``; then the weight by WER of ``decoder`` (beam + LM) at that shift and its
    two neighbours. Weight 0 (the BiLSTM alone) is in both grids.
    """
    from asr.metrics import error_rates
    from asr.text import greedy_decode

    refs, lps = manifest_log_probs([offline, streaming], manifest, limit, progress)
    if not refs:
        raise ValueError(f"expected readable utterances in {manifest}, got none")
    pairs = [(b, u) for b, u in lps]

    def wer(r: Sequence[str], h: Sequence[str]) -> float:
        return error_rates(zip(r, h, strict=True)).wer

    greedy_best, greedy_grid = tune(
        pairs, refs, greedy_decode, weights, shifts, wer, "greedy grid" if progress else None
    )
    near = sorted({s for s in (greedy_best.shift - 1, greedy_best.shift, greedy_best.shift + 1) if s >= 0})
    beam_best, beam_grid = tune(
        pairs,
        refs,
        lambda lp: decoder.beam(lp)[0].text,
        weights,
        near,
        wer,
        "beam grid" if progress else None,
    )
    baseline = beam_grid[0]["score"]
    return {
        **asdict(beam_best),
        "streaming": str(streaming.path),
        "offline": str(offline.path),
        "streaming_sha256": file_sha256(streaming.path),
        "offline_sha256": file_sha256(offline.path),
        "tuned_on": {"manifest": str(manifest), "utterances": len(refs)},
        "dev_wer": {"bilstm_alone": baseline, "fused": min(g["score"] for g in beam_grid)},
        "greedy_grid": greedy_grid,
        "beam_grid": beam_grid,
    }
