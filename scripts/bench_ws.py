"""The load benchmark's client over the Vosk WebSocket protocol (``bench_load.py --transport ws``).

Imported by ``scripts/bench_load.py`` as ``bench_ws`` (the scripts' own folder is first on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
from asr.client import RecognizerClient
from benchlib import StreamRecord, paced_slots, pcm_chunks, server_stats

from asr.audio import SAMPLE_RATE


async def run_stream_ws(address: str, audio: np.ndarray, mode: str, chunk_ms: float) -> StreamRecord:
    """One paced stream over the Vosk WebSocket protocol (``--transport ws``).

    Vosk answers every chunk with one reply, in order, so reply k is the partial (or
    final) for chunk k: its latency is from sending chunk k to receiving reply k. The
    final latency runs from the last chunk to the reply to ``{"eof" : 1}``.
    """
    import websockets

    chunks, ends = pcm_chunks(audio, chunk_ms)
    record = StreamRecord(audio_seconds=len(audio) / SAMPLE_RATE)
    sent: list[float] = []
    lags: list[float] = []
    try:
        async with websockets.connect(address, max_size=None, compression=None) as ws:
            await ws.send(json.dumps({"config": {"sample_rate": SAMPLE_RATE, "words": 1, "model": mode}}))

            async def pace() -> None:
                start = time.monotonic()
                for chunk, end in zip(chunks, ends, strict=True):
                    delay = start + end - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    now = time.monotonic()
                    sent.append(now)
                    lags.append(now - (start + end))
                    await ws.send(chunk)
                await ws.send('{"eof" : 1}')

            sender = asyncio.create_task(pace())
            for k in range(len(chunks) + 1):
                reply = json.loads(await asyncio.wait_for(ws.recv(), record.audio_seconds + 60))
                now = time.monotonic()
                if "error" in reply:
                    record.status, record.detail = "ERROR", str(reply["error"])[:300]
                    break
                if k == len(chunks):  # the eof's final
                    record.finals += 1
                    record.final_ms = 1000 * (now - sent[-1])
                elif "partial" in reply:
                    if reply["partial"]:
                        record.partial_ms.append(1000 * (now - sent[k]))
                else:
                    record.finals += 1
            await sender
    except Exception as e:  # noqa: BLE001 - counted, not fatal
        record.status = f"client:{type(e).__name__}"
        record.detail = str(e)[:300]
    record.lag_ms = [1000 * x for x in lags]
    return record


def run_load_ws(
    port: int,
    clips: list[np.ndarray],
    streams: int,
    seconds: float,
    ramp: float,
    mode: str,
    chunk_ms: float,
    ws_port: int = 0,
) -> tuple[list[StreamRecord], float, float, dict[str, float]]:
    """:func:`run_load_aio` over the Vosk WebSocket protocol on ``ws_port`` (stats over gRPC ``port``)."""
    records: list[StreamRecord] = []

    async def main() -> tuple[float, float]:
        url = f"ws://127.0.0.1:{ws_port}/"
        return await paced_slots(
            lambda clip: run_stream_ws(url, clip, mode, chunk_ms), clips, streams, seconds, ramp, records
        )

    start, end = asyncio.run(main())
    with RecognizerClient(f"127.0.0.1:{port}") as client:  # the same engine's counters
        server = server_stats(client)
    return records, start, end, server
