"""The admin listener (7935 on orchestrators): /status, /healthz and, with -monitor, /metrics.

It binds 127.0.0.1 unless -cliAddr says otherwise; the firewall keeps it for monitoring hosts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from lpnode.server.http import lifespan, respond


class AdminApp:
    def __init__(self, status: Callable[[], dict[str, Any]],
                 registry: CollectorRegistry | None) -> None:
        self._status = status
        self._registry = registry

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] != "GET":
            await respond(send, 405, b"method not allowed\n")
        elif path == "/status":
            body = json.dumps(self._status(), indent=2).encode() + b"\n"
            await respond(send, 200, body, "application/json")
        elif path == "/healthz":
            await respond(send, 200, b"ok\n")
        elif path == "/metrics" and self._registry is not None:
            await respond(send, 200, generate_latest(self._registry), CONTENT_TYPE_LATEST)
        elif path == "/metrics":
            await respond(send, 404, b"metrics are off: start lpnode with -monitor\n")
        else:
            await respond(send, 404, b"not found\n")
