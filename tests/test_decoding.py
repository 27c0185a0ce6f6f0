"""Decoder: greedy/beam agreement, word times, confidences, hotwords, LM, output formats."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from asr.api import Transcript
from asr.decoding import STEP_SECONDS, Decoder, Hypothesis, Word, blank_run
from asr.streaming import Result
from asr.text import LABELS
from asr.transcribe import render
from tests.helpers import noisy_spelling, spell

LM_DIR = Path(__file__).resolve().parent.parent / "models" / "lm"


def test_greedy_words_and_times() -> None:
    hyp = Decoder().greedy(spell("go on"), time_offset=1.0)
    assert hyp.text == "go on"
    assert [w.word for w in hyp.words] == ["go", "on"]
    first = hyp.words[0]
    assert first.start == pytest.approx(1.0 + 3 * STEP_SECONDS)  # after 3 leading blanks
    assert first.end == pytest.approx(1.0 + 8 * STEP_SECONDS)  # g(2) _ o(2) -> last frame 7
    assert hyp.words[1].start > first.end
    assert 0.85 < hyp.confidence <= 1.0


def test_beam_without_lm_matches_greedy_on_peaked_input() -> None:
    lp = spell("hello world")
    decoder = Decoder()
    assert decoder.beam(lp)[0].text == decoder.greedy(lp).text == "hello world"


def test_double_letter_needs_blank() -> None:
    # "l l" with no blank between collapses; with a blank both survive.
    assert Decoder().greedy(spell("hel", gap=1)).text == "hel"
    assert Decoder().greedy(spell("hello", gap=1)).text == "hello"


def test_n_best_and_empty_input() -> None:
    decoder = Decoder()
    hyps = decoder.beam(spell("cat"), n_best=3)
    assert 1 <= len(hyps) <= 3 and hyps[0].text == "cat"
    assert decoder.beam(np.zeros((0, len(LABELS)), np.float32))[0].text == ""


def test_hotword_changes_output() -> None:
    """An ambiguous middle: 'mat' slightly ahead of 'max'; the hotword 'max' flips it."""
    lp = spell("ma_", p=0.9)
    pos = [i for i, row in enumerate(lp.argmax(-1)) if row == 0][-4]  # a blank slot near the end
    probs = np.exp(lp)
    probs[pos - 1 : pos + 1] = 0.01
    probs[pos - 1 : pos + 1, LABELS.index("t")] = 0.5
    probs[pos - 1 : pos + 1, LABELS.index("x")] = 0.45
    lp = np.log(probs / probs.sum(-1, keepdims=True))
    decoder = Decoder()
    assert decoder.beam(lp)[0].text == "mat"
    assert decoder.beam(lp, hotwords=["max"], hotword_weight=10.0)[0].text == "max"


def test_blank_run() -> None:
    lp = spell("ab", lead=5)
    assert blank_run(lp) == 6  # the gap after "b" plus 5 trailing blanks
    assert blank_run(np.zeros((0, len(LABELS)))) == 0


@pytest.mark.skipif(not (LM_DIR / "lm.bin").exists(), reason="shipped LM missing")
def test_lm_prefers_real_words() -> None:
    """Between two spellings with equal acoustic evidence, the LM picks the English one."""
    from asr.api import load_decoder

    probs = np.exp(spell("the lord is my shepherd", p=0.9))
    e = LABELS.index("e")
    a = LABELS.index("a")
    # Make the 'e' of 'shepherd' ambiguous with 'a' ("shephard").
    rows = np.flatnonzero(probs.argmax(-1) == e)[-2:]
    probs[rows, e] = probs[rows, a] = 0.45
    lp = np.log(probs / probs.sum(-1, keepdims=True))
    decoder = load_decoder(LM_DIR)
    assert decoder.has_lm
    assert decoder.beam(lp)[0].text == "the lord is my shepherd"


def _transcript() -> Transcript:
    words = (Word("hello", 0.5, 0.9, 0.9), Word("there", 1.0, 1.4, 0.8))
    first = Result(True, (Hypothesis("hello there", words, 0.85),), 0, 0.3, 1.6)
    second = Result(
        True, (Hypothesis("again", (Word("again", 3725.25, 3725.7, 0.7),), 0.7),), 1, 3725.0, 3726.0
    )
    return Transcript((first, second), duration=3727.0)


def test_srt_is_valid() -> None:
    srt = render(_transcript(), "srt")
    blocks = srt.strip().split("\n\n")
    assert len(blocks) == 2
    pattern = re.compile(r"^\d+\n\d\d:\d\d:\d\d,\d\d\d --> \d\d:\d\d:\d\d,\d\d\d\n.+$")
    for i, block in enumerate(blocks, 1):
        assert pattern.match(block) and block.startswith(f"{i}\n")
    assert "01:02:05,250 --> 01:02:05,700" in srt  # hour-long offsets format correctly


def test_vtt_is_valid() -> None:
    vtt = render(_transcript(), "vtt")
    assert vtt.startswith("WEBVTT\n\n")
    cues = vtt.split("\n\n")[1:]
    cue = re.compile(r"^\d\d:\d\d:\d\d\.\d\d\d --> \d\d:\d\d:\d\d\.\d\d\d\n.+")
    assert all(cue.match(c) for c in cues if c.strip())
    assert "00:00:00.500 --> 00:00:01.400\nhello there" in vtt


def test_json_and_txt() -> None:
    import json

    data = json.loads(render(_transcript(), "json", "x.wav"))
    assert data["text"] == "hello there again" and data["segments"][1]["start"] == 3725.0
    assert data["segments"][0]["words"][1] == {"word": "there", "start": 1.0, "end": 1.4, "confidence": 0.8}
    assert render(_transcript(), "txt") == "hello there\nagain\n"
    with pytest.raises(ValueError, match="format"):
        render(_transcript(), "doc")


@pytest.mark.skipif(not (LM_DIR / "lm.bin").exists(), reason="shipped LM missing")
def test_tune_decoder_writes_best_pair(tmp_path: Path) -> None:
    import json
    import shutil

    from asr.lm import tune_decoder

    lm_dir = tmp_path / "lm"
    shutil.copytree(LM_DIR, lm_dir)
    refs = ["the lord is my shepherd", "go on"]
    tuned = tune_decoder(
        [spell(r) for r in refs], refs, lm_dir, alphas=(0.3, 0.6), betas=(0.0, 1.0), beam_width=8
    )
    assert tuned["wer"] == 0.0 and tuned["greedy_wer"] == 0.0 and tuned["utterances"] == 2
    saved = json.loads((lm_dir / "lm.json").read_text())
    assert saved["tuned"]["alpha"] == tuned["alpha"] and len(saved["grid"]) == 4
    with pytest.raises(ValueError, match="equal"):
        tune_decoder([], [], lm_dir)


def _uncompressed_beam(
    decoder: Decoder, lp: np.ndarray, hotwords: list[str] | None = None
) -> list[tuple[str, list[tuple[str, tuple[int, int]]], float]]:
    """pyctcdecode on every frame (what Decoder.beam did before frame compression)."""
    o = decoder.options
    beams = decoder._beam.decode_beams(
        lp,
        beam_width=o.beam_width,
        beam_prune_logp=o.beam_prune_logp,
        token_min_logp=o.token_min_logp,
        hotwords=hotwords,
        hotword_weight=o.hotword_weight,
    )
    return [(" ".join(text.split()), frames, float(score)) for text, _, frames, _, score in beams]


@pytest.mark.parametrize("use_lm", [False, True], ids=["no-lm", "lm"])
def test_blank_frame_compression_changes_nothing(use_lm: bool) -> None:
    """Dropping repeated blank-only frames gives the same beams, word times and scores."""
    from asr.api import load_decoder
    from asr.beam import compress_blank_frames

    decoder = load_decoder(LM_DIR) if use_lm else Decoder()
    rng = np.random.default_rng(0)
    for k in range(12):
        # Long confident-blank gaps (what compression drops), noisy letters, doubled letters.
        lp = spell("the good book is all", frames_per_char=2, gap=int(rng.integers(1, 6)), lead=8, p=0.97)
        noise = rng.normal(0, 1.5 if k % 2 else 0.3, lp.shape).astype(np.float32)
        logits = lp + noise
        lp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        kept, index, _ = compress_blank_frames(lp, decoder.options.token_min_logp)
        if k == 0:
            assert len(kept) < len(lp)  # the case compresses something
        assert index[0] == 0 and np.all(np.diff(index) > 0)
        expected = _uncompressed_beam(decoder, lp)[0]
        got = decoder.beam(lp)[0]
        assert got.text == expected[0]
        assert got.score == pytest.approx(expected[2], abs=1e-3)
        times = [(w.word, w.start, w.end) for w in got.words]
        want = [
            (w, round(s * STEP_SECONDS, 3), round(max(e, s + 1) * STEP_SECONDS, 3))
            for w, (s, e) in expected[1]
        ]
        assert times == want


def test_blank_frame_compression_keeps_one_blank_between_repeats() -> None:
    """'oo' needs the blank between the two o's: compression keeps the first frame of a gap."""
    from asr.beam import compress_blank_frames

    lp = spell("oo", frames_per_char=1, gap=5, lead=4, p=0.999)
    kept, index, dropped = compress_blank_frames(lp, -5.0)
    assert Decoder().greedy(kept).text == "oo"
    assert len(kept) == 5  # blank, o, blank, o, blank: one frame of each blank run
    assert dropped < 0 and len(index) == len(kept)


