"""A gateway's side of payments (go-livepeer's pm/sender.go and core/accounting.go, reference
2.3, 2.4, 2.13), for `lpnode test-stream`: sign the OrchestratorRequest and each segment, and
pay for each segment with as many tickets as its estimated fee needs.

One ticket session per set of ticket params (its id is the recipientRandHash); nonces start at 1.
The credit kept per (orchestrator, stream) is what go-livepeer's gateway keeps: the EV sent,
less the fees the orchestrator charged for the renditions it returned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from eth_account import Account

from lpnode.net import lp_rpc_pb2 as pb
from lpnode.pm.recipient import TicketParams
from lpnode.pm.ticket import sign
from lpnode.pm.wire import encode_payment, params_from_net, price_of, request_hash, segment_hash
from lpnode.transcode.profiles import VideoProfile


def estimated_pixels(profiles: Sequence[VideoProfile], duration_ms: int, source_fps: float = 30.0) -> int:
    """The pixels a segment's renditions will have (go-livepeer's estimateFee): each profile's
    frame size x its frame rate (the source's when it keeps it) x the duration."""
    seconds = duration_ms / 1000
    return sum(math.ceil(p.width * p.height * float(p.frame_rate or source_fps) * seconds) for p in profiles)


@dataclass
class _Session:
    params: TicketParams
    nonce: int = 0


@dataclass
class Sent:
    """What the sender has paid so far."""

    tickets: int = 0
    ev: Fraction = Fraction(0)
    fees: Fraction = Fraction(0)
    credit: dict[tuple[str, str], Fraction] = field(default_factory=dict)  # (orchestrator, stream)


class PaymentSender:
    def __init__(self, private_key: bytes) -> None:
        self._key = private_key
        self.address = bytes.fromhex(Account.from_key(private_key).address[2:])
        self._sessions: dict[bytes, _Session] = {}
        self.sent = Sent()

    def new_session(self, transcoder: str, manifest_id: str) -> None:
        """Forget the stream's credit at ``transcoder``: its session was replaced (the
        orchestrator now serving it holds none), as go-livepeer's gateway starts a new
        session's balance from zero."""
        self.sent.credit.pop((transcoder, manifest_id.encode().hex()), None)

    def request(self, req: pb.OrchestratorRequest) -> pb.OrchestratorRequest:
        """Sign an OrchestratorRequest as this gateway."""
        req.address = self.address
        req.sig = sign(request_hash(self.address), self._key)
        return req

    def pay(self, info: pb.OrchestratorInfo, seg: pb.SegData, profiles: Sequence[VideoProfile],
            fee_estimate: Fraction) -> str:
        """Sign ``seg`` and return its Livepeer-Payment header: enough tickets on ``info``'s
        params that the stream's credit covers ``fee_estimate`` and at least one ticket's EV."""
        seg.sig = sign(segment_hash(seg, list(profiles)), self._key)
        payment = pb.Payment(sender=self.address)
        price = price_of(info.price_info)
        if not info.HasField("ticket_params") or not info.ticket_params.face_value or price is None:
            return encode_payment(payment)
        params = params_from_net(info.ticket_params, price)
        session = self._sessions.setdefault(params.recipient_rand_hash, _Session(params))
        ev = params.ev()
        key = (info.transcoder, bytes(seg.manifestId).hex())
        credit = self.sent.credit.get(key, Fraction(0))
        needed = max(fee_estimate, ev) - credit
        count = max(0, math.ceil(needed / ev)) if ev else 0
        for _ in range(count):
            session.nonce += 1
            ticket = params.ticket(self.address, session.nonce)
            payment.ticket_sender_params.add(sender_nonce=session.nonce, sig=sign(ticket.hash(), self._key))
        if count:
            payment.ticket_params.CopyFrom(info.ticket_params)
            payment.expiration_params.CopyFrom(info.ticket_params.expiration_params)
            payment.expected_price.CopyFrom(info.price_info)
            self.sent.tickets += count
            self.sent.ev += ev * count
            self.sent.credit[key] = credit + ev * count
        return encode_payment(payment)

    def charged(self, info: pb.OrchestratorInfo, manifest_id: bytes, pixels: int) -> None:
        """The orchestrator returned renditions of ``pixels`` pixels: their fee leaves the credit."""
        price = price_of(info.price_info) or Fraction(0)
        key = (info.transcoder, manifest_id.hex())
        self.sent.credit[key] = self.sent.credit.get(key, Fraction(0)) - price * pixels
        self.sent.fees += price * pixels
