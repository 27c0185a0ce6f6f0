"""In-process API for embedding the recogniser without gRPC.

    import asr
    rec = asr.load()                                   # shipped models + LM
    print(rec.transcribe("meeting.wav").text)         # offline (BiLSTM) by default
    session = rec.stream(asr.SessionConfig(mode="two-pass"))
    for chunk in chunks:                               # float32 at config.sample_rate
        for result in session.accept_audio(chunk):
            print(result.is_final, result.text)
    session.finish()

In offline mode a file of up to a minute goes through the BiLSTM whole and is segmented
at the BiLSTM's own blank runs (:mod:`asr.offline`; no streaming pass). Longer files are
read block by block and segmented at the streaming model's endpoints, so memory stays
bounded whatever the file's length; result times are global.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import SAMPLE_RATE, AudioError, load_audio, resample
from asr.checkpoint import MODELS_DIR, LoadedModel, load_model
from asr.constants import Mode
from asr.decoding import OFFLINE_BEAM_WIDTH, Decoder, DecoderOptions, DecoderProtocol
from asr.fusion import FUSION_FILE, Fusion, load_fusion
from asr.offline import OfflineBatchRecognizer
from asr.streaming import Result, SessionConfig, StreamingSession

log = logging.getLogger(__name__)

BLOCK_SECONDS = 10.0
DIRECT_SECONDS = 60.0  # offline mode: files up to this long go through the BiLSTM whole


@dataclass(frozen=True)
class Transcript:
    """Finals of one file or array."""

    results: tuple[Result, ...]
    duration: float

    @property
    def text(self) -> str:
        return " ".join(r.text for r in self.results if r.text)


def load_decoder(lm_dir: str | os.PathLike[str] | None, vocab_labels: list[str] | None = None) -> Decoder:
    """Decoder with the LM in ``lm_dir`` (tuned alpha/beta from lm.json) or none."""
    if lm_dir is None:
        return Decoder()
    lm_dir = Path(lm_dir)
    binary = lm_dir / "lm.bin"
    if not binary.is_file():
        log.warning("no language model at %s: beam search without LM", binary)
        return Decoder()
    unigrams = (lm_dir / "unigrams.txt").read_text(encoding="utf-8").split()
    options = DecoderOptions()
    meta = lm_dir / "lm.json"
    if meta.exists():
        tuned = json.loads(meta.read_text()).get("tuned", {})
        options = replace(options, **{k: v for k, v in tuned.items() if k in ("alpha", "beta")})
    return Decoder(lm_path=binary, unigrams=unigrams, options=options)


class Recognizer:
    """The streaming model, the optional offline model and the decoder, shared by sessions."""

    def __init__(
        self,
        streaming: LoadedModel,
        offline: LoadedModel | None,
        decoder: DecoderProtocol,
        fusion: Fusion | None = None,
        offline_beam_width: int | None = None,
    ) -> None:
        """``fusion``: how two-pass finals fuse the two models' log-probs (:mod:`asr.fusion`).

        ``offline_beam_width``: beam width of offline-mode finals (:meth:`transcribe` and
        :meth:`offline_batch`); None: the decoder's own, as for live finals.
        """
        if offline_beam_width is not None and offline_beam_width < 1:
            raise ValueError(f"expected offline_beam_width >= 1, got {offline_beam_width}")
        if streaming.model.config.bidirectional:
            raise ValueError("expected a unidirectional model as the streaming model")
        if offline is not None and not offline.model.config.bidirectional:
            log.info("offline model %s is unidirectional", offline.path)
        step = streaming.step_seconds
        if offline is not None and offline.step_seconds != step:
            raise ValueError(
                f"expected models with the same step, got {step:g} s (streaming) and {offline.step_seconds:g} s"
            )
        if decoder.options.step_seconds != step:  # word times follow the models' step
            decoder = decoder.with_options(step_seconds=step)
        self.streaming = streaming
        self.offline = offline
        self.decoder = decoder
        self.fusion = fusion if offline is not None else None
        self.offline_beam_width = offline_beam_width
        self._direct: OfflineBatchRecognizer | None = None

    def offline_decoder(self, beam_width: int | None = None) -> DecoderProtocol:
        """The decoder of offline-mode finals: ``beam_width`` or :attr:`offline_beam_width`
        applied to :attr:`decoder` (unchanged when both are None)."""
        width = beam_width if beam_width is not None else self.offline_beam_width
        if width is None or width == self.decoder.options.beam_width:
            return self.decoder
        if width < 1:
            raise ValueError(f"expected beam_width >= 1, got {width}")
        return self.decoder.with_options(beam_width=width)

    def offline_batch(self, jobs: int = 1, beam_width: int | None = None) -> OfflineBatchRecognizer:
        """Batched whole-array BiLSTM + beam search (``jobs`` beam worker processes), at
        ``beam_width`` (None: :attr:`offline_beam_width`, else the decoder's).

        Close it (or use ``with``) when ``jobs > 1``, to stop the workers.
        """
        if self.offline is None:
            raise ValueError("expected an offline model for batched offline recognition; none loaded")
        return OfflineBatchRecognizer(
            self.offline.model,
            self.offline.normalizer,
            self.offline_decoder(beam_width),
            jobs,
            self.streaming.model,
            self.streaming.normalizer,
            self.fusion,
        )

    @classmethod
    def load(
        cls,
        streaming: str | os.PathLike[str] = "streaming",
        offline: str | os.PathLike[str] | None = "offline",
        lm: str | os.PathLike[str] | None = MODELS_DIR / "lm",
        fusion: str | os.PathLike[str] | None = FUSION_FILE,
        offline_beam_width: int | None = OFFLINE_BEAM_WIDTH,
        profile: str | None = None,
        profiles_dir: str | os.PathLike[str] | None = None,
    ) -> Recognizer:
        """Load models by name (``streaming``/``offline``) or checkpoint path.

        ``profile``: a speaker profile's adapted models (and their fusion) replace
        ``streaming`` and ``offline`` (:mod:`asr.profiles`; ``profiles_dir`` defaults to
        ``$ASR_PROFILES`` or ``~/.local/share/lstm-asr/profiles``). Raises
        :class:`asr.profiles.ProfileNotFound` for an unknown profile, ValueError for a
        malformed name or a profile that was never adapted.

        ``fusion``: the tuned two-pass fusion file; it applies only if it was tuned for
        these two checkpoints (None: two-pass finals from the BiLSTM alone).
        ``offline_beam_width``: beam width of offline-mode finals (whole files, where no
        live latency is at stake); None: the decoder's 32, as live finals use.
        """
        if profile is not None:
            from asr.profiles import ProfileStore

            store = ProfileStore(profiles_dir)
            adapted_streaming, adapted_offline = store.adapted_models(profile)
            streaming = adapted_streaming
            offline = adapted_offline if offline else None
            fusion = store.fusion_path(profile) if fusion is not None else None
        stream_model = load_model(streaming)
        offline_model = load_model(offline) if offline else None
        tuned = load_fusion(stream_model, offline_model, fusion) if fusion is not None else None
        return cls(stream_model, offline_model, load_decoder(lm), tuned, offline_beam_width)

    def stream(self, config: SessionConfig = SessionConfig()) -> StreamingSession:
        """A new streaming session (one per stream). Its final's beam search runs as the
        audio arrives (an eager search), so a final costs only the utterance's last chunk."""
        if config.mode in (Mode.TWO_PASS, Mode.OFFLINE) and self.offline is None:
            raise ValueError(f"expected an offline model for mode {config.mode!r}; none loaded")
        return StreamingSession(
            self.streaming.model,
            self.streaming.normalizer,
            self.offline_decoder() if config.mode == Mode.OFFLINE else self.decoder,
            replace(config, mode=Mode.TWO_PASS if config.mode == Mode.OFFLINE else config.mode),
            offline_model=self.offline.model if self.offline else None,
            offline_normalizer=self.offline.normalizer if self.offline else None,
            eager_search=True,
            fusion=self.fusion,
        )

    def transcribe(
        self,
        audio: str | os.PathLike[str] | np.ndarray,
        mode: str = Mode.OFFLINE,
        sample_rate: int = SAMPLE_RATE,
        config: SessionConfig | None = None,
    ) -> Transcript:
        """Transcribe a file (any format soundfile reads) or a float32 array.

        Args:
            audio: path, or mono float32 samples at ``sample_rate``.
            mode: ``offline`` (BiLSTM finals, fused with the streaming model's output when
                :attr:`fusion` is set), ``two-pass`` (same here) or ``stream``.
            config: session settings (endpointing, hotwords, n-best); interim results are off.

        Raises:
            AudioError: the file is missing, empty, truncated or not audio.
        """
        base = config or SessionConfig()
        if isinstance(audio, np.ndarray):
            blocks: Iterator[np.ndarray] = iter([np.asarray(audio, dtype=np.float32)])
            rate = sample_rate
        else:
            blocks, rate = _file_blocks(audio)
        if mode == Mode.OFFLINE and self.offline is not None:
            first = next(blocks, np.zeros(0, np.float32))
            rest = next(blocks, None)
            if rest is None and len(first) <= DIRECT_SECONDS * rate:
                audio16 = resample(first, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else first
                if self._direct is None:
                    self._direct = self.offline_batch(jobs=1)
                direct = self._direct.transcribe([audio16], replace(base, sample_rate=SAMPLE_RATE))[0]
                return Transcript(results=tuple(direct), duration=len(first) / rate)
            blocks = itertools.chain([first], [rest] if rest is not None else [], blocks)
        session = self.stream(replace(base, mode=mode, sample_rate=rate, interim_results=False))
        results: list[Result] = []
        samples = 0
        for block in blocks:
            samples += len(block)
            results.extend(r for r in session.accept_audio(block) if r.is_final)
        results.extend(r for r in session.finish() if r.is_final)
        return Transcript(results=tuple(results), duration=samples / rate)


def load_short(path: str | os.PathLike[str]) -> np.ndarray | None:
    """A file of at most DIRECT_SECONDS as 16 kHz mono float32, or None when it is longer.

    Raises:
        AudioError: missing, empty, truncated or not audio.
    """
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - let load_audio produce the precise AudioError
        load_audio(path)
        raise AudioError(f"{path}: not a readable audio file") from None
    if info.frames > info.samplerate * DIRECT_SECONDS:
        return None
    return load_audio(path, SAMPLE_RATE)


def _file_blocks(path: str | os.PathLike[str]) -> tuple[Iterator[np.ndarray], int]:
    """Mono float32 blocks of a file at its own rate; small files go through load_audio's checks."""
    path = Path(path)
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - let load_audio produce the precise AudioError
        load_audio(path)
        raise AudioError(f"{path}: not a readable audio file") from None
    if info.frames <= info.samplerate * 60:
        return iter([load_audio(path, SAMPLE_RATE)]), SAMPLE_RATE

    def gen() -> Iterator[np.ndarray]:
        block = int(info.samplerate * BLOCK_SECONDS)
        decoded = 0
        with sf.SoundFile(str(path)) as f:
            while True:
                try:
                    data = f.read(block, dtype="float32", always_2d=True)
                except (sf.SoundFileError, RuntimeError, OSError, EOFError) as e:
                    # As load_audio does: keep what decoded before a corrupt or cut tail.
                    reason = getattr(e, "error_string", "") or e
                    if decoded == 0:
                        raise AudioError(
                            f"{path}: cannot decode audio, truncated or corrupt ({reason})"
                        ) from e
                    log.warning(
                        "%s: decoding failed after %.1f s (%s); keeping the audio decoded so far",
                        path,
                        decoded / info.samplerate,
                        reason,
                    )
                    return
                if len(data) == 0:
                    break
                decoded += len(data)
                yield np.nan_to_num(data.mean(axis=1))

    return gen(), info.samplerate


def load(
    streaming: str | os.PathLike[str] = "streaming",
    offline: str | os.PathLike[str] | None = "offline",
    lm: str | os.PathLike[str] | None = MODELS_DIR / "lm",
    profile: str | None = None,
    profiles_dir: str | os.PathLike[str] | None = None,
) -> Recognizer:
    """Load the shipped recogniser, or a speaker profile's adapted one (see :class:`Recognizer`)."""
    return Recognizer.load(streaming, offline, lm, profile=profile, profiles_dir=profiles_dir)
