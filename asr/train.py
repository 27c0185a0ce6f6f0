"""CTC training for the streaming and offline models, with exact resume and DDP.

Run directory layout::

    RUN/last.pt     full resume state (model, optimizer, step, RNG) - never shipped
    RUN/best.pt     shippable fp16 checkpoint of the best dev CER so far
    RUN/log.jsonl   one JSON object per log/eval event
    RUN/snapshots/step-NNNNNNN.pt   shippable fp16 weights every ``snapshot_every`` steps
                    (optional), for checkpoint averaging: ``asr average``

Multi-process: launch with ``torchrun --nproc_per_node N -m asr.cli train ...``; each
rank takes every N-th batch and gradients are averaged (gloo on CPU, nccl on CUDA).
The run's settings and learning-rate schedule are in :mod:`asr.train_config`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from asr import checkpoint
from asr.data import (
    ChannelEQ,
    FeatureSet,
    FreqWarp,
    SpecAugment,
    augment_batch,
    bucket_batches,
    collate,
    fit_normalizer_stats,
    identity,
    load_feature_set,
)
from asr.evaluate import decode_feature_set
from asr.features import FeatureConfig, Normalizer
from asr.metrics import error_rates
from asr.model import CTCModel
from asr.text import Vocabulary
from asr.train_config import TrainConfig, anneal_by_time, lr_at

log = logging.getLogger(__name__)


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def data_summary(data: FeatureSet) -> dict[str, Any]:
    hours = float(sum(m.get("duration") or 0 for m in data.meta)) / 3600
    engines: dict[str, float] = {}
    for m in data.meta:
        engines[str(m.get("engine"))] = (
            engines.get(str(m.get("engine")), 0.0) + float(m.get("duration") or 0) / 3600
        )
    return {
        "utterances": len(data),
        "hours": round(hours, 2),
        "voices": len({m.get("voice") for m in data.meta}),
        "speakers": len({m.get("speaker") for m in data.meta}),
        "hours_per_engine": {k: round(v, 2) for k, v in sorted(engines.items())},
    }


class Trainer:
    """One training run (one process of a possibly distributed job)."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.rank, self.world = _dist_info()
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        if config.device == "auto":
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            self.device = torch.device(config.device)
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend)
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.out = Path(config.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.vocab = Vocabulary()
        self.features = FeatureConfig()

        torch.manual_seed(config.seed)
        if self.world > 1 and self.rank != 0:
            dist.barrier()  # rank 0 fills the feature cache first
        sets = [
            load_feature_set(
                m, self.features, config.cache_dir, config.feature_jobs, self.vocab, self.rank == 0
            )
            for m in config.train_manifests
        ]
        self.train_data = FeatureSet.concat(sets)
        if len(self.train_data) == 0:
            raise ValueError("expected training utterances, got none (check the manifests)")
        self.dev_data = (
            load_feature_set(config.dev_manifest, self.features, config.cache_dir, 1, self.vocab, False)
            if config.dev_manifest
            else None
        )
        if self.world > 1 and self.rank == 0:
            dist.barrier()
        self.model_config = config.model_config(len(self.vocab))
        self.model = CTCModel(self.model_config).to(self.device)
        self.ddp: nn.Module = self.model
        if self.world > 1:
            self.ddp = nn.parallel.DistributedDataParallel(self.model)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.ctc = nn.CTCLoss(blank=self.vocab.blank, zero_infinity=True)
        self.specaug = SpecAugment() if config.specaugment else None
        self.warp = FreqWarp(config.freq_warp, self.features) if config.freq_warp > 0 else None
        self.eq = ChannelEQ(config.channel_eq) if config.channel_eq > 0 else None
        self.generator = torch.Generator().manual_seed(config.seed + self.rank)

        self.step = 0
        self.epoch = 0
        self.position = 0  # step index within the epoch
        self.wall_seconds = 0.0
        self.best_cer = math.inf
        self.history: list[dict[str, Any]] = []
        self._session_start = time.time()
        self._sigterm = False
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)
        self.warm_start_step: int | None = None
        resume = self.out / "last.pt"
        if resume.exists():
            self._load_resume(resume)
        elif config.init_from:
            self._warm_start(config.init_from)
        else:
            self.normalizer = fit_normalizer_stats(self.train_data, seed=config.seed).normalizer()
        self.summary = data_summary(self.train_data)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self._sigterm = True  # finish the step, evaluate, save, exit

    # ----------------------------------------------------------------- state
    def _resume_state(self) -> dict[str, Any]:
        return {
            "train_config": asdict(self.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "normalizer": self.normalizer.to_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "wall_seconds": self.wall_seconds,
            "best_cer": self.best_cer,
            "warm_start_step": self.warm_start_step,
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            "generator": self.generator.get_state(),
        }

    def _load_resume(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.normalizer = Normalizer.from_dict(state["normalizer"])
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.wall_seconds = state["wall_seconds"]
        self.best_cer = state["best_cer"]
        self.warm_start_step = state.get("warm_start_step")
        self.history = state["history"]
        torch.set_rng_state(state["torch_rng"])
        self.generator.set_state(state["generator"])
        log.info("resumed %s at step %d (epoch %d)", path, self.step, self.epoch)

    def _warm_start(self, name: str) -> None:
        """Continue from a shipped (fp16) checkpoint: weights, normaliser, step count, wall time.

        Used across sessions, when the exact resume state (RUN/last.pt, which holds the
        optimizer) is gone. The learning-rate schedule continues from the recorded step,
        ramped up again over ``rewarm_steps`` because Adam's moments start empty.
        """
        loaded = checkpoint.load_model(name)
        # dropout has no weights: a warm start may change it
        if replace(loaded.model.config, dropout=self.model_config.dropout) != self.model_config:
            raise ValueError(f"expected {self.model_config} in {name}, got {loaded.model.config}")
        self.model.load_state_dict(loaded.model.state_dict())
        self.normalizer = loaded.normalizer
        training = loaded.meta["training"]
        self.step = int(training.get("steps", 0))
        self.epoch = int(training.get("epochs", 0))
        self.wall_seconds = float(training.get("wall_seconds", 0.0))
        self.best_cer = float(loaded.meta["metrics"].get("dev_cer", math.inf))
        self.warm_start_step = self.step
        log.info("warm start from %s at step %d (dev CER %.4f)", name, self.step, self.best_cer)

    def save_resume(self) -> None:
        if self.rank == 0:
            checkpoint.save(self._resume_state(), self.out / "last.pt")

    def shippable(self, metrics: dict[str, Any]) -> dict[str, Any]:
        training = {
            "data": self.summary,
            "train_manifests": self.config.train_manifests,
            "dev_manifest": self.config.dev_manifest,
            "steps": self.step,
            "epochs": round(self.epoch + self.position / max(1, self._steps_per_epoch()), 2),
            "wall_seconds": round(self.wall_seconds, 1),
            "hardware": _hardware(self.device),
            "processes": self.world,
            "git_commit": checkpoint.git_commit(),
            "train_config": asdict(self.config),
        }
        return checkpoint.make_checkpoint(
            self.model, self.vocab, self.features, self.normalizer, training, metrics
        )

    # ------------------------------------------------------------------ loop
    def _elapsed_minutes(self) -> float:
        """Minutes since this process started training; rank 0's clock for every rank, so
        that time-based lr and stop decisions agree across DDP processes."""
        elapsed = (time.time() - self._session_start) / 60
        if self.world > 1 and (self.config.max_wall_minutes or self.config.anneal_minutes):
            t = torch.tensor([elapsed], dtype=torch.float64)
            dist.broadcast(t, 0)
            elapsed = float(t)
        return elapsed

    def _steps_per_epoch(self) -> int:
        return max(1, len(self._batches(0)) // self.world)

    def _batches(self, epoch: int) -> list[list[int]]:
        c = self.config
        return bucket_batches(self.train_data.lengths, c.max_frames, c.seed, epoch, c.max_utterances)

    def _epoch_iterator(self, batches: list[list[int]], steps_per_epoch: int) -> Iterator[Batch]:
        """This process's batches from ``self.position`` to the end of the epoch.

        In-process (``loader_workers == 0``) they draw their augmentation from the run's
        generator, which the resume state carries. With workers, batch ``k`` of epoch ``e``
        draws from a generator seeded by ``(seed, rank, e, k)``, so a resumed run still sees
        the same batches.
        """
        mine = [batches[p * self.world + self.rank] for p in range(self.position, steps_per_epoch)]
        args: tuple[Any, ...]
        if self.config.augment_on_device:  # the loader pads raw features; see _to_device
            args = (self.train_data, identity, self.vocab, None, None, None)
        else:
            args = (self.train_data, self.normalizer, self.vocab, self.specaug, self.warp, self.eq)
        if self.config.loader_workers <= 0:
            for indices in mine:
                yield collate(args[0], indices, args[1], args[2], args[3], self.generator, args[4], args[5])
            return
        seeds = [(self.config.seed, self.rank, self.epoch, p) for p in range(self.position, steps_per_epoch)]
        loader = torch.utils.data.DataLoader(
            _SeededBatches(mine, seeds, args),
            batch_size=None,
            num_workers=self.config.loader_workers,
            prefetch_factor=4,
            worker_init_fn=_loader_worker_init,
            generator=torch.Generator().manual_seed(
                0
            ),  # its base seed must not draw from the global RNG (dropout's)
        )
        yield from loader

    def _to_device(self, batch: Batch) -> Batch:
        x, xl, y, yl = (t.to(self.device, non_blocking=True) for t in batch)
        if self.config.augment_on_device:
            seed = (self.config.seed, self.rank, self.epoch, self.position, "device")
            digest = hashlib.sha1(repr(seed).encode()).digest()
            generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
            x = augment_batch(x, xl, self.normalizer, self.specaug, self.warp, generator, self.eq)
        return x, xl, y, yl

    def _log(self, event: dict[str, Any]) -> None:
        self.history.append(event)
        if self.rank == 0:
            with (self.out / "log.jsonl").open("a") as f:
                f.write(json.dumps(event) + "\n")

    def evaluate(self) -> dict[str, float]:
        assert self.dev_data is not None
        hyps = decode_feature_set(self.model, self.normalizer, self.dev_data, device=self.device)
        counts = error_rates(zip(self.dev_data.texts, hyps, strict=True))
        self.model.train()
        return {"dev_cer": counts.cer, "dev_wer": counts.wer, "dev_utterances": counts.utterances}

    def train(self) -> None:
        config = self.config
        self.model.train()
        batches = self._batches(self.epoch)
        steps_per_epoch = max(1, len(batches) // self.world)
        epoch_batches = self._epoch_iterator(batches, steps_per_epoch)
        started = time.time()
        window_audio = 0.0
        window_start = time.time()
        session_start_step = self.step
        while self.step < config.max_steps:
            if self.position >= steps_per_epoch:
                self.epoch += 1
                self.position = 0
                batches = self._batches(self.epoch)
                # Each epoch's shuffle packs a different number of batches.
                steps_per_epoch = max(1, len(batches) // self.world)
                epoch_batches = self._epoch_iterator(batches, steps_per_epoch)
            x, xl, y, yl = self._to_device(next(epoch_batches))
            elapsed_min = self._elapsed_minutes()
            lr = lr_at(self.step, config)
            if self.warm_start_step is not None:
                lr *= min(1.0, (self.step - self.warm_start_step + 1) / max(1, config.rewarm_steps))
            lr = anneal_by_time(lr, elapsed_min, config)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=config.bf16):
                log_probs, out_lengths, _ = self.ddp(x, xl, exact_padding=False)
            loss = self.ctc(log_probs.transpose(0, 1), y, out_lengths, yl)  # CTC wants (T, B, V)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            self.step += 1
            self.position += 1
            window_audio += float(xl.sum()) / 100.0 * self.world
            now = time.time()
            self.wall_seconds += now - started
            started = now

            if self.step % config.log_every == 0:
                loss_value, grad_value = loss.item(), float(grad_norm)
                rate = window_audio / max(now - window_start, 1e-9)
                done = self.step - session_start_step
                eta = (config.max_steps - self.step) * (now - window_start) / config.log_every
                event = {
                    "step": self.step,
                    "epoch": self.epoch,
                    "loss": round(loss_value, 4),
                    "grad_norm": round(grad_value, 3),
                    "lr": lr,
                    "audio_s_per_s": round(rate, 1),
                    "wall_s": round(self.wall_seconds),
                }
                self._log(event)
                if self.rank == 0:
                    log.info(
                        "step %d/%d ep %d loss %.3f lr %.2e |g| %.2f  %.0f audio-s/s  ETA %s (%d this session)",
                        self.step,
                        config.max_steps,
                        self.epoch,
                        loss_value,
                        lr,
                        grad_value,
                        rate,
                        _fmt_eta(eta),
                        done,
                    )
                window_audio, window_start = 0.0, time.time()
            if self.dev_data is not None and self.step % config.eval_every == 0 and self.rank == 0:
                self._eval_and_keep_best()
            if self.step % config.save_every == 0:
                self.save_resume()
            if config.snapshot_every > 0 and self.step % config.snapshot_every == 0 and self.rank == 0:
                snapshot = self.out / "snapshots" / f"step-{self.step:07d}.pt"
                checkpoint.save(self.shippable({"step": self.step}), snapshot)
            if config.max_wall_minutes and elapsed_min > config.max_wall_minutes:
                log.info("wall-clock budget reached at step %d; saving", self.step)
                break
            if self._stop_requested():
                log.info("stop requested (SIGTERM or %s) at step %d; saving", self.out / "STOP", self.step)
                break
        if (
            self.dev_data is not None
            and self.rank == 0
            and not (self.history and "dev_cer" in self.history[-1])
        ):
            self._eval_and_keep_best()
        self.save_resume()

    def _stop_requested(self) -> bool:
        """SIGTERM, or a file named STOP in the run folder (checked every log_every steps).

        With several processes the decision is collective, taken every log_every steps:
        each rank's request is max-reduced, so all ranks leave the loop at the same step
        (one rank stopping alone would leave the others waiting in the gradient all-reduce
        for ever), and rank 0 removes the STOP file only after every rank has looked for it.
        """
        stop_file = self.out / "STOP"
        if self.world == 1:
            if self._sigterm:
                return True
            if self.step % self.config.log_every == 0 and stop_file.exists():
                stop_file.unlink(missing_ok=True)
                return True
            return False
        if self.step % self.config.log_every != 0:
            return False
        flag = torch.tensor([1.0 if self._sigterm or stop_file.exists() else 0.0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() > 0:
            if self.rank == 0:
                stop_file.unlink(missing_ok=True)
            return True
        return False

    def _eval_and_keep_best(self) -> None:
        metrics = self.evaluate()
        self._log({"step": self.step, **metrics})
        log.info(
            "eval step %d: dev CER %.2f%% WER %.2f%%",
            self.step,
            100 * metrics["dev_cer"],
            100 * metrics["dev_wer"],
        )
        if metrics["dev_cer"] < self.best_cer:
            self.best_cer = metrics["dev_cer"]
            checkpoint.save(self.shippable({**metrics, "step": self.step}), self.out / "best.pt")


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class _SeededBatches(torch.utils.data.Dataset[Batch]):
    """Batch ``k`` collated with its own seeded generator (for loader worker processes)."""

    def __init__(
        self, batches: list[list[int]], seeds: Sequence[tuple[int, ...]], args: tuple[Any, ...]
    ) -> None:
        self.batches, self.seeds, self.args = batches, seeds, args

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> Batch:
        data, normalizer, vocab, specaug, warp, eq = self.args
        digest = hashlib.sha1(repr(self.seeds[k]).encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
        return collate(data, self.batches[k], normalizer, vocab, specaug, generator, warp, eq)


def _loader_worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)


def _fmt_eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def run_training(config: TrainConfig) -> Path:
    """Train (resuming when ``out_dir/last.pt`` exists); returns the best checkpoint path."""
    trainer = Trainer(config)
    trainer.train()
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    best = trainer.out / "best.pt"
    if not best.exists() and trainer.rank == 0:
        checkpoint.save(trainer.shippable({}), best)
    return best
