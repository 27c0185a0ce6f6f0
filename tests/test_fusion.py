"""Two-pass fusion: the shift and weight arithmetic, tuning, the checkpoint-hash guard,
and a two-pass session's final searching the fused log-probs."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from asr import checkpoint
from asr.api import Recognizer
from asr.cli import main
from asr.decoding import Decoder, Hypothesis
from asr.fusion import Fusion, best_lag, file_sha256, load_fusion, tune
from asr.inference import batch_log_probs
from asr.metrics import error_rates
from asr.streaming import EndpointConfig, SessionConfig
from asr.text import Vocabulary, greedy_decode
from tests.helpers import write_tiny_checkpoints, write_tiny_manifest


def _one_hot_path(labels: list[int], vocab: int = 29, floor: float = -8.0) -> np.ndarray:
    lp = np.full((len(labels), vocab), floor, np.float32)
    lp[np.arange(len(labels)), labels] = -0.001
    return lp


def test_shift_moves_the_streaming_output_back_and_repeats_its_last_step() -> None:
    streaming = np.arange(6, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # row t holds t
    offline = np.zeros((6, 3), np.float32)
    fused = Fusion(0.5, 2)(offline, streaming)
    np.testing.assert_allclose(fused[:, 0], 0.5 * np.array([2, 3, 4, 5, 5, 5]))
    assert Fusion(0.5, 9)(offline, streaming)[:, 0].tolist() == [2.5] * 6  # all past the end
    np.testing.assert_array_equal(Fusion(0.0, 3)(offline, streaming), offline)  # weight 0: the BiLSTM alone
    assert Fusion(0.3, 1)(offline[:0], streaming[:0]).shape == (0, 3)


def test_automatic_shift_finds_each_utterances_lag() -> None:
    """A uni-LSTM output that is the BiLSTM's delayed by 0..6 steps: the per-utterance
    shift undoes each delay, and the fused result equals the fixed shift's."""
    rng = np.random.default_rng(1)
    for delay in range(7):
        labels = rng.choice([0, 0, 0, 3, 7, 12], size=60).tolist()
        offline = _one_hot_path(labels, floor=-4.0)
        streaming = _one_hot_path([0] * delay + labels[: 60 - delay], floor=-4.0)
        assert best_lag(offline, streaming) == delay
        np.testing.assert_array_equal(Fusion(0.3)(offline, streaming), Fusion(0.3, delay)(offline, streaming))
    assert best_lag(np.zeros((1, 5)), np.zeros((1, 5))) == 0  # too short to compare


def test_fusion_refuses_bad_values_and_shapes() -> None:
    with pytest.raises(ValueError, match="weight"):
        Fusion(1.0, 0)
    with pytest.raises(ValueError, match="shift"):
        Fusion(0.2, -1)
    with pytest.raises(ValueError, match="one shape"):
        Fusion(0.2, 1)(np.zeros((4, 3)), np.zeros((5, 3)))


def test_tuning_finds_the_delay_of_a_late_but_right_model() -> None:
    """The BiLSTM misses characters that a uni-LSTM, 3 steps late, gets right: the tuned
    fusion must find that shift, with a weight above 0, and beat the BiLSTM alone."""
    vocab = Vocabulary()
    rng = np.random.default_rng(0)
    refs, pairs = [], []
    for _ in range(20):
        words = ["".join(rng.choice(list("abcdefgh"), 3)) for _ in range(3)]
        refs.append(" ".join(words))
        labels = []
        for ch in refs[-1]:
            labels += [*vocab.encode(ch), 0]  # a blank between characters keeps repeats apart
        labels += [0, 0, 0]
        truth = np.array(labels)
        wrong = truth.copy()
        hit = rng.choice(np.flatnonzero(truth), 2, replace=False)
        wrong[hit] = 0  # the BiLSTM drops two characters
        offline = _one_hot_path(wrong.tolist(), floor=-3.0)
        offline[hit, truth[hit]] = -1.0  # ... but not by much
        streaming = _one_hot_path(np.concatenate([[0, 0, 0], truth[:-3]]).tolist())  # right, 3 steps late
        pairs.append((offline, streaming))

    def wer(r: Any, h: Any) -> float:
        return error_rates(zip(r, h, strict=True)).wer

    best, grid = tune(pairs, refs, greedy_decode, [0.2, 0.4], [*range(6), None], wer)
    assert grid[0] == {"weight": 0.0, "shift": 0, "score": pytest.approx(grid[0]["score"])}
    assert grid[0]["score"] > 0.3  # the BiLSTM alone is wrong ...
    assert best.shift == 3 and best.weight > 0
    assert min(g["score"] for g in grid) == 0.0  # ... and the fused search right
    auto = [g["score"] for g in grid if g["shift"] == "auto"]  # the lag found per utterance
    assert len(auto) == 2 and max(auto) < grid[0]["score"] / 3


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_checkpoints(tmp_path_factory.mktemp("fusion-models"), seed=5, blank_share=0.6)


