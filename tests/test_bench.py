"""`asr bench` with tiny models on a tiny manifest: files, keys, and the same WER as asr.evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr.bench import forced_word_ends, match_lags, speech_bounds
from asr.cli import main
from asr.decoding import OFFLINE_BEAM_WIDTH, Decoder
from asr.evaluate import evaluate_manifest
from asr.text import Vocabulary
from tests.helpers import write_tiny_checkpoints, write_tiny_manifest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Path, Path, Path]:
    folder = tmp_path_factory.mktemp("bench")
    manifest = write_tiny_manifest(folder / "data", n=8)
    paths = write_tiny_checkpoints(folder, seed=5, blank_share=0.6)
    out = folder / "reports"
    argv = ["bench", "--out", str(out), "--test-manifest", str(manifest), "--smoke-manifest", str(manifest),
            "--pico-manifest", str(manifest),
            "--streaming-model", str(paths[0]), "--offline-model", str(paths[1]), "--no-lm", "--no-peer",
            "--threads", "1", "--chunks-ms", "60", "120", "--latency-utts", "5", "--peer-utts", "5", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "tradeoff.json").read_text())
    return report, out, manifest, paths[0], paths[1]


def test_writes_report_json_markdown_and_plots(
    bench_run: tuple[dict[str, Any], Path, Path, Path, Path],
) -> None:
    report, out, *_ = bench_run
    assert set(report) >= {"meta", "sets", "modes", "sweep", "lookahead", "plots"}
    assert set(report["modes"]) == {"streaming", "two-pass", "offline"}  # --no-peer
    for mode, m in report["modes"].items():
        assert set(m) >= {
            "test",
            "smoke",
            "pico",
            "peer_subset",
            "latency",
            "latency_subset",
            "rtf",
            "params",
            "size_mb",
        }
        for decoding in ("greedy", "lm"):
            assert 0 <= m["test"][decoding]["cer"] and m["test"][decoding]["utterances"] == 8
        assert set(m["rtf"]) == {"1"} and m["rtf"]["1"] > 0
        assert set(m["latency"]) == {
            "first_partial_s", "partial_lag_s", "final_after_audio_s", "final_after_speech_s", "final_word_latency_s"
        }  # fmt: skip
        assert 1 <= m["latency"]["final_after_audio_s"]["n"] <= 5, mode  # utterances with a final
    assert report["modes"]["offline"]["latency"]["first_partial_s"] is None
    assert report["modes"]["offline"]["latency"]["final_after_audio_s"]["n"] == 5
    assert report["modes"]["two-pass"]["params"] == sum(
        report["modes"][m]["params"] for m in ("streaming", "offline")
    )
    assert [s["chunk_ms"] for s in report["sweep"]] == [60, 120]
    assert report["lookahead"]["measured"] is False
    assert report["sets"]["latency"]["utterances"] == 5
    md = (out / "tradeoff.md").read_text()
    for name in ("tradeoff_frontier.png", "rtf.png", "ctc_alignment.png"):
        assert f"]({name})" in md
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert "| streaming |" in md and "Chunk-size sweep" in md and "Lookahead sweep" in md


def test_wer_equals_evaluate(bench_run: tuple[dict[str, Any], Path, Path, Path, Path]) -> None:
    report, _, manifest, streaming, offline = bench_run
    assert report["meta"]["offline_beam_width"] == OFFLINE_BEAM_WIDTH  # what `asr transcribe` searches at
    for mode, path, width in (("streaming", streaming, 32), ("offline", offline, OFFLINE_BEAM_WIDTH)):
        for decoding, decoder in (("greedy", None), ("lm", Decoder().with_options(beam_width=width))):
            result, _ = evaluate_manifest(path, manifest, decoder=decoder)
            for key in ("wer", "cer"):
                assert report["modes"][mode]["test"][decoding][key] == result.to_dict()[key]
                assert report["modes"][mode]["smoke"][decoding][key] == result.to_dict()[key]
                assert report["modes"][mode]["pico"][decoding][key] == result.to_dict()[key]


def test_chunking_never_changes_the_text(bench_run: tuple[dict[str, Any], Path, Path, Path, Path]) -> None:
    report, *_ = bench_run
    finals = {json.dumps(s["final"], sort_keys=True) for s in report["sweep"]}
    partials = {json.dumps(s["partial"], sort_keys=True) for s in report["sweep"]}
    assert len(finals) == 1 and len(partials) == 1
    two_pass = report["modes"]["two-pass"]  # 120 ms chunks vs the whole utterance at once
    assert two_pass["latency_subset"]["final"] == two_pass["peer_subset"]["lm"]


def _spell(frames: list[int], vocab: Vocabulary) -> np.ndarray:
    lp = np.full((len(frames), len(vocab)), np.log(0.01 / (len(vocab) - 1)), np.float32)
    lp[np.arange(len(frames)), frames] = np.log(0.99)
    return lp


def test_forced_alignment_word_ends() -> None:
    vocab = Vocabulary()
    i = vocab.encode
    frames = [0, *i("go"), 0, *i(" "), 0, 0, *i("o"), *i("n"), *i("n"), 0, 0]  # step k ends at 0.03 (k + 1)
    ends = forced_word_ends(_spell(frames, vocab), "go on", vocab)
    assert ends == [("go", pytest.approx(0.09)), ("on", pytest.approx(0.30))]
    assert forced_word_ends(_spell([0, 0], vocab), "go on", vocab) is None  # too short


def test_match_lags_in_order_within_window() -> None:
    ref = [("and", 0.5), ("the", 0.7), ("cat", 1.0), ("and", 3.0), ("the", 3.2)]
    assert match_lags(["and", "the"], [3.2, 3.3], ref) == pytest.approx([0.2, 0.1])  # not the first pair
    assert match_lags(["the", "and"], [0.9, 0.6], ref) == pytest.approx([0.2])  # monotonic
    assert match_lags(["cat"], [4.0], ref) == []  # outside the window


def test_speech_bounds_find_the_tone() -> None:
    t = np.arange(16000) / 16000
    audio = np.concatenate([np.zeros(8000), 0.5 * np.sin(2 * np.pi * 300 * t), np.zeros(4000)])
    audio = (audio + 1e-4 * np.random.default_rng(0).standard_normal(len(audio))).astype(np.float32)
    start, end = speech_bounds(audio)
    assert start == pytest.approx(0.5, abs=0.03) and end == pytest.approx(1.5, abs=0.03)


def test_missing_peer_fails_before_measuring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without PocketSphinx the bench stops at once with the fix, not after minutes of work."""
    import importlib.util

    from asr.bench import BenchConfig, run_bench

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pocketsphinx" else real(name, *a)
    )
    with pytest.raises(RuntimeError, match="--no-peer"):
        run_bench(BenchConfig(out=tmp_path, test_manifest=str(tmp_path / "missing.jsonl")))
    assert not any(tmp_path.iterdir())


def test_test_split_groups_add_up(bench_run: tuple[dict[str, Any], Path, Path, Path, Path]) -> None:
    report, out, *_ = bench_run
    groups = report["test_groups"]
    assert set(groups) == {"voice", "condition"}
    assert set(groups["voice"]["offline"]["lm"]) == {"espeak (all variants)", "flite:awb"}
    assert set(groups["condition"]["offline"]["lm"]) == {"clean", "augmented"}
    for per_mode in groups.values():
        for mode, decodings in per_mode.items():
            for decoding, per_group in decodings.items():
                whole = report["modes"][mode]["test"][decoding]
                assert sum(g["utterances"] for g in per_group.values()) == whole["utterances"] == 8
                assert sum(g["words"] for g in per_group.values()) == whole["words"]
                # Corpus-level WER: the groups' word errors add up to the whole set's.
                errors = sum(g["wer"] * g["words"] for g in per_group.values())
                assert errors == pytest.approx(whole["wer"] * whole["words"])
    md = (out / "tradeoff.md").read_text()
    assert "Test split by voice and by condition" in md and "| flite:awb | 3 |" in md
