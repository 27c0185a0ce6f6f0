"""Beam searches in decode worker processes, fed incrementally as streams run.

pyctcdecode is pure Python, so in a server its searches would hold the GIL that the
event loop needs for every message. :class:`PooledDecoder` runs them in ``workers``
spawned processes, each with its own copy of the decoder and LM.

A streaming final is searched *as the audio arrives*: each stream's utterance is a
search kept open in one worker (:class:`RemoteSearch`). Every model step sends the
stream's new log-probs there, the worker searches them meanwhile, and at the
endpoint it only has to score the sentence end. So a
final no longer waits for a whole utterance's search, and at a few hundred streams
the finals no longer queue behind each other in the worker.

Messages to a worker are batched: extends wait up to ``FLUSH_SECONDS`` and go as one
pipe write; a request that someone waits for (a result, a whole-utterance search)
goes at once, after the extends queued before it, so a stream's frames always reach
its search in order. Each worker has a sender and a reader thread on this side;
callers block on a future with the GIL released.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from asr.decoding import (
    Decoder,
    DecoderProtocol,
    Hypothesis,
    LocalSearch,
    UtteranceSearch,
    check_log_probs,
)

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.01  # longest an extend waits before it is sent
BACKGROUND_FRAMES = 16  # a worker searches a stream's buffered frames once it has this many (480 ms)


def _worker_main(spec: dict[str, Any], inbox: Connection, outbox: Connection) -> None:
    """A decode worker: searches kept open by key, whole-utterance searches on request.

    Requests someone waits for come first. Extends only buffer their log-probs; the
    searching happens in the background, a stream's frames once there are
    ``BACKGROUND_FRAMES`` of them, whenever no message is waiting. So a final waits for
    at most that many of its own stream's frames, never for other streams' backlog.
    """
    decoder = Decoder.from_spec(spec)
    # The LM's character trie is hundreds of thousands of long-lived objects: keep the
    # garbage collector's full collections from walking them (pauses of up to 0.6 s).
    gc.collect()
    gc.freeze()
    searches: dict[int, LocalSearch] = {}
    behind: dict[int, None] = {}  # streams with buffered log-probs, oldest first
    while True:
        if behind and not inbox.poll():
            key = next(iter(behind))
            del behind[key]
            search = searches.get(key)
            # Frames in bunches: each search call has a fixed cost; result() takes the rest.
            if search is not None and search.pending_frames >= BACKGROUND_FRAMES:
                try:
                    search.advance()
                except Exception:  # noqa: BLE001 - the stream's result() reports it
                    log.exception("decode worker: search %d failed", key)
            continue
        try:
            batch = inbox.recv()
        except EOFError:
            return
        if batch is None:
            return
        replies: list[tuple[Any, bool, Any]] = []
        for message in batch:
            kind = message[0]
            try:
                if kind == "extend":
                    _, key, log_probs = message
                    search = searches.get(key)
                    if search is not None:
                        search.extend(log_probs)
                        behind[key] = None
                elif kind == "open":
                    _, key, hotwords, hotword_weight, n_best = message
                    searches[key] = decoder.search(hotwords, hotword_weight, n_best, eager=False)
                elif kind == "close":
                    searches.pop(message[1], None)
                    behind.pop(message[1], None)
                elif kind == "result":
                    _, request, key, time_offset = message
                    search = searches.get(key)
                    if search is None:
                        replies.append((request, False, f"no open search {key}"))
                    else:
                        replies.append((request, True, search.result(time_offset)))
                        behind.pop(key, None)
                elif kind == "beam":
                    _, request, args = message
                    replies.append((request, True, decoder.beam(*args)))
                elif kind == "ping":
                    replies.append((message[1], True, len(searches)))
                else:
                    log.error("decode worker: unknown message %r", kind)
            except Exception as e:  # noqa: BLE001 - reported to the waiting caller
                log.exception("decode worker: %s failed", kind)
                if kind in ("result", "beam", "ping"):
                    replies.append((message[1], False, f"{type(e).__name__}: {e}"))
        if replies:
            outbox.send(replies)


def _subprocess_main(inbox_fd: int, outbox_fd: int) -> None:
    """Entry point of a worker started by :class:`_Worker`: the spec comes first on the inbox."""
    inbox = Connection(inbox_fd, writable=False)
    outbox = Connection(outbox_fd, readable=False)
    spec = inbox.recv()
    _worker_main(spec, inbox, outbox)


# The worker's whole program: it imports asr and nothing of the parent's (see _Worker).
_WORKER_CODE = (
    "import json, os, sys; sys.path[:0] = json.loads(os.environ['ASR_WORKER_PATH']); "
    "from asr.decode_pool import _subprocess_main; _subprocess_main({inbox}, {outbox})"
)


class _Worker:
    """One decode process and the two threads that talk to it.

    The process is a plain ``python -c`` child, not a ``multiprocessing`` one: the spawn
    start method runs the parent's ``__main__`` script again in the child, so an app that
    starts the server at the top level of a script without an ``if __name__ ==
    "__main__":`` guard would start another server there and hang. It gets the parent's
    ``sys.path`` and talks over two pipes with ``multiprocessing.connection`` messages; it
    exits when the parent's end of its inbox closes, the parent's death included.
    """

    def __init__(self, spec: dict[str, Any], name: str) -> None:
        inbox_read, inbox_write = os.pipe()
        outbox_read, outbox_write = os.pipe()
        env = dict(os.environ, ASR_WORKER_PATH=json.dumps([p for p in sys.path if p]))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_CODE.format(inbox=inbox_read, outbox=outbox_write)],
                pass_fds=(inbox_read, outbox_write),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        finally:
            os.close(inbox_read)
            os.close(outbox_write)
        self.name = name
        self._inbox = Connection(inbox_write, readable=False)
        self._replies = Connection(outbox_read, writable=False)
        self._inbox.send(spec)
        self._lock = threading.Condition()
        self._queued: list[tuple[Any, ...]] = []
        self._urgent = False
        self._closed = False
        self._futures: dict[int, Future[Any]] = {}
        self._requests = itertools.count()
        self._sender = threading.Thread(target=self._send_loop, name=f"{name}-send", daemon=True)
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-read", daemon=True)
        self._sender.start()
        self._reader.start()

    def post(self, message: tuple[Any, ...]) -> None:
        """Queue a message that nobody waits for (sent within FLUSH_SECONDS)."""
        with self._lock:
            if not self._closed:
                self._queued.append(message)

    def request(self, kind: str, *args: Any) -> Future[Any]:
        """Send a request now (after what is queued); its reply resolves the future."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                future.set_exception(RuntimeError("decode worker is closed"))
                return future
            request = next(self._requests)
            self._futures[request] = future
            self._queued.append((kind, request, *args))
            self._urgent = True
            self._lock.notify()
        return future

    def _send_loop(self) -> None:
        while True:
            with self._lock:
                if not self._urgent and not self._closed:
                    self._lock.wait(FLUSH_SECONDS)
                batch, self._queued, self._urgent = self._queued, [], False
                closed = self._closed
            try:
                if batch:
                    self._inbox.send(batch)
                if closed:
                    self._inbox.send(None)
                    return
            except (OSError, ValueError):  # the worker is gone; the reader fails the futures
                return

    def _read_loop(self) -> None:
        while True:
            try:
                replies = self._replies.recv()
            except (EOFError, OSError):
                break
            for request, ok, payload in replies:
                with self._lock:
                    future = self._futures.pop(request, None)
                if future is None:
                    continue
                if ok:
                    future.set_result(payload)
                else:
                    future.set_exception(RuntimeError(f"decode worker: {payload}"))
        with self._lock:
            waiting, self._futures = list(self._futures.values()), {}
            self._closed = True
        for future in waiting:
            future.set_exception(RuntimeError("decode worker exited"))

    def outstanding(self) -> int:
        """Requests sent or queued whose replies have not come back."""
        with self._lock:
            return len(self._futures)

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._sender.join(timeout)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(timeout)
        self._reader.join(timeout)
        self._inbox.close()
        self._replies.close()


