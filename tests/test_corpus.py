"""Tests for asr.corpus (splits, plans, synthesis engines, build) and asr.manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.corpus import augment as aug
from asr.corpus.build import (
    HELD_OUT_SPEAKERS,
    SPLITS,
    CorpusConfig,
    build_corpus,
    plan_shard,
    split_sentences,
    split_voices,
)
from asr.corpus.voices import Voice
from asr.manifest import read_manifest, total_hours, write_manifest
from tests.helpers import tiny_corpus_config

SR = 16000
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029")
VARIANTS = ("f1", "f2", "f3", "f4", "m1", "m2", "m3", "m4", "klatt", "klatt2", "whisper", "croak") + tuple(
    f"v{i}" for i in range(40)
)

# ---------------------------------------------------------------------------
# Splits and plans
# ---------------------------------------------------------------------------


def make_voices() -> list[Voice]:
    voices = [Voice("espeak", accent, f"espeak-{accent}") for accent in ACCENTS]
    voices += [Voice("espeak", f"{accent}+{v}", f"espeak+{v}") for accent in ACCENTS for v in VARIANTS]
    named = [spk for spks in HELD_OUT_SPEAKERS.values() for spk in spks]
    voices += [Voice("mbrola", spk, spk) for spk in named if spk.startswith("mb-")]
    voices += [
        Voice("flite", n, s) for n, s in {"slt": "slt", "rms": "rms", "awb": "awb", "kal16": "kal"}.items()
    ]
    voices += [Voice("festival", "kal_diphone", "kal"), Voice("festival", "ked_diphone", "ked")]
    voices += [Voice("mbrola", "mb-us1", "mb-us1")]
    voices += [Voice("pico", "en-US", "pico-lh0"), Voice("pico", "en-GB", "pico-kh0")]
    return voices


def make_sentences(n: int = 3000) -> list[str]:
    words = "the quick brown fox jumps over a lazy dog while seven old men sing".split()
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, size=int(rng.integers(3, 10)))) + f" number {i}" for i in range(n)]


def test_split_sentences_is_deterministic_and_disjoint() -> None:
    sentences = make_sentences()
    sentences += sentences[:200]  # a repeated sentence must land in the same split
    splits = split_sentences(sentences, seed=7)
    assert splits == split_sentences(sentences, seed=7)
    assert set(splits) == set(SPLITS)
    assert sum(len(v) for v in splits.values()) == len(sentences)
    sets = {k: set(v) for k, v in splits.items()}
    assert not sets["test"] & sets["train"]
    assert not sets["dev"] & sets["train"]
    assert not sets["test"] & sets["dev"]
    # Roughly the configured 2% / 1.5% hold-out.
    assert 0.01 < len(sets["test"]) / 3000 < 0.035
    assert 0.005 < len(sets["dev"]) / 3000 < 0.03
    assert split_sentences(sentences, seed=8) != splits


def test_split_voices_holds_out_whole_speakers() -> None:
    voices = make_voices()
    splits = split_voices(voices, seed=1234)
    assert splits == split_voices(voices, seed=1234)
    assert sorted(v.id for vs in splits.values() for v in vs) == sorted(v.id for v in voices)
    speaker_split: dict[str, set[str]] = {}
    for split, vs in splits.items():
        for v in vs:
            speaker_split.setdefault(v.speaker, set()).add(split)
    assert all(len(s) == 1 for s in speaker_split.values()), {
        k: s for k, s in speaker_split.items() if len(s) > 1
    }
    for split, speakers in HELD_OUT_SPEAKERS.items():
        for spk in speakers:
            assert speaker_split[spk] == {split}
    # kal16 (flite) and kal_diphone (festival) are one man: same side.
    assert speaker_split["kal"] == {"train"}
    assert speaker_split["espeak-en-us"] == {"train"}
    # Some espeak variants are held out, across all their accents.
    held = [s for s, sp in speaker_split.items() if s.startswith("espeak+") and sp != {"train"}]
    assert held
    for spk in held:
        accents = {v.name.split("+")[0] for vs in splits.values() for v in vs if v.speaker == spk}
        assert accents == set(ACCENTS)


def small_config(**kwargs: object) -> CorpusConfig:
    return CorpusConfig(out=Path("unused"), seed=3, shard_size=20, jobs=1, **kwargs)  # type: ignore[arg-type]


def test_plan_shard_is_pure_and_stays_in_its_split() -> None:
    config = small_config()
    sentences = split_sentences(make_sentences(), config.seed)
    voices = split_voices(make_voices(), config.seed)
    first = plan_shard("test", 2, config, sentences["test"], voices["test"])
    again = plan_shard("test", 2, config, sentences["test"], voices["test"])
    assert first == again
    assert len(first) == config.shard_size
    assert len({p.utt_id for p in first}) == len(first)
    assert all(p.utt_id.startswith("test-00002-") for p in first)
    assert {p.text for p in first} <= set(sentences["test"])
    assert {p.voice for p in first} <= set(voices["test"])
    assert first != plan_shard("test", 3, config, sentences["test"], voices["test"])
    assert first != plan_shard("dev", 2, config, sentences["test"], voices["test"])
    # Held-out splits mix clean and augmented utterances; train is always augmented.
    assert {p.augment for p in first} == {aug.AugmentConfig(), aug.CLEAN}
    train = plan_shard("train", 0, config, sentences["train"], voices["train"])
    assert {p.augment for p in train} == {aug.AugmentConfig()}
    assert {p.voice for p in train} <= set(voices["train"])


def test_cycle_text_order_speaks_every_sentence_before_repeating() -> None:
    sentences = [f"sentence number {i}" for i in range(50)]
    cycle, random_order = small_config(text_order="cycle"), small_config()
    voices = split_voices(make_voices(), cycle.seed)["train"]
    plans = [p for k in range(5) for p in plan_shard("train", k, cycle, sentences, voices)]  # 100 utterances
    texts = [p.text for p in plans]
    assert sorted(texts[:50]) == sorted(sentences) and sorted(texts[50:]) == sorted(sentences)
    assert texts[:50] != sentences  # a seeded shuffle, not the file order
    assert plans == [p for k in range(5) for p in plan_shard("train", k, cycle, sentences, voices)]
    # Only the text differs from the default order: voices, prosody, augmentation and seeds are the same.
    same = [p for k in range(5) for p in plan_shard("train", k, random_order, sentences, voices)]
    assert [(p.voice, p.prosody, p.augment, p.seed) for p in plans] == [
        (p.voice, p.prosody, p.augment, p.seed) for p in same
    ]
    assert len({p.text for p in same}) < len(sentences)  # with replacement, some are never drawn
    with pytest.raises(ValueError, match="text_order"):
        small_config(text_order="alphabetical")


def test_plan_shard_respects_engine_weights() -> None:
    config = small_config(engine_weights={"flite": 1.0, "espeak": 0.0})
    voices = split_voices(make_voices(), config.seed)
    plans = plan_shard("train", 0, config, ["a b c"], voices["train"])
    assert {p.voice.engine for p in plans} == {"flite"}


def test_piper_voice_trains_and_is_off_by_default() -> None:
    piper = Voice("piper", "en_US-joe-medium", "piper-joe")
    voices = [*make_voices(), piper]
    splits = split_voices(voices, seed=1234)
    assert piper in splits["train"]
    # The default weights leave Piper out, so the main corpus is the same with or without it.
    config = small_config()
    train = split_voices(voices, config.seed)["train"]
    default = plan_shard("train", 0, config, ["a b c"], train)
    assert default == plan_shard("train", 0, config, ["a b c"], [v for v in train if v.engine != "piper"])
    only = plan_shard("train", 0, small_config(engine_weights={"piper": 1.0}), ["a b c"], train)
    assert {p.voice for p in only} == {piper}


def test_mbrola_x_voices_train_and_are_off_by_default() -> None:
    extra = [Voice("mbrola-x", db, f"mb-{db}") for db in ("fr2", "es1")]
    voices = [*make_voices(), *extra]
    splits = split_voices(voices, seed=1234)
    assert set(extra) <= set(splits["train"])
    config = small_config()
    train = splits["train"]
    default = plan_shard("train", 0, config, ["a b c"], train)
    assert default == plan_shard("train", 0, config, ["a b c"], [v for v in train if v.engine != "mbrola-x"])
    only = plan_shard("train", 0, small_config(engine_weights={"mbrola-x": 1.0}), ["a b c"], train)
    assert {p.voice for p in only} <= set(extra) and len({p.voice for p in only}) == 2


def test_mbrola_x_synthesis(tmp_path: Path) -> None:
    from asr.audio import load_audio
    from asr.corpus.voices import MBROLA_EXTRA, Prosody, mbrola_extra_root, mbrola_extra_voices, synthesize

    if not mbrola_extra_voices():
        pytest.skip("needs espeak-ng, mbrola and an mbrola-x database (scripts/install-mbrola.sh)")
    root = mbrola_extra_root()
    assert root is not None and mbrola_extra_root() is root  # built once per process
    name = mbrola_extra_voices()[0]
    assert name in MBROLA_EXTRA
    voice_file = (root / "espeak-ng-data" / "voices" / "mbx" / name).read_text()
    assert "language en" in voice_file and f"mbrola {name} " in voice_file
    lengths = []
    for rate in (0.8, 1.25):
        out = tmp_path / f"{rate}.wav"
        synthesize(Voice("mbrola-x", name, f"mb-{name}"), "the water is very cold", Prosody(rate=rate), out)
        audio = load_audio(out)
        assert np.max(np.abs(audio)) > 0.05
        lengths.append(len(audio))
    assert lengths[0] > 1.2 * lengths[1]  # slower rate, longer audio


def test_rhvoice_and_pico_train_except_the_held_out_pico_voice() -> None:
    rhvoice = [Voice("rhvoice", "bdl", "bdl"), Voice("rhvoice", "slt", "slt")]
    voices = [*make_voices(), *rhvoice]
    splits = split_voices(voices, seed=1234)
    assert set(rhvoice) <= set(splits["train"])
    assert Voice("pico", "en-US", "pico-lh0") in splits["train"]
    assert Voice("pico", "en-GB", "pico-kh0") in splits["test"]  # the held-out Pico set's voice
    config = small_config()
    train = splits["train"]
    default = plan_shard("train", 0, config, ["a b c"], train)
    assert default == plan_shard(
        "train", 0, config, ["a b c"], [v for v in train if v.engine not in ("rhvoice", "pico")]
    )
    mix = small_config(engine_weights={"rhvoice": 0.7, "pico": 0.3})
    assert {p.voice.speaker for p in plan_shard("train", 0, mix, ["a b c"], train)} == {
        "bdl",
        "slt",
        "pico-lh0",
    }


def test_pico_markup_clamps_levels() -> None:
    from asr.corpus.voices import Prosody, _pico_markup

    assert _pico_markup("hi there", Prosody(rate=1.2, pitch=0.9, volume=1.0)) == (
        "<speed level='120'><pitch level='90'><volume level='100'>hi there</volume></pitch></speed>"
    )
    assert "speed level='300'" in _pico_markup("x", Prosody(rate=9.0))
    assert "pitch level='50'" in _pico_markup("x", Prosody(pitch=0.1))


def test_festival_x_voices_train_and_are_off_by_default() -> None:
    extra = [Voice("festival-x", "rab_diphone", "rab"), Voice("festival-x", "don_diphone", "don")]
    splits = split_voices([*make_voices(), *extra], seed=1234)
    assert set(extra) <= set(splits["train"])
    train = splits["train"]
    config = small_config()
    default = plan_shard("train", 0, config, ["a b c"], train)
    assert default == plan_shard(
        "train", 0, config, ["a b c"], [v for v in train if v.engine != "festival-x"]
    )
    only = plan_shard("train", 0, small_config(engine_weights={"festival-x": 1.0}), ["a b c"], train)
    assert {p.voice for p in only} == set(extra)


@pytest.mark.parametrize("engine", ["rhvoice", "pico", "festival-x"])
def test_rhvoice_pico_and_festival_x_synthesis(tmp_path: Path, engine: str) -> None:
    from asr.audio import load_audio
    from asr.corpus.voices import Prosody, available_voices, synthesize

    installed = {v.name: v.speaker for v in available_voices() if v.engine == engine}
    if not installed:
        pytest.skip(f"{engine} is not installed (scripts/install-mbrola.sh installs it)")
    name, speaker = next(iter(installed.items()))
    lengths = []
    for rate in (0.8, 1.25):
        out = tmp_path / f"{rate}.wav"
        synthesize(Voice(engine, name, speaker), "the water is very cold", Prosody(rate=rate), out)
        audio = load_audio(out)
        assert np.max(np.abs(audio)) > 0.05
        lengths.append(len(audio))
    assert lengths[0] > 1.2 * lengths[1]  # slower rate, longer audio


def test_engine_weights_option() -> None:
    from asr.cli.corpus import _engine_weights

    assert _engine_weights(None) is None
    assert _engine_weights(["piper=1", "flite=0.5", "espeak"]) == {"piper": 1.0, "flite": 0.5, "espeak": 1.0}
    assert _engine_weights(["mbrola-x=1"]) == {"mbrola-x": 1.0}
    assert _engine_weights(["rhvoice=0.7", "pico=0.3"]) == {"rhvoice": 0.7, "pico": 0.3}
    assert _engine_weights(["festival-x=1"]) == {"festival-x": 1.0}
    with pytest.raises(SystemExit, match="expected one of"):
        _engine_weights(["klingon=1"])
    with pytest.raises(SystemExit, match="NAME=WEIGHT"):
        _engine_weights(["piper=lots"])


def test_piper_synthesis(tmp_path: Path) -> None:
    pytest.importorskip("piper")
    from asr.audio import load_audio
    from asr.corpus.voices import Prosody, piper_voices, synthesize

    if not piper_voices():
        pytest.skip("no Piper voice package installed")
    name = next(iter(piper_voices()))
    lengths = []
    for rate in (0.8, 1.25):
        out = tmp_path / f"{rate}.wav"
        synthesize(
            Voice("piper", name, piper_voices()[name]), "the water is very cold", Prosody(rate=rate), out
        )
        audio = load_audio(out)
        assert np.max(np.abs(audio)) > 0.05
        lengths.append(len(audio))
    assert lengths[0] > 1.2 * lengths[1]  # slower rate, longer audio


# ---------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------


ENTRIES = [
    {"audio_filepath": "wav/a.wav", "duration": 1.5, "text": "hello world", "engine": "espeak"},
    {"audio_filepath": "/abs/b.wav", "duration": 2.25, "text": "naïve café", "augment": {"snr": 10.0}},
]


def test_manifest_round_trip_and_paths(tmp_path: Path) -> None:
    path = tmp_path / "corpus" / "m.jsonl"
    write_manifest(path, ENTRIES)
    assert not list(path.parent.glob("*.tmp"))
    assert read_manifest(path, resolve=False) == ENTRIES
    resolved = read_manifest(path)
    assert resolved[0]["audio_filepath"] == str(tmp_path / "corpus" / "wav" / "a.wav")
    assert resolved[1]["audio_filepath"] == "/abs/b.wav"
    assert resolved[1]["augment"] == {"snr": 10.0}
    assert total_hours(resolved) == pytest.approx(3.75 / 3600)


def test_manifest_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text("\n" + json.dumps(ENTRIES[0]) + "\n\n   \n", encoding="utf-8")
    assert read_manifest(path, resolve=False) == ENTRIES[:1]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"audio_filepath": "a.wav", "duration": 1.0', "JSON"),
        ("not json at all", "JSON"),
        ("42", "JSON object"),
        ("null", "JSON object"),
        ('["audio_filepath", "duration", "text"]', "JSON object"),
        ('{"audio_filepath": "a.wav", "text": "hi"}', "duration"),
        ('{"duration": 1.0}', "audio_filepath"),
    ],
)
def test_manifest_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ENTRIES[0]) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message) as exc:
        read_manifest(path)
    assert f"{path}:2" in str(exc.value)


def test_manifest_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        read_manifest(tmp_path / "nope.jsonl")


@settings(max_examples=50, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.text(max_size=40), st.text(min_size=1, max_size=20), st.floats(0, 1e4)),
        min_size=1,
        max_size=5,
    )
)
def test_manifest_round_trip_any_text(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str, float]]
) -> None:
    path = tmp_path_factory.mktemp("m") / "m.jsonl"
    entries = [{"audio_filepath": a, "duration": d, "text": t} for t, a, d in rows]
    write_manifest(path, entries)
    assert read_manifest(path, resolve=False) == entries


# ---------------------------------------------------------------------------
# A tiny real build
# ---------------------------------------------------------------------------

TEXT = {
    "train": [
        "the quick brown fox jumps over the lazy dog",
        "she sells sea shells by the sea shore",
        "a stitch in time saves nine",
        "every cloud has a silver lining",
    ],
    "dev": ["the early bird catches the worm", "actions speak louder than words"],
    "test": ["all that glitters is not gold", "birds of a feather flock together"],
}


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("flite") is None, reason="needs espeak-ng and flite"
)
def test_tiny_build_end_to_end_and_resume(tmp_path: Path) -> None:
    config = tiny_corpus_config(tmp_path, TEXT, "espeak")  # reads no Debian text package
    summary = build_corpus(config, progress=False)

    manifests = {split: read_manifest(tmp_path / f"{split}.jsonl") for split in SPLITS}
    for split, entries in manifests.items():
        assert entries, split
        for e in entries:
            info = sf.info(e["audio_filepath"])
            assert info.samplerate == SR and info.channels == 1
            assert info.frames / SR == pytest.approx(e["duration"], abs=1e-3)
            assert e["engine"] == "espeak"
            assert e["text"] in TEXT[split]
    assert len(manifests["dev"]) <= 4 and len(manifests["test"]) <= 4
    assert sum(e["duration"] for e in manifests["train"]) >= 0.003 * 3600

    train_texts = {e["text"] for e in manifests["train"]}
    assert not train_texts & set(TEXT["test"])
    speakers = {split: {e["speaker"] for e in entries} for split, entries in manifests.items()}
    assert not speakers["test"] & speakers["train"]
    assert not speakers["dev"] & speakers["train"]

    on_disk = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    for split in SPLITS:
        assert on_disk["splits"][split]["per_engine"]["espeak"] > 0
        assert on_disk["splits"][split]["utterances"] == len(manifests[split])
    assert summary["splits"] == on_disk["splits"]

    # Re-running resumes: no shard is rebuilt and the manifests stay the same.
    shards = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "shards").glob("*.jsonl")}
    again = build_corpus(config, progress=False)
    assert {
        p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "shards").glob("*.jsonl")
    } == shards
    assert again["audio_hours_this_run"] == 0
    assert again["splits"] == summary["splits"]
    assert {split: read_manifest(tmp_path / f"{split}.jsonl") for split in SPLITS} == manifests


def test_clean_subset_keeps_mild_augmentation_only(tmp_path: Path) -> None:
    from asr.manifest import clean_subset, is_clean, read_manifest

    base = {"duration": 1.0, "text": "a"}
    entries = [
        {**base, "audio_filepath": "a.wav", "augment": {"gain_db": 1.0}},
        {**base, "audio_filepath": "b.wav", "augment": {"noise": "white", "snr": 20.0}},
        {**base, "audio_filepath": "c.wav", "augment": {"noise": "pink", "snr": 9.0}},
        {**base, "audio_filepath": "d.wav", "augment": {"reverb_rt60": 0.4}},
        {**base, "audio_filepath": "e.wav", "augment": {"babble_snr": 18.0}},
        {**base, "audio_filepath": "f.wav", "augment": {"telephone": True}},
        {**base, "audio_filepath": "g.wav"},
    ]
    assert [is_clean(e) for e in entries] == [True, True, False, False, False, False, True]
    src = tmp_path / "train.jsonl"
    src.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert clean_subset(src, tmp_path / "clean.jsonl") == (3, 3 / 3600)
    kept = read_manifest(tmp_path / "clean.jsonl", resolve=False)
    assert [e["audio_filepath"] for e in kept] == ["a.wav", "b.wav", "g.wav"]  # still relative


def test_corpus_bar_survives_the_last_shards_overshooting() -> None:
    """Shards in flight at the target still finish; the bar's total follows instead of
    tqdm dropping it (which made the bar's format fail and ended the build unwritten)."""
    import io

    from tqdm import tqdm

    from asr.corpus.build import advance_hours

    out = io.StringIO()
    bar = tqdm(total=1.0, file=out, bar_format="{n:.2f}/{total:.2f} h [{remaining}]")
    for _ in range(4):
        advance_hours(bar, 0.45)
    bar.close()
    assert bar.n == pytest.approx(1.8) and bar.total == pytest.approx(1.8)
    assert "1.80/1.80 h" in out.getvalue()
