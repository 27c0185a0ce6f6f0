"""Helpers for ``grpc.aio`` callers of ``StreamingRecognize``.

The server answers a stream's config at once with its initial metadata (key
:data:`ACCEPTED_METADATA_KEY`, value the stream's mode) when it accepts the stream, and
with an error status when it does not (stream limit, bad config, shutting down). An
asyncio client should wait for that answer before it sends audio: ``grpc.aio`` reports
a write that races the server's rejection as INTERNAL ``'Internal error from Core'``,
hiding the real status (RESOURCE_EXHAUSTED, INVALID_ARGUMENT, ...). The threaded
client (:class:`asr.client.RecognizerClient`) is not affected.

Example::

    call = stub.StreamingRecognize()
    await call.write(StreamingRecognizeRequest(streaming_config=config))
    if await wait_accepted(call):
        ...  # send audio with call.write(), then call.done_writing()
    code = await call.code()  # the server's own status when it refused the stream
"""

from __future__ import annotations

import asyncio
from typing import Any

# Initial-metadata key the server sends once it has accepted a stream's config.
ACCEPTED_METADATA_KEY = "asr-accepted-mode"


async def wait_accepted(call: Any, timeout: float = 5.0) -> bool:
    """Wait (after writing the config) until the server accepts the stream or ends it.

    Returns True when the stream was accepted, so audio may follow, and False when the
    call has ended: its status is then the server's own. A server that does not send
    early initial metadata (an older one) is assumed to accept after ``timeout`` seconds.
    """
    try:
        await asyncio.wait_for(asyncio.shield(call.initial_metadata()), timeout)
    except TimeoutError:
        return not call.done()
    return not call.done()
