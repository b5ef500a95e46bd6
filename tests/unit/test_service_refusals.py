"""Port 8935's refusals, driven through the ASGI app: what the peer is answered, what the
operator sees in the log (who and why) and in lpnode_refusals_total."""

from __future__ import annotations

import asyncio
import base64
import logging

import pytest

from lpnode.core import capabilities as caps
from lpnode.core.auth import AuthTokens
from lpnode.core.credentials import SharedSecret
from lpnode.core.orchestrator import Orchestrator
from lpnode.hashing import keccak256
from lpnode.monitor import NodeMetrics
from lpnode.net import headers as names
from lpnode.net import lp_rpc_pb2 as pb
from lpnode.server import service as service_mod
from lpnode.server.service import ServiceApp

PEER = "203.0.113.7"


def app(**kwargs) -> ServiceApp:
    orch = Orchestrator(service_uri="https://o.example:8935", tokens=AuthTokens(b"k" * 32),
                        metrics=NodeMetrics("orch"), secret=SharedSecret("right-secret"), **kwargs)
    return ServiceApp(orch)


def request(service: ServiceApp, path: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    scope = {"type": "http", "method": "POST", "path": path, "client": (PEER, 40000),
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(event: dict) -> None:
        sent.append(event)

    asyncio.run(service(scope, receive, send))
    return sent[0]["status"], b"".join(e.get("body", b"") for e in sent[1:])


def segment_headers(service: ServiceApp, body: bytes, token: pb.AuthToken | None = None,
                    **fields) -> dict[str, str]:
    seg = pb.SegData(seq=1, hash=keccak256(body), auth_token=token or service.orch.tokens.issue(),
                     capabilities=caps.to_net({caps.H264, caps.MPEGTS, caps.AUTH_TOKEN}), **fields)
    return {names.SEGMENT: base64.b64encode(seg.SerializeToString()).decode()}


def refusals(service: ServiceApp, what: str, reason: str) -> float:
    return service.orch.metrics.registry.get_sample_value(
        "lpnode_refusals_total", {"node_type": "orch", "what": what, "reason": reason}) or 0.0


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.WARNING, logger=service_mod.__name__)
    return caplog


def logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_malformed_segment_header(log):
    s = app()
    assert request(s, "/segment", b"ts", {names.SEGMENT: "%%%"})[0] == 403
    assert refusals(s, "segment", "malformed_header") == 1
    assert logged(log) == [f"refused segment from {PEER}: malformed header: no readable "
                           "Livepeer-Segment header"]


def test_bad_auth_token(log):
    s = app()
    forged = pb.AuthToken(token=b"x" * 32, session_id="s1", expiration=2**40)
    status, body = request(s, "/segment", b"ts", segment_headers(s, b"ts", forged))
    assert status == 403 and refusals(s, "segment", "bad_auth_token") == 1
    assert logged(log)[0].startswith(f"refused segment from {PEER}: bad auth token: ")


def test_hash_mismatch(log):
    s = app()
    s.orch.add_worker(_AnyWorker())
    status, body = request(s, "/segment", b"other bytes", segment_headers(s, b"ts"))
    assert (status, body) == (403, b"Forbidden\n")
    assert refusals(s, "segment", "hash_mismatch") == 1
    assert "hash mismatch" in logged(log)[0]


def test_capability_mismatch(log):
    s = app()
    seg_headers = segment_headers(s, b"ts")
    seg = pb.SegData.FromString(base64.b64decode(seg_headers[names.SEGMENT]))
    seg.capabilities.CopyFrom(caps.to_net({caps.H264, 27}))   # an AI pipeline nobody offers
    seg_headers[names.SEGMENT] = base64.b64encode(seg.SerializeToString()).decode()
    assert request(s, "/segment", b"ts", seg_headers) == (403, b"Capability mismatch\n")
    assert refusals(s, "segment", "capability_mismatch") == 1


def test_capped(log):
    s = app(session_limit=1)
    s.orch.add_worker(_AnyWorker(capacity=1))
    s.orch.pool.assign("someone-else", caps.TRANSCODER, frozenset())
    assert request(s, "/segment", b"ts", segment_headers(s, b"ts")) == (403, b"OrchestratorCapped\n")
    assert refusals(s, "segment", "capped") == 1


def test_shutting_down(log):
    s = app()
    s.orch.closing = True
    assert request(s, "/segment", b"ts", segment_headers(s, b"ts"))[0] == 503
    assert refusals(s, "segment", "shutting_down") == 1


def test_results_with_a_wrong_secret(log):
    s = app()
    status, _ = request(s, "/transcodeResults", b"", {"Authorization": names.TRANSCODER_AUTH,
                                                      "Credentials": "wrong", "TaskId": "1"})
    assert status == 401 and refusals(s, "results", "invalid_secret") == 1
    assert logged(log) == [f"refused results from {PEER}: invalid secret: its -orchSecret "
                           "differs from this orchestrator's"]
    assert "wrong" not in log.text


def test_results_without_the_transcoder_authorization(log):
    s = app()
    assert request(s, "/transcodeResults", b"", {"Credentials": "right-secret"})[0] == 401
    assert refusals(s, "results", "bad_authorization") == 1


def test_results_with_a_bad_task_id_or_body(log):
    s = app()
    auth = {"Authorization": names.TRANSCODER_AUTH, "Credentials": "right-secret"}
    assert request(s, "/transcodeResults", b"", {**auth, "TaskId": "seven"})[0] == 400
    assert refusals(s, "results", "bad_task_id") == 1
    status, _ = request(s, "/transcodeResults", b"junk", {**auth, "TaskId": "7", "Pixels": "1",
                                                          "Content-Type": "multipart/mixed; boundary=zz"})
    assert status == 400 and refusals(s, "results", "unreadable_results") == 1


def test_repeated_refusals_are_all_counted_and_logged_once(log):
    s = app()
    for _ in range(20):
        request(s, "/segment", b"ts", {names.SEGMENT: "%%%"})
    assert refusals(s, "segment", "malformed_header") == 20
    assert len(logged(log)) == 1


class _AnyWorker:
    """A connected transcoder, for the checks that need one; never given work here."""
    def __init__(self, capacity: int = 4) -> None:
        self.id = self.address = self.name = "w1"
        self.capacity, self.capabilities = capacity, caps.TRANSCODER
        self.connected_at, self.draining, self.in_flight = 0.0, False, 0

    async def run(self, task):
        raise AssertionError("not expected to transcode")

    def end_session(self, session_id: str) -> None:
        pass

    def close(self) -> None:
        pass


def test_transcoder_with_a_wrong_secret_or_no_capacity(log):
    from lpnode.server.grpc_asgi import CallContext, GrpcError

    s = app()
    ctx = CallContext(peer_host=PEER, peer_port=41000, metadata={})
    with pytest.raises(GrpcError, match="invalid secret"):
        asyncio.run(s.register_transcoder(pb.RegisterRequest(secret="wrong", capacity=2), ctx))
    with pytest.raises(GrpcError, match="zero capacity"):
        asyncio.run(s.register_transcoder(pb.RegisterRequest(secret="right-secret", capacity=0), ctx))
    assert refusals(s, "transcoder", "invalid_secret") == 1
    assert refusals(s, "transcoder", "zero_capacity") == 1
    assert logged(log)[0] == (f"refused transcoder from {PEER}: invalid secret: its -orchSecret "
                              "differs from this orchestrator's")
    assert len(s.orch.pool) == 0
