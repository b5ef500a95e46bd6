"""The gRPC layer on the ASGI surface: statuses and messages in trailers, deadlines from
grpc-timeout, malformed requests. Driven with ASGI events directly; test_wire.py and the
integration tier cover real grpcio clients."""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

import pytest

from lpnode.net import lp_rpc_pb2 as pb
from lpnode.server.grpc_asgi import GrpcError, Method, StatusCode, frame, parse_timeout, serve


def call(path: str, body: bytes, methods: dict, headers: dict[str, str] | None = None) -> tuple[list[dict], dict]:
    """Run one call; returns the events sent and the trailers as a dict."""
    scope = {"type": "http", "path": path, "client": ("10.0.0.9", 5000),
             "headers": [(k.encode(), v.encode()) for k, v in
                         {"content-type": "application/grpc", **(headers or {})}.items()]}
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)   # the client stays connected
        return {"type": "http.disconnect"}

    async def send(event: dict) -> None:
        sent.append(event)

    asyncio.run(serve(scope, receive, send, methods))
    trailers = next(e for e in sent if e["type"] == "http.response.trailers")["headers"]
    return sent, {k.decode(): v.decode() for k, v in trailers}


async def echo(req: pb.PingPong, ctx) -> pb.PingPong:
    return pb.PingPong(value=req.value)


async def refuse(req: pb.PingPong, ctx) -> pb.PingPong:
    raise GrpcError(StatusCode.PERMISSION_DENIED, "bad token: 100% wrong/é")


async def slow(req: pb.PingPong, ctx) -> pb.PingPong:
    await asyncio.sleep(5)
    return pb.PingPong()


METHODS = {"/t.S/Echo": Method(pb.PingPong, echo), "/t.S/Refuse": Method(pb.PingPong, refuse),
           "/t.S/Slow": Method(pb.PingPong, slow)}
PING = frame(pb.PingPong(value=b"hi"))


def test_a_unary_call_answers_its_message_and_status_ok():
    sent, trailers = call("/t.S/Echo", PING, METHODS)
    body = b"".join(e.get("body", b"") for e in sent if e["type"] == "http.response.body")
    assert body == PING and trailers == {"grpc-status": "0"}
    assert sent[0]["status"] == 200 and sent[0]["trailers"] is True


def test_a_refusal_travels_as_status_and_percent_encoded_message():
    _, trailers = call("/t.S/Refuse", PING, METHODS)
    assert trailers["grpc-status"] == str(int(StatusCode.PERMISSION_DENIED))
    assert trailers["grpc-message"] != "bad token: 100% wrong/é"   # encoded on the wire
    assert unquote(trailers["grpc-message"]) == "bad token: 100% wrong/é"


def test_unknown_method_is_unimplemented():
    _, trailers = call("/t.S/Nope", PING, METHODS)
    assert trailers["grpc-status"] == str(int(StatusCode.UNIMPLEMENTED))
    assert "unknown method /t.S/Nope" in unquote(trailers["grpc-message"])


@pytest.mark.parametrize("body", [b"", b"\x00\x00\x00\x00\x09short", b"\x01\x00\x00\x00\x00"])
def test_malformed_frames_are_refused(body):
    _, trailers = call("/t.S/Echo", body, METHODS)
    assert trailers["grpc-status"] in (str(int(StatusCode.INVALID_ARGUMENT)),
                                       str(int(StatusCode.UNIMPLEMENTED)))


def test_a_call_past_its_grpc_timeout_ends_with_deadline_exceeded():
    sent, trailers = call("/t.S/Slow", PING, METHODS, {"grpc-timeout": "100m"})
    assert trailers["grpc-status"] == str(int(StatusCode.DEADLINE_EXCEEDED))


def test_a_call_within_its_grpc_timeout_is_answered():
    _, trailers = call("/t.S/Echo", PING, METHODS, {"grpc-timeout": "2S"})
    assert trailers == {"grpc-status": "0"}


@pytest.mark.parametrize("value, seconds", [("1H", 3600), ("2M", 120), ("3S", 3), ("250m", 0.25),
                                            ("5u", 5e-6), ("7n", 7e-9), ("99999999S", 99999999)])
def test_grpc_timeout_units(value, seconds):
    assert parse_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "S", "10", "10s", "123456789S", "-1S", "1.5S"])
def test_malformed_grpc_timeout_is_refused(value):
    with pytest.raises(GrpcError) as err:
        parse_timeout(value)
    assert err.value.code == StatusCode.INVALID_ARGUMENT


def test_a_stream_past_its_deadline_ends_with_deadline_exceeded():
    async def forever(req, ctx):
        async def replies():
            yield pb.PingPong(value=b"1")
            await asyncio.sleep(5)
            yield pb.PingPong(value=b"2")
        return replies()

    methods = {"/t.S/Stream": Method(pb.PingPong, forever, streaming=True)}
    sent, trailers = call("/t.S/Stream", PING, methods, {"grpc-timeout": "200m"})
    bodies = [e["body"] for e in sent if e["type"] == "http.response.body" and e["body"]]
    assert bodies == [frame(pb.PingPong(value=b"1"))]
    assert trailers["grpc-status"] == str(int(StatusCode.DEADLINE_EXCEEDED))
