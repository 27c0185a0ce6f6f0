"""Speaker profiles: names, the store, take checks, prompts, the API, and the server serving
several profiles and the base models at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from asr.server.app import RunningServer
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.api import Recognizer
from asr.audio import float_to_pcm16, pcm16_to_float
from asr.checkpoint import load_model
from asr.decoding import Decoder
from asr.profiles import (
    ProfileNotFound,
    ProfileStore,
    TakeError,
    check_take,
    default_profiles_dir,
    normalize_transcript,
    validate_profile_name,
)
from asr.prompts import enrollment_prompts, prompts_for_minutes, select_prompts
from asr.streaming import EndpointConfig, SessionConfig
from asr.v1 import asr_pb2, asr_pb2_grpc
from tests.enroll_helpers import fake_adapted_profile, speechlike
from tests.helpers import audio_requests, make_tiny_recognizer, noise
from tests.net_helpers import loopback_server


# ------------------------------------------------------------------ names and folders
@pytest.mark.parametrize("name", ["anna", "Anna_B", "x", "speaker-2", "0day", "a" * 64])
def test_plain_names_are_accepted(name: str) -> None:
    assert validate_profile_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "../anna", "..", ".", "a/b", "a\\b", "/abs", "anna ", "-x", "_x", "é", "a" * 65, "a\0b", "a.b"],
)
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="expected a profile name"):
        validate_profile_name(name)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_no_accepted_name_leaves_the_root(name: str) -> None:
    store = ProfileStore("/profiles/root")
    try:
        path = store.path(name)
    except ValueError:
        return
    assert path.parent == Path("/profiles/root") and path.name == name


def test_default_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ASR_PROFILES", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_profiles_dir() == tmp_path / "xdg" / "lstm-asr" / "profiles"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_profiles_dir() == tmp_path / "home" / ".local" / "share" / "lstm-asr" / "profiles"
    monkeypatch.setenv("ASR_PROFILES", str(tmp_path / "mine"))
    assert default_profiles_dir() == tmp_path / "mine"
    assert ProfileStore().root == tmp_path / "mine"


def test_store_lifecycle(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "profiles")
    assert store.names() == []
    store.create("anna")
    store.create("anna")  # idempotent
    (store.root / "not a profile").mkdir()
    entry = store.add_recording("anna", speechlike("go on now"), 16000, "Go on, NOW!", prompt=3, source="web")
    assert entry["text"] == "go on now" and entry["prompt"] == 3 and Path(entry["audio_filepath"]).is_file()
    store.add_recording("anna", (speechlike("turn left") * 32767).astype(np.int16), 16000, "turn left")
    assert store.names() == ["anna"]
    info = store.info("anna")
    assert (info.recordings, info.adapted, info.card) == (2, False, {})
    assert store.recorded_prompts("anna") == {3}
    with pytest.raises(ValueError, match="asr adapt anna"):
        store.adapted_models("anna")
    store.remove_recording("anna", entry["audio_filepath"])
    assert [e["text"] for e in store.recordings("anna")] == ["turn left"]
    assert not Path(entry["audio_filepath"]).exists()
    store.write_card("anna", {"note": 1})
    assert store.read_card("anna")["note"] == 1
    store.delete("anna")
    assert store.names() == [] and not (store.root / "anna").exists()
    for call in (store.recordings, store.delete, store.info, store.adapted_models):
        with pytest.raises(ProfileNotFound, match="'anna' not found"):
            call("anna")


def test_a_take_at_another_rate_is_stored_at_16k(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path)
    audio48 = np.repeat(speechlike("go on now"), 3)  # the same take at 48 kHz
    entry = store.add_recording("anna", audio48, 48000, "go on now")
    assert entry["duration"] == pytest.approx(len(audio48) / 48000, abs=1e-3)


def test_bad_takes_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path)
    good = speechlike("go on now")
    bad = {
        "too short": (good[:4000], "go on now"),
        "too quiet": (good * 0.0005, "go on now"),
        "clipped": (np.clip(good * 40, -1, 1), "go on now"),
        "steady sound": (np.full(32000, 0.2, np.float32) * np.sign(np.sin(np.arange(32000))), "go on now"),
        "mostly silence": (np.concatenate([np.zeros(16000 * 10, np.float32), good]), "go on now"),
        "too short for its text": (
            good,
            "go on now and then tell everyone you met about the long journey home",
        ),
    }
    for reason, (audio, text) in bad.items():
        with pytest.raises(TakeError, match=reason):
            store.add_recording("anna", audio.astype(np.float32), 16000, text)
    with pytest.raises(ValueError, match="letters"):
        store.add_recording("anna", good, 16000, "... !!!")
    with pytest.raises(ValueError, match="finite"):
        store.add_recording("anna", np.full(16000, np.nan, np.float32), 16000, "go on")
    with pytest.raises(ValueError, match="sample_rate"):
        store.add_recording("anna", good, 0, "go on now")
    with pytest.raises(TakeError, match="too short"):
        store.add_recording("anna", np.zeros(0, np.float32), 16000, "go on now")
    assert not store.exists("anna")  # not even the folder: a refused take leaves no trace
    stats = check_take(good, "go on now")
    assert stats.speech_share > 0.3 and stats.clipped_share == 0.0 and stats.peak_dbfs > -20


def test_transcripts_are_normalised_as_training_labels() -> None:
    assert normalize_transcript("It's 5 o'clock, to day!") == "it's five o'clock today"
    with pytest.raises(ValueError, match="letters"):
        normalize_transcript("-- ?!")


# ------------------------------------------------------------------ prompts
def test_shipped_prompts_are_train_text_covering_every_letter() -> None:
    from asr.corpus.build import SENTENCE_HOLDOUT_PERMILLE, _split_of
    from asr.prompts import CORPUS_SEED

    prompts = enrollment_prompts()
    assert len(prompts) >= 300 and len(set(prompts)) == len(prompts)
    assert all(_split_of(CORPUS_SEED, "sentence:" + p, SENTENCE_HOLDOUT_PERMILLE) == "train" for p in prompts)
    assert all(normalize_transcript(p) == p for p in prompts)
    assert set("".join(prompts)) >= set("abcdefghijklmnopqrstuvwxyz")
    ten = prompts_for_minutes(10)
    assert 100 <= ten <= 250 and prompts_for_minutes(2) < ten
    assert enrollment_prompts(5) == prompts[:5]


def test_prompt_selection_prefers_new_words_and_letters() -> None:
    candidates = ["the cat sat", "the cat sat down", "quick zebra jumps", "the the the"]
    weights = {"the": 1.0, "cat": 1.0, "sat": 1.0, "down": 1.0}
    chosen = select_prompts(candidates, weights, 3)
    assert chosen[0] != "the the the" and "quick zebra jumps" in chosen
    assert select_prompts(candidates, weights, 3) == chosen  # deterministic


# ------------------------------------------------------------------ API
def test_api_load_with_unknown_or_unadapted_profiles(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path)
    with pytest.raises(ProfileNotFound, match="nobody"):
        Recognizer.load(profile="nobody", profiles_dir=tmp_path)
    with pytest.raises(ValueError, match="profile name"):
        Recognizer.load(profile="../models", profiles_dir=tmp_path)
    store.create("fresh")
    with pytest.raises(ValueError, match="no adapted models"):
        Recognizer.load(profile="fresh", profiles_dir=tmp_path)
    fake_adapted_profile(store, "anna", seed=5, blank_share=0.4)
    rec = Recognizer.load(profile="anna", profiles_dir=tmp_path, lm=None)
    assert rec.streaming.path == store.model_path("anna", "streaming")
    assert rec.fusion is None  # the shipped fusion was tuned for other checkpoints
    import asr

    assert asr.load(profile="anna", profiles_dir=tmp_path, lm=None).offline.path == store.model_path(
        "anna", "offline"
    )


# ------------------------------------------------------------------ server
@pytest.fixture(scope="module")
def profile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("served")
    store = ProfileStore(root / "profiles")
    fake_adapted_profile(store, "anna", seed=5, blank_share=0.4)
    fake_adapted_profile(store, "ben", seed=6, blank_share=0.6)
    store.create("new")  # enrolled, never adapted
    yield from loopback_server(
        make_tiny_recognizer(root / "base"),
        profiles_dir=str(store.root),
        max_profiles=2,
        int8=False,
        decode_workers=0,
        max_wait_ms=20,
    )


def _stub(server: RunningServer) -> asr_pb2_grpc.RecognizerStub:
    return asr_pb2_grpc.RecognizerStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))


def _stream(stub: asr_pb2_grpc.RecognizerStub, profile: str, audio: np.ndarray) -> list[str]:
    config = asr_pb2.RecognitionConfig(
        encoding=asr_pb2.LINEAR16,
        sample_rate_hertz=16000,
        model="stream",
        profile=profile,
        endpointing=asr_pb2.EndpointingConfig(trailing_silence_ms=90, max_utterance_ms=1500),
    )
    first = asr_pb2.StreamingRecognizeRequest(
        streaming_config=asr_pb2.StreamingRecognitionConfig(config=config)
    )
    requests = [first, *audio_requests(float_to_pcm16(audio), 3200)]
    return [
        r.alternatives[0].transcript
        for response in stub.StreamingRecognize(iter(requests))
        for r in response.results
        if r.is_final
    ]


def _in_process(rec: Recognizer, audio: np.ndarray) -> list[str]:
    """Finals of ``rec``'s own session on ``audio`` as the server receives it (PCM16), unbatched."""
    audio = pcm16_to_float(float_to_pcm16(audio))
    session = rec.stream(
        SessionConfig(
            interim_results=False,
            endpoint=EndpointConfig(trailing_silence_ms=90, max_utterance_ms=1500),
        )
    )
    return [r.text for r in session.accept_audio(audio) + session.finish() if r.is_final]


