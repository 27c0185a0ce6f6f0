"""Training data: a feature cache, length-bucketed batches and SpecAugment.

Log-mel features are computed once per manifest and kept in one fp16 ``.npy`` file
(memory-mapped) with an index, under ``data/feats/``. Training then reads features
instead of decoding audio, which is what makes CPU training affordable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.audio import AudioError, load_audio
from asr.features import FeatureConfig, Normalizer, NormalizerStats, log_mel
from asr.manifest import read_manifest
from asr.text import Vocabulary, join_split_compounds, normalize_text

log = logging.getLogger(__name__)


@dataclass
class FeatureSet:
    """Features of every usable utterance of one or more manifests."""

    feats: np.ndarray  # (total_frames, n_mels) float16, usually a memmap
    offsets: np.ndarray  # (N,) int64 start frame per utterance
    lengths: np.ndarray  # (N,) int64 frames per utterance
    texts: list[str]
    meta: list[dict[str, Any]]  # engine/voice/speaker/duration per utterance

    def __len__(self) -> int:
        return len(self.texts)

    def features(self, i: int) -> torch.Tensor:
        o, n = int(self.offsets[i]), int(self.lengths[i])
        return torch.from_numpy(np.asarray(self.feats[o : o + n], dtype=np.float32))

    @staticmethod
    def concat(sets: Sequence[FeatureSet]) -> FeatureSet:
        if len(sets) == 1:
            return sets[0]
        feats = np.concatenate([np.asarray(s.feats) for s in sets])
        starts = np.cumsum([0] + [len(s.feats) for s in sets[:-1]])
        return FeatureSet(
            feats=feats,
            offsets=np.concatenate([s.offsets + base for s, base in zip(sets, starts, strict=True)]),
            lengths=np.concatenate([s.lengths for s in sets]),
            texts=[t for s in sets for t in s.texts],
            meta=[m for s in sets for m in s.meta],
        )


def _worker_init() -> None:
    # One thread per worker: several multi-threaded workers on few cores thrash.
    torch.set_num_threads(1)


def _extract(args: tuple[str, FeatureConfig]) -> np.ndarray | str:
    path, config = args
    try:
        return log_mel(load_audio(path), config).numpy().astype(np.float16)
    except (AudioError, ValueError) as e:
        return str(e)


def _cache_key(manifest: Path, config: FeatureConfig) -> str:
    stat = manifest.stat()
    blob = json.dumps([str(manifest.resolve()), stat.st_size, stat.st_mtime_ns, config.to_dict()])
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def load_feature_set(
    manifest: str | os.PathLike[str],
    config: FeatureConfig = FeatureConfig(),
    cache_dir: str | os.PathLike[str] = "data/feats",
    jobs: int = 1,
    vocab: Vocabulary | None = None,
    progress: bool = True,
) -> FeatureSet:
    """Features for a manifest, computed once and cached.

    Utterances whose audio fails to load, or whose text has characters outside the
    vocabulary after normalisation, are skipped with a warning.
    """
    from tqdm import tqdm

    manifest = Path(manifest)
    if manifest.is_dir():  # a LibriSpeech-style folder: index it once
        from asr.manifest import librispeech_manifest

        listing = (
            Path(cache_dir)
            / f"librispeech-{hashlib.sha1(str(manifest.resolve()).encode()).hexdigest()[:8]}.jsonl"
        )
        if not listing.exists():
            listing.parent.mkdir(parents=True, exist_ok=True)
            librispeech_manifest(manifest, listing)
        manifest = listing
    vocab = vocab or Vocabulary()
    cache = Path(cache_dir) / f"{manifest.stem}-{_cache_key(manifest, config)}"
    if (cache / "index.json").exists():
        index = json.loads((cache / "index.json").read_text())
        feats = np.load(cache / "feats.npy", mmap_mode="r")
        texts = [join_split_compounds(t) for t in index["texts"]]
        return FeatureSet(feats, np.array(index["offsets"]), np.array(index["lengths"]), texts, index["meta"])
    entries = read_manifest(manifest)
    cache.mkdir(parents=True, exist_ok=True)
    chunks: list[np.ndarray] = []
    offsets, lengths, texts, meta = [], [], [], []
    total = 0
    skipped = 0
    args = [(e["audio_filepath"], config) for e in entries]
    ctx = mp.get_context("spawn")
    with ctx.Pool(jobs, initializer=_worker_init) if jobs > 1 else _NoPool() as pool:
        results = pool.imap(_extract, args, chunksize=16)
        for entry, result in tqdm(
            zip(entries, results, strict=True),
            total=len(entries),
            desc=f"features {manifest.name}",
            disable=not progress,
        ):
            text = join_split_compounds(normalize_text(str(entry["text"])))
            if isinstance(result, str) or len(result) < 3 or not text:
                skipped += 1
                log.warning(
                    "skipping %s: %s", entry["audio_filepath"], result if isinstance(result, str) else "empty"
                )
                continue
            try:
                vocab.encode(text)
            except ValueError as e:
                skipped += 1
                log.warning("skipping %s: %s", entry["audio_filepath"], e)
                continue
            chunks.append(result)
            offsets.append(total)
            lengths.append(len(result))
            total += len(result)
            texts.append(text)
            meta.append({k: entry.get(k) for k in ("engine", "voice", "speaker", "duration")})
    feats = np.concatenate(chunks) if chunks else np.zeros((0, config.n_mels), np.float16)
    np.save(cache / "feats.npy", feats)
    index = {"offsets": offsets, "lengths": lengths, "texts": texts, "meta": meta, "skipped": skipped}
    (cache / "index.json").write_text(json.dumps(index))
    log.info("cached %d utterances (%d skipped) of %s in %s", len(texts), skipped, manifest, cache)
    return FeatureSet(
        np.load(cache / "feats.npy", mmap_mode="r"), np.array(offsets), np.array(lengths), texts, meta
    )


class _NoPool:
    """Stand-in for a Pool when running in-process."""

    def __enter__(self) -> _NoPool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap(self, fn: Any, items: Sequence[Any], chunksize: int = 1) -> Iterator[Any]:
        return map(fn, items)


def fit_normalizer_stats(data: FeatureSet, max_utterances: int = 3000, seed: int = 0) -> NormalizerStats:
    """Normalisation statistics over a random sample of utterances."""
    rng = np.random.default_rng(seed)
    stats = NormalizerStats(data.feats.shape[1])
    for i in rng.permutation(len(data))[:max_utterances]:
        stats.update(data.features(int(i)))
    return stats


def pack_batches(
    order: Sequence[int] | np.ndarray,
    lengths: Sequence[int] | np.ndarray,
    max_frames: int,
    max_utterances: int = 128,
) -> list[list[int]]:
    """Cut ``order`` into consecutive batches whose padded size stays under ``max_frames``."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        n = int(lengths[i])
        if current and (max(longest, n) * (len(current) + 1) > max_frames or len(current) >= max_utterances):
            batches.append(current)
            current, longest = [], 0
        current.append(int(i))
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches


