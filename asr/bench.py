"""`asr bench`: the real-time vs full-sequence trade-off, measured.

Three ways to run the same recogniser, side by side with PocketSphinx:

* ``streaming``: the uni-LSTM alone; partials while audio comes in, LM beam finals;
* ``two-pass``: the uni-LSTM's partials and endpoints, finals from the BiLSTM + LM over
  each endpointed utterance (what ``asr serve`` does in two-pass mode);
* ``offline``: the BiLSTM over the whole utterance once it has all arrived, then LM beam.

Accuracy of ``streaming`` and ``offline`` comes from :func:`asr.evaluate.evaluate_manifest`
(the numbers ``asr eval`` prints); ``two-pass`` runs :class:`asr.streaming.StreamingSession`.

Latency is simulated on the audio clock: chunk ``k`` arrives at the audio time of its
last sample, ``t_k``; the session needs ``c_k`` seconds (wall clock) for it, and results
of that chunk are available at ``done_k = max(t_k, done_{k-1}) + c_k`` (a backlog carries
over when the machine falls behind). The client half-closes at the end of the file.
Speech start and end come from an energy detector; a reference word's end in the audio
comes from a CTC forced alignment of the reference text to the BiLSTM's posteriors
(the measuring itself is in :mod:`asr.bench_latency`).

The Markdown report, its tables and the plots are rendered by :mod:`asr.bench_report`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.api import Recognizer, load_decoder
from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.bench_latency import LAG_WINDOW_S as LAG_WINDOW_S  # public: asr.bench_report
from asr.bench_latency import (
    RefWord,
    Trace,
    forced_word_ends,
    score,
    simulate_offline,
    simulate_session,
    speech_bounds,
    summarize,
    utterance_timing,
)
from asr.bench_latency import match_lags as match_lags  # public: the bench tests
from asr.checkpoint import MODELS_DIR, load_model
from asr.constants import Mode
from asr.decoding import OFFLINE_BEAM_WIDTH, Decoder, Hypothesis
from asr.evaluate import GROUPINGS, evaluate_manifest, grouped_scores, result_row
from asr.fusion import load_fusion
from asr.manifest import read_manifest
from asr.streaming import EndpointConfig, SessionConfig, results_text
from asr.text import normalize_text

log = logging.getLogger(__name__)

MODES = ("streaming", "two-pass", "offline")
CHUNKS_MS = (60, 120, 240, 480)
QUICK_CHUNKS_MS = (120, 480)
HEADLINE_CHUNK_MS = 120  # a multiple of the 30 ms model step, close to the client's 100 ms
DEFAULT_SMOKE = ("data/smoke_real/manifest.jsonl", "data/smoke/manifest.jsonl")
# The held-out SVOX Pico en-GB voice on held-out test sentences (scripts/piper_eval_set.py --voice pico:en-GB).
DEFAULT_PICO = "data/pico-eval/manifest.jsonl"
LOOKAHEAD_NOTE = (
    "not measured: the shipped models have no trained lookahead (ModelConfig has no such option), "
    "and delaying the output of a model that was not trained with lookahead would measure nothing real"
)


@dataclass(frozen=True)
class BenchConfig:
    """What `asr bench` measures, on which sets and subsets."""

    out: Path = Path("reports")
    test_manifest: str = "data/corpus/test.jsonl"
    smoke_manifest: str | None = None  # None: skip the smoke set
    pico_manifest: str | None = None  # None: skip the Pico set (a held-out natural-sounding voice)
    streaming_model: str = "streaming"
    offline_model: str = "offline"
    lm: str | None = str(MODELS_DIR / "lm")  # None: beam search without LM
    fusion: bool = (
        True  # two-pass finals fused with the streaming log-probs (models/fusion.json), if tuned for these
    )
    threads: tuple[int, ...] = (1, 2)
    chunks_ms: tuple[int, ...] = CHUNKS_MS
    test_utts: int | None = None  # first N test utterances for WER/CER (None: all)
    latency_utts: int = 100  # first N test utterances for latency, RTF and the sweep
    peer_utts: int = 100  # first N test utterances for PocketSphinx
    smoke_utts: int | None = None
    pico_utts: int | None = None
    peer: bool = True
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.threads or min(self.threads) < 1:
            raise ValueError(f"expected thread counts >= 1, got {self.threads}")
        if HEADLINE_CHUNK_MS not in self.chunks_ms:
            raise ValueError(f"expected chunks_ms to include {HEADLINE_CHUNK_MS}, got {self.chunks_ms}")
        if any(c <= 0 for c in self.chunks_ms):
            raise ValueError(f"expected positive chunk sizes, got {self.chunks_ms}")

    @classmethod
    def preset(cls, quick: bool = False, limit: int | None = None, **changes: Any) -> BenchConfig:
        """Full or ``quick`` subsets, every set capped at ``limit`` utterances."""
        sizes: dict[str, Any] = (
            {"test_utts": 60, "latency_utts": 60, "peer_utts": 30, "chunks_ms": QUICK_CHUNKS_MS}
            if quick
            else {}
        )
        config = cls(**{**sizes, **changes})
        if limit is None:
            return config
        cap = lambda n: limit if n is None else min(n, limit)  # noqa: E731
        return replace(
            config,
            test_utts=cap(config.test_utts),
            latency_utts=cap(config.latency_utts),
            peer_utts=cap(config.peer_utts),
            smoke_utts=cap(config.smoke_utts),
            pico_utts=cap(config.pico_utts),
        )


def default_smoke_manifest() -> str | None:
    return next((p for p in DEFAULT_SMOKE if Path(p).is_file()), None)


def default_pico_manifest() -> str | None:
    return DEFAULT_PICO if Path(DEFAULT_PICO).is_file() else None


class GreedyFinals(Decoder):
    """Best-path finals in a session (the 'greedy' column of two-pass), no beam search."""

    def beam(
        self,
        log_probs: np.ndarray,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float | None = None,
        n_best: int = 1,
        time_offset: float = 0.0,
    ) -> list[Hypothesis]:
        return [self.greedy(log_probs, time_offset)]


def _load_entries(manifest: str, limit: int | None) -> list[tuple[dict[str, Any], np.ndarray]]:
    kept = []
    for e in read_manifest(manifest)[:limit]:
        try:
            kept.append((e, load_audio(e["audio_filepath"])))
        except AudioError as err:
            log.warning("%s", err)
    return kept


# --------------------------------------------------------------------- bench
class _Bench:
    """One run: models, decoders and the report being filled."""

    def __init__(self, config: BenchConfig) -> None:
        from tqdm import tqdm

        self.config = config
        self.streaming = load_model(config.streaming_model)
        self.offline = load_model(config.offline_model)
        self.lm = load_decoder(config.lm)
        self.lm_offline = self.lm.with_options(beam_width=OFFLINE_BEAM_WIDTH)  # as `asr transcribe`
        self.greedy = GreedyFinals(self.lm.vocab)
        self.fusion = load_fusion(self.streaming, self.offline) if config.fusion else None
        self.rec_lm = Recognizer(self.streaming, self.offline, self.lm, self.fusion, OFFLINE_BEAM_WIDTH)
        self.rec_greedy = Recognizer(self.streaming, self.offline, self.greedy, self.fusion)
        n_test = len(read_manifest(config.test_manifest)[: config.test_utts])
        n_smoke = (
            len(read_manifest(config.smoke_manifest)[: config.smoke_utts]) if config.smoke_manifest else 0
        )
        n_pico = len(read_manifest(config.pico_manifest)[: config.pico_utts]) if config.pico_manifest else 0
        n_lat = min(config.latency_utts, n_test)
        per_utterance = 8 if self.fusion is not None else 6  # fused offline: two more passes
        units = per_utterance * (n_test + n_smoke + n_pico) + n_lat * (
            3 * len(config.threads) + len(config.chunks_ms) - 1
        )
        units += (min(config.peer_utts, n_test) + n_smoke + n_pico) if config.peer else 0
        self.stage_seconds: dict[str, float] = {}
        self._stage: str | None = None
        self._since = time.perf_counter()
        self.bar = tqdm(total=units, unit="utt", disable=not config.progress, smoothing=0.05)

    def stage(self, name: str) -> None:
        """Start a named stage (progress bar label); the previous one's wall time is recorded."""
        now = time.perf_counter()
        if self._stage is not None:
            self.stage_seconds[self._stage] = round(
                self.stage_seconds.get(self._stage, 0) + now - self._since, 1
            )
        self._stage, self._since = name, now
        self.bar.set_description(name)

    def accuracy(self, manifest: str, limit: int | None) -> dict[str, Any]:
        """Greedy and LM WER/CER of every mode on one set, plus per-utterance rows."""
        out: dict[str, Any] = {}
        rows: dict[str, dict[str, list[dict[str, str]]]] = {}
        for mode, loaded, lm in (
            ("streaming", self.streaming, self.lm),
            ("offline", self.offline, self.lm_offline),
        ):
            for name, decoder in (("greedy", None), ("lm", lm)):
                result, mode_rows = evaluate_manifest(loaded, manifest, limit=limit, decoder=decoder)
                out.setdefault(mode, {})[name] = {**score((r["ref"], r["hyp"]) for r in mode_rows)}
                out[mode][name]["throughput_rtf"] = round(result.rtf, 5)
                rows.setdefault(mode, {})[name] = mode_rows
                self.bar.update(result.utterances + result.failed)
        entries = _load_entries(manifest, limit)
        if self.fusion is not None:  # offline mode fuses too: score what `asr transcribe` runs
            for name, rec in (("greedy", self.rec_greedy), ("lm", self.rec_lm)):
                started = time.perf_counter()
                with rec.offline_batch(1) as batch:
                    finals = batch.transcribe([audio for _, audio in entries])
                took = time.perf_counter() - started
                self.bar.update(len(entries))
                rows["offline"][name] = [
                    result_row(e, normalize_text(str(e["text"])), results_text(rs))
                    for (e, _), rs in zip(entries, finals, strict=True)
                ]
                seconds = sum(len(a) for _, a in entries) / SAMPLE_RATE
                out["offline"][name] = {
                    **score((r["ref"], r["hyp"]) for r in rows["offline"][name]),
                    "throughput_rtf": round(took / max(seconds, 1e-9), 5),
                }
        two_pass: dict[str, list[dict[str, str]]] = {"greedy": [], "lm": []}
        for e, audio in entries:
            ref = normalize_text(str(e["text"]))
            for name, rec in (("greedy", self.rec_greedy), ("lm", self.rec_lm)):
                session = rec.stream(
                    SessionConfig(mode=Mode.TWO_PASS, interim_results=False, endpoint=self.config.endpoint)
                )
                hyp = results_text(session.accept_audio(audio) + session.finish())
                two_pass[name].append(result_row(e, ref, hyp))
            self.bar.update(2)
        out["two-pass"] = {name: score((r["ref"], r["hyp"]) for r in rs) for name, rs in two_pass.items()}
        rows["two-pass"] = two_pass
        return {"scores": out, "rows": rows}

    def latency(self, entries: list[tuple[dict[str, Any], np.ndarray]]) -> dict[str, Any]:
        """Simulated real-time runs: every mode at the headline chunk and thread count, then the sweep."""
        cfg = self.config
        speech = [speech_bounds(a) for _, a in entries]
        refs = [normalize_text(str(e["text"])) for e, _ in entries]
        ref_words: list[list[RefWord]] = []
        runs: dict[str, Any] = {}

        def record(key: str, traces: list[Trace]) -> dict[str, Any]:
            timings = [
                utterance_timing(tr, sp, rw) for tr, sp, rw in zip(traces, speech, ref_words, strict=True)
            ]
            last_partial = [" ".join(tr.displayed()[-1][1]) if tr.displayed() else "" for tr in traces]
            runs[key] = {
                "first_partial_s": summarize(t.first_partial for t in timings),
                "partial_lag_s": summarize(x for t in timings for x in t.partial_lags),
                "final_after_audio_s": summarize(t.final_after_audio for t in timings),
                "final_after_speech_s": summarize(t.final_after_speech for t in timings),
                "final_word_latency_s": summarize(x for t in timings for x in t.final_word_latencies),
                "rtf": round(
                    sum(t.compute for t in traces) / max(sum(t.audio_seconds for t in traces), 1e-9), 5
                ),
                "final": score(zip(refs, (tr.final_text() for tr in traces), strict=True)),
                "partial": score(zip(refs, last_partial, strict=True)),
            }
            return runs[key]

        for threads in cfg.threads:
            torch.set_num_threads(threads)
            self.stage(f"latency offline {threads}t")
            traces = []
            for _, audio in entries:
                trace, lp = simulate_offline(
                    self.offline, self.lm_offline, audio, self.streaming, self.fusion
                )
                traces.append(trace)
                if len(ref_words) < len(entries):
                    ref_words.append(
                        forced_word_ends(
                            lp, refs[len(ref_words)], self.offline.vocab, self.offline.step_seconds
                        )
                        or []
                    )
                self.bar.update()
            record(_run_key("offline", threads), traces)  # the chunk size does not matter offline
            for mode, chunks in ((Mode.TWO_PASS, [HEADLINE_CHUNK_MS]), (Mode.STREAM, cfg.chunks_ms)):
                for chunk in chunks if threads == cfg.threads[0] else [HEADLINE_CHUNK_MS]:
                    self.stage(f"latency {mode} {chunk}ms {threads}t")
                    session = SessionConfig(mode=mode, endpoint=cfg.endpoint)
                    traces = []
                    for _, audio in entries:
                        traces.append(simulate_session(self.rec_lm, session, audio, chunk))
                        self.bar.update()
                    record(
                        _run_key("streaming" if mode == Mode.STREAM else str(mode), threads, chunk), traces
                    )
        torch.set_num_threads(max(cfg.threads))
        return runs

    def close(self) -> None:
        self.stage("done")
        self.bar.close()