class RemoteSearch(UtteranceSearch):
    """:class:`asr.decoding.UtteranceSearch` kept open in a decode worker.

    ``extend`` costs this process a shape check and a queue append; the worker
    filters blank frames and searches meanwhile. The worker's copy is dropped by
    :meth:`close`, or when this object is garbage-collected.
    """

    def __init__(
        self,
        worker: _Worker,
        key: int,
        vocab_size: int,
        hotwords: Sequence[str] | None,
        hotword_weight: float | None,
        n_best: int,
    ) -> None:
        self._worker = worker
        self._key = key
        self._vocab_size = vocab_size
        self._open = (tuple(hotwords or ()), hotword_weight, n_best)
        self._frames = 0
        self._finalizer: weakref.finalize | None = None

    def extend(self, log_probs: np.ndarray) -> None:
        lp = check_log_probs(log_probs, self._vocab_size)
        if len(lp) == 0:
            return
        if self._finalizer is None:  # opened lazily: a stream that ends silent costs the worker nothing
            self._worker.post(("open", self._key, *self._open))
            self._finalizer = weakref.finalize(self, self._worker.post, ("close", self._key))
        self._worker.post(("extend", self._key, lp))
        self._frames += len(lp)

    def result(self, time_offset: float = 0.0) -> list[Hypothesis]:
        if self._frames == 0:
            return [Hypothesis(text="", confidence=1.0)]
        result: list[Hypothesis] = self._worker.request("result", self._key, time_offset).result()
        return result

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()


