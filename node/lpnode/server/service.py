"""Port 8935: gRPC for transcoders and gateways, and HTTPS for segments and renditions."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError

from lpnode.core import capabilities as caps
from lpnode.core.auth import AuthTokenError
from lpnode.core.orchestrator import Orchestrator
from lpnode.core.remote import RemoteTranscoder, transcoder_name
from lpnode.core.tasks import NoTranscodersAvailable, OrchestratorCapped, TaskFailed, TaskResult
from lpnode.hashing import keccak256
from lpnode.net import headers, multipart
from lpnode.net import lp_rpc_pb2 as pb
from lpnode.net.convert import ProfileError, segment_profiles
from lpnode.pm.errors import PaymentRefused
from lpnode.refusals import Refusals
from lpnode.server import grpc_asgi
from lpnode.server.grpc_asgi import CallContext, GrpcError, Method, StatusCode
from lpnode.server.http import (
    ClientGone,
    HTTPScope,
    Receive,
    Scope,
    Send,
    header_dict,
    lifespan,
    parse_content_type,
    peer,
    read_body,
    respond,
)

if TYPE_CHECKING:
    from lpnode.pm.payments import Payments

log = logging.getLogger(__name__)

# A segment, or all renditions of one posted back by a transcoder.
MAX_SEGMENT_BYTES = 256 * 1024 * 1024


class ServiceApp:
    """The ASGI application behind 8935."""

    def __init__(self, orchestrator: Orchestrator, payments: Payments | None = None) -> None:
        self.orch = orchestrator
        self.payments = payments  # on chain: quotes ticket params, and segments must be paid for
        self.refusals = Refusals(orchestrator.metrics.refused, log)
        self.grpc_methods = {
            headers.HEARTBEAT_RPC: Method(pb.PingPong, self.transcoder_heartbeat),
            headers.DRAIN_RPC: Method(pb.PingPong, self.transcoder_drain),
            "/net.Transcoder/RegisterTranscoder":
                Method(pb.RegisterRequest, self.register_transcoder, streaming=True),
            "/net.Orchestrator/GetOrchestrator": Method(pb.OrchestratorRequest, self.get_orchestrator),
            "/net.Orchestrator/EndTranscodingSession":
                Method(pb.EndTranscodingSessionRequest, self.end_transcoding_session),
            "/net.Orchestrator/Ping": Method(pb.PingPong, self.ping),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if grpc_asgi.is_grpc(scope):
            await grpc_asgi.serve(scope, receive, send, self.grpc_methods)
            return
        method, path = scope["method"], scope["path"]
        received = time.perf_counter()
        if method in ("GET", "HEAD") and path.startswith("/stream/"):
            await self.serve_stream_file(scope, send)
            return
        # Read the whole request before answering, even to refuse it: Hypercorn drops the
        # connection when a client keeps sending a body the server has already answered.
        try:
            body = await read_body(receive, MAX_SEGMENT_BYTES)
        except ClientGone:
            return
        if body is None:
            self.refusals.refuse("request", peer(scope), "too_large",
                                 f"{method} {path} over {MAX_SEGMENT_BYTES} bytes")
            await respond(send, 413, b"request body too large\n")
        elif method == "POST" and path == "/segment":
            await self.serve_segment(scope, body, send, received)
        elif method == "POST" and path == "/transcodeResults":
            await self.transcode_results(scope, body, send)
        else:
            await respond(send, 404, b"not found\n")

    # -- gRPC ----------------------------------------------------------------------------------
    async def register_transcoder(self, req: pb.RegisterRequest,
                                  ctx: CallContext) -> AsyncGenerator[pb.NotifySegment, None]:
        # Operators grep for this exact line (go-livepeer's wording).
        log.info("Got a RegisterTranscoder request from transcoder=%s capacity=%d",
                 ctx.peer_host, req.capacity)
        if self.orch.closing:
            # Its stream would hold this process open; it reconnects to whoever is up next.
            self.refusals.refuse("transcoder", ctx.peer_host, "shutting_down",
                                 "it reconnects once this orchestrator is back")
            raise GrpcError(StatusCode.UNAVAILABLE, "orchestrator is shutting down")
        secret = self.orch.secret
        generation = secret.matches(req.secret) if secret is not None else None
        if generation is None:
            self.refusals.refuse("transcoder", ctx.peer_host, "invalid_secret",
                                 "its -orchSecret differs from this orchestrator's")
            raise GrpcError(StatusCode.UNKNOWN, "invalid secret")
        if req.capacity <= 0:
            self.refusals.refuse("transcoder", ctx.peer_host, "zero_capacity",
                                 f"it offers capacity {req.capacity}; give it -maxSessions 1 or more")
            raise GrpcError(StatusCode.UNKNOWN, "zero capacity")
        offered = frozenset(caps.from_bitstring(req.capabilities.bitstring)) if req.HasField(
            "capabilities") else caps.TRANSCODER
        remote = RemoteTranscoder(f"{ctx.peer_host}:{ctx.peer_port}", int(req.capacity), offered,
                                  secret_generation=generation,
                                  heartbeats=headers.HEARTBEAT_MD in ctx.metadata,
                                  name=transcoder_name(ctx.metadata.get(headers.TRANSCODER_NAME_MD)))
        ctx.reply_metadata[headers.TRANSCODER_ID_MD] = remote.token
        return self._notifications(remote)

    async def _notifications(self, remote: RemoteTranscoder) -> AsyncGenerator[pb.NotifySegment, None]:
        # Registered only once the stream runs, so a client gone before that leaves no trace.
        self.orch.add_worker(remote)
        try:
            while (message := await remote.outbox.get()) is not None:
                yield message
        finally:
            log.info("transcoder=%s disconnected", remote.address)
            self.orch.remove_worker(remote)

    async def transcoder_heartbeat(self, req: pb.PingPong, ctx: CallContext) -> pb.PingPong:
        remote = self.orch.remote_by_token(req.value.decode(errors="replace"))
        if remote is None:
            raise GrpcError(StatusCode.NOT_FOUND, "not registered: reconnect")
        remote.beat()
        return pb.PingPong()

    async def transcoder_drain(self, req: pb.PingPong, ctx: CallContext) -> pb.PingPong:
        remote = self.orch.remote_by_token(req.value.decode(errors="replace"))
        if remote is None:
            raise GrpcError(StatusCode.NOT_FOUND, "not registered")
        if not remote.draining:
            log.info("transcoder=%s is draining: no new work for it", remote.address)
        remote.draining = True
        return pb.PingPong()

    async def get_orchestrator(self, req: pb.OrchestratorRequest, ctx: CallContext) -> pb.OrchestratorInfo:
        info = self.orch.info()
        if self.payments is None:
            return info
        try:
            sender = self.payments.check_request(req)
            await self._quote(info, sender)
        except PaymentRefused as exc:
            self.refusals.refuse("orchestrator_request", ctx.peer_host, exc.reason, str(exc))
            raise GrpcError(StatusCode.UNAVAILABLE if exc.status == 503 else StatusCode.UNKNOWN, str(exc)) from None
        return info

    async def _quote(self, info: pb.OrchestratorInfo, sender: bytes) -> None:
        """Put ``sender``'s ticket params and price into ``info`` (raises PaymentRefused)."""
        assert self.payments is not None
        params, price = await self.payments.quote(sender)
        info.price_info.CopyFrom(price)
        info.address = self.payments.recipient.address
        if params is not None:
            info.ticket_params.CopyFrom(params)

    async def end_transcoding_session(self, req: pb.EndTranscodingSessionRequest,
                                      ctx: CallContext) -> pb.EndTranscodingSessionResponse:
        try:
            self.orch.tokens.verify(req.auth_token)
        except AuthTokenError as exc:
            raise GrpcError(StatusCode.PERMISSION_DENIED, str(exc)) from None
        self.orch.end_session(req.auth_token.session_id)
        return pb.EndTranscodingSessionResponse()

    async def ping(self, req: pb.PingPong, ctx: CallContext) -> pb.PingPong:
        return pb.PingPong(value=req.value)

    # -- HTTPS ---------------------------------------------------------------------------------
    async def serve_segment(self, scope: HTTPScope, body: bytes, send: Send, received: float) -> None:
        """POST /segment from a gateway: check its credentials, transcode, answer a TranscodeResult."""
        who = peer(scope)
        if self.orch.closing:
            self.refusals.refuse("segment", who, "shutting_down", "the gateway retries elsewhere")
            await respond(send, 503, b"orchestrator is shutting down; retry\n")
            return
        hdrs = header_dict(scope)
        try:
            seg = pb.SegData.FromString(base64.b64decode(hdrs.get(headers.SEGMENT.lower(), ""),
                                                         validate=True))
        except (ValueError, DecodeError):
            self.refusals.refuse("segment", who, "malformed_header",
                                 "no readable Livepeer-Segment header")
            await respond(send, 403, b"malformed Livepeer-Segment header\n")
            return
        try:
            self.orch.tokens.verify(seg.auth_token)
        except AuthTokenError as exc:
            self.refusals.refuse("segment", who, "bad_auth_token", str(exc))
            await respond(send, 403, f"{exc}\n".encode())
            return
        if not caps.compatible(seg.capabilities, self.orch.capabilities()):
            self.refusals.refuse("segment", who, "capability_mismatch",
                                 "it asks for what no connected transcoder offers")
            await respond(send, 403, b"Capability mismatch\n")
            return
        if not self.orch.has_room_for(seg.auth_token.session_id):
            self.refusals.refuse("segment", who, "capped",
                                 "every transcoder is full (or draining) for a new session")
            await respond(send, 403, b"OrchestratorCapped\n")
            return
        if keccak256(body) != seg.hash:
            self.refusals.refuse("segment", who, "hash_mismatch",
                                 "the body's keccak256 is not the hash in Livepeer-Segment")
            await respond(send, 403, b"Forbidden\n")
            return
        paid = None
        if self.payments is not None:
            try:
                paid = self.payments.accept(hdrs.get(headers.PAYMENT.lower(), ""), seg, segment_profiles(seg))
            except (PaymentRefused, ProfileError) as exc:
                reason = exc.reason if isinstance(exc, PaymentRefused) else "bad_profiles"
                self.refusals.refuse("segment", who, reason, str(exc))
                await respond(send, exc.status if isinstance(exc, PaymentRefused) else 400, f"{exc}\n".encode())
                return
        result = pb.TranscodeResult(seq=seg.seq, info=self.orch.info(seg.auth_token))
        if paid is not None:
            await self._fresh_params(result.info, paid.key[0])
        extra: dict[str, str] = {}
        try:
            outcome = await self.orch.transcode(seg, body)
        except (NoTranscodersAvailable, OrchestratorCapped, TaskFailed, ProfileError) as exc:
            result.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - the gateway gets the reason; nothing hangs
            log.exception("segment seq=%d of session=%s failed", seg.seq, seg.auth_token.session_id)
            result.error = f"{type(exc).__name__}: {exc}"
        else:
            for url, (_, pixels) in zip(outcome.urls, outcome.result.renditions, strict=True):
                result.data.segments.add(url=url, pixels=pixels)
            if paid is not None and self.payments is not None:
                self.payments.charge(paid, sum(pixels for _, pixels in outcome.result.renditions))
            extra[headers.TRANSCODER_TIME] = f"{outcome.transcoder_s:.6f}"
            self.orch.metrics.overhead.observe(time.perf_counter() - received - outcome.transcoder_s)
        await respond(send, 200, result.SerializeToString(), "application/x-protobuf", extra=extra)

    async def _fresh_params(self, info: pb.OrchestratorInfo, sender: bytes) -> None:
        """New ticket params with every answer, as go-livepeer's: a gateway streaming for longer
        than the params live (40 blocks) pays with the newest."""
        try:
            await self._quote(info, sender)
        except PaymentRefused as exc:
            log.warning("no fresh ticket params for %s: %s", "0x" + sender.hex(), exc)

    async def transcode_results(self, scope: HTTPScope, body: bytes, send: Send) -> None:
        """POST /transcodeResults from a remote transcoder (go-livepeer's format)."""
        hdrs = header_dict(scope)
        who = peer(scope)
        if hdrs.get("authorization") != headers.TRANSCODER_AUTH:
            self.refusals.refuse("results", who, "bad_authorization",
                                 f"Authorization is not {headers.TRANSCODER_AUTH}")
            await respond(send, 401, b"Unauthorized\n")
            return
        secret = self.orch.secret
        if secret is None or secret.matches(hdrs.get("credentials", "")) is None:
            self.refusals.refuse("results", who, "invalid_secret",
                                 "its -orchSecret differs from this orchestrator's")
            await respond(send, 401, b"Unauthorized\n")
            return
        try:
            task_id = int(hdrs.get("taskid", ""))
        except ValueError:
            self.refusals.refuse("results", who, "bad_task_id", "no numeric TaskId header")
            await respond(send, 400, b"Invalid Task ID\n")
            return
        remote = self.orch.remote_for_task(task_id)
        content_type, params = parse_content_type(hdrs.get("content-type", ""))
        if content_type == headers.TRANSCODING_ERROR_TYPE:
            text = body.decode("utf-8", "replace")
            log.error("Transcoding error for taskId=%d from transcoder=%s err=%r", task_id, who, text)
            if remote:
                remote.deliver(task_id, TaskFailed(text))
            await respond(send, 200, b"OK")
            return
        try:
            decoded_pixels = int(hdrs.get("pixels", ""))
            if content_type != "multipart/mixed":
                raise multipart.MultipartError(f"unexpected content type {content_type!r}")
            parts = multipart.decode(params.get("boundary", ""), body)
            renditions = [(p.body, int(p.headers["pixels"])) for p in parts if "pixels" in p.headers]
        except (ValueError, KeyError) as exc:
            self.refusals.refuse("results", who, "unreadable_results", str(exc))
            if remote:
                remote.deliver(task_id, TaskFailed(f"unreadable results: {exc}"))
            await respond(send, 400, f"{exc}\n".encode())
            return
        if remote is None or not remote.deliver(task_id, TaskResult(decoded_pixels, renditions)):
            log.warning("results for taskId=%d from transcoder=%s arrived after the task ended",
                        task_id, who)
        await respond(send, 200, b"OK")

    async def serve_stream_file(self, scope: HTTPScope, send: Send) -> None:
        data = self.orch.store.get(scope["path"].removeprefix("/stream/"))
        if data is None:
            await respond(send, 404, b"not found\n")
            return
        kind = "video/mp4" if scope["path"].endswith(".mp4") else "video/mp2t"
        await respond(send, 200, b"" if scope["method"] == "HEAD" else data, kind,
                      length=len(data))
