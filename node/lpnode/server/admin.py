"""The admin listener (7935 on orchestrators): /status, /healthz, /ready (404 while draining,
for a load balancer's health check), with -monitor /metrics, and
the admin actions (POST /drain, POST /reload, POST /setPrice) for runbooks. An action's
parameters come as a form (go-livepeer's CLI API style), JSON object or query string.

It binds 127.0.0.1 unless -cliAddr says otherwise; the firewall keeps it for monitoring hosts.
go-livepeer's CLI port has no authentication; here actions need the token from
-adminTokenFile (`Authorization: Bearer <token>`), and without that file they are off.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from lpnode.refusals import Refusals
from lpnode.server.http import (
    ClientGone,
    HTTPScope,
    Receive,
    Scope,
    Send,
    bearer_matches,
    header_dict,
    lifespan,
    peer,
    read_body,
    respond,
)

log = logging.getLogger(__name__)

# Called with the request's parameters as keyword arguments (strings).
Action = Callable[..., Awaitable[dict[str, Any]]]


class AdminApp:
    def __init__(self, status: Callable[[], dict[str, Any]], registry: CollectorRegistry | None,
                 *, token: str | None = None, actions: dict[str, Action] | None = None,
                 refused: Callable[[str, str], None] | None = None,
                 ready: Callable[[], bool] = lambda: True) -> None:
        self._status = status
        self._ready = ready
        self._refusals = Refusals(refused or (lambda what, reason: None), log)
        self._registry = registry
        self._token = token.encode() if token else None
        self._actions = actions or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] == "POST":
            try:
                body = await read_body(receive, 64 * 1024)
            except ClientGone:
                return
            await self._act(scope, path.strip("/"), body or b"", send)
        elif scope["method"] != "GET":
            await respond(send, 405, b"method not allowed\n")
        elif path == "/status":
            await _json(send, 200, self._status())
        elif path == "/healthz":
            await respond(send, 200, b"ok\n")
        elif path == "/ready":
            # HAProxy's `http-check disable-on-404`: a 404 takes the node out of rotation for new
            # connections while the ones it has go on.
            ready = self._ready()
            await respond(send, 200 if ready else 404, b"ready\n" if ready else b"draining\n")
        elif path == "/metrics" and self._registry is not None:
            await respond(send, 200, generate_latest(self._registry), CONTENT_TYPE_LATEST)
        elif path == "/metrics":
            await respond(send, 404, b"metrics are off: start lpnode with -monitor\n")
        else:
            await respond(send, 404, b"not found\n")

    async def _act(self, scope: HTTPScope, name: str, body: bytes, send: Send) -> None:
        action = self._actions.get(name)
        if action is None:
            await respond(send, 404, f"no admin action {name!r}; there are: "
                          f"{', '.join(sorted(self._actions))}\n".encode())
            return
        who = peer(scope)
        if self._token is None:
            self._refusals.refuse("admin", who, "actions_off",
                                  f"{name}: start lpnode with -adminTokenFile to allow actions")
            await respond(send, 403, b"admin actions are off: start lpnode with -adminTokenFile\n")
            return
        if not bearer_matches(header_dict(scope).get("authorization", ""), self._token):
            self._refusals.refuse("admin", who, "bad_token",
                                  f"{name}: send the -adminTokenFile token as Bearer")
            await respond(send, 401, b"bad or missing admin token\n")
            return
        try:
            params = _params(scope, body)
        except ValueError as exc:
            await respond(send, 400, f"{name}: {exc}\n".encode())
            return
        log.info("admin action %s from %s%s", name, who, f" {params}" if params else "")
        try:
            result = await action(**params)
        except TypeError as exc:
            await respond(send, 400, f"{name}: unexpected parameters ({exc})\n".encode())
            return
        except ValueError as exc:
            log.warning("admin action %s from %s refused: %s", name, who, exc)
            await respond(send, 400, f"{name}: {exc}\n".encode())
            return
        await _json(send, 200, result)


def _params(scope: HTTPScope, body: bytes) -> dict[str, str]:
    """The query string's and the body's parameters (a form, or a JSON object)."""
    params = dict(parse_qsl(scope.get("query_string", b"").decode(errors="replace")))
    text = body.decode(errors="replace").strip()
    if text.startswith("{"):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("the JSON body must be an object")
        params.update({str(k): str(v) for k, v in data.items()})
    elif text:
        params.update(parse_qsl(text, strict_parsing=True))
    return params


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    await respond(send, status, json.dumps(body, indent=2).encode() + b"\n", "application/json")