class PooledDecoder:
    """A decoder whose beam searches run in worker processes.

    It implements :class:`asr.decoding.DecoderProtocol`, as :class:`Decoder` does. Greedy
    decoding stays in the calling process. A streaming search stays in one worker (chosen round-robin);
    whole-utterance searches (offline and two-pass finals) go round-robin too.
    """

    def __init__(self, decoder: DecoderProtocol, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"expected workers >= 1, got {workers}")
        self.local = decoder
        self.vocab = decoder.vocab
        self.options = decoder.options
        self.lm_path = decoder.lm_path
        self.workers = workers
        spec = decoder.spec()
        self._workers = [_Worker(spec, f"decode-worker-{k}") for k in range(workers)]
        self._keys = itertools.count()
        # Wait for every worker now (LM loading takes seconds), not on the first final.
        for worker in self._workers:
            worker.request("ping").result()

    @property
    def has_lm(self) -> bool:
        return self.local.has_lm

    def spec(self) -> dict[str, Any]:
        return self.local.spec()

    def with_options(self, **changes: Any) -> DecoderProtocol:
        """The pool itself when nothing changes; else an in-process :class:`Decoder` with the
        new options (the workers keep the decoder they were started with)."""
        if all(getattr(self.options, name) == value for name, value in changes.items()):
            return self
        return self.local.with_options(**changes)

    def greedy(self, log_probs: np.ndarray, time_offset: float = 0.0) -> Hypothesis:
        return self.local.greedy(log_probs, time_offset)

    def _next(self) -> tuple[int, _Worker]:
        key = next(self._keys)
        return key, self._workers[key % len(self._workers)]

    def search(
        self,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float | None = None,
        n_best: int = 1,
        eager: bool = True,
    ) -> UtteranceSearch:
        """An utterance search kept open in a worker (always eager: that is the point)."""
        key, worker = self._next()
        return RemoteSearch(worker, key, len(self.vocab.labels), hotwords, hotword_weight, n_best)

    def beam(
        self,
        log_probs: np.ndarray,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float | None = None,
        n_best: int = 1,
        time_offset: float = 0.0,
    ) -> list[Hypothesis]:
        result: list[Hypothesis] = self.beam_async(
            log_probs, hotwords, hotword_weight, n_best, time_offset
        ).result()
        return result

    def beam_async(
        self,
        log_probs: np.ndarray,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float | None = None,
        n_best: int = 1,
        time_offset: float = 0.0,
    ) -> Future[list[Hypothesis]]:
        """:meth:`beam` in the worker with the fewest requests outstanding; its future."""
        args = (
            np.asarray(log_probs, dtype=np.float32),
            tuple(hotwords or ()),
            hotword_weight,
            n_best,
            time_offset,
        )
        worker = min(self._workers, key=_Worker.outstanding)
        return worker.request("beam", args)

    def open_searches(self) -> int:
        """Searches held open in the workers (for tests and stats)."""
        return sum(int(w.request("ping").result()) for w in self._workers)

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
