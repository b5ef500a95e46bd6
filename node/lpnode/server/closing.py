"""The node's open connections: hanging up on what clients leave open when the node stops, and
handing gateways over to another orchestrator once a drained one is out of its load balancer.

On shutdown Hypercorn closes its listeners, sends HTTP/2 GOAWAY and waits for each client to
hang up, and uvloop's ``Server.wait_closed`` waits for every connection. An idle httpx or grpc
client hangs up only at its next request, so the server would never finish by itself; the
node used to cancel it, which left the port shut for seconds and logged asyncio
InvalidStateError and CancelledError tracebacks from inside Hypercorn. Instead the node keeps
track of open connections and, once the drain is over and the listeners are stopping, closes
what is left: Hypercorn then finishes its own shutdown normally.

Behind a TCP balancer a gateway keeps its HTTP/2 connection, and so its orchestrator, for a
whole stream; a drain in the balancer only steers new connections. ``hand_off`` sends GOAWAY
on each connection once it has been idle for a moment (no request open: the gateway has its
segment's renditions), so the gateway's next request opens a new connection, which the
balancer gives to another orchestrator. Never mid-request: after GOAWAY the h2 state machine
takes no more frames on that connection.

Hypercorn has no hook for either, so ``install`` replaces the TCPServer class its run loop
builds per connection with one that records itself (the same approach as h2window.py). The set
is per process because the patch is; it holds weak references only.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import hypercorn.asyncio.run as hypercorn_run
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.events import Event, RawData, Updated
from hypercorn.protocol.h2 import H2Protocol

_open: weakref.WeakSet[_TrackedTCPServer] = weakref.WeakSet()


class _TrackedTCPServer(TCPServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle_since: float | None = time.monotonic()  # None while a request is open
        self.handed_off = False
        sockname = self.writer.get_extra_info("sockname")
        peername = self.writer.get_extra_info("peername")
        self.local_port = int(sockname[1]) if sockname else 0
        self.peer_host = str(peername[0]) if peername else "?"
        _open.add(self)

    async def protocol_send(self, event: Event) -> None:
        # Hypercorn's protocols report Updated(idle=...) as requests open and close.
        if isinstance(event, Updated):
            self.idle_since = time.monotonic() if event.idle else None
        await super().protocol_send(event)

    async def go_away(self) -> bool:
        """Send HTTP/2 GOAWAY (the client opens a new connection for its next request)."""
        protocol = getattr(getattr(self, "protocol", None), "protocol", None)
        if self.handed_off or not isinstance(protocol, H2Protocol):
            return False
        self.handed_off = True
        protocol.connection.close_connection()
        await self.protocol_send(RawData(data=protocol.connection.data_to_send()))
        return True


@dataclass(frozen=True)
class Connection:
    peer_host: str
    idle_s: float | None  # None: a request is open on it
    handed_off: bool


def install() -> None:
    hypercorn_run.TCPServer = _TrackedTCPServer  # type: ignore[misc]  # no hook: see above


def connections(port: int, exclude_hosts: Collection[str] = ()) -> list[Connection]:
    """The open connections to local ``port``, but those from ``exclude_hosts``."""
    now = time.monotonic()
    return [Connection(s.peer_host, None if s.idle_since is None else now - s.idle_since, s.handed_off)
            for s in list(_open)
            if s.local_port == port and s.peer_host not in exclude_hosts and not s.writer.transport.is_closing()]


async def hand_off(port: int, idle_s: float, exclude_hosts: Collection[str] = ()) -> int:
    """GOAWAY on every connection to ``port`` idle for ``idle_s`` or more (but those from
    ``exclude_hosts``); how many were sent one now."""
    now, sent = time.monotonic(), 0
    for server in list(_open):
        idle = None if server.idle_since is None else now - server.idle_since
        if (server.local_port == port and server.peer_host not in exclude_hosts and not server.handed_off
                and not server.writer.transport.is_closing() and idle is not None and idle >= idle_s):
            sent += await server.go_away()
    return sent


def hang_up() -> int:
    """Close every connection still open; how many there were."""
    servers = list(_open)
    for server in servers:
        # abort, not close: Hypercorn may have closed it already, and a TLS close waits for
        # the peer's close_notify, which an idle client does not send either.
        server.writer.transport.abort()
    return len(servers)
