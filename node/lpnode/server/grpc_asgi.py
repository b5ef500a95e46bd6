"""gRPC served from the same ASGI app as HTTPS on port 8935.

go-livepeer multiplexes gRPC and HTTPS on one TLS port. Hypercorn gives us HTTP/2 with response
trailers, which is everything gRPC needs, so the two gRPC services lpnode offers are served here
directly from the wire format (a 5-byte length prefix per message, status in trailers) instead of
through a second server and a proxy. docs/design.md explains the choice.

Only unary requests are needed (both of lpnode's services take one request message); responses
may be unary or server-streaming.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import struct
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote

from google.protobuf.message import DecodeError, Message

from lpnode.server.http import ClientGone, HTTPScope, Receive, Scope, Send, lifespan, read_body, respond

log = logging.getLogger(__name__)

GRPC_CONTENT_TYPE = "application/grpc"
_MAX_MESSAGE = 16 * 1024 * 1024


class StatusCode(enum.IntEnum):
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


class GrpcError(Exception):
    """Raised by a handler to end its call with a status; the message reaches the client."""

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class CallContext:
    peer_host: str
    peer_port: int
    metadata: dict[str, str]
    # Initial metadata (response headers) the handler wants sent; lpnode's extensions travel
    # here, where go-livepeer peers ignore them.
    reply_metadata: dict[str, str] = field(default_factory=dict)


UnaryHandler = Callable[[Any, CallContext], Awaitable[Message]]
# A streaming handler checks the request first (raising GrpcError refuses the call before any
# message), then returns the stream of replies.
StreamHandler = Callable[[Any, CallContext], Awaitable[AsyncGenerator[Message, None]]]


@dataclass(frozen=True)
class Method:
    request_type: type[Message]
    handler: UnaryHandler | StreamHandler
    streaming: bool = False


_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_timeout(value: str) -> float:
    """Seconds in a ``grpc-timeout`` header: up to 8 digits and a unit (gRPC over HTTP/2)."""
    digits, unit = value[:-1], value[-1:]
    if not (1 <= len(digits) <= 8 and digits.isdigit() and unit in _TIMEOUT_UNITS):
        raise GrpcError(StatusCode.INVALID_ARGUMENT, f"malformed grpc-timeout {value!r}")
    return int(digits) * _TIMEOUT_UNITS[unit]


def is_grpc(scope: HTTPScope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";")[0].strip().startswith(GRPC_CONTENT_TYPE.encode())
    return False


def frame(message: Message) -> bytes:
    payload = message.SerializeToString()
    return struct.pack(">?I", False, len(payload)) + payload


def unframe(body: bytes) -> bytes:
    if len(body) < 5:
        raise GrpcError(StatusCode.INVALID_ARGUMENT, "request has no message")
    compressed, length = struct.unpack(">?I", body[:5])
    if compressed:
        raise GrpcError(StatusCode.UNIMPLEMENTED, "compressed requests are not supported")
    if length != len(body) - 5:
        raise GrpcError(StatusCode.INVALID_ARGUMENT, "request length does not match its prefix")
    return body[5:]


def _context(scope: HTTPScope) -> CallContext:
    host, port = scope.get("client") or ("", 0)
    metadata = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    return CallContext(peer_host=host, peer_port=port, metadata=metadata)


async def serve(scope: HTTPScope, receive: Receive, send: Send, methods: dict[str, Method]) -> None:
    """Answer one gRPC call; `methods` maps '/package.Service/Method' to its handler."""
    started = False
    ctx = _context(scope)

    async def start() -> None:
        nonlocal started
        if not started:
            started = True
            headers = [(b"content-type", GRPC_CONTENT_TYPE.encode())]
            headers += [(k.lower().encode(), v.encode()) for k, v in ctx.reply_metadata.items()]
            await send({"type": "http.response.start", "status": 200, "trailers": True,
                        "headers": headers})

    async def finish(code: StatusCode, message: str = "") -> None:
        await start()
        trailers = [(b"grpc-status", str(int(code)).encode())]
        if message:
            # grpc-message is percent-encoded on the wire (gRPC HTTP/2 spec).
            trailers.append((b"grpc-message", quote(message, safe=" ").encode()))
        # Hypercorn moves to its trailers state only once the body is declared finished.
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        await send({"type": "http.response.trailers", "headers": trailers, "more_trailers": False})

    method = methods.get(scope["path"])

    async def call() -> None:
        if method is None:
            raise GrpcError(StatusCode.UNIMPLEMENTED, f"unknown method {scope['path']}")
        body = await read_body(receive, _MAX_MESSAGE + 5)
        if body is None:
            raise GrpcError(StatusCode.RESOURCE_EXHAUSTED, "request too large")
        request = method.request_type()
        try:
            request.ParseFromString(unframe(body))
        except DecodeError as exc:
            raise GrpcError(StatusCode.INVALID_ARGUMENT, f"malformed request: {exc}") from exc
        if not method.streaming:
            reply = cast(Message, await method.handler(request, ctx))
            await start()
            await send({"type": "http.response.body", "body": frame(reply), "more_body": True})
            return
        replies = cast(AsyncGenerator[Message, None], await method.handler(request, ctx))
        await _stream(replies, receive, send, start)

    try:
        # The client's deadline bounds the whole call, as a gRPC server's context does.
        timeout = parse_timeout(ctx.metadata["grpc-timeout"]) if "grpc-timeout" in ctx.metadata else None
        try:
            await asyncio.wait_for(call(), timeout)
        except TimeoutError:
            raise GrpcError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded") from None
        await finish(StatusCode.OK)
    except GrpcError as exc:
        await finish(exc.code, exc.message)
    except ClientGone:
        return


async def _stream(replies: AsyncGenerator[Message, None], receive: Receive, send: Send,
                  start: Callable[[], Awaitable[None]]) -> None:
    """Send each reply as it comes; stop the handler as soon as the client goes away."""
    await start()
    disconnected = asyncio.ensure_future(_wait_disconnect(receive))
    nxt: asyncio.Future[Message] | None = None
    try:
        while True:
            nxt = asyncio.ensure_future(anext(replies))
            done, _ = await asyncio.wait({nxt, disconnected}, return_when=asyncio.FIRST_COMPLETED)
            if disconnected in done:
                raise ClientGone()
            try:
                reply = nxt.result()
            except StopAsyncIteration:
                return
            await send({"type": "http.response.body", "body": frame(reply), "more_body": True})
    finally:
        disconnected.cancel()
        # The handler may be mid-reply (the client left, or the deadline passed): stop that
        # first, or the generator cannot be closed.
        if nxt is not None and not nxt.done():
            nxt.cancel()
            await asyncio.gather(nxt, return_exceptions=True)
        await replies.aclose()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class GrpcApp:
    """An ASGI application that serves only gRPC ``methods`` (the redeemer's port)."""

    def __init__(self, methods: dict[str, Method]) -> None:
        self.methods = methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
        elif scope["type"] == "http" and is_grpc(scope):
            await serve(scope, receive, send, self.methods)
        elif scope["type"] == "http":
            await respond(send, 404, b"gRPC only\n")
