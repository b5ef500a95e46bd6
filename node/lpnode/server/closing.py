"""Hanging up on the connections clients leave open when the node stops.

On shutdown Hypercorn closes its listeners, sends HTTP/2 GOAWAY and waits for each client to
hang up, and uvloop's ``Server.wait_closed`` waits for every connection. An idle httpx or grpc
client hangs up only at its next request, so the server would never finish by itself; the
node used to cancel it, which left the port shut for seconds and logged asyncio
InvalidStateError and CancelledError tracebacks from inside Hypercorn. Instead the node keeps
track of open connections and, once the drain is over and the listeners are stopping, closes
what is left: Hypercorn then finishes its own shutdown normally.

Hypercorn has no hook for this, so ``install`` replaces the TCPServer class its run loop
builds per connection with one that records its writer (the same approach as h2window.py).
The set is per process because the patch is; it holds weak references only.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import hypercorn.asyncio.run as hypercorn_run
from hypercorn.asyncio.tcp_server import TCPServer

_open: weakref.WeakSet[asyncio.StreamWriter] = weakref.WeakSet()


class _TrackedTCPServer(TCPServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _open.add(self.writer)


def install() -> None:
    hypercorn_run.TCPServer = _TrackedTCPServer  # type: ignore[misc]  # no hook: see above


def hang_up() -> int:
    """Close every connection still open; how many there were."""
    writers = list(_open)
    for writer in writers:
        # abort, not close: Hypercorn may have closed it already, and a TLS close waits for
        # the peer's close_notify, which an idle client does not send either.
        writer.transport.abort()
    return len(writers)