def bucket_batches(
    lengths: np.ndarray,
    max_frames: int,
    seed: int,
    epoch: int,
    max_utterances: int = 128,
) -> list[list[int]]:
    """Length-bucketed batches, deterministic per (seed, epoch).

    Utterances are sorted by length with a little noise (so buckets differ between
    epochs), packed greedily until padded frames exceed ``max_frames``, and the batch
    order is shuffled.
    """
    rng = np.random.default_rng([seed, epoch])
    noisy = lengths * rng.uniform(0.9, 1.1, size=len(lengths))
    batches = pack_batches(np.argsort(noisy, kind="stable"), lengths, max_frames, max_utterances)
    perm = rng.permutation(len(batches))
    return [batches[int(p)] for p in perm]


@dataclass(frozen=True)
class SpecAugment:
    """Frequency and time masking on normalised features (masked to 0 = the mean)."""

    freq_masks: int = 2
    freq_width: int = 15
    time_masks: int = 2
    time_width: int = 30
    time_ratio: float = 0.05  # a mask covers at most this share of the utterance

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        t, f = x.shape
        x = x.clone()
        for _ in range(self.freq_masks):
            w = int(torch.randint(0, self.freq_width + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, f - w), (1,), generator=generator))
            x[:, start : start + w] = 0.0
        max_w = min(self.time_width, int(t * self.time_ratio))
        for _ in range(self.time_masks):
            if max_w < 1:
                break
            w = int(torch.randint(0, max_w + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, t - w), (1,), generator=generator))
            x[start : start + w] = 0.0
        return x


