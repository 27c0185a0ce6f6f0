"""Speaker profiles in the server: loaded lazily, kept in a bounded LRU, batched per profile.

A request names a profile (``RecognitionConfig.profile``, the WebSocket config's
``profile``); :class:`ProfileCache` loads that profile's adapted models on first use (in a
worker thread, so live streams are not held up) and keeps at most ``max_profiles`` loaded,
dropping the least recently used one that has no live stream. Each loaded profile has its
own :class:`~asr.server.batcher.StreamBatcher`: streams of one profile share a batched
model step, and streams of the base models never wait for a profile's batch. The LM and
the decode workers are shared with the base recognizer.

A profile adapted again (new checkpoints on disk) is reloaded when it is next used with no
live stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
from asr.server.batcher import StreamBatcher
from asr.server.engine import RequestError

from asr.api import Recognizer
from asr.checkpoint import load_model
from asr.fusion import load_fusion
from asr.model import CTCModel, quantize_int8
from asr.profiles import ProfileNotFound, ProfileStore, validate_profile_name

log = logging.getLogger(__name__)

BatcherFactory = Callable[[CTCModel], StreamBatcher]


@dataclass
class LoadedProfile:
    """One profile's serving recognizer and its batcher."""

    name: str
    recognizer: Recognizer
    batcher: StreamBatcher
    stamp: tuple[float, float]  # the checkpoints' mtimes when loaded
    streams: int = 0  # live streams using it


class ProfileCache:
    """The loaded profiles of one server process (an LRU of at most ``max_profiles``)."""

    def __init__(
        self,
        store: ProfileStore,
        base: Recognizer,
        max_profiles: int,
        make_batcher: BatcherFactory,
        int8: bool = True,
    ) -> None:
        if max_profiles < 1:
            raise ValueError(f"expected max_profiles >= 1, got {max_profiles}")
        self.store = store
        self.base = base
        self.max_profiles = max_profiles
        self.make_batcher = make_batcher
        self.int8 = int8
        self._loaded: OrderedDict[str, LoadedProfile] = OrderedDict()  # least recently used first
        self._loading: dict[str, asyncio.Task[None]] = {}
        self._retired: list[StreamBatcher] = []  # batchers of evicted profiles, stopped at stop()
        self.loads = 0
        self.evictions = 0

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)

    def _paths(self, name: str) -> tuple[Path, Path]:
        """The adapted checkpoints, or RequestError with the status the request gets."""
        try:
            validate_profile_name(name)
        except ValueError as e:
            raise RequestError(f"malformed profile name: {e}") from None
        try:
            return self.store.adapted_models(name)
        except ProfileNotFound:
            raise RequestError(f"profile {name!r} not found", grpc.StatusCode.NOT_FOUND) from None
        except ValueError as e:
            raise RequestError(str(e), grpc.StatusCode.FAILED_PRECONDITION) from None

    @staticmethod
    def _stamp(paths: tuple[Path, Path]) -> tuple[float, float]:
        return paths[0].stat().st_mtime, paths[1].stat().st_mtime

    def _load(self, name: str, paths: tuple[Path, Path]) -> LoadedProfile:
        """Load a profile's models as the base recognizer serves its own (blocking)."""
        streaming, offline = (load_model(p) for p in paths)
        fusion = load_fusion(streaming, offline, self.store.fusion_path(name)) if self.base.fusion else None
        if self.int8:
            streaming = replace(streaming, model=quantize_int8(streaming.model))
        recognizer = Recognizer(streaming, offline if self.base.offline else None, self.base.decoder, fusion)
        log.info("loaded profile %s (%s)", name, paths[0].parent.parent)
        return LoadedProfile(name, recognizer, self.make_batcher(streaming.model), self._stamp(paths))

    def _fresh(self, name: str, paths: tuple[Path, Path]) -> LoadedProfile | None:
        """The cached profile, unless it is missing or stale and idle."""
        entry = self._loaded.get(name)
        if entry is None:
            return None
        try:
            stale = self._stamp(paths) != entry.stamp
        except OSError:
            stale = False
        if stale and entry.streams == 0:
            del self._loaded[name]
            self._retired.append(entry.batcher)
            return None
        self._loaded.move_to_end(name)
        return entry

    def _make_room(self) -> None:
        """Evict idle profiles (least recently used first) until one more fits."""
        while len(self._loaded) >= self.max_profiles:
            idle = next((n for n, e in self._loaded.items() if e.streams == 0), None)
            if idle is None:
                raise RequestError(
                    f"all {self.max_profiles} profile slots are in use by live streams (asr serve --max-profiles)",
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                )
            entry = self._loaded.pop(idle)
            self._retired.append(entry.batcher)
            self.evictions += 1
            log.info("evicted profile %s (least recently used)", idle)

    async def acquire(self, name: str) -> LoadedProfile:
        """The loaded profile ``name``, loading it in a worker thread if needed; counts a stream.

        Every acquired profile must be :meth:`release`\\ d. A request cancelled while its
        profile loads does not cancel the load: the next request finds it loaded.

        Raises:
            RequestError: INVALID_ARGUMENT (malformed name), NOT_FOUND (no such profile),
                FAILED_PRECONDITION (not adapted), RESOURCE_EXHAUSTED (every slot busy),
                INTERNAL (the checkpoints would not load).
        """
        paths = self._paths(name)
        while True:
            entry = self._fresh(name, paths)
            if entry is not None:
                entry.streams += 1
                await self._stop_retired()
                return entry
            task = self._loading.get(name)
            if task is None:
                self._make_room()  # refuse early when every slot is busy
                task = asyncio.get_running_loop().create_task(self._load_into_cache(name, paths))
                self._loading[name] = task
            await asyncio.shield(task)  # then take it from the cache

    async def _load_into_cache(self, name: str, paths: tuple[Path, Path]) -> None:
        try:
            entry = await asyncio.get_running_loop().run_in_executor(None, self._load, name, paths)
        except (OSError, ValueError, RuntimeError) as e:
            raise RequestError(
                f"profile {name!r} could not be loaded: {e}", grpc.StatusCode.INTERNAL
            ) from None
        finally:
            self._loading.pop(name, None)
        self._make_room()
        self._loaded[name] = entry
        self.loads += 1

    async def _stop_retired(self) -> None:
        while self._retired:
            await self._retired.pop().stop()

    def release(self, entry: LoadedProfile) -> None:
        """A stream of ``entry`` has ended."""
        entry.streams = max(0, entry.streams - 1)

    async def stop(self) -> None:
        """Stop every profile's batcher."""
        for batcher in [e.batcher for e in self._loaded.values()] + self._retired:
            await batcher.stop()
        self._loaded.clear()
        self._retired.clear()
