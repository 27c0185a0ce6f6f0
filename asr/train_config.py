"""The settings of a training run (:class:`TrainConfig`) and its learning-rate schedule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asr.config_flags import option
from asr.model import OFFLINE_DEFAULT, STREAMING_DEFAULT, ModelConfig


@dataclass
class TrainConfig:
    """Everything a training run needs; saved in the resume state."""

    out_dir: str = option(help="run folder (resume state, best checkpoint, log)", flag="--out")
    train_manifests: list[str] = option(
        help="JSONL training manifest(s), or LibriSpeech-style folders", flag="--train", metavar="MANIFEST"
    )
    dev_manifest: str | None = option(
        None, help="JSONL dev manifest for periodic greedy CER/WER", flag="--dev", metavar="MANIFEST"
    )
    kind: str = option("streaming", help="model type", choices=["streaming", "offline"])
    hidden: int | None = option(None, help="LSTM units (per direction; default: the kind's size)")
    layers: int | None = option(None, help="LSTM layers (default: the kind's)")
    proj_dim: int | None = option(None, help="input projection size (default: the kind's)")
    dropout: float = option(
        0.1,
        help="dropout after the input projection, between LSTM layers and before the output head "
        "(no weights, so a resumed or warm-started run may change it)",
    )
    max_steps: int = option(20000, help="total optimizer steps", flag="--steps")
    max_frames: int = option(
        16000, help="padded 10 ms frames per batch per process (~160 s)", flag="--batch-frames"
    )
    max_utterances: int = option(
        128,
        help="utterances per batch at most (raise it with --batch-frames on a GPU)",
        flag="--batch-utterances",
    )
    loader_workers: int = option(
        0,
        help="processes that collate and augment batches ahead of the model (0: in the training "
        "process; a GPU needs several to be kept busy)",
    )
    augment_on_device: bool = option(
        False,
        help="frequency warp, normalisation and SpecAugment on whole batches on the model's device "
        "(with a GPU, per-utterance augmentation in the loader is the bottleneck)",
    )
    lr: float = option(1.5e-3, help="peak learning rate")
    warmup_steps: int = option(600, help="warm-up steps", flag="--warmup")
    lr_half_life: int = option(4000, help="steps per halving of the lr (exponential decay after warm-up)")
    min_lr: float = option(2e-5, help="floor of the lr", cli=False)
    anneal_steps: int = option(
        0,
        help="ramp the lr linearly down to its floor over the last N steps before --steps "
        "(can be set when resuming, to finish a run inside a time budget)",
    )
    weight_decay: float = option(1e-2, help="AdamW weight decay", cli=False)
    grad_clip: float = option(5.0, help="gradient-norm clip")
    specaugment: bool = option(True, help="disable SpecAugment", flag="--no-specaugment")
    freq_warp: float = option(
        0.0,
        help="vocal tract length perturbation: warp each utterance's frequency axis by a random "
        "factor in [1-W, 1+W] (e.g. 0.1; 0 = off)",
    )
    channel_eq: float = option(
        0.0,
        help="microphone/channel colouring: add a random smooth EQ curve (tilt and bows, up to "
        "about DB dB) to each utterance's log-mel (e.g. 6; 0 = off)",
        metavar="DB",
    )
    bf16: bool = option(
        False,
        help="bfloat16 autocast in the training forward pass (weights, optimizer and dev eval stay fp32); "
        "on CPUs with AVX512-BF16 the BiLSTM trains ~1.7x faster",
    )
    eval_every: int = option(500, help="steps between dev evaluations")
    save_every: int = option(250, help="steps between resume saves")
    snapshot_every: int = option(
        0,
        help="also keep the weights every N steps as OUT/snapshots/step-NNNNNNN.pt (shippable fp16, "
        "7-9 MB each), to average the last few with 'asr average' (0 = off)",
    )
    log_every: int = option(25, help="steps between progress lines")
    seed: int = option(1234, help="random seed")
    threads: int = option(0, help="torch threads (0: default)")
    device: str = option("auto", help="auto, cpu or cuda")
    feature_jobs: int = option(1, help="processes for feature caching")
    cache_dir: str = option("data/feats", help="feature cache folder")
    max_wall_minutes: float = option(
        0.0, help="stop and save after this many minutes (0: no limit)", flag="--max-minutes"
    )
    anneal_minutes: float = option(
        0.0,
        help="ramp the lr linearly down to its floor over the last N minutes of --max-minutes "
        "(a time-boxed run on a machine of unknown speed; use instead of --anneal-steps)",
    )
    init_from: str | None = option(
        None,
        help="warm start from this checkpoint (e.g. models/streaming/model.pt) when OUT/last.pt is absent",
    )
    rewarm_steps: int = option(
        300, help="lr ramp after a warm start (the optimizer state starts empty)", cli=False
    )
    extra: dict[str, Any] = field(default_factory=dict, metadata={"cli": False})

    def model_config(self, vocab_size: int) -> ModelConfig:
        base = STREAMING_DEFAULT if self.kind == "streaming" else OFFLINE_DEFAULT
        if self.kind not in ("streaming", "offline"):
            raise ValueError(f"expected kind 'streaming' or 'offline', got {self.kind!r}")
        return ModelConfig(
            n_mels=base.n_mels,
            stack=base.stack,
            proj_dim=self.proj_dim or base.proj_dim,
            hidden=self.hidden or base.hidden,
            layers=self.layers or base.layers,
            bidirectional=self.kind == "offline",
            vocab_size=vocab_size,
            dropout=self.dropout,
        )


def anneal_by_time(lr: float, elapsed_minutes: float, config: TrainConfig) -> float:
    """Linear ramp of ``lr`` down to the floor over the last ``anneal_minutes`` of the
    wall-clock budget, for time-boxed runs whose speed is not known in advance (the lr then
    depends on the machine's speed, so a resumed run is not bit-exact to a straight one)."""
    if not (config.anneal_minutes > 0 and config.max_wall_minutes > 0):
        return lr
    left = config.max_wall_minutes - elapsed_minutes
    if left >= config.anneal_minutes:
        return lr
    return config.min_lr + (lr - config.min_lr) * max(0.0, left / config.anneal_minutes)


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then exponential decay with the given half-life (floored)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    decay = 0.5 ** ((step - config.warmup_steps) / config.lr_half_life)
    lr = max(config.lr * decay, config.min_lr)
    anneal_start = config.max_steps - config.anneal_steps
    if config.anneal_steps > 0 and step >= anneal_start:
        left = max(0.0, (config.max_steps - step) / config.anneal_steps)
        lr = config.min_lr + (lr - config.min_lr) * left
    return lr
