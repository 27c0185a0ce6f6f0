"""Checkpoints as plain dicts, loadable with ``torch.load(weights_only=True)``.

A shipped checkpoint holds::

    {"format": 1, "kind": "streaming" | "offline",
     "config": ModelConfig dict, "model": fp16 state dict, "labels": [...],
     "features": FeatureConfig dict, "normalizer": {"mean", "std"},
     "training": {...metadata...}, "metrics": {...dev/test numbers...}}

The training-resume state (optimizer, scheduler, RNG) lives in a separate file next
to the run and never ships.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.constants import step_seconds
from asr.features import FeatureConfig, Normalizer, log_mel
from asr.inference import BATCH_FRAMES, batch_log_probs, sorted_log_probs
from asr.model import CTCModel, ModelConfig
from asr.text import Vocabulary

FORMAT_VERSION = 1
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
MODEL_ALIASES = {
    "streaming": "streaming/model.pt",
    "stream": "streaming/model.pt",
    "offline": "offline/model.pt",
}


@dataclass
class LoadedModel:
    """A model ready for inference, with everything needed to feed it."""

    model: CTCModel
    vocab: Vocabulary
    features: FeatureConfig
    normalizer: Normalizer
    meta: dict[str, Any]
    path: Path

    @property
    def kind(self) -> str:
        return self.model.config.kind

    @property
    def step_seconds(self) -> float:
        """Seconds of audio per model step: the features' frame shift x the model's stacking."""
        return step_seconds(self.features.hop_length, self.features.sample_rate, self.model.config.stack)

    def inputs(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Normalised model input: 1-D ``x`` is audio at ``features.sample_rate`` (log-mel
        first), 2-D ``x`` is ``(T, n_mels)`` log-mel; both then get this model's normaliser."""
        if x.ndim == 1:
            return self.normalizer(log_mel(x, self.features))
        if x.ndim == 2 and x.shape[1] == self.features.n_mels:
            return self.normalizer(torch.as_tensor(x))
        raise ValueError(f"expected 1-D audio or (T, {self.features.n_mels}) log-mel, got {tuple(x.shape)}")

    def log_probs(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Whole-utterance ``(T', V)`` log-probs of audio or log-mel (see :meth:`inputs`)."""
        return batch_log_probs(self.model, [self.inputs(x)])[0].numpy()

    def log_probs_many(
        self,
        xs: Sequence[np.ndarray | torch.Tensor],
        max_frames: int = BATCH_FRAMES,
        progress: str | None = None,
    ) -> list[np.ndarray]:
        """:meth:`log_probs` of many utterances, batched by length; results in input order."""
        feats = [self.inputs(x) for x in xs]
        return [lp.numpy() for lp in sorted_log_probs(self.model, feats, max_frames, progress=progress)]


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def make_checkpoint(
    model: CTCModel,
    vocab: Vocabulary,
    features: FeatureConfig,
    normalizer: Normalizer,
    training: dict[str, Any],
    metrics: dict[str, Any],
    half: bool = True,
) -> dict[str, Any]:
    """The shipped dict; weights stored fp16 when ``half``."""
    state = {
        k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().clone()
        for k, v in model.state_dict().items()
    }
    return {
        "format": FORMAT_VERSION,
        "kind": model.config.kind,
        "config": model.config.to_dict(),
        "model": state,
        "labels": list(vocab.labels),
        "features": features.to_dict(),
        "normalizer": normalizer.to_dict(),
        "training": training,
        "metrics": metrics,
    }


def save(obj: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Atomic save: write to a temporary file, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def resolve_model_path(name: str | os.PathLike[str]) -> Path:
    """``streaming`` / ``offline`` -> the shipped file in models/; otherwise a path."""
    name = str(name)
    if name in MODEL_ALIASES:
        env = os.environ.get("ASR_MODELS_DIR")
        base = Path(env) if env else MODELS_DIR
        return base / MODEL_ALIASES[name]
    return Path(name)


def _read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint dict at ``path``; ValueError when it is not one of this project's."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        raise ValueError(f"{path}: not a loadable checkpoint ({e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: expected a format-{FORMAT_VERSION} checkpoint dict")
    return ckpt


def load_model(name: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedModel:
    """Load a shipped checkpoint (``weights_only=True``) as a float32 eval-mode model.

    Raises:
        ValueError: unknown name, missing file, or not a checkpoint of this project.
    """
    path = resolve_model_path(name)
    if not path.is_file():
        known = ", ".join(sorted(MODEL_ALIASES))
        raise ValueError(f"expected a model name ({known}) or a checkpoint path, got {str(name)!r}")
    ckpt = _read_checkpoint(path)
    config = ModelConfig.from_dict(ckpt["config"])
    model = CTCModel(config)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()})
    model.to(device).eval()
    return LoadedModel(
        model=model,
        vocab=Vocabulary.from_list(ckpt["labels"]),
        features=FeatureConfig.from_dict(ckpt["features"]),
        normalizer=Normalizer.from_dict(ckpt["normalizer"]),
        meta={"training": ckpt.get("training", {}), "metrics": ckpt.get("metrics", {})},
        path=path,
    )


def average_checkpoints(paths: list[str | os.PathLike[str]]) -> dict[str, Any]:
    """The element-wise mean of the weights of several shipped checkpoints of one run.

    Checkpoint averaging (as in SWA, or Transformer "average the last N checkpoints"):
    snapshots taken along one low-learning-rate trajectory sit in the same basin, and their
    mean often generalises better than any one of them. Metadata (training, metrics) comes
    from the last path, with the averaged files and steps recorded in
    ``training["averaged_from"]``.

    Raises:
        ValueError: fewer than two paths, or checkpoints that differ in model config,
            labels, features or normaliser (they could not come from one run).
    """
    if len(paths) < 2:
        raise ValueError(f"expected at least two checkpoints to average, got {len(paths)}")
    ckpts = [_read_checkpoint(p) for p in paths]
    first = ckpts[0]
    for p, ckpt in zip(paths[1:], ckpts[1:], strict=True):
        for key in ("config", "labels", "features"):
            # dropout has no weights: snapshots of runs that changed it still average
            a = {k: v for k, v in first[key].items() if k != "dropout"} if key == "config" else first[key]
            b = {k: v for k, v in ckpt[key].items() if k != "dropout"} if key == "config" else ckpt[key]
            if a != b:
                raise ValueError(f"{p}: expected the same {key} as {paths[0]}, got a different one")
        same_norm = all(
            torch.equal(torch.as_tensor(first["normalizer"][k]), torch.as_tensor(ckpt["normalizer"][k]))
            for k in first["normalizer"]
        )
        if not same_norm:
            raise ValueError(f"{p}: expected the normaliser of {paths[0]} (the same run), got another")
    state = {}
    for name, tensor in first["model"].items():
        if tensor.is_floating_point():
            mean = torch.stack([c["model"][name].float() for c in ckpts]).mean(0)
            state[name] = mean.to(tensor.dtype)
        else:
            state[name] = tensor.clone()
    last = ckpts[-1]
    training = dict(last.get("training", {}))
    training["averaged_from"] = [
        {"path": str(p), "steps": c.get("training", {}).get("steps")}
        for p, c in zip(paths, ckpts, strict=True)
    ]
    return {**last, "model": state, "training": training, "metrics": {}}
