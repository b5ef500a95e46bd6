"""What a go-livepeer gateway does against an orchestrator in -network offchain: GetOrchestrator,
POST /segment, download the renditions (server/segment_rpc.go, SubmitSegment)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import httpx
from google.protobuf.message import Message

from lpnode.core import capabilities as caps
from lpnode.hashing import keccak256
from lpnode.net import headers
from lpnode.net import lp_rpc_pb2 as pb
from lpnode.net import lp_rpc_pb2_grpc as rpc
from lpnode.net.channel import secure_channel
from lpnode.net.convert import set_segment_profiles
from lpnode.pm.sender import PaymentSender, estimated_pixels
from lpnode.pm.wire import price_of
from lpnode.transcode.profiles import VideoProfile


class SegmentRejected(Exception):
    """The orchestrator refused or failed the segment; the text is what it said."""

    def __init__(self, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        """Worth sending again, as go-livepeer gateways do up to -maxAttempts."""
        return self.status in (502, 503, 504) or self.needs_new_session

    @property
    def needs_new_session(self) -> bool:
        """The session's token or ticket params are not this orchestrator's (a load balancer
        moved the gateway to another) or have expired: ask GetOrchestrator again, as a
        go-livepeer gateway replaces a failed session, and send the segment with the new one."""
        text = str(self)
        return "auth token" in text or any(s in text for s in _OTHER_ORCHESTRATORS_PARAMS)


# Payment refusals (pm/recipient.py, pm/payments.py; go-livepeer's texts) meaning the ticket
# params came from another orchestrator or too long ago, or that this orchestrator holds no
# credit for the stream (another one behind the same balancer has it).
_OTHER_ORCHESTRATORS_PARAMS = ("invalid recipientRand", "TicketParams expired", "invalid ticket recipient",
                               "Insufficient balance")


def segment_request(info: pb.OrchestratorInfo, manifest_id: str, seq: int, data: bytes,
                    profiles: Sequence[VideoProfile], duration_ms: int,
                    payer: PaymentSender | None = None) -> tuple[str, dict[str, str]]:
    """URL and headers of the POST /segment that carries ``data``, as a go-livepeer gateway
    sends it (server/segment_rpc.go); any HTTP/2 client can send it. With ``payer`` the
    segment is signed and paid for (on chain)."""
    needs = {caps.H264, caps.MPEGTS, caps.AUTH_TOKEN}
    seg = pb.SegData(manifestId=manifest_id.encode(), seq=seq, hash=keccak256(data),
                     duration=duration_ms, auth_token=info.auth_token,
                     capabilities=caps.to_net(needs), profiles=b"invalid")
    set_segment_profiles(seg, profiles)
    payment = ""
    if payer is not None:
        fee = (price_of(info.price_info) or Fraction(0)) * estimated_pixels(profiles, duration_ms)
        payment = payer.pay(info, seg, profiles, fee)
    return f"{info.transcoder}/segment", {
        headers.SEGMENT: base64.b64encode(seg.SerializeToString()).decode(),
        headers.PAYMENT: payment,
        "Content-Type": "video/MP2T",
        "Accept": "multipart/mixed",
        "Content-Duration": str(duration_ms),
    }


def segment_result(status: int, body: bytes,
                   transcoder_time: str | None) -> tuple[pb.TranscodeResult, float | None]:
    """The orchestrator's answer to POST /segment, and how long the transcoder had the segment
    (its ``Lpnode-Transcoder-Seconds`` header; None from go-livepeer). Raises SegmentRejected
    for a refusal or a transcode error."""
    if status != 200:
        raise SegmentRejected(f"{status}: {body.decode(errors='replace').strip()}", status)
    result = pb.TranscodeResult.FromString(body)
    if result.WhichOneof("result") == "error":
        raise SegmentRejected(result.error)
    return result, float(transcoder_time) if transcoder_time else None


class GatewayClient:
    def __init__(self, orch_addr: str, *, timeout_s: float = 30.0, payer: PaymentSender | None = None) -> None:
        self.orch_addr = orch_addr
        self.payer = payer
        self._timeout = timeout_s
        self._http = httpx.AsyncClient(http2=True, verify=False, timeout=timeout_s)

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def _call(self, method: str, request: Message) -> Any:
        # A connection per call, as go-livepeer's gateway dials one per GetOrchestrator: behind a
        # load balancer the next call may reach another orchestrator, with another certificate
        # (grpcio cannot skip verification, so each channel pins what its server presents).
        channel = await secure_channel(self.orch_addr)
        try:
            return await getattr(rpc.OrchestratorStub(channel), method)(request, timeout=self._timeout)
        finally:
            await channel.close()

    async def get_orchestrator(self) -> pb.OrchestratorInfo:
        request = pb.OrchestratorRequest(capabilities=caps.to_net(
            {caps.H264, caps.MPEGTS, caps.AUTH_TOKEN}))
        if self.payer is not None:
            request = self.payer.request(request)
        info: pb.OrchestratorInfo = await self._call("GetOrchestrator", request)
        return info

    async def submit(self, info: pb.OrchestratorInfo, manifest_id: str, seq: int, data: bytes,
                     profiles: Sequence[VideoProfile], duration_ms: int) -> pb.TranscodeResult:
        return (await self.submit_timed(info, manifest_id, seq, data, profiles, duration_ms))[0]

    async def submit_timed(self, info: pb.OrchestratorInfo, manifest_id: str, seq: int, data: bytes,
                           profiles: Sequence[VideoProfile],
                           duration_ms: int) -> tuple[pb.TranscodeResult, float | None]:
        """Like submit, plus how long the transcoder had the segment, where an lpnode
        orchestrator says (None from go-livepeer)."""
        url, request_headers = segment_request(info, manifest_id, seq, data, profiles, duration_ms, self.payer)
        resp = await self._http.post(url, content=data, headers=request_headers)
        result, transcoder_s = segment_result(resp.status_code, resp.content, resp.headers.get(headers.TRANSCODER_TIME))
        if self.payer is not None:
            self.payer.charged(info, manifest_id.encode(), sum(s.pixels for s in result.data.segments))
        return result, transcoder_s

    async def download(self, url: str) -> bytes:
        return (await self._http.get(url)).raise_for_status().content

    async def end_session(self, token: pb.AuthToken) -> None:
        await self._call("EndTranscodingSession", pb.EndTranscodingSessionRequest(auth_token=token))
