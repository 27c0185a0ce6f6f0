"""Greedy evaluation: WER, CER and real-time factor of a model on a manifest."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from asr.audio import AudioError, load_audio
from asr.checkpoint import LoadedModel, load_model
from asr.data import FeatureSet
from asr.decoding import Decoder
from asr.inference import batch_log_probs, length_batches
from asr.manifest import read_manifest
from asr.metrics import ErrorCounts, error_rates, error_rates_by
from asr.model import CTCModel
from asr.text import greedy_decode, normalize_text

log = logging.getLogger(__name__)


def decode_feature_set(
    model: CTCModel,
    normalizer: Callable[[torch.Tensor], torch.Tensor],
    data: FeatureSet,
    device: torch.device | str = "cpu",
    max_frames: int = 60000,
) -> list[str]:
    """Greedy transcripts for every utterance of a cached feature set."""
    hyps = [""] * len(data)
    for batch in length_batches(list(data.lengths), max_frames):
        feats = [normalizer(data.features(i)) for i in batch]
        for i, lp in zip(batch, batch_log_probs(model, feats, device), strict=True):
            hyps[i] = greedy_decode(lp)
    return hyps


GROUPINGS = ("voice", "condition")


def voice_group(entry: dict[str, Any]) -> str:
    """The utterance's voice (``engine:voice``), with espeak-ng's many accent+variant voices
    pooled into one group; a manifest without voices gives its ``source``, else "unknown"."""
    engine = str(entry.get("engine") or "")
    if engine == "espeak":
        return "espeak (all variants)"
    return str(entry.get("voice") or entry.get("source") or "unknown")


def condition(entry: dict[str, Any]) -> str:
    """ "augmented" or "clean" for corpus utterances (their ``augment`` field), else "unknown"."""
    if "augment" not in entry:
        return "unknown"
    return "augmented" if entry["augment"] else "clean"


def result_row(entry: dict[str, Any], ref: str, hyp: str) -> dict[str, str]:
    """A per-utterance row: audio, reference, hypothesis and the groups of :data:`GROUPINGS`."""
    return {
        "audio": str(entry["audio_filepath"]),
        "ref": ref,
        "hyp": hyp,
        "voice": voice_group(entry),
        "condition": condition(entry),
    }


def grouped_scores(rows: Sequence[dict[str, str]], by: str) -> dict[str, dict[str, float]]:
    """WER/CER/utterances/words per group of ``rows`` (``by``: one of :data:`GROUPINGS`),
    sorted by group name."""
    if by not in GROUPINGS:
        raise ValueError(f"expected a grouping in {GROUPINGS}, got {by!r}")
    groups = error_rates_by((r[by], r["ref"], r["hyp"]) for r in rows)
    return {g: c.summary() for g, c in sorted(groups.items())}


@dataclass
class EvalResult:
    """What ``asr eval`` reports."""

    model: str
    manifest: str
    utterances: int
    failed: int
    wer: float
    cer: float
    audio_seconds: float
    processing_seconds: float
    rtf: float
    threads: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_counts(
        cls,
        model: str,
        manifest: str | os.PathLike[str],
        counts: ErrorCounts,
        failed: int,
        audio_seconds: float,
        processing_seconds: float,
        threads: int,
    ) -> EvalResult:
        return cls(
            model=model,
            manifest=str(manifest),
            utterances=counts.utterances,
            failed=failed,
            wer=counts.wer,
            cer=counts.cer,
            audio_seconds=round(audio_seconds, 2),
            processing_seconds=round(processing_seconds, 3),
            rtf=processing_seconds / max(audio_seconds, 1e-9),
            threads=threads,
        )


def evaluate_manifest(
    model: str | os.PathLike[str] | LoadedModel,
    manifest: str | os.PathLike[str],
    max_frames: int = 60000,
    limit: int | None = None,
    progress: bool = False,
    decoder: Decoder | None = None,
) -> tuple[EvalResult, list[dict[str, str]]]:
    """Decode every utterance of a manifest (greedy, or beam search with ``decoder``) and score it.

    RTF is processing wall time (audio loading, features and model, batched by
    length) divided by audio duration, on the current torch thread count.

    Returns:
        The result and per-utterance rows (:func:`result_row`: audio, ref, hyp, voice, condition).
    """
    from tqdm import tqdm

    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    entries = read_manifest(manifest)[:limit]
    started = time.perf_counter()
    feats: list[torch.Tensor] = []
    kept: list[dict[str, Any]] = []
    failed = 0
    audio_seconds = 0.0
    for e in tqdm(entries, desc="features", disable=not progress):
        try:
            audio = load_audio(e["audio_filepath"], loaded.features.sample_rate)
        except AudioError as err:
            log.warning("%s", err)
            failed += 1
            continue
        audio_seconds += len(audio) / loaded.features.sample_rate
        feats.append(loaded.inputs(audio))
        kept.append(e)
    hyps = [""] * len(kept)
    for batch in tqdm(
        length_batches([len(f) for f in feats], max_frames), desc="decode", disable=not progress
    ):
        for i, lp in zip(batch, batch_log_probs(loaded.model, [feats[i] for i in batch]), strict=True):
            hyps[i] = greedy_decode(lp) if decoder is None else decoder.beam(lp.numpy())[0].text
    elapsed = time.perf_counter() - started
    refs = [normalize_text(str(e["text"])) for e in kept]
    counts = error_rates(zip(refs, hyps, strict=True))
    result = EvalResult.from_counts(
        str(loaded.path), manifest, counts, failed, audio_seconds, elapsed, torch.get_num_threads()
    )
    rows = [result_row(e, r, h) for e, r, h in zip(kept, refs, hyps, strict=True)]
    return result, rows


def format_report(
    result: EvalResult,
    rows: Sequence[dict[str, str]],
    decoding: str,
    by: str | None = None,
    show: int = 0,
) -> str:
    """The text ``asr eval`` prints: ``show`` REF/HYP pairs, a table per ``by`` group, the totals.

    Args:
        result: the scores of :func:`evaluate_manifest`.
        rows: its per-utterance rows.
        decoding: how the hypotheses were decoded, e.g. ``"greedy"`` or ``"beam + LM"``.
        by: ``"voice"`` or ``"condition"`` for a per-group table, or None.
        show: how many reference/hypothesis pairs to print first.
    """
    lines = []
    for row in rows[:show]:
        lines += [f"REF: {row['ref']}", f"HYP: {row['hyp']}", ""]
    if by:
        groups = grouped_scores(rows, by)
        width = max(len(by), *(len(g) for g in groups))
        lines.append(f"{by:<{width}}  utts  words    WER     CER")
        for g, s in groups.items():
            lines.append(
                f"{g:<{width}}  {s['utterances']:>4}  {s['words']:>5}  "
                f"{100 * s['wer']:5.1f}%  {100 * s['cer']:5.1f}%"
            )
    lines.append(
        f"{result.utterances} utterances ({result.failed} failed), {result.audio_seconds / 60:.1f} min audio: "
        f"WER {100 * result.wer:.2f}%  CER {100 * result.cer:.2f}%  RTF {result.rtf:.4f} "
        f"({result.threads} threads, {decoding})"
    )
    return "\n".join(lines)
