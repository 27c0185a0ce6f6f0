"""The page's enrollment endpoints (server/enroll_http.py) over HTTP, with tiny base models.

Takes are flite readings of the shipped prompts (the take checks need speech), sent
as the page sends them: PCM16 at 16 kHz in the body, the text and prompt in the query.
The adaptation job runs for real, in its low-priority child process, for two steps.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import websockets
from aiohttp import web
from asr.server.app import RunningServer, ServerConfig, start_in_thread
from asr.server.enroll_http import AdaptJobs, EnrollmentAPI

from asr.adapt import AdaptConfig
from asr.audio import float_to_pcm16, load_audio
from asr.profiles import ProfileStore, enrollment_prompts
from tests.helpers import make_tiny_recognizer, write_tiny_checkpoints

TAKES = 6


@pytest.fixture(scope="module")
def readings(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, str, bytes]]:
    """(prompt index, prompt, 16 kHz PCM16) for the first shipped prompts, read by flite."""
    if shutil.which("flite") is None:
        pytest.skip("needs flite to read the prompts (make setup installs it)")
    folder = tmp_path_factory.mktemp("readings")
    out = []
    for i, text in enumerate(enrollment_prompts(TAKES)):
        wav = folder / f"{i}.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav)], check=True)
        out.append((i, text, float_to_pcm16(load_audio(wav, 16000))))
    return out


async def _serve(api: EnrollmentAPI) -> tuple[web.AppRunner, int]:
    app = web.Application(client_max_size=4 * 2**20)
    api.add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def call(
    session: aiohttp.ClientSession, method: str, url: str, **kw: Any
) -> tuple[int, dict[str, Any]]:
    async with session.request(method, url, **kw) as r:
        return r.status, await r.json()


def test_enroll_retake_adapt_and_progress(tmp_path: Path, readings: list[tuple[int, str, bytes]]) -> None:
    stream_ckpt, offline_ckpt = write_tiny_checkpoints(tmp_path / "base", seed=0, blank_share=0.5)
    store = ProfileStore(tmp_path / "profiles")
    config = AdaptConfig(
        steps=2, eval_every=1, warmup_steps=1, lm=None, threads=1, time_budget_s=60,
        base_streaming=str(stream_ckpt), base_offline=str(offline_ckpt), min_takes=5,
    )  # fmt: skip
    api = EnrollmentAPI(store, AdaptJobs(store, config))

    async def run() -> dict[str, Any]:
        runner, port = await _serve(api)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as s:
                status, body = await call(s, "GET", f"{base}/api/prompts?profile=ann&n=3")
                assert status == 200 and [p["prompt"] for p in body["prompts"]] == [0, 1, 2]
                first = None
                for i, text, pcm in readings:
                    status, body = await call(
                        s, "POST", f"{base}/api/profiles/ann/takes", data=pcm,
                        params={"rate": "16000", "text": text, "prompt": str(i)},
                    )  # fmt: skip
                    assert status == 201, body
                    first = first or body["take"]["take"]
                assert body["profile"]["recordings"] == TAKES
                # A re-take drops the take; its prompt comes back first.
                status, body = await call(s, "DELETE", f"{base}/api/profiles/ann/takes/{first}")
                assert status == 200 and body["profile"]["recordings"] == TAKES - 1
                status, body = await call(s, "GET", f"{base}/api/prompts?profile=ann&n=1")
                assert body["prompts"][0]["prompt"] == 0
                # Refused takes say why and keep nothing.
                silence = np.zeros(32000, np.int16).tobytes()
                status, body = await call(
                    s, "POST", f"{base}/api/profiles/ann/takes", data=silence, params={"text": "hello there"}
                )
                assert status == 422 and body["problems"]
                status, body = await call(s, "POST", f"{base}/api/profiles/ann/takes", data=b"\0" * 3)
                assert status == 400 and "even number" in body["error"]
                status, body = await call(s, "POST", f"{base}/api/profiles/..%2Fetc/takes", data=pcm)
                assert status in (400, 404)
                # One adaptation at a time; progress until done.
                status, body = await call(s, "POST", f"{base}/api/profiles/ann/adapt")
                assert status == 202 and body["job"]["profile"] == "ann"
                status, body = await call(s, "POST", f"{base}/api/profiles/ann/adapt")
                assert status == 409
                seen: set[str] = set()
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline:
                    _, body = await call(s, "GET", f"{base}/api/adapt")
                    job = body["job"]
                    seen.add(job["phase"])
                    if job["state"] in ("done", "failed"):
                        break
                    await asyncio.sleep(0.5)
                _, listing = await call(s, "GET", f"{base}/api/profiles")
                return {"job": job, "seen": seen, "listing": listing}
        finally:
            await runner.cleanup()

    out = asyncio.run(run())
    job = out["job"]
    assert job["state"] == "done", job["error"]
    assert set(job["report"]["models"]) == {"streaming", "offline"}
    assert out["seen"] - {"", "done"}  # progress (features, before, train, eval) arrived while it ran
    assert out["listing"]["profiles"] == [{"name": "ann", "recordings": TAKES - 1, "minutes": pytest.approx(
        out["listing"]["profiles"][0]["minutes"]), "adapted": True}]  # fmt: skip
    assert store.is_adapted("ann")

    # Then use it: a Vosk session that names the profile runs on its adapted models.
    running = start_in_thread(
        ServerConfig(host="127.0.0.1", port=0, ws_port=0, grace_s=0.5, profiles_dir=str(store.root)),
        make_tiny_recognizer(tmp_path / "server-models"),
    )
    try:
        assert running.handle is not None
        address = f"ws://127.0.0.1:{running.handle.ws_port}/"

        async def session() -> tuple[dict[str, Any], int | None]:
            async with websockets.connect(address) as ws:
                await ws.send('{"config": {"sample_rate": 16000, "profile": "ann"}}')
                await ws.send(readings[0][2])
                assert set(json.loads(await ws.recv())) & {"partial", "text"}  # one reply per chunk
                await ws.send('{"eof" : 1}')
                final = json.loads(await ws.recv())
                await ws.wait_closed()
                return final, ws.close_code

        final, code = asyncio.run(session())
        assert code == 1000 and "text" in final
        assert running.handle.service.engine.profiles is not None
        assert running.handle.service.engine.profiles.loaded == ["ann"]
    finally:
        running.stop()


def test_too_few_takes_and_unknown_profiles(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "profiles")
    store.create("bob")
    api = EnrollmentAPI(store)

    async def run() -> list[tuple[int, dict[str, Any]]]:
        runner, port = await _serve(api)
        try:
            async with aiohttp.ClientSession() as s:
                base = f"http://127.0.0.1:{port}"
                return [
                    await call(s, "POST", f"{base}/api/profiles/bob/adapt"),
                    await call(s, "POST", f"{base}/api/profiles/nobody/adapt"),
                    await call(s, "GET", f"{base}/api/profiles/nobody"),
                    await call(s, "DELETE", f"{base}/api/profiles/bob/takes/..%2F..%2Fx.wav"),
                    await call(s, "GET", f"{base}/api/prompts?n=0"),
                    await call(s, "GET", f"{base}/api/adapt"),
                ]
        finally:
            await runner.cleanup()

    few, unknown, missing, escape, bad_n, job = asyncio.run(run())
    assert few[0] == 400 and "at least 5" in few[1]["error"]
    assert unknown[0] == 404 and missing[0] == 404
    assert str(tmp_path) not in unknown[1]["error"]  # no server paths in answers
    assert escape[0] == 400 and bad_n[0] == 400
    assert job == (200, {"job": None})


@pytest.fixture
def guarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    monkeypatch.setenv("ASR_PROFILES", str(tmp_path / "profiles"))
    running = start_in_thread(
        ServerConfig(host="127.0.0.1", port=0, ws_port=0, grace_s=0.5, tokens=["enroll-token"]),
        make_tiny_recognizer(tmp_path / "models"),
    )
    yield running
    running.stop()


def test_enrollment_needs_the_token(guarded: RunningServer) -> None:
    assert guarded.handle is not None
    base = f"http://127.0.0.1:{guarded.handle.ws_port}"

    async def run() -> list[int]:
        async with aiohttp.ClientSession() as s:
            out = []
            for method, path in (("GET", "/api/profiles"), ("GET", "/api/prompts"), ("POST", "/api/profiles/x/adapt"),
                                 ("POST", "/api/profiles/x/takes"), ("GET", "/api/adapt")):  # fmt: skip
                out.append((await call(s, method, base + path))[0])
            out.append(
                (
                    await call(
                        s, "GET", base + "/api/profiles", headers={"Authorization": "Bearer enroll-token"}
                    )
                )[0]
            )
            return out

    assert asyncio.run(run()) == [401, 401, 401, 401, 401, 200]
    assert not os.path.exists(os.environ["ASR_PROFILES"])  # nothing written by refused calls