def test_one_server_streams_two_profiles_and_the_base_at_once(profile_server: RunningServer) -> None:
    stub = _stub(profile_server)
    engine = profile_server.handle.service.engine  # type: ignore[union-attr]
    store = engine.profiles.store
    audio = noise(3, seed=11)
    jobs = {"anna": "anna", "ben": "ben", "base": "", "anna-2": "anna"}
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def run(key: str, profile: str) -> None:
        try:
            results[key] = _stream(stub, profile, audio)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    expected = {
        name: _in_process(
            Recognizer(
                load_model(store.model_path(name, "streaming")),
                load_model(store.model_path(name, "offline")),
                Decoder(),
            ),
            audio,
        )
        for name in ("anna", "ben")
    }
    expected["base"] = _in_process(engine.recognizer, audio)
    assert results["anna"] == results["anna-2"] == expected["anna"]
    assert results["ben"] == expected["ben"]
    assert results["base"] == expected["base"]
    assert expected["anna"] != expected["ben"]  # the profiles' models differ
    # One batcher per loaded profile, apart from the base models' batcher.
    cache = engine.profiles
    assert sorted(cache.loaded) == ["anna", "ben"]
    batchers = {id(cache._loaded[n].batcher) for n in cache.loaded} | {id(engine.batcher)}
    assert len(batchers) == 3
    assert all(cache._loaded[n].batcher.items > 0 for n in cache.loaded) and engine.batcher.items > 0
    assert all(cache._loaded[n].streams == 0 for n in cache.loaded)


