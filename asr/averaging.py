"""Checkpoint averaging over one training run (what ``asr average`` does).

Snapshots of a run at a constant, low learning rate scatter around a minimum; their
element-wise mean (:func:`asr.checkpoint.average_checkpoints`) usually sits nearer its
centre and decodes better than any one of them.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import torch

from asr.checkpoint import average_checkpoints, load_model, save

if TYPE_CHECKING:
    from asr.evaluate import EvalResult

log = logging.getLogger(__name__)


def training_step(path: str | os.PathLike[str]) -> int:
    """The training step a checkpoint was saved at (-1 if it does not say)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return int(ckpt.get("training", {}).get("steps", -1)) if isinstance(ckpt, dict) else -1


def average_run(
    paths: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    last: int = 0,
    dev: str | os.PathLike[str] | None = None,
) -> tuple[list[int | None], EvalResult | None]:
    """Average checkpoints of one run into ``out``, a shippable checkpoint.

    Args:
        paths: checkpoints of one training run.
        out: where the averaged checkpoint goes.
        last: average only the ``last`` latest by training step (0: all).
        dev: a manifest on which to measure the average's greedy CER/WER, stored in its metrics.

    Returns:
        The averaged snapshots' training steps, and the dev scores (None without ``dev``).

    Raises:
        ValueError: ``last`` is 1 or negative, or the checkpoints cannot be averaged.
    """
    if last and last < 2:
        raise ValueError(f"expected last to be 2 or more, got {last}")
    if last:
        paths = sorted(paths, key=training_step)[-last:]
    averaged = average_checkpoints(paths)
    steps = [entry["steps"] for entry in averaged["training"]["averaged_from"]]
    log.info("averaged %d checkpoints (steps %s)", len(paths), ", ".join(str(s) for s in steps))
    scores = None
    if dev:
        from asr.evaluate import evaluate_manifest

        save(averaged, out)
        scores, _ = evaluate_manifest(load_model(out), dev, progress=False)
        averaged["metrics"] = {
            "dev_cer": scores.cer,
            "dev_wer": scores.wer,
            "dev_utterances": scores.utterances,
            "step": max(s for s in steps if s is not None),
        }
    save(averaged, out)
    return steps, scores