@dataclass
class FreqWarp:
    """Vocal tract length perturbation (VTLP, Jaitly & Hinton 2013) on raw log-mel frames.

    Each utterance's frequency axis is scaled by a factor drawn from ``[1 - max_warp,
    1 + max_warp]``: frequencies below a boundary scale by the factor, and above it a line
    takes them to ``f_max``, so the band edges stay put. The warped log-mel is read off the
    original by linear interpolation between mel bins. It imitates speakers with shorter or
    longer vocal tracts than the training voices: an augmentation aimed at held-out voices.
    """

    max_warp: float = 0.1
    features: FeatureConfig = FeatureConfig()
    boundary_hz: float = 4800.0

    def __post_init__(self) -> None:
        import librosa

        c = self.features
        self._centres = librosa.mel_frequencies(c.n_mels + 2, fmin=c.f_min, fmax=c.f_max)[1:-1]

    def source_bins(self, alpha: float) -> np.ndarray:
        """Fractional mel-bin index read for each output bin under warp factor ``alpha``."""
        f, f_max = self._centres, self.features.f_max
        knee = self.boundary_hz * min(alpha, 1.0) / alpha
        upper = f_max - (f_max - self.boundary_hz * min(alpha, 1.0)) / (f_max - knee) * (f_max - f)
        warped = np.where(f <= knee, f * alpha, upper)
        return np.interp(warped, f, np.arange(len(f), dtype=np.float64))

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        u = float(torch.rand((1,), generator=generator))
        return self.warp(x, 1.0 + (2.0 * u - 1.0) * self.max_warp)

    def warp(self, x: torch.Tensor, alpha: float) -> torch.Tensor:
        """``(T, n_mels)`` log-mel frames as spoken by a vocal tract ``1 / alpha`` as long:
        what was at frequency ``f`` moves to ``f / alpha`` (below the boundary)."""
        idx = torch.from_numpy(self.source_bins(alpha)).to(torch.float32)
        lo = idx.floor().long().clamp(0, x.shape[1] - 1)
        hi = (lo + 1).clamp(max=x.shape[1] - 1)
        w = idx - lo.to(torch.float32)
        return x[:, lo] * (1.0 - w) + x[:, hi] * w


@dataclass
class ChannelEQ:
    """A random microphone/channel colouring on raw log-mel frames.

    Each utterance gets a smooth gain curve across the mel axis: a sum of ``terms`` cosines
    (a tilt, a bow, ...), the k-th with an amplitude drawn from ``[-max_db / k, max_db / k]``
    dB. Synthetic voices all come out of one kind of channel (a TTS engine's output), while
    real recordings pass through microphones and rooms with their own frequency responses;
    this teaches the model to ignore a smooth spectral tilt. It adds no overall gain: the
    corpus already varies the level. Log-mel is natural-log power, so ``d`` dB is
    ``d * ln(10) / 10``.
    """

    max_db: float = 6.0
    terms: int = 4

    def curves(self, n: int, n_mels: int, generator: torch.Generator) -> torch.Tensor:
        """``(n, n_mels)`` log-power offsets, one random curve per row."""
        k = torch.arange(1, self.terms + 1, dtype=torch.float32)
        pos = (torch.arange(n_mels, dtype=torch.float32) + 0.5) / n_mels
        basis = torch.cos(math.pi * k[:, None] * pos[None, :])  # (K, M)
        amp = (2.0 * torch.rand(n, self.terms, generator=generator) - 1.0) * self.max_db / k
        return (amp @ basis) * (math.log(10.0) / 10.0)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x + self.curves(1, x.shape[1], generator)[0]


