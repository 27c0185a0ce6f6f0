"""End to end on loopback (port 0) with the SHIPPED models: real speech in, the right text out.

A held-out test voice (flite ``rms``; the corpus never trains on it) speaks sentences
that are not in the training text; the server must return exactly those words, streamed
in two-pass mode and sent whole to ``Recognize`` in offline mode. These tests measure
the shipped checkpoints, which get all six cases exactly right with the LM (see
models/offline/MODEL_CARD.md for their accuracy): a new checkpoint that loses one of these
sentences fails here.

The rest of the service contract is tested on tiny models in tests/test_server.py, not
repeated here:

* partials arrive before the audio ends: ``test_partials_arrive_before_the_audio_ends``;
* status codes: ``test_bad_streams_are_invalid_argument`` (audio before config, bad
  rate, unknown model, ...), ``test_oversize_message_is_resource_exhausted``,
  ``test_token_auth`` (missing or wrong token: UNAUTHENTICATED),
  ``test_stream_limit_is_resource_exhausted``, ``test_max_stream_seconds_is_out_of_range``;
* a client cancel returns the live-stream count to 0: ``test_cancel_mid_stream_releases_the_stream``;
* health reports SERVING: ``test_health_reports_serving``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from asr.client import RecognizerClient, StreamOptions
from asr.server.app import RunningServer, ServerConfig, start_in_thread

from asr.checkpoint import MODELS_DIR, resolve_model_path
from asr.corpus.voices import Prosody, Voice, synthesize
from asr.text import normalize_text

pytestmark = pytest.mark.skipif(
    not (resolve_model_path("streaming").exists() and resolve_model_path("offline").exists()),
    reason="shipped models missing",
)

TEST_VOICE = Voice("flite", "rms", "rms")  # held out of training (see asr/corpus/voices.py)
# Chosen up front: short, plain, and absent from data/corpus/text/{train,dev,test}.txt.
SENTENCES = ["please close the door", "the water is very cold", "we will meet again tomorrow"]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = start_in_thread(ServerConfig(host="127.0.0.1", port=0, grace_s=0.5))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[RecognizerClient]:
    with RecognizerClient(f"127.0.0.1:{server.port}", timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each sentence as a wav file, spoken by the held-out voice at its default prosody."""
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed (apt install flite)")
    folder = tmp_path_factory.mktemp("spoken")
    paths = {}
    for i, sentence in enumerate(SENTENCES):
        paths[sentence] = folder / f"{i}.wav"
        synthesize(TEST_VOICE, sentence, Prosody(), paths[sentence])
    return paths


def test_serves_the_shipped_models_with_the_lm(client: RecognizerClient) -> None:
    models = {m.name: m for m in client.list_models()}
    assert list(models) == ["stream", "two-pass", "offline"]
    assert all(m.language_model for m in models.values())
    assert Path(models["stream"].checkpoint) == resolve_model_path("streaming")
    assert Path(models["offline"].checkpoint) == resolve_model_path("offline")
    assert (MODELS_DIR / "lm").is_dir()


@pytest.mark.parametrize("sentence", SENTENCES)
def test_two_pass_stream_gets_the_sentence(
    client: RecognizerClient, spoken: dict[str, Path], sentence: str
) -> None:
    options = StreamOptions(model="two-pass", interim_results=True)
    events = list(client.stream(spoken[sentence], options, realtime=True))
    heard = normalize_text(" ".join(e.text for e in events if e.is_final))
    assert heard == normalize_text(sentence)


@pytest.mark.parametrize("sentence", SENTENCES)
def test_offline_recognize_gets_the_sentence(
    client: RecognizerClient, spoken: dict[str, Path], sentence: str
) -> None:
    events = client.recognize(spoken[sentence], StreamOptions(model="offline"))
    heard = normalize_text(" ".join(e.text for e in events))
    assert heard == normalize_text(sentence)