def _run_key(mode: str, threads: int, chunk_ms: int = HEADLINE_CHUNK_MS) -> str:
    return f"{mode}/{threads}t/{chunk_ms}ms"


def _size_mb(*paths: Path) -> float:
    return round(sum(p.stat().st_size for p in paths) / 2**20, 2)


def _pocketsphinx_size() -> dict[str, float] | None:
    try:
        from pocketsphinx import get_model_path
    except ImportError:
        return None
    root = Path(get_model_path()) / "en-us"
    files = [p for p in root.rglob("*") if p.is_file()]
    acoustic = [p for p in files if p.parent.name == "en-us" and p.parent != root]
    return {"size_mb": _size_mb(*acoustic), "lm_mb": _size_mb(*(set(files) - set(acoustic)))}


def _peer(bench: _Bench, config: BenchConfig, peer_n: int) -> dict[str, Any]:
    """PocketSphinx on the peer subset, the smoke set and the Pico set (always with its own LM)."""
    from asr.peer import evaluate_pocketsphinx

    bench.stage("pocketsphinx test")
    test = evaluate_pocketsphinx(config.test_manifest, limit=peer_n)
    bench.bar.update(peer_n)
    subset = {"greedy": None, "lm": {"wer": test.wer, "cer": test.cer, "utterances": test.utterances}}
    out: dict[str, Any] = {"test": subset, "peer_subset": subset, "smoke": None, "pico": None, "params": None}
    out |= {"rtf": {"1": round(test.rtf, 5)}, **(_pocketsphinx_size() or {})}
    for name, manifest, limit in (
        ("smoke", config.smoke_manifest, config.smoke_utts),
        ("pico", config.pico_manifest, config.pico_utts),
    ):
        if manifest:
            bench.stage(f"pocketsphinx {name}")
            result = evaluate_pocketsphinx(manifest, limit=limit)
            bench.bar.update(result.utterances + result.failed)
            out[name] = {
                "greedy": None,
                "lm": {"wer": result.wer, "cer": result.cer, "utterances": result.utterances},
            }
    return out