@pytest.mark.parametrize("hotwords", [None, ["goad", "bo"]], ids=["plain", "hotwords"])
@pytest.mark.parametrize("use_lm", [False, True], ids=["no-lm", "lm"])
def test_incremental_search_equals_whole_utterance(use_lm: bool, hotwords: list[str] | None) -> None:
    """Fed in random chunks, the search gives pyctcdecode's beams, word times and scores
    for the whole input; a result taken midway equals decoding the prefix. Hotwords
    change the scores (and the partial-word cache, which is per search with them)."""
    from asr.api import load_decoder

    decoder = load_decoder(LM_DIR) if use_lm else Decoder()
    rng = np.random.default_rng(3)
    for k in range(8):
        lp = noisy_spelling(rng, "the good book is all", 1.5 if k % 2 else 0.3)
        search = decoder.search(hotwords=hotwords, n_best=3, eager=bool(k % 3))
        cut = int(rng.integers(5, len(lp) - 5))
        position = 0
        while position < len(lp):
            size = int(rng.integers(1, 12))
            if position < cut <= position + size:
                size = cut - position
            search.extend(lp[position : position + size])
            position += size
            if position == cut:
                midway = search.result()
                prefix = decoder.beam(lp[:cut], hotwords=hotwords, n_best=3)
                assert [h.text for h in midway] == [h.text for h in prefix]
        got = search.result(time_offset=0.5)
        expected = _uncompressed_beam(decoder, lp, hotwords)
        assert [h.text for h in got] == [text for text, _, _ in expected[:3]]
        assert [h.score for h in got] == pytest.approx([score for _, _, score in expected[:3]], abs=1e-3)
        want = [
            (w, round(0.5 + s * STEP_SECONDS, 3), round(0.5 + max(e, s + 1) * STEP_SECONDS, 3))
            for w, (s, e) in expected[0][1]
        ]
        assert [(w.word, w.start, w.end) for w in got[0].words] == want


def test_search_rejects_wrong_vocabulary() -> None:
    with pytest.raises(ValueError, match="log-probs"):
        Decoder().search().extend(np.zeros((4, len(LABELS) + 1), np.float32))