def _fusion_file(path: Path, streaming: Path, offline: Path, **changes: Any) -> Path:
    meta = {"weight": 0.25, "shift": 2, "streaming_sha256": file_sha256(streaming)}
    meta |= {"offline_sha256": file_sha256(offline), **changes}
    path.write_text(json.dumps(meta))
    return path


def test_fusion_file_applies_only_to_the_checkpoints_it_was_tuned_for(
    tiny_paths: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    streaming, offline = (checkpoint.load_model(p) for p in tiny_paths)
    good = _fusion_file(tmp_path / "good.json", *tiny_paths)
    assert load_fusion(streaming, offline, good) == Fusion(0.25, 2)
    assert load_fusion(streaming, None, good) is None  # no BiLSTM, no two-pass
    assert load_fusion(streaming, offline, tmp_path / "missing.json") is None
    stale = _fusion_file(tmp_path / "stale.json", *tiny_paths, offline_sha256="0" * 64)
    with caplog.at_level(logging.WARNING):
        assert load_fusion(streaming, offline, stale) is None
    assert "tuned for other checkpoints" in caplog.text
    rec = Recognizer.load(*map(str, tiny_paths), lm=None, fusion=good)
    assert rec.fusion == Fusion(0.25, 2)
    assert Recognizer.load(*map(str, tiny_paths), lm=None, fusion=None).fusion is None


@dataclass(frozen=True)
class _Recording(Fusion):
    calls: ClassVar[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []

    def __call__(self, offline: np.ndarray, streaming: np.ndarray) -> np.ndarray:
        fused = super().__call__(offline, streaming)
        self.calls.append((offline, streaming, fused))
        return fused


class _RecordingDecoder(Decoder):
    def __init__(self) -> None:
        super().__init__()
        self.searched: list[np.ndarray] = []

    def beam(self, log_probs: np.ndarray, *args: Any, **kwargs: Any) -> list[Hypothesis]:
        self.searched.append(np.array(log_probs))
        return super().beam(log_probs, *args, **kwargs)


def test_two_pass_final_searches_the_fused_log_probs(tiny_paths: tuple[Path, Path]) -> None:
    """One utterance, fed in chunks: the final's search gets the fusion of the BiLSTM's
    log-probs (as without fusion) and the streaming model's whole-utterance ones."""
    streaming, offline = (checkpoint.load_model(p) for p in tiny_paths)
    audio = (0.3 * np.random.default_rng(4).standard_normal(16000 * 2)).astype(np.float32)
    config = SessionConfig(
        mode="two-pass",
        interim_results=False,
        endpoint=EndpointConfig(trailing_silence_ms=60_000, max_utterance_ms=60_000),
    )

    def run(fusion: Fusion | None) -> tuple[_RecordingDecoder, str]:
        decoder = _RecordingDecoder()
        session = Recognizer(streaming, offline, decoder, fusion).stream(config)
        finals = []
        for chunk in np.array_split(audio, 7):
            finals += session.accept_audio(chunk)
        finals += session.finish()
        assert len(decoder.searched) == 1 and len([r for r in finals if r.is_final]) <= 1
        return decoder, " ".join(r.text for r in finals if r.is_final)

    plain, _ = run(None)
    _Recording.calls.clear()
    fused, _ = run(_Recording(0.4, 2))
    [(bilstm, uni, result)] = _Recording.calls
    np.testing.assert_array_equal(bilstm, plain.searched[0])
    np.testing.assert_array_equal(fused.searched[0], result)
    # The streaming log-probs are the uni-LSTM's over the same frames, start to end.
    frames_session = Recognizer(streaming, offline, Decoder()).stream(config)
    frames = torch.cat([frames_session.push_audio(audio), frames_session.flush_audio()])
    whole = batch_log_probs(streaming.model, [frames])[0].numpy()
    np.testing.assert_allclose(uni, whole, atol=1e-4)
    np.testing.assert_allclose(
        result, 0.6 * bilstm + 0.4 * np.concatenate([whole[2:], whole[-1:], whole[-1:]]), atol=1e-4
    )


def test_fusion_tune_cli_writes_a_file_that_loads(tiny_paths: tuple[Path, Path], tmp_path: Path) -> None:
    manifest = write_tiny_manifest(tmp_path / "dev", n=6)
    out = tmp_path / "fusion.json"
    args = ["fusion", "tune", "--manifest", str(manifest), "--lm", str(tmp_path / "no-lm"), "--out", str(out)]
    args += [
        "--streaming-model",
        str(tiny_paths[0]),
        "--offline-model",
        str(tiny_paths[1]),
    ]
    assert main([*args, "--shifts", "0,2,auto", "--weights", "0.2,0.5", "--quiet"]) == 0
    meta = json.loads(out.read_text())
    assert meta["tuned_on"]["utterances"] == 6
    assert {(g["weight"], g["shift"]) for g in meta["greedy_grid"]} == {(0.0, 0)} | {
        (w, s) for w in (0.2, 0.5) for s in (0, 2, "auto")
    }
    assert (
        meta["beam_grid"][0]["weight"] == 0.0 and meta["dev_wer"]["fused"] <= meta["dev_wer"]["bilstm_alone"]
    )
    streaming, offline = (checkpoint.load_model(p) for p in tiny_paths)
    shift = None if meta["shift"] == "auto" else meta["shift"]
    assert load_fusion(streaming, offline, out) == Fusion(meta["weight"], shift)
    # The default: the per-utterance shift only, no greedy stage.
    assert main([*args, "--weights", "0.2", "--quiet"]) == 0
    meta = json.loads(out.read_text())
    assert meta["greedy_grid"] == [] and {g["shift"] for g in meta["beam_grid"]} == {0, "auto"}


def test_offline_batch_fuses_each_whole_file(tiny_paths: tuple[Path, Path]) -> None:
    """Offline mode: each file's BiLSTM log-probs fused with the uni-LSTM's over the same
    file, batched across files of different lengths."""
    from asr.features import log_mel

    streaming, offline = (checkpoint.load_model(p) for p in tiny_paths)
    rng = np.random.default_rng(8)
    audios = [(0.3 * rng.standard_normal(int(16000 * s))).astype(np.float32) for s in (0.7, 2.0, 1.3)]
    fusion = Fusion(0.4, 2)
    fused = Recognizer(streaming, offline, Decoder(), fusion).offline_batch().log_probs(audios)
    alone = Recognizer(streaming, offline, Decoder()).offline_batch().log_probs(audios)
    for audio, got, bilstm in zip(audios, fused, alone, strict=True):
        mel = log_mel(audio)
        uni = batch_log_probs(streaming.model, [streaming.normalizer(mel)])[0].numpy()
        np.testing.assert_allclose(got, fusion(bilstm, uni), atol=1e-4)
        assert not np.allclose(got, bilstm, atol=1e-3)  # the fusion did something
