"""One batched LSTM step for every live stream that has audio pending.

The batcher is a step function ``(frames, state) -> (log_probs, state)`` shared by many
streams (:meth:`StreamBatcher.step`): each stream submits its ready feature frames and
its LSTM state; the batcher waits until ``max_batch`` submissions are queued or
``max_wait_ms`` has passed since the first one, runs the model once for the whole batch
(:func:`asr.inference.stream_step_batch`) and returns each stream its log-probs and new
state. It keeps no stream's state; the stream keeps it (``StreamingSession.consume``).
Chunks of different lengths are padded and passed with their lengths: the model then
packs the batch, so no padding ever reaches a stream's outputs or state. The model runs
in a worker thread; torch releases the GIL while it computes. One batcher serves one
model: a server with several models has a batcher per model.

Streams may also submit raw 16 kHz samples with their front end
(:meth:`StreamBatcher.step_audio`): the batch then computes every stream's log-mel in one
call (:func:`asr.features.log_mel_many`) before the LSTM step. Per stream and chunk that costs a fraction of a separate log-mel
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

from asr.features import log_mel_many
from asr.frontend import FrontEnd
from asr.inference import stream_step_batch
from asr.model import CTCModel, LSTMState

log = logging.getLogger(__name__)

StepOutput = tuple[torch.Tensor, np.ndarray, LSTMState | None]  # (frames, log_probs, state)


@dataclass
class _Job:
    state: LSTMState | None  # the stream's LSTM state before this step
    frames: torch.Tensor | None  # (T, n_mels), T a multiple of the stack; None: compute from `audio`
    future: asyncio.Future[StepOutput]
    frontend: FrontEnd | None = None  # the stream's front end, for `audio` jobs
    audio: np.ndarray | None = None  # 16 kHz samples from FrontEnd.take_audio
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

    async def step(
        self, frames: torch.Tensor, state: LSTMState | None
    ) -> tuple[np.ndarray, LSTMState | None]:
        """The step function, batched with other streams: ``(frames, state) -> (log_probs, state)``.

        Args:
            frames: a stream's ``(T, n_mels)`` normalised frames, ``T`` a multiple of the stack.
            state: the LSTM state its previous step returned (None at its start).
        """
        if len(frames) == 0:
            return np.zeros((0, self.model.config.vocab_size), np.float32), state
        _, log_probs, new_state = await self._submit(_Job(state, frames, self._future()))
        return log_probs, new_state

    async def step_audio(self, frontend: FrontEnd, audio: np.ndarray, state: LSTMState | None) -> StepOutput:
        """Log-mel and model step for ``audio`` (from ``frontend.take_audio``), batched.

        The stream's ``frontend`` takes the log-mel (:meth:`FrontEnd.frames_from_mels`) in
        the batch's worker thread; the stream must not use it until this returns.

        Returns:
            the model-ready frames (as ``frontend.push_audio`` would return), their
            log-probs, and the LSTM state after them.
        """
        if len(audio) == 0:  # no complete frame: nothing to compute, nothing queued
            frames = frontend.frames_from_mels(torch.zeros(0, self.model.config.n_mels))
            return frames, np.zeros((0, self.model.config.vocab_size), np.float32), state
        return await self._submit(_Job(state, None, self._future(), frontend, audio))

    @staticmethod
    def _future() -> asyncio.Future[StepOutput]:
        return asyncio.get_running_loop().create_future()

    async def _submit(self, job: _Job) -> StepOutput:
        # A list and two events, not an asyncio.Queue with a wait_for per job: a few
        # awaits per batch instead of a task and a timer per chunk.
        self.start()
        assert self._wakeup is not None and self._full is not None
        self._pending.append(job)
        self._wakeup.set()
        if len(self._pending) >= self.max_batch:
            self._full.set()
        return await job.future

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
            # The batch takes at most max_batch jobs, oldest first. A stream waits for each
            # step's state before it submits the next, so it has one job queued at a time.
            now, later = self._pending[: self.max_batch], self._pending[self.max_batch :]
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

    def _forward(self, jobs: list[_Job]) -> list[StepOutput]:
        """One batched forward pass; rows of different lengths are packed by the model."""
        started = time.perf_counter()
        with torch.inference_mode():
            frames = self._frames(jobs)
            stepped = stream_step_batch(self.model, frames, [job.state for job in jobs])
        running = sum(1 for f in frames if len(f))
        self.batches += 1
        self.items += running
        self.last_batch_size = running
        self.compute_seconds += time.perf_counter() - started
        return [(f, lp, state) for f, (lp, state) in zip(frames, stepped, strict=True)]

    @staticmethod
    def _frames(jobs: list[_Job]) -> list[torch.Tensor]:
        """Each job's model-ready frames; log-mel of all audio jobs in one call."""
        audio = [
            (job.frontend, job.audio) for job in jobs if job.frontend is not None and job.audio is not None
        ]
        frames = [job.frames for job in jobs]
        if audio:
            # Streams of one model share its normalizer: normalise the batch in one op.
            normalizer = audio[0][0].normalizer
            shared = all(frontend.normalizer is normalizer for frontend, _ in audio)
            mels = iter(
                log_mel_many([a for _, a in audio], audio[0][0].features, normalizer if shared else None)
            )
            for k, job in enumerate(jobs):
                if job.frontend is not None and job.audio is not None:
                    frames[k] = job.frontend.frames_from_mels(next(mels), normalized=shared)
        return [f if f is not None else torch.zeros(0) for f in frames]
