"""gRPC client library for the asr.v1.Recognizer service, with file/array/microphone sources.

Installed as ``asr.client``; see :mod:`asr.client.client` for an example. The names
below are imported on first use, so that ``asr --help`` (which builds the
``asr stream`` parser from :mod:`asr.client.cli`) does not pay for grpc and numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asr.client.client import (
        ModelInfo,
        RecognizerClient,
        RecognizerError,
        ServerStats,
        SpeechEvent,
        StreamCall,
        StreamEvent,
        StreamOptions,
        Word,
    )
    from asr.client.sources import ArraySource, FileSource, MicrophoneError, MicrophoneSource, pace

__all__ = [
    "ArraySource",
    "FileSource",
    "MicrophoneError",
    "MicrophoneSource",
    "ModelInfo",
    "RecognizerClient",
    "RecognizerError",
    "ServerStats",
    "SpeechEvent",
    "StreamCall",
    "StreamEvent",
    "StreamOptions",
    "Word",
    "pace",
]
_SOURCES = {"ArraySource", "FileSource", "MicrophoneError", "MicrophoneSource", "pace"}


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = "asr.client.sources" if name in _SOURCES else "asr.client.client"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
