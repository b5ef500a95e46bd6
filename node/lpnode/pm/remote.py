"""A separate ticket redeemer (go-livepeer's server/redeemer.go, reference 2.7), both ends.

The redeemer (`lpnode -redeemer`) serves go-livepeer's TicketRedeemer gRPC: QueueTicket keeps a
winning ticket for -ethOrchAddr in its own durable queue, where its own Redeemer loop (and
account) redeems it; MaxFloat and MonitorMaxFloat tell orchestrators how much of a gateway's
reserve is left once the tickets it holds are paid. go-livepeer's redeemer takes tickets from
anyone who can reach it; this one wants the shared token (-redeemerTokenFile, as
`authorization: Bearer ...`), or a peer address listed in -redeemerAllowFrom (a go-livepeer
orchestrator cannot send a token), and checks each ticket's signature and win before keeping it.

The orchestrator (-redeemerAddr) keeps every winning ticket in its own queue first, as always,
and a Forwarder hands the queue's tickets to the redeemer, marking each `forwarded` only once the
redeemer has it on disk. A redeemer that cannot be reached costs nothing: the tickets wait here
and go when it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any

import grpc
from eth_utils import to_checksum_address

from lpnode.net import lp_rpc_pb2 as pb
from lpnode.net import lp_rpc_pb2_grpc as rpc
from lpnode.net.channel import secure_channel
from lpnode.pm.chainwatch import ChainWatch
from lpnode.pm.queue import FORWARDED, TicketQueue, WinningTicket
from lpnode.pm.ticket import Ticket, is_winning, minimal_bytes, signer
from lpnode.refusals import Refusals
from lpnode.server.grpc_asgi import CallContext, GrpcError, Method, StatusCode
from lpnode.server.http import bearer_matches

log = logging.getLogger("lpnode.redeemer")

TOKEN_METADATA = "authorization"
CALL_TIMEOUT_S = 8.0  # go-livepeer's RedeemerClient call timeout
MAX_BACKOFF_S = 30.0


def to_net(w: WinningTicket) -> pb.Ticket:
    t = w.ticket
    return pb.Ticket(
        ticket_params=pb.TicketParams(recipient=t.recipient, face_value=minimal_bytes(t.face_value),
                                      win_prob=minimal_bytes(t.win_prob), recipient_rand_hash=t.recipient_rand_hash,
                                      expiration_block=minimal_bytes(w.params_expiration_block)),
        sender=t.sender,
        expiration_params=pb.TicketExpirationParams(creation_round=t.creation_round,
                                                    creation_round_block_hash=t.creation_round_block_hash),
        sender_params=pb.TicketSenderParams(sender_nonce=t.sender_nonce, sig=w.sig),
        recipient_rand=minimal_bytes(w.recipient_rand))


def from_net(m: pb.Ticket) -> WinningTicket:
    p, exp = m.ticket_params, m.expiration_params
    ticket = Ticket(recipient=bytes(p.recipient), sender=bytes(m.sender),
                    face_value=int.from_bytes(p.face_value, "big"), win_prob=int.from_bytes(p.win_prob, "big"),
                    sender_nonce=int(m.sender_params.sender_nonce), recipient_rand_hash=bytes(p.recipient_rand_hash),
                    creation_round=int(exp.creation_round),
                    creation_round_block_hash=bytes(exp.creation_round_block_hash).rjust(32, b"\0"))
    return WinningTicket(ticket=ticket, sig=bytes(m.sender_params.sig),
                         recipient_rand=int.from_bytes(m.recipient_rand, "big"),
                         params_expiration_block=int.from_bytes(p.expiration_block, "big"))


class RedeemerService:
    """The redeemer's gRPC methods (served by lpnode.server.grpc_asgi)."""

    def __init__(self, recipient: str, queue: TicketQueue, watch: ChainWatch, token: str | None,
                 allow_from: tuple[str, ...], refused: Callable[[str, str], None],
                 queued: Callable[[], None] = lambda: None) -> None:
        self.recipient = bytes.fromhex(recipient.removeprefix("0x"))
        self.queue = queue
        self.watch = watch
        self._token = token
        self._allow_from = set(allow_from)
        self._refusals = Refusals(refused, log)
        self._queued = queued
        self.methods = {
            "/net.TicketRedeemer/QueueTicket": Method(pb.Ticket, self.queue_ticket),
            "/net.TicketRedeemer/MaxFloat": Method(pb.MaxFloatReq, self.max_float),
            "/net.TicketRedeemer/MonitorMaxFloat": Method(pb.MaxFloatReq, self.monitor_max_float, streaming=True),
        }

    def _admit(self, ctx: CallContext, what: str) -> None:
        if ctx.peer_host in self._allow_from:
            return
        if self._token is None or bearer_matches(ctx.metadata.get(TOKEN_METADATA, ""), self._token.encode()):
            return
        self._refusals.refuse(what, ctx.peer_host, "bad_token",
                              "send the -redeemerTokenFile token, or list the address in -redeemerAllowFrom")
        raise GrpcError(StatusCode.UNAUTHENTICATED, "missing or wrong redeemer token")

    async def queue_ticket(self, req: pb.Ticket, ctx: CallContext) -> pb.QueueTicketRes:
        self._admit(ctx, "ticket")
        w = from_net(req)
        t = w.ticket
        if t.recipient != self.recipient:
            self._refusals.refuse("ticket", ctx.peer_host, "wrong_recipient",
                                  f"recipient {to_checksum_address(t.recipient)} is not -ethOrchAddr")
            raise GrpcError(StatusCode.PERMISSION_DENIED,
                            f"invalid ticket recipient {to_checksum_address(t.recipient)}")
        if signer(t.hash(), w.sig) != t.sender or not is_winning(w.sig, w.recipient_rand, t.win_prob):
            self._refusals.refuse("ticket", ctx.peer_host, "not_winning", "bad signature or not a winning ticket")
            raise GrpcError(StatusCode.INVALID_ARGUMENT, "not a winning ticket of its sender")
        if self.queue.add(w):
            log.info("ticket from %s (sender %s, nonce %d, face value %d wei) queued for redemption",
                     ctx.peer_host, to_checksum_address(t.sender), t.sender_nonce, t.face_value)
            self._queued()
        return pb.QueueTicketRes()

    async def max_float(self, req: pb.MaxFloatReq, ctx: CallContext) -> pb.MaxFloatUpdate:
        self._admit(ctx, "max_float")
        return pb.MaxFloatUpdate(max_float=minimal_bytes(await self.watch.max_float(bytes(req.sender))))

    async def monitor_max_float(self, req: pb.MaxFloatReq,
                                ctx: CallContext) -> AsyncGenerator[pb.MaxFloatUpdate, None]:
        self._admit(ctx, "max_float")
        return self._max_floats(bytes(req.sender))

    async def _max_floats(self, sender: bytes) -> AsyncGenerator[pb.MaxFloatUpdate, None]:
        last = None
        while True:
            value = await self.watch.max_float(sender)
            if value != last:
                last = value
                yield pb.MaxFloatUpdate(max_float=minimal_bytes(value))
            await asyncio.sleep(self.watch.poll_interval_s)