def _set_info(manifest: str, limit: int | None) -> dict[str, Any]:
    entries = read_manifest(manifest)[:limit]
    what = "all" if limit is None or limit >= len(read_manifest(manifest)) else f"first {len(entries)}"
    return {
        "manifest": manifest,
        "utterances": len(entries),
        "audio_seconds": round(sum(float(e["duration"]) for e in entries), 1),
        "what": f"{what} utterances",
    }


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Measure everything, write OUT/tradeoff.{json,md} and the plots; return the report dict."""
    from asr.bench_report import markdown, pick_example, plot_ctc_alignment, plot_frontier, plot_rtf

    started = time.perf_counter()
    if config.peer and importlib.util.find_spec("pocketsphinx") is None:
        # Fail before the minutes of measuring, not at the peer stage at the end.
        raise RuntimeError(
            "PocketSphinx (the peer) is not installed: pip install -e '.[bench]', or pass --no-peer"
        )
    torch.set_num_threads(max(config.threads))
    bench = _Bench(config)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{os.cpu_count()} CPU cores ({platform.machine()})",
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "streaming_model": str(bench.streaming.path),
        "offline_model": str(bench.offline.path),
        "lm": str(bench.lm.lm_path) if bench.lm.lm_path else None,
        "lm_options": asdict(bench.lm.options),
        "offline_beam_width": OFFLINE_BEAM_WIDTH,
        "fusion": bench.fusion.to_json() if bench.fusion else None,
        "endpoint": asdict(config.endpoint),
        "threads": list(config.threads),
        "headline_chunk_ms": HEADLINE_CHUNK_MS,
    }
    report: dict[str, Any] = {"meta": meta, "sets": {}, "modes": {}}
    try:
        bench.stage("accuracy test")
        test = bench.accuracy(config.test_manifest, config.test_utts)
        sets = {"test": _set_info(config.test_manifest, config.test_utts)}
        smoke = None
        if config.smoke_manifest:
            bench.stage("accuracy smoke")
            smoke = bench.accuracy(config.smoke_manifest, config.smoke_utts)
            sets["smoke"] = _set_info(config.smoke_manifest, config.smoke_utts)
        pico = None
        if config.pico_manifest:
            bench.stage("accuracy pico")
            pico = bench.accuracy(config.pico_manifest, config.pico_utts)
            sets["pico"] = _set_info(config.pico_manifest, config.pico_utts)
        n_test = sets["test"]["utterances"]
        lat_entries = _load_entries(config.test_manifest, min(config.latency_utts, n_test))
        sets["latency"] = _set_info(config.test_manifest, len(lat_entries))
        peer_n = min(config.peer_utts, n_test)
        sets["peer"] = _set_info(config.test_manifest, peer_n)
        report["sets"] = sets
        runs = bench.latency(lat_entries)
        lm_mb = (
            _size_mb(*(bench.lm.lm_path.parent / n for n in ("lm.bin", "unigrams.txt")))
            if bench.lm.lm_path
            else 0.0
        )
        for mode, models in (
            ("streaming", [bench.streaming]),
            ("two-pass", [bench.streaming, bench.offline]),
            ("offline", [bench.offline]),
        ):
            per_thread = {t: runs[_run_key(mode, t)] for t in config.threads}
            first = per_thread[config.threads[0]]
            report["modes"][mode] = {
                "test": test["scores"][mode],
                "smoke": smoke["scores"][mode] if smoke else None,
                "pico": pico["scores"][mode] if pico else None,
                "peer_subset": {
                    k: score((r["ref"], r["hyp"]) for r in rows[:peer_n])
                    for k, rows in test["rows"][mode].items()
                },
                "latency": {k: v for k, v in first.items() if k.endswith("_s")},
                "latency_subset": {"final": first["final"], "partial": first["partial"]},
                "rtf": {str(t): r["rtf"] for t, r in per_thread.items()},
                "params": sum(m.model.num_parameters() for m in models),
                "size_mb": _size_mb(*(m.path for m in models)),
                "lm_mb": lm_mb,
            }
        offline = report["modes"]["offline"]
        offline["latency"]["first_partial_s"] = offline["latency"]["partial_lag_s"] = None  # no partials
        offline["latency_subset"]["partial"] = None
        report["sweep"] = [
            {"chunk_ms": c, **runs[_run_key("streaming", config.threads[0], c)]}
            for c in sorted(config.chunks_ms)
        ]
        report["lookahead"] = {"measured": False, "why": LOOKAHEAD_NOTE}
        report["test_groups"] = {
            by: {
                mode: {name: grouped_scores(rows, by) for name, rows in test["rows"][mode].items()}
                for mode in ("streaming", "two-pass", "offline")
            }
            for by in GROUPINGS
        }
        if config.peer:
            report["modes"]["pocketsphinx"] = _peer(bench, config, peer_n)
        bench.stage("plots")
        config.out.mkdir(parents=True, exist_ok=True)
        report["plots"] = {
            "frontier": plot_frontier(report, config.out / "tradeoff_frontier.png"),
            "rtf": plot_rtf(report, config.out / "rtf.png"),
            "ctc_alignment": plot_ctc_alignment(
                pick_example(lat_entries),
                [("streaming", bench.streaming), ("offline", bench.offline)],
                config.out / "ctc_alignment.png",
            ),
        }
    finally:
        bench.close()
    meta["wall_seconds"] = round(time.perf_counter() - started, 1)
    meta["stage_seconds"] = bench.stage_seconds
    (config.out / "tradeoff.json").write_text(json.dumps(report, indent=1) + "\n")
    (config.out / "tradeoff.md").write_text(markdown(report))
    return report
