"""lstm-asr: streaming speech recognition with LSTM + CTC.

import asr
rec = asr.load()
print(rec.transcribe("audio.wav").text)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from asr.api import Recognizer, Transcript, load
    from asr.streaming import EndpointConfig, SessionConfig

_LAZY = {
    "load": "asr.api",
    "Recognizer": "asr.api",
    "Transcript": "asr.api",
    "SessionConfig": "asr.streaming",
    "EndpointConfig": "asr.streaming",
}


def __getattr__(name: str) -> Any:
    # Lazy so that `import asr.audio` does not pay for torch and pyctcdecode.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'asr' has no attribute {name!r}")


__all__ = ["EndpointConfig", "Recognizer", "SessionConfig", "Transcript", "load", "__version__"]
