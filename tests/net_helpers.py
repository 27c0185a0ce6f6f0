"""Shared helpers for the tests that run a server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from asr.server.app import RunningServer, ServerConfig, start_in_thread

from asr.api import Recognizer


def loopback_server(recognizer: Recognizer, **changes: Any) -> Iterator[RunningServer]:
    """A server on 127.0.0.1 (free ports, 0.5 s grace) with ``changes`` to its
    :class:`ServerConfig`, yielded once and stopped after; for ``yield from`` in a fixture
    or ``for server in ...`` in a test."""
    server = start_in_thread(ServerConfig(host="127.0.0.1", port=0, grace_s=0.5, **changes), recognizer)
    try:
        yield server
    finally:
        server.stop()
