"""One batched LSTM step for every live stream that has audio pending.

Streams submit their ready feature frames; the batcher waits until ``max_batch``
submissions are queued or ``max_wait_ms`` has passed since the first one, stacks the
streams' LSTM states, runs the model once for the whole batch and scatters log-probs
and states back. Chunks of different lengths are padded and passed with their lengths:
the model then packs the batch, so no padding ever reaches a stream's outputs or state.
The model runs in a worker thread; torch releases the GIL while it computes.

Streams may also submit raw 16 kHz samples (:meth:`StreamBatcher.step_audio`): the
batch then computes every stream's log-mel in one call (:func:`asr.features.log_mel_many`)
before the LSTM step. Per stream and chunk that costs a fraction of a separate log-mel
call, which was a third of the server's busy time at 50 streams.

One call per batch matters on CPU: a step's cost is mostly reading the LSTM weights
once per time step, whatever the batch size, so splitting a batch by chunk length
(100 ms chunks give 3- and 4-step chunks) nearly doubled it. The packed call also runs
torch's native LSTM instead of oneDNN's, which re-lays out the weights on every call
(several ms at these sizes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from asr.features import log_mel_many
from asr.model import CTCModel
from asr.streaming import StreamingSession

log = logging.getLogger(__name__)


@dataclass
class _Job:
    session: StreamingSession
    frames: torch.Tensor | None  # (T, n_mels), T a multiple of the stack; None: compute from `audio`
    future: asyncio.Future[tuple[torch.Tensor, np.ndarray]]
    audio: np.ndarray | None = None  # 16 kHz samples from StreamingSession.take_audio
    submitted: float = field(default_factory=time.perf_counter)


class StreamBatcher:
    """Gathers model steps of many sessions into batched forward passes."""

    def __init__(self, model: CTCModel, max_batch: int = 64, max_wait_ms: float = 10.0) -> None:
        if max_batch < 1:
            raise ValueError(f"expected max_batch >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"expected max_wait_ms >= 0, got {max_wait_ms}")
        self.model = model
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._pending: list[_Job] = []  # submitted, not yet in a batch, oldest first
        self._wakeup: asyncio.Event | None = None  # set while _pending has jobs
        self._full: asyncio.Event | None = None  # set once _pending holds max_batch jobs
        self._task: asyncio.Task[None] | None = None
        # Its own thread: in the loop's default pool a batch could wait behind finals
        # (beam searches) that block their threads, stalling every stream at once.
        self._executor: ThreadPoolExecutor | None = None
        self.batches = 0
        self.items = 0
        self.last_batch_size = 0
        self.compute_seconds = 0.0

    def start(self) -> None:
        if self._task is None:
            self._wakeup, self._full = asyncio.Event(), asyncio.Event()
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="stream-batcher")
            if self._pending:
                self._wakeup.set()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="stream-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def step(self, session: StreamingSession, frames: torch.Tensor) -> np.ndarray:
        """Run the model on ``frames`` for ``session`` (batched with other streams)."""
        if len(frames) == 0:
            return np.zeros((0, self.model.config.vocab_size), np.float32)
        return (await self._submit(session, frames, None))[1]

    async def step_audio(
        self, session: StreamingSession, audio: np.ndarray
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Log-mel and model step for ``audio`` (from ``session.take_audio``), batched.

        Returns:
            the session's model-ready frames (as ``session.push_audio`` would return)
            and their log-probs.
        """
        if len(audio) == 0:  # no complete frame: nothing to compute, nothing queued
            frames = session.frames_from_mels(torch.zeros(0, self.model.config.n_mels))
            return frames, np.zeros((0, self.model.config.vocab_size), np.float32)
        return await self._submit(session, None, audio)

    async def _submit(
        self, session: StreamingSession, frames: torch.Tensor | None, audio: np.ndarray | None
    ) -> tuple[torch.Tensor, np.ndarray]:
        # A list and two events, not an asyncio.Queue with a wait_for per job: a few
        # awaits per batch instead of a task and a timer per chunk.
        self.start()
        assert self._wakeup is not None and self._full is not None
        future: asyncio.Future[tuple[torch.Tensor, np.ndarray]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(session, frames, future, audio=audio))
        self._wakeup.set()
        if len(self._pending) >= self.max_batch:
            self._full.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None and self._full is not None
        while True:
            await self._wakeup.wait()
            # Wait for a full batch, at most max_wait after the oldest job was submitted.
            wait = self._pending[0].submitted + self.max_wait - time.perf_counter()
            if len(self._pending) < self.max_batch and wait > 0:
                try:
                    async with asyncio.timeout(wait):
                        await self._full.wait()
                except TimeoutError:
                    pass
            # A session may appear twice (two chunks queued): later chunks wait for the next round.
            seen: set[int] = set()
            now: list[_Job] = []
            later: list[_Job] = []
            for job in self._pending:
                if len(now) < self.max_batch and id(job.session) not in seen:
                    now.append(job)
                else:
                    later.append(job)
                seen.add(id(job.session))
            self._pending = later
            self._full.clear()
            if len(later) >= self.max_batch:
                self._full.set()
            if not later:
                self._wakeup.clear()
            try:
                outputs = await loop.run_in_executor(self._executor, self._forward, now)
            except Exception as e:  # noqa: BLE001 - report to every waiting stream
                log.exception("batched model step failed")
                for job in now:
                    if not job.future.done():
                        job.future.set_exception(e)
                continue
            for job, out in zip(now, outputs, strict=True):
                if not job.future.done():
                    job.future.set_result(out)

    def _forward(self, jobs: list[_Job]) -> list[tuple[torch.Tensor, np.ndarray]]:
        """One batched forward pass; rows of different lengths are packed by the model."""
        started = time.perf_counter()
        with torch.inference_mode():
            frames = self._frames(jobs)
            empty = np.zeros((0, self.model.config.vocab_size), np.float32)
            outputs = [(f, empty) for f in frames]
            run = [k for k, f in enumerate(frames) if len(f)]
            if run:
                lengths = torch.tensor([len(frames[k]) for k in run])
                x = pad_sequence([frames[k] for k in run], batch_first=True)  # (B, T_max, M)
                states = [jobs[k].session.state or self.model.initial_state(1) for k in run]
                h = torch.cat([s[0] for s in states], dim=1)  # (L, B, H)
                c = torch.cat([s[1] for s in states], dim=1)
                lp, out_lengths, (h_new, c_new) = self.model(x, lengths, (h, c))  # lp: (B, T', V)
                # One split and one numpy view for the whole batch, not ops per row:
                # each torch call would release and re-take the GIL the event loop holds.
                h_rows, c_rows = h_new.split(1, dim=1), c_new.split(1, dim=1)
                lp_np = lp.numpy()
                for row, (k, steps) in enumerate(zip(run, out_lengths.tolist(), strict=True)):
                    jobs[k].session.state = (h_rows[row], c_rows[row])
                    outputs[k] = (frames[k], lp_np[row, :steps])
        self.batches += 1
        self.items += len(run)
        self.last_batch_size = len(run)
        self.compute_seconds += time.perf_counter() - started
        return outputs

    @staticmethod
    def _frames(jobs: list[_Job]) -> list[torch.Tensor]:
        """Each job's model-ready frames; log-mel of all audio jobs in one call."""
        audio = [job for job in jobs if job.frames is None and job.audio is not None]
        if audio:
            # Streams of one model share its normalizer: normalise the batch in one op.
            normalizer = audio[0].session.normalizer
            shared = all(job.session.normalizer is normalizer for job in audio)
            mels = log_mel_many(
                [job.audio for job in audio if job.audio is not None],
                audio[0].session.features.config,
                normalizer if shared else None,
            )
            for job, mel in zip(audio, mels, strict=True):
                job.frames = job.session.frames_from_mels(mel, normalized=shared)
        return [job.frames if job.frames is not None else torch.zeros(0) for job in jobs]
