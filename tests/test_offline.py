"""Batched offline recognition: segmentation, batching and worker processes change nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr.api import Recognizer
from asr.audio import write_wav
from asr.offline import speech_segments
from asr.streaming import EndpointConfig, SessionConfig
from asr.transcribe import transcribe_files
from tests.helpers import noise, run_unguarded_script


def _path(best: list[int], vocab: int = 5) -> np.ndarray:
    """Log-probs whose best path is ``best`` (0 = blank)."""
    lp = np.full((len(best), vocab), -5.0, np.float32)
    lp[np.arange(len(best)), best] = -0.01
    return lp


def test_segments_split_at_long_blank_runs() -> None:
    best = [0] * 10 + [1, 2, 0, 3] + [0] * 6 + [4, 4] + [0] * 3 + [1] + [0] * 8
    # speech at 10..13, then a 6-blank gap, speech 20..21, a 3-blank gap, speech 25.
    assert speech_segments(_path(best), 0, gap_steps=5, max_steps=100, pad_steps=0) == [(10, 14), (20, 26)]
    assert speech_segments(_path(best), 0, gap_steps=3, max_steps=100, pad_steps=0) == [
        (10, 14), (20, 22), (25, 26)]  # fmt: skip
    # Padding widens each side but never overlaps a neighbour or leaves the array.
    assert speech_segments(_path(best), 0, gap_steps=5, max_steps=100, pad_steps=4) == [(6, 18), (18, 30)]


def test_segment_padding_is_clipped() -> None:
    best = [1, 0, 0, 0, 0, 0, 2, 0]
    segs = speech_segments(_path(best), 0, gap_steps=3, max_steps=100, pad_steps=4)
    assert segs[0][0] == 0 and segs[-1][1] == len(best)
    assert all(a < b for a, b in segs)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(segs, segs[1:], strict=False))


def test_segments_cut_at_max_length_and_empty_cases() -> None:
    segs = speech_segments(_path([1] * 25), 0, gap_steps=5, max_steps=10, pad_steps=0)
    assert segs == [(0, 10), (10, 20), (20, 25)]
    assert speech_segments(_path([0] * 9), 0, 5, 10) == []
    assert speech_segments(np.zeros((0, 5), np.float32), 0, 5, 10) == []


@pytest.mark.parametrize("jobs", [1, 2])
def test_batched_files_equal_one_by_one(recognizer: Recognizer, tmp_path: Path, jobs: int) -> None:  # noqa: F811
    """Batches of several files (and worker processes) give each file's own transcript, in order."""
    config = SessionConfig(endpoint=EndpointConfig(trailing_silence_ms=90, max_utterance_ms=1500))
    paths = []
    for i, seconds in enumerate([1.0, 3.5, 0.4, 2.0, 5.0, 0.01, 1.5]):
        paths.append(tmp_path / f"f{i}.wav")
        write_wav(paths[-1], noise(seconds, seed=10 + i))
    (tmp_path / "bad.wav").write_text("not audio")
    paths.insert(3, tmp_path / "bad.wav")
    lines: list[str] = []
    report = transcribe_files(
        recognizer, paths, "offline", "json", config=config, progress=False, write=lines.append,
        jobs=jobs, batch_seconds=4.0,
    )  # fmt: skip
    assert report.done == [str(p) for p in paths if p.name != "bad.wav"]
    assert [p for p, _ in report.failed] == [str(tmp_path / "bad.wav")]
    one_by_one = [recognizer.transcribe(p, config=config) for p in paths if p.name != "bad.wav"]
    import json

    batched = [json.loads(line) for line in lines]
    assert [b["text"] for b in batched] == [t.text for t in one_by_one]
    assert any(t.results for t in one_by_one)  # the check is not vacuous
    for b, t in zip(batched, one_by_one, strict=True):
        assert [(s["start"], s["end"]) for s in b["segments"]] == [(r.start, r.end) for r in t.results]


def test_unguarded_script_can_use_beam_workers(model_paths: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: F811
    """``offline_batch(jobs=2)`` at a script's top level, with no ``__main__`` guard: the
    workers must not run the script again (a multiprocessing spawn pool did, and hung)."""
    lines = run_unguarded_script(
        tmp_path,
        "import numpy as np\n"
        "from asr import checkpoint\n"
        "from asr.api import Recognizer\n"
        "from asr.decoding import Decoder\n"
        "from asr.streaming import EndpointConfig, SessionConfig\n"
        f"rec = Recognizer(checkpoint.load_model({str(model_paths[0])!r}), "
        f"checkpoint.load_model({str(model_paths[1])!r}), Decoder())\n"
        "audio = [(0.3 * np.random.default_rng(s).standard_normal(16000 * 3)).astype(np.float32) for s in range(3)]\n"
        "config = SessionConfig(endpoint=EndpointConfig(trailing_silence_ms=90, max_utterance_ms=1500))\n"
        "def texts(jobs):\n"
        "    with rec.offline_batch(jobs) as batch:\n"
        "        return [[r.text for r in rs] for rs in batch.transcribe(audio, config)]\n"
        "one, two = texts(1), texts(2)\n"
        "print('segments', sum(map(len, one)), 'same', one == two)\n",
    )
    words = lines[-1].split()
    assert words[0] == "segments" and int(words[1]) > 0, lines  # the workers had work
    assert words[2:] == ["same", "True"], lines