def collate(
    data: FeatureSet,
    indices: Sequence[int],
    normalize: Any,
    vocab: Vocabulary,
    specaug: SpecAugment | None = None,
    generator: torch.Generator | None = None,
    warp: FreqWarp | None = None,
    eq: ChannelEQ | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad a batch: (feats (B, T, M), feat_lengths, targets (sum U,), target_lengths)."""
    feats = []
    for i in indices:
        raw = data.features(i)
        if warp is not None and generator is not None:
            raw = warp(raw, generator)
        if eq is not None and generator is not None:
            raw = eq(raw, generator)
        x = normalize(raw)
        if specaug is not None and generator is not None:
            x = specaug(x, generator)
        feats.append(x)
    lengths = torch.tensor([len(x) for x in feats])
    padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)  # (B, T, M)
    targets = [torch.tensor(vocab.encode(data.texts[i])) for i in indices]
    target_lengths = torch.tensor([len(t) for t in targets])
    return padded, lengths, torch.cat(targets), target_lengths


def identity(x: torch.Tensor) -> torch.Tensor:
    """A no-op normaliser: lets :func:`collate` pad raw features (see :func:`augment_batch`)."""
    return x


def augment_batch(
    raw: torch.Tensor,
    lengths: torch.Tensor,
    normalize: Normalizer,
    specaug: SpecAugment | None,
    warp: FreqWarp | None,
    generator: torch.Generator,
    eq: ChannelEQ | None = None,
) -> torch.Tensor:
    """What :func:`collate` does per utterance (warp, EQ, normalise, SpecAugment), for a whole
    zero-padded batch at once on its own device: on a GPU, per-utterance work in the loader
    would leave the model waiting.

    Args:
        raw: ``(B, T, M)`` raw log-mel frames, zero-padded.
        lengths: ``(B,)`` valid frames per row.
        normalize: the global normaliser.
        specaug, warp, eq: as in :func:`collate` (None: off).
        generator: a CPU generator for the random draws (a few per utterance).

    Returns:
        ``(B, T, M)`` normalised, augmented frames; padding frames are 0, as from collate.
    """
    b, t, m = raw.shape
    device = raw.device
    x = raw
    if warp is not None:
        alphas = 1.0 + (2.0 * torch.rand(b, generator=generator) - 1.0) * warp.max_warp
        idx = torch.from_numpy(np.stack([warp.source_bins(float(a)) for a in alphas])).to(
            device, torch.float32
        )
        lo = idx.floor().long().clamp(0, m - 1)  # (B, M)
        hi = (lo + 1).clamp(max=m - 1)
        w = (idx - lo.to(torch.float32))[:, None, :]  # (B, 1, M)
        x = (
            x.gather(2, lo[:, None, :].expand(b, t, m)) * (1.0 - w)
            + x.gather(2, hi[:, None, :].expand(b, t, m)) * w
        )
    if eq is not None:
        x = x + eq.curves(b, m, generator).to(device)[:, None, :]
    x = (x - normalize.mean.to(device)) / normalize.std.to(device)
    masked = torch.arange(t)[None, :] >= lengths.cpu()[:, None]  # (B, T) padding
    if specaug is not None:
        freqs = torch.arange(m)[None, :]
        freq_mask = torch.zeros(b, m, dtype=torch.bool)
        for _ in range(specaug.freq_masks):
            width = torch.randint(0, specaug.freq_width + 1, (b,), generator=generator)
            start = (torch.rand(b, generator=generator) * (m - width).clamp_min(1)).long()
            freq_mask |= (freqs >= start[:, None]) & (freqs < (start + width)[:, None])
        steps = torch.arange(t)[None, :]
        max_width = (lengths.cpu() * specaug.time_ratio).long().clamp(max=specaug.time_width)
        for _ in range(specaug.time_masks):
            width = (torch.rand(b, generator=generator) * (max_width + 1)).long()
            start = (torch.rand(b, generator=generator) * (lengths.cpu() - width).clamp_min(1)).long()
            masked |= (steps >= start[:, None]) & (steps < (start + width)[:, None])
        x = x.masked_fill(freq_mask.to(device)[:, None, :], 0.0)
    return x.masked_fill(masked.to(device)[:, :, None], 0.0)