def test_profile_errors_have_their_status(profile_server: RunningServer) -> None:
    stub = _stub(profile_server)
    for profile, code, says in [
        ("nobody", grpc.StatusCode.NOT_FOUND, "'nobody' not found"),
        ("../anna", grpc.StatusCode.INVALID_ARGUMENT, "malformed profile name"),
        ("new", grpc.StatusCode.FAILED_PRECONDITION, "asr adapt new"),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            _stream(stub, profile, noise(0.5))
        assert info.value.code() == code and says in info.value.details()
        request = asr_pb2.RecognizeRequest(
            config=asr_pb2.RecognitionConfig(
                encoding=asr_pb2.LINEAR16, sample_rate_hertz=16000, profile=profile
            ),
            audio_content=float_to_pcm16(noise(0.5)),
        )
        with pytest.raises(grpc.RpcError) as info:
            stub.Recognize(request)
        assert info.value.code() == code


def test_recognize_and_list_profiles(profile_server: RunningServer) -> None:
    stub = _stub(profile_server)
    config = asr_pb2.RecognitionConfig(
        encoding=asr_pb2.LINEAR16, sample_rate_hertz=16000, model="offline", profile="ben"
    )
    response = stub.Recognize(asr_pb2.RecognizeRequest(config=config, audio_content=float_to_pcm16(noise(1))))
    assert response.audio_duration == pytest.approx(1.0)
    listed = stub.ListProfiles(asr_pb2.ListProfilesRequest())
    assert listed.max_loaded == 2
    assert {p.name: p.adapted for p in listed.profiles} == {"anna": True, "ben": True, "new": False}
    assert {p.name for p in listed.profiles if p.loaded} <= {"anna", "ben"}


def test_least_recently_used_idle_profile_is_evicted(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "profiles")
    for k, name in enumerate(["a1", "a2", "a3"]):
        fake_adapted_profile(store, name, seed=k, blank_share=0.5)
    recognizer = make_tiny_recognizer(tmp_path / "base")
    for server in loopback_server(
        recognizer, profiles_dir=str(store.root), max_profiles=2, int8=False, decode_workers=0
    ):
        stub = _stub(server)
        cache = server.handle.service.engine.profiles  # type: ignore[union-attr]
        for name in ["a1", "a2", "a1", "a3"]:
            _stream(stub, name, noise(0.5))
        assert cache.loaded == ["a1", "a3"] and cache.evictions == 1 and cache.loads == 3


def test_stream_command_sends_the_profile(
    profile_server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from asr.audio import write_wav
    from asr.cli import main

    path = tmp_path / "a.wav"
    write_wav(path, noise(2, seed=4))
    target = f"127.0.0.1:{profile_server.port}"
    assert main(["stream", str(path), "--server", target, "--fast", "--no-interim", "--profile", "ben"]) == 0
    capsys.readouterr()
    assert (
        main(["stream", str(path), "--server", target, "--fast", "--no-interim", "--profile", "nobody"]) != 0
    )
    assert "nobody" in capsys.readouterr().err


def test_transcribe_command_uses_the_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from asr.audio import write_wav
    from asr.cli import main

    store = ProfileStore(tmp_path / "profiles")
    fake_adapted_profile(store, "anna", seed=5, blank_share=0.4)
    path = tmp_path / "a.wav"
    write_wav(path, noise(2, seed=4))
    common = [
        "transcribe",
        str(path),
        "--profiles-dir",
        str(store.root),
        "--no-lm",
        "--quiet",
        "--format",
        "json",
    ]
    assert main([*common, "--profile", "anna"]) == 0
    assert '"text"' in capsys.readouterr().out
    assert main([*common, "--profile", "nobody"]) == 1
    assert "profile 'nobody' not found" in capsys.readouterr().err
    assert main([*common, "--profile", "../anna"]) == 1
    assert "profile name" in capsys.readouterr().err
