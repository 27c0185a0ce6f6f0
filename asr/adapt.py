"""Speaker adaptation: fine-tune the shipped models on one profile's enrollment takes.

``adapt_profile(store, name, config)`` does, for the streaming and the offline model:

1. holds out a deterministic slice of the takes (``heldout_share``), for early stopping
   and the before/after report; the rest is the training set;
2. scores the base model on the held-out slice (greedy CER/WER, and WER with the LM);
3. fine-tunes a copy (AdamW, a small constant learning rate after a short warm-up,
   SpecAugment, and optionally speed-perturbed copies of the takes: ``speeds``) for at most
   ``steps`` steps or ``time_budget_s`` seconds, scoring the held-out slice every
   ``eval_every`` steps and keeping the best (greedy CER) weights; it stops early after
   ``patience`` evaluations without a gain;
4. writes the best weights in the shipped checkpoint format into the profile and the
   before/after figures into its card.

Forgetting is held back by the few steps, the small learning rate and early stopping on
held-out takes; ``kl_weight`` adds a KL term to the base model's posteriors, and
``train_layers`` restricts the update to the input projection (``proj``) or the
projection and the first LSTM layer (``proj+lstm1``).

The normaliser of the base model is kept: the streaming path needs global statistics.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from scipy.signal import resample_poly
from torch import nn

from asr import checkpoint
from asr.audio import AudioError, load_audio
from asr.checkpoint import MODELS_DIR, LoadedModel
from asr.data import SpecAugment, pack_batches
from asr.decoding import Decoder
from asr.fusion import FUSION_FILE, file_sha256
from asr.inference import batch_log_probs
from asr.metrics import error_rates
from asr.model import CTCModel
from asr.profiles import KINDS, ProfileStore
from asr.text import greedy_decode

log = logging.getLogger(__name__)

TRAIN_LAYERS = ("all", "proj", "proj+lstm1")


@dataclass(frozen=True)
class AdaptConfig:
    """How ``asr adapt`` fine-tunes a profile's models (defaults: see docs/profiles.md).

    Attributes:
        steps: most optimizer steps per model.
        lr: peak learning rate (AdamW), reached after ``warmup_steps``.
        batch_seconds: padded audio per batch.
        heldout_share: share of the takes held out (at least ``min_heldout``, at most ``max_heldout``).
        eval_every: steps between held-out evaluations (greedy CER decides the best weights).
        patience: evaluations without a gain before stopping early (0: never stop early).
        kl_weight: weight of KL(base || adapted) per frame, added to the CTC loss (0: off).
        train_layers: ``all``, ``proj`` or ``proj+lstm1``.
        time_budget_s: wall-clock budget per model for the training loop.
        kinds: which models to adapt.
        base_streaming / base_offline: the models to start from (names or paths).
        lm: language model folder for the held-out WER with the LM (None: greedy only).
        min_takes: fewest usable takes ``adapt`` accepts.
        speeds: speed perturbation: each training take is resampled to these speed factors
            (1.0: as recorded) and every step draws one of them per take (empty: off).
    """

    steps: int = 120
    lr: float = 3e-4
    warmup_steps: int = 20
    weight_decay: float = 0.0
    batch_seconds: float = 24.0
    heldout_share: float = 0.1
    min_heldout: int = 2
    max_heldout: int = 40
    eval_every: int = 20
    patience: int = 3
    kl_weight: float = 0.0
    train_layers: str = "all"
    specaugment: bool = True
    grad_clip: float = 5.0
    time_budget_s: float = 270.0
    seed: int = 0
    threads: int = 0
    kinds: tuple[str, ...] = KINDS
    base_streaming: str = "streaming"
    base_offline: str = "offline"
    lm: str | None = str(MODELS_DIR / "lm")
    min_takes: int = 5
    speeds: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"expected steps >= 1, got {self.steps}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"expected lr > 0, got {self.lr}")
        if not 0.0 < self.heldout_share < 0.5:
            raise ValueError(f"expected heldout_share in (0, 0.5), got {self.heldout_share}")
        if self.min_heldout < 1 or self.max_heldout < self.min_heldout:
            raise ValueError(
                f"expected 1 <= min_heldout <= max_heldout, got {self.min_heldout}, {self.max_heldout}"
            )
        if self.eval_every < 1:
            raise ValueError(f"expected eval_every >= 1, got {self.eval_every}")
        if self.kl_weight < 0:
            raise ValueError(f"expected kl_weight >= 0, got {self.kl_weight}")
        if self.train_layers not in TRAIN_LAYERS:
            raise ValueError(f"expected train_layers in {TRAIN_LAYERS}, got {self.train_layers!r}")
        if not self.kinds or any(k not in KINDS for k in self.kinds):
            raise ValueError(f"expected kinds from {KINDS}, got {self.kinds}")
        if any(not 0.5 <= f <= 2.0 for f in self.speeds):
            raise ValueError(f"expected speed factors in [0.5, 2], got {self.speeds}")
        if self.batch_seconds <= 0 or self.time_budget_s <= 0:
            raise ValueError("expected batch_seconds > 0 and time_budget_s > 0")

    def base(self, kind: str) -> str:
        return self.base_streaming if kind == "streaming" else self.base_offline


@dataclass(frozen=True)
class AdaptProgress:
    """One progress event: ``phase`` is ``features``, ``before``, ``train``, ``eval`` or ``done``."""

    kind: str
    phase: str
    step: int
    steps: int
    elapsed_s: float  # since adapt_profile started
    eta_s: float  # rough time left for every model
    loss: float | None = None
    heldout_cer: float | None = None


@dataclass
class Scores:
    """Held-out figures of one model."""

    cer: float
    wer: float
    wer_lm: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


@dataclass
class ModelReport:
    kind: str
    base: str
    steps: int
    best_step: int
    seconds: float
    before: Scores
    after: Scores
    first_loss: float
    last_loss: float
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["before"], d["after"] = self.before.to_dict(), self.after.to_dict()
        return d


@dataclass
class AdaptReport:
    """What ``asr adapt`` prints and the profile card stores."""

    profile: str
    takes: int
    train_takes: int
    heldout_takes: int
    train_minutes: float
    skipped: list[str]
    models: list[ModelReport]
    seconds: float
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "models": [m.to_dict() for m in self.models]}


@dataclass
class _Take:
    audio: np.ndarray  # 16 kHz mono float32
    text: str
    path: str


def heldout_split(n: int, config: AdaptConfig) -> tuple[list[int], list[int]]:
    """(train, held-out) indices of ``n`` takes; the same for the same ``n`` and seed."""
    held = min(config.max_heldout, max(config.min_heldout, round(n * config.heldout_share)))
    if n - held < 1:
        raise ValueError(f"expected more takes than the {held} held out, got {n}")
    order = np.random.default_rng(config.seed).permutation(n)
    return sorted(int(i) for i in order[held:]), sorted(int(i) for i in order[:held])


def _load_takes(entries: Sequence[dict[str, Any]]) -> tuple[list[_Take], list[str]]:
    takes, skipped = [], []
    for e in entries:
        try:
            audio = load_audio(e["audio_filepath"])
        except AudioError as err:
            log.warning("skipping take: %s", err)
            skipped.append(f"{e['audio_filepath']}: {err}")
            continue
        takes.append(_Take(audio, str(e["text"]), str(e["audio_filepath"])))
    return takes, skipped


def _features(takes: Sequence[_Take], loaded: LoadedModel) -> list[torch.Tensor]:
    return [loaded.inputs(t.audio) for t in takes]


def change_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """``audio`` played ``factor`` times as fast (pitch and tempo together), at the same rate."""
    if factor == 1.0:
        return audio
    ratio = Fraction(1 / factor).limit_denominator(100)
    out = resample_poly(audio, ratio.numerator, ratio.denominator)
    return np.asarray(out, dtype=np.float32)


def score(
    model: nn.Module,
    feats: Sequence[torch.Tensor],
    refs: Sequence[str],
    decoder: Decoder | None = None,
) -> Scores:
    """Greedy CER/WER of ``model`` on normalised features, and WER with ``decoder``'s LM."""
    log_probs = batch_log_probs(model, feats)  # type: ignore[arg-type]
    greedy = error_rates(zip(refs, (greedy_decode(lp) for lp in log_probs), strict=True))
    wer_lm = None
    if decoder is not None:
        hyps = [decoder.beam(lp.numpy())[0].text for lp in log_probs]
        wer_lm = error_rates(zip(refs, hyps, strict=True)).wer
    return Scores(cer=greedy.cer, wer=greedy.wer, wer_lm=wer_lm)


