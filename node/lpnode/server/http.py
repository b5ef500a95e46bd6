"""Small ASGI helpers shared by the 8935 service and the admin listener, typed with
Hypercorn's ASGI types."""

from __future__ import annotations

import hmac

from hypercorn.typing import ASGIReceiveCallable as Receive
from hypercorn.typing import ASGISendCallable as Send
from hypercorn.typing import HTTPScope, Scope

__all__ = ["ClientGone", "HTTPScope", "Receive", "Scope", "Send", "bearer_matches", "header_dict", "lifespan",
           "parse_content_type", "peer", "read_body", "respond"]


async def lifespan(receive: Receive, send: Send) -> None:
    """Neither app has start-up or shut-down work of its own; acknowledge both phases."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


def bearer_matches(authorization: str, token: bytes) -> bool:
    """``Authorization: Bearer <token>`` (or a gRPC `authorization` metadata value) carries
    ``token``; compared in constant time."""
    return hmac.compare_digest(token, authorization.removeprefix("Bearer ").strip().encode())


def header_dict(scope: HTTPScope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def peer(scope: HTTPScope) -> str:
    """The client's address, for refusals and logs."""
    client = scope.get("client")
    return str(client[0]) if client else "?"


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    kind, *rest = value.split(";")
    params = {}
    for item in rest:
        key, _, val = item.strip().partition("=")
        params[key.lower()] = val.strip('"')
    return kind.strip().lower(), params


class ClientGone(Exception):
    """The client went away before its request body was complete: there is no one to answer,
    and a partial body must not be taken for a whole one."""


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None if it is over `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await receive()
        if event["type"] != "http.request":
            raise ClientGone()   # http.disconnect
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not event.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, status: int, body: bytes, content_type: str = "text/plain",
                  length: int | None = None, extra: dict[str, str] | None = None) -> None:
    headers = [(b"content-type", content_type.encode()),
               (b"content-length", str(len(body) if length is None else length).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