class Forwarder:
    """The orchestrator's side: hands its queued winning tickets to the redeemer at -redeemerAddr."""

    def __init__(self, addr: str, queue: TicketQueue, token: str | None, poll_interval_s: float = 1.0) -> None:
        self.addr = addr
        self.queue = queue
        self._metadata = ((TOKEN_METADATA, f"Bearer {token}"),) if token else ()
        self.poll_interval_s = poll_interval_s
        self._channel: grpc.aio.Channel | None = None
        self.error: str | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A new winning ticket is queued: forward it now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        backoff = self.poll_interval_s
        while True:
            try:
                await self.forward()
                backoff = self.poll_interval_s
            except (grpc.aio.AioRpcError, OSError) as exc:
                await self._reset()
                text = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
                if self.error != text:
                    log.warning("redeemer %s: %s; the tickets stay queued here and go when it answers",
                                self.addr, text)
                self.error = text
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            try:
                await asyncio.wait_for(self._wake.wait(), backoff)
            except TimeoutError:
                pass
            self._wake.clear()

    async def forward(self) -> int:
        pending = self.queue.pending()
        if not pending:
            return 0
        stub = rpc.TicketRedeemerStub(await self._connect())
        for w in pending:
            await stub.QueueTicket(to_net(w), metadata=self._metadata, timeout=CALL_TIMEOUT_S)
            self.queue.done(w.sig, FORWARDED)
        if self.error is not None:
            log.info("redeemer %s answers again", self.addr)
        self.error = None
        log.info("%d winning tickets handed to the redeemer %s", len(pending), self.addr)
        return len(pending)

    async def max_float(self, sender: bytes) -> int:
        """The redeemer's max float for ``sender`` (it holds the sender's pending tickets)."""
        stub = rpc.TicketRedeemerStub(await self._connect())
        update = await stub.MaxFloat(pb.MaxFloatReq(sender=sender), metadata=self._metadata, timeout=CALL_TIMEOUT_S)
        return int.from_bytes(update.max_float, "big")

    async def _connect(self) -> Any:
        if self._channel is None:
            # Unverified TLS, as go-livepeer's RedeemerClient: the token is all it guards.
            self._channel = await secure_channel(self.addr)
        return self._channel

    async def _reset(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()