def _trainable(model: nn.Module, layers: str) -> list[nn.Parameter]:
    """Freeze all but ``layers`` (see TRAIN_LAYERS); the parameters left to train."""
    for name, p in model.named_parameters():
        if layers == "all":
            keep = True
        elif layers == "proj":
            keep = name.startswith("proj.")
        else:  # proj+lstm1: the first LSTM layer's weights end in _l0 (or _l0_reverse)
            keep = name.startswith("proj.") or (name.startswith("lstm.") and "_l0" in name)
        p.requires_grad_(keep)
    return [p for p in model.parameters() if p.requires_grad]


def _kl_to_base(log_probs: torch.Tensor, base_log_probs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames of KL(base || adapted); inputs ``(B, T, V)``."""
    kl = (base_log_probs.exp() * (base_log_probs - log_probs)).sum(-1)  # (B, T)
    mask = torch.arange(kl.shape[1])[None, :] < lengths[:, None]
    return (kl * mask).sum() / mask.sum().clamp_min(1)


class _Clock:
    """Elapsed time and a rough ETA over every model of one adaptation."""

    def __init__(self, kinds: Sequence[str], config: AdaptConfig) -> None:
        self.start = time.perf_counter()
        self.kinds = list(kinds)
        self.config = config
        self.step_seconds = 0.5  # a first guess until steps are timed

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def eta(self, kind: str, step: int, trained_s: float = 0.0) -> float:
        c = self.config
        this = min((c.steps - step) * self.step_seconds, max(0.0, c.time_budget_s - trained_s))
        later = len(self.kinds) - 1 - self.kinds.index(kind)
        return this + later * min(c.steps * self.step_seconds, c.time_budget_s)


def _adapt_one(
    kind: str,
    takes: Sequence[_Take],
    train_idx: Sequence[int],
    held_idx: Sequence[int],
    config: AdaptConfig,
    decoder: Decoder | None,
    clock: _Clock,
    progress: Callable[[AdaptProgress], None] | None,
) -> tuple[LoadedModel, CTCModel, ModelReport]:
    base = checkpoint.load_model(config.base(kind))
    feats = _features(takes, base)
    vocab = base.vocab
    train_feats = [feats[i] for i in train_idx]
    # variants[k][j]: take train_idx[j] at speed config.speeds[k] (one list: no perturbation)
    variants = (
        [train_feats]
        if not config.speeds
        else [
            train_feats if f == 1.0 else [base.inputs(change_speed(takes[i].audio, f)) for i in train_idx]
            for f in config.speeds
        ]
    )
    train_targets = [torch.tensor(vocab.encode(takes[i].text)) for i in train_idx]
    held_feats = [feats[i] for i in held_idx]
    held_refs = [takes[i].text for i in held_idx]

    trained_s = 0.0

    def report(phase: str, step: int, loss: float | None = None, cer: float | None = None) -> None:
        if progress is not None:
            eta = clock.eta(kind, step, trained_s)
            progress(AdaptProgress(kind, phase, step, config.steps, clock.elapsed(), eta, loss, cer))

    report("before", 0)
    before = score(base.model, held_feats, held_refs, decoder)
    model = copy.deepcopy(base.model)
    params = _trainable(model, config.train_layers)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    ctc = nn.CTCLoss(blank=vocab.blank, zero_infinity=True)
    specaug = SpecAugment() if config.specaugment else None
    generator = torch.Generator().manual_seed(config.seed)
    max_frames = int(config.batch_seconds * base.features.sample_rate / base.features.hop_length)
    lengths = np.array([len(f) for f in train_feats])

    best_cer, best_step = before.cer, 0
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    history: list[dict[str, float]] = [{"step": 0, "heldout_cer": before.cer}]
    losses: list[float] = []
    since_gain = 0
    step = 0
    started = time.perf_counter()
    epoch = 0
    while step < config.steps:
        rng = np.random.default_rng([config.seed, epoch])
        noisy = lengths * rng.uniform(0.9, 1.1, size=len(lengths))
        batches = pack_batches(np.argsort(noisy, kind="stable"), lengths, max_frames)
        batches = [batches[int(p)] for p in rng.permutation(len(batches))]
        epoch += 1
        stop = False
        for batch in batches:
            model.train()
            pick = rng.integers(len(variants), size=len(batch))
            x_list = [variants[int(k)][i] for k, i in zip(pick, batch, strict=True)]
            if specaug is not None:
                x_list = [specaug(x, generator) for x in x_list]
            xl = torch.tensor([len(x) for x in x_list])
            x = nn.utils.rnn.pad_sequence(x_list, batch_first=True)  # (B, T, M)
            y = torch.cat([train_targets[i] for i in batch])
            yl = torch.tensor([len(train_targets[i]) for i in batch])
            lr = config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))
            for group in optimizer.param_groups:
                group["lr"] = lr
            log_probs, out_lengths, _ = model(x, xl, exact_padding=False)  # (B, T', V)
            loss = ctc(log_probs.transpose(0, 1), y, out_lengths, yl)
            if config.kl_weight > 0:
                with torch.no_grad():
                    base_lp, _, _ = base.model(x, xl, exact_padding=False)
                loss = loss + config.kl_weight * _kl_to_base(log_probs, base_lp, out_lengths)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            step += 1
            losses.append(float(loss.item()))
            trained_s = time.perf_counter() - started
            clock.step_seconds = trained_s / step
            report("train", step, losses[-1])
            out_of_time = time.perf_counter() - started > config.time_budget_s
            if step % config.eval_every == 0 or step == config.steps or out_of_time:
                model.eval()
                cer = score(model, held_feats, held_refs).cer
                history.append({"step": step, "heldout_cer": cer, "loss": float(np.mean(losses[-10:]))})
                report("eval", step, losses[-1], cer)
                if cer < best_cer:
                    best_cer, best_step, since_gain = cer, step, 0
                    best_state = {k: v.clone() for k, v in model.state_dict().items()}
                else:
                    since_gain += 1
                if config.patience and since_gain >= config.patience:
                    log.info(
                        "%s: no held-out gain in %d evaluations; stopping at step %d", kind, since_gain, step
                    )
                    stop = True
            if out_of_time:
                log.info("%s: time budget of %.0f s spent at step %d", kind, config.time_budget_s, step)
                stop = True
            if stop or step >= config.steps:
                break
        if stop:
            break
    seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    after = score(model, held_feats, held_refs, decoder) if best_step else before
    report("done", step, losses[-1] if losses else None, after.cer)
    result = ModelReport(
        kind=kind,
        base=str(base.path),
        steps=step,
        best_step=best_step,
        seconds=round(seconds, 1),
        before=before,
        after=after,
        first_loss=float(np.mean(losses[:5])) if losses else math.nan,
        last_loss=float(np.mean(losses[-5:])) if losses else math.nan,
        history=history,
    )
    return base, model, result


def _write_fusion(store: ProfileStore, name: str, bases: dict[str, LoadedModel]) -> None:
    """Carry the shipped fusion weight over to the adapted pair when it applied to the bases."""
    target = store.fusion_path(name)
    target.unlink(missing_ok=True)
    if set(bases) != set(KINDS) or not FUSION_FILE.is_file():
        return
    meta = json.loads(FUSION_FILE.read_text())
    if (meta.get("streaming_sha256"), meta.get("offline_sha256")) != (
        file_sha256(bases["streaming"].path),
        file_sha256(bases["offline"].path),
    ):
        return
    streaming, offline = store.model_path(name, "streaming"), store.model_path(name, "offline")
    fusion = {
        "weight": meta["weight"],
        "shift": meta.get("shift", "auto"),
        "streaming": str(streaming),
        "offline": str(offline),
        "streaming_sha256": file_sha256(streaming),
        "offline_sha256": file_sha256(offline),
        "tuned_on": {"inherited_from": str(FUSION_FILE)},
    }
    target.write_text(json.dumps(fusion, indent=1) + "\n")


def adapt_profile(
    store: ProfileStore,
    name: str,
    config: AdaptConfig = AdaptConfig(),
    progress: Callable[[AdaptProgress], None] | None = None,
) -> AdaptReport:
    """Fine-tune the base models on profile ``name``'s takes and save them into the profile.

    Raises:
        ProfileNotFound: no such profile.
        ValueError: fewer usable takes than ``config.min_takes``, or bad base models.
    """
    from asr.api import load_decoder

    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    entries = store.recordings(name)
    takes, skipped = _load_takes(entries)
    if len(takes) < config.min_takes:
        raise ValueError(
            f"expected at least {config.min_takes} usable takes in profile {name!r}, got {len(takes)}"
            f" (enroll more with `asr enroll {name}`)"
        )
    train_idx, held_idx = heldout_split(len(takes), config)
    decoder = load_decoder(config.lm) if config.lm else None
    clock = _Clock(config.kinds, config)
    reports, bases = [], {}
    for kind in config.kinds:
        base, model, result = _adapt_one(kind, takes, train_idx, held_idx, config, decoder, clock, progress)
        path = store.model_path(name, kind)
        training = {
            "adapted_from": str(base.path),
            "base_sha256": file_sha256(base.path),
            "base_training": base.meta["training"],
            "profile": name,
            "steps": result.steps,
            "best_step": result.best_step,
            "train_takes": len(train_idx),
            "heldout_takes": len(held_idx),
            "wall_seconds": result.seconds,
            "adapt_config": asdict(config),
            "git_commit": checkpoint.git_commit(),
        }
        metrics = {"heldout_before": result.before.to_dict(), "heldout_after": result.after.to_dict()}
        ckpt = checkpoint.make_checkpoint(
            model, base.vocab, base.features, base.normalizer, training, metrics
        )
        checkpoint.save(ckpt, path)
        result.checkpoint = str(path)
        reports.append(result)
        bases[kind] = base
    _write_fusion(store, name, bases)
    report = AdaptReport(
        profile=name,
        takes=len(takes),
        train_takes=len(train_idx),
        heldout_takes=len(held_idx),
        train_minutes=round(sum(len(takes[i].audio) for i in train_idx) / 16000 / 60, 2),
        skipped=skipped,
        models=reports,
        seconds=round(time.perf_counter() - started, 1),
        config=asdict(config),
    )
    store.write_card(name, {"adaptation": report.to_dict()})
    return report


def report_from_dict(d: dict[str, Any]) -> AdaptReport:
    """The :class:`AdaptReport` of :meth:`AdaptReport.to_dict` (a profile card's ``adaptation``)."""
    models = [
        ModelReport(**{**m, "before": Scores(**m["before"]), "after": Scores(**m["after"])})
        for m in d["models"]
    ]
    return AdaptReport(**{**d, "models": models})


def format_report(report: AdaptReport) -> str:
    """The before/after table ``asr adapt`` prints."""
    lines = [
        f"profile {report.profile}: {report.train_takes} takes ({report.train_minutes:.1f} min) trained on, "
        f"{report.heldout_takes} held out; {report.seconds:.0f} s",
        f"{'model':<10} {'kept/run':>9}  {'CER before':>10} {'after':>6}  {'WER before':>10} {'after':>6}"
        f"  {'WER+LM before':>13} {'after':>6}",
    ]
    for m in report.models:
        b, a = m.before, m.after

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{100 * v:.1f}%"

        lines.append(
            f"{m.kind:<10} {f'{m.best_step}/{m.steps}':>9}  {pct(b.cer):>10} {pct(a.cer):>6}  {pct(b.wer):>10} {pct(a.wer):>6}"
            f"  {pct(b.wer_lm):>13} {pct(a.wer_lm):>6}"
        )
    if report.skipped:
        lines.append(f"{len(report.skipped)} takes skipped: " + "; ".join(report.skipped[:5]))
    return "\n".join(lines)
