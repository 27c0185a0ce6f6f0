"""HTTP endpoints for the page's enrollment flow, on the WebSocket port (asr.server.ws).

    GET    /api/profiles                       the profiles, and the adaptation job
    GET    /api/profiles/{name}                one profile and its takes
    GET    /api/prompts?profile=NAME&n=K        the next K shipped prompts NAME has not read
    POST   /api/profiles/{name}/takes?rate=R&text=T[&prompt=I]
                                               body: PCM16 mono little-endian at R Hz
    DELETE /api/profiles/{name}/takes/{take}   drop a take (a re-take)
    POST   /api/profiles/{name}/adapt          start adapting NAME's models
    GET    /api/adapt                          the job's progress (or the last job's result)

Takes go through :meth:`asr.profiles.ProfileStore.add_recording`, which checks them: a
refused take answers 422 with the reasons. Adaptation (:func:`asr.adapt.adapt_profile`)
runs one job at a time, in a child process at low priority (``os.nice``) with one torch
thread, so live streams keep their latency; the server's event loop only reads its
progress. These routes sit behind the same token check as the WebSocket.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import web

from asr.profiles import ProfileNotFound, ProfileStore, TakeError, enrollment_prompts

if TYPE_CHECKING:  # asr.adapt (training code) loads only when a job starts: serving stays lean
    from asr.adapt import AdaptConfig, AdaptProgress

log = logging.getLogger(__name__)

JOB_NICENESS = 10
MAX_PROMPTS = 50


@dataclass
class JobState:
    """What ``GET /api/adapt`` answers."""

    profile: str
    state: str = "starting"  # starting, running, done, failed
    kind: str = ""  # the model being adapted: streaming or offline
    phase: str = ""  # asr.adapt.AdaptProgress.phase
    step: int = 0
    steps: int = 0
    elapsed_s: float = 0.0
    eta_s: float = 0.0
    heldout_cer: float | None = None
    error: str = ""
    report: dict[str, Any] = field(default_factory=dict)  # before/after per model, when done
    started: float = field(default_factory=time.time)


def _adapt_worker(root: str, name: str, config: AdaptConfig, events: Any) -> None:
    """The child process: adapt ``name`` at low priority; progress and the outcome go to ``events``."""
    os.nice(JOB_NICENESS)
    import torch

    from asr.adapt import adapt_profile

    torch.set_num_threads(1)
    try:
        report = adapt_profile(
            ProfileStore(root), name, config, progress=lambda p: events.put(("progress", p))
        )
        summary = {
            m.kind: {"before": m.before.to_dict(), "after": m.after.to_dict(), "steps": m.steps}
            for m in report.models
        }
        events.put(("done", {"models": summary, "takes": report.takes, "seconds": report.seconds}))
    except Exception as e:  # noqa: BLE001 - reported to the page as the job's error
        events.put(("failed", f"{type(e).__name__}: {e}"))


class AdaptJobs:
    """One adaptation job at a time, in a child process; its state for the page to poll."""

    def __init__(self, store: ProfileStore, config: AdaptConfig | None = None) -> None:
        """``config``: how jobs adapt (default: :class:`asr.adapt.AdaptConfig` with one thread)."""
        self.store = store
        self._config = config
        self._lock = threading.Lock()
        self.job: JobState | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self.on_done: list[Any] = []  # callables(profile name) run when a job succeeds

    @property
    def config(self) -> AdaptConfig:
        if self._config is None:
            from asr.adapt import AdaptConfig

            self._config = AdaptConfig(threads=1)
        return self._config

    def start(self, name: str) -> JobState:
        """Start adapting ``name`` (RuntimeError when a job runs; ValueError for too few takes)."""
        takes = len(self.store.recordings(name))  # ProfileNotFound for an unknown profile
        if takes < self.config.min_takes:
            raise ValueError(
                f"profile {name!r} has {takes} takes; adaptation needs at least {self.config.min_takes}"
            )
        with self._lock:
            if self.job is not None and self.job.state in ("starting", "running"):
                raise RuntimeError(f"an adaptation of {self.job.profile!r} is running; one job at a time")
            self.job = JobState(profile=name)
            context = multiprocessing.get_context("spawn")
            events = context.Queue()
            self._process = context.Process(
                target=_adapt_worker,
                args=(str(self.store.root), name, self.config, events),
                name=f"adapt-{name}",
                daemon=True,
            )
            self._process.start()
            job, process = self.job, self._process
        threading.Thread(
            target=self._follow, args=(job, process, events), daemon=True, name="adapt-job"
        ).start()
        log.info("adaptation of profile %s started (pid %s, nice +%d)", name, process.pid, JOB_NICENESS)
        return replace(job)

    def _follow(self, job: JobState, process: Any, events: Any) -> None:
        """Copy the child's events into ``job`` until it ends."""
        while True:
            try:
                kind, payload = events.get(timeout=0.5)
            except queue.Empty:
                if process.is_alive():
                    continue
                try:  # its last words may still be in the pipe
                    kind, payload = events.get(timeout=1.0)
                except queue.Empty:
                    kind, payload = "failed", f"the adaptation process ended (exit code {process.exitcode})"
            with self._lock:
                if kind == "progress":
                    p: AdaptProgress = payload
                    job.state, job.kind, job.phase = "running", p.kind, p.phase
                    job.step, job.steps, job.elapsed_s, job.eta_s = p.step, p.steps, p.elapsed_s, p.eta_s
                    job.heldout_cer = p.heldout_cer if p.heldout_cer is not None else job.heldout_cer
                    continue
                job.state = kind
                if kind == "done":
                    job.report, job.eta_s = payload, 0.0
                else:
                    job.error = str(payload)
            break
        process.join(5)
        log.info(
            "adaptation of profile %s %s%s", job.profile, job.state, f": {job.error}" if job.error else ""
        )
        if job.state == "done":
            for callback in self.on_done:
                try:
                    callback(job.profile)
                except Exception:  # noqa: BLE001 - a callback must not stop the others
                    log.exception("after adapting %s", job.profile)

    def snapshot(self) -> dict[str, Any] | None:
        with self._lock:
            return None if self.job is None else asdict(self.job)

    def stop(self) -> None:
        """End a running job (the server is stopping); its profile keeps its older models."""
        with self._lock:
            process = self._process
        if process is not None and process.is_alive():
            process.terminate()
            process.join(5)


class EnrollmentAPI:
    """The routes above, on one :class:`ProfileStore` and one :class:`AdaptJobs`."""

    def __init__(self, store: ProfileStore, jobs: AdaptJobs | None = None) -> None:
        self.store = store
        self.jobs = jobs or AdaptJobs(store)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/profiles", self._profiles)
        app.router.add_get("/api/profiles/{name}", self._profile)
        app.router.add_get("/api/prompts", self._prompts)
        app.router.add_post("/api/profiles/{name}/takes", self._add_take)
        app.router.add_delete("/api/profiles/{name}/takes/{take}", self._drop_take)
        app.router.add_post("/api/profiles/{name}/adapt", self._adapt)
        app.router.add_get("/api/adapt", self._job)
        app.on_shutdown.append(self._shutdown)

    async def _shutdown(self, app: web.Application) -> None:
        self.jobs.stop()

    def _info(self, name: str) -> dict[str, Any]:
        info = self.store.info(name)
        return {
            "name": name,
            "recordings": info.recordings,
            "minutes": round(info.minutes, 2),
            "adapted": info.adapted,
        }

    async def _profiles(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"profiles": [self._info(n) for n in self.store.names()], "job": self.jobs.snapshot()}
        )

    async def _profile(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            takes = [
                {"take": os.path.basename(e["audio_filepath"]), "text": e["text"], "duration": e["duration"],
                 "prompt": e.get("prompt")}
                for e in self.store.recordings(name)
            ]  # fmt: skip
            return web.json_response({**self._info(name), "takes": takes})
        except ProfileNotFound:
            return _error(404, f"no profile {name!r}")
        except ValueError as e:
            return _error(400, str(e))

    async def _prompts(self, request: web.Request) -> web.Response:
        name = request.query.get("profile", "")
        try:
            n = int(request.query.get("n", "10"))
            if not 1 <= n <= MAX_PROMPTS:
                raise ValueError(f"expected n in 1..{MAX_PROMPTS}, got {n}")
            done = self.store.recorded_prompts(name) if name and self.store.exists(name) else set()
        except ValueError as e:
            return _error(400, str(e))
        prompts = [{"prompt": i, "text": t} for i, t in enumerate(enrollment_prompts()) if i not in done]
        return web.json_response({"prompts": prompts[:n], "left": len(prompts)})

    async def _add_take(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            rate = int(request.query.get("rate", "16000"))
            text = request.query.get("text", "")
            prompt = int(request.query["prompt"]) if request.query.get("prompt") else None
            body = await request.read()
            if len(body) % 2:
                raise ValueError(f"expected PCM16 samples (an even number of bytes), got {len(body)} bytes")
            audio = np.frombuffer(body, dtype="<i2")
            entry = self.store.add_recording(name, audio, rate, text, prompt=prompt, source="web")
        except TakeError as e:
            return web.json_response({"error": f"take refused: {e}", "problems": e.problems}, status=422)
        except ValueError as e:
            return _error(400, str(e))
        take = {
            "take": os.path.basename(entry["audio_filepath"]),
            "text": entry["text"],
            "duration": entry["duration"],
        }
        return web.json_response({"take": take, "profile": self._info(name)}, status=201)

    async def _drop_take(self, request: web.Request) -> web.Response:
        name, take = request.match_info["name"], request.match_info["take"]
        try:
            if os.path.basename(take) != take or not take.endswith(".wav"):
                raise ValueError(f"expected a take name such as 00001.wav, got {take!r}")
            self.store.remove_recording(name, f"audio/{take}")
        except ProfileNotFound:
            return _error(404, f"no profile {name!r}")
        except ValueError as e:
            return _error(400, str(e))
        return web.json_response({"profile": self._info(name)})

    async def _adapt(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            job = self.jobs.start(name)
        except ProfileNotFound:
            return _error(404, f"no profile {name!r}")
        except RuntimeError as e:
            return _error(409, str(e))
        except ValueError as e:
            return _error(400, str(e))
        return web.json_response({"job": asdict(job)}, status=202)

    async def _job(self, request: web.Request) -> web.Response:
        return web.json_response({"job": self.jobs.snapshot()})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
