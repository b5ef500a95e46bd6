"""An on-chain orchestrator's payments: what it quotes a gateway, and what a segment must carry
before it is transcoded (go-livepeer's core/orchestrator.go ProcessPayment and its segment
checks, reference 2.4, 2.5, 2.13).

For every POST /segment, in order: the Livepeer-Payment header decodes; the segment is signed
by the payment's sender; its tickets pass the recipient's checks; every winning ticket is on
disk (the durable queue) before anything else happens; the tickets' expected value is credited
to the (sender, stream) balance; the balance covers at least one ticket. Only then is the segment
transcoded, and its encoded pixels are charged at the stream's price, fixed by its first payment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from eth_utils import to_checksum_address
from prometheus_client import CollectorRegistry, Counter, Gauge

from lpnode.net import lp_rpc_pb2 as pb
from lpnode.pm.balance import Balances, Key
from lpnode.pm.chainwatch import ChainWatch
from lpnode.pm.errors import PaymentRefused
from lpnode.pm.pricing import PriceUnavailable, Pricing
from lpnode.pm.queue import TicketQueue, WinningTicket
from lpnode.pm.recipient import PaymentError, Recipient
from lpnode.pm.ticket import signer
from lpnode.pm.wire import (
    MalformedPayment,
    decode_payment,
    params_from_net,
    params_to_net,
    price_info,
    price_of,
    request_hash,
    segment_hash,
)
from lpnode.transcode.profiles import VideoProfile

log = logging.getLogger("lpnode.payments")

INSUFFICIENT_BALANCE = "Insufficient balance"  # go-livepeer's answer (HTTP 400)


class PaymentMetrics:
    """go-livepeer's payment series (monitor/census.go) plus the ticket queue's."""

    def __init__(self, registry: CollectorRegistry, node_type: str, queue: TicketQueue) -> None:
        labels = ["node_type"]
        self.value_received = Counter("livepeer_ticket_value_recv", "Expected value of tickets received (wei)",
                                      labels, registry=registry).labels(node_type)
        self.tickets = Counter("livepeer_tickets_recv", "Tickets received", labels,
                               registry=registry).labels(node_type)
        self.winning = Counter("livepeer_winning_tickets_recv", "Winning tickets received", labels,
                               registry=registry).labels(node_type)
        self._errors = Counter("livepeer_payment_recv_errors", "Payments refused, by reason",
                               ["node_type", "error_code"], registry=registry)
        self.fees = Counter("lpfleet_fees_charged_wei", "Fees charged for transcoded pixels (wei)", labels,
                            registry=registry).labels(node_type)
        self.redeemed = Counter("livepeer_value_redeemed", "Value of winning tickets redeemed on chain (wei)",
                                labels, registry=registry).labels(node_type)
        self.redeem_gas = Gauge("lpfleet_redeem_last_gas_wei", "What the last redemption cost in gas (wei)", labels,
                                registry=registry).labels(node_type)
        self._redeem_errors = Counter("livepeer_ticket_redemption_errors",
                                      "Failed redemption attempts, by kind (reverted, gas, timeout, expired)",
                                      ["node_type", "kind"], registry=registry)
        depth = Gauge("lpfleet_ticket_queue_depth", "Winning tickets waiting for redemption", labels,
                      registry=registry).labels(node_type)
        depth.set_function(lambda: queue.counts().get("pending", 0))
        age = Gauge("lpfleet_ticket_oldest_pending_seconds", "Age of the oldest ticket waiting for redemption",
                    labels, registry=registry).labels(node_type)
        age.set_function(queue.oldest_pending_age)
        self.node_type = node_type

    def error(self, code: str) -> None:
        self._errors.labels(self.node_type, code).inc()

    def redeemed_ticket(self, paid: int, gas_wei: int) -> None:
        self.redeemed.inc(paid)
        self.redeem_gas.set(gas_wei)

    def redeem_error(self, kind: str) -> None:
        self._redeem_errors.labels(self.node_type, kind).inc()


@dataclass(frozen=True)
class Accepted:
    """A segment's payment, accepted: the balance to charge once it is transcoded, at its price."""

    key: Key
    price: Fraction


def _reason(message: str) -> str:
    """A metric label from go-livepeer's error text."""
    words = message.lower().replace(":", "").split()
    return "_".join(words[:4])[:40] or "unknown"


class Payments:
    def __init__(self, recipient: Recipient, watch: ChainWatch, queue: TicketQueue,
                 pricing: Pricing, metrics: PaymentMetrics | None = None,
                 balances: Balances | None = None, clock: Callable[[], float] = time.monotonic,
                 on_queued: Callable[[], None] = lambda: None) -> None:
        self.recipient = recipient
        self.watch = watch
        self.queue = queue
        self.pricing = pricing  # shared with the orchestrator: the admin API changes it at run time
        self.metrics = metrics
        self.balances = balances or Balances()
        self._clock = clock
        self._on_queued = on_queued  # told when a winning ticket is queued (a forwarder sends it at once)

    # ------------------------------------------------------------------ GetOrchestrator

    def check_request(self, req: pb.OrchestratorRequest) -> bytes:
        """The gateway's address, once its signature over it checks out (reference 2.13)."""
        sender = bytes(req.address)
        if len(sender) != 20 or signer(request_hash(sender), bytes(req.sig)) != sender:
            raise PaymentRefused(403, "orchestrator req sig check failed", "bad_request_signature")
        return sender

    async def quote(self, sender: bytes) -> tuple[pb.TicketParams | None, pb.PriceInfo]:
        """The ticket params and price for ``sender``; no params at price 0 (go-livepeer sends
        none then, and the gateway pays nothing)."""
        if self.pricing.spec(sender).amount == 0:
            return None, price_info(Fraction(0))
        view = self.watch.view
        if view is None:
            raise PaymentRefused(503, f"the chain has not been read yet ({self.watch.error})", "chain_unknown")
        max_float = await self.watch.max_float(sender)
        try:
            price = self.pricing.price(sender, self.watch.wei_per_currency_unit,
                                       self.recipient.tx_cost_multiplier(view, max_float))
        except PriceUnavailable as exc:
            raise PaymentRefused(503, str(exc), "price_feed_unknown") from None
        try:
            params = self.recipient.ticket_params(sender, view, price.numerator, price.denominator, max_float)
        except PaymentError as exc:
            raise PaymentRefused(400, str(exc), _reason(str(exc))) from None
        return params_to_net(params), price_info(price)

    # ------------------------------------------------------------------ POST /segment

    def accept(self, header: str, seg: pb.SegData, profiles: list[VideoProfile]) -> Accepted:
        """Check a segment's signature and payment, queue its winning tickets (synced to disk)
        and credit its tickets; raises PaymentRefused when the segment must not be transcoded."""
        try:
            payment = decode_payment(header)
        except MalformedPayment as exc:
            raise self._refused(402, str(exc), "malformed_payment") from None
        sender = bytes(payment.sender)
        if len(sender) != 20 or signer(segment_hash(seg, profiles), bytes(seg.sig)) != sender:
            raise self._refused(403, "segment sig check failed", "bad_segment_signature")
        key: Key = (sender, bytes(seg.manifestId).hex())
        now = self._clock()
        price = self.balances.price(key)
        if payment.HasField("ticket_params") and payment.ticket_sender_params:
            price = self._receive(payment, sender, key, now)
        elif price is None and self.pricing.spec(sender).amount == 0:
            price = Fraction(0)
        if price != 0 and not self.balances.sufficient(key, Fraction(self.recipient.ticket_ev)):
            raise self._refused(400, INSUFFICIENT_BALANCE, "insufficient_balance")
        return Accepted(key, price or Fraction(0))

    def _receive(self, payment: pb.Payment, sender: bytes, key: Key, now: float) -> Fraction:
        expected = price_of(payment.expected_price)
        if expected is None:
            raise self._refused(400, "missing expected price", "missing_expected_price")
        view = self.watch.view
        if view is None:
            raise self._refused(503, f"the chain has not been read yet ({self.watch.error})", "chain_unknown")
        if not self.watch.active:
            raise self._refused(400, f"orchestrator {self.watch.recipient} is inactive in round "
                                     f"{view.last_initialized_round}, cannot process payments", "inactive")
        params = params_from_net(payment.ticket_params, expected, payment.expiration_params)
        tickets = [(int(t.sender_nonce), bytes(t.sig)) for t in payment.ticket_sender_params]
        try:
            received = self.recipient.receive(params, sender, tickets, view.last_seen_block)
        except PaymentError as exc:
            raise self._refused(400, str(exc), _reason(str(exc))) from None
        for ticket, sig, rand in received.winning:
            # On disk before the segment is answered: a crash from here on loses nothing.
            self.queue.add(WinningTicket(ticket=ticket, sig=sig, recipient_rand=rand,
                                         params_expiration_block=params.expiration_block))
            log.info("winning ticket from %s: face value %d wei (nonce %d), queued for redemption",
                     to_checksum_address(sender), ticket.face_value, ticket.sender_nonce)
        if received.winning:
            self._on_queued()
        if self.metrics:
            self.metrics.tickets.inc(len(tickets))
            self.metrics.winning.inc(len(received.winning))
            self.metrics.value_received.inc(float(received.credit))
        self.balances.credit(key, received.credit, now)
        price = self.balances.fix_price(key, expected, now)
        if received.error is not None:
            raise self._refused(400, str(received.error), _reason(str(received.error)))
        return price

    def charge(self, accepted: Accepted, pixels: int) -> None:
        """Debit what the transcoded renditions cost (go-livepeer's DebitFees)."""
        fee = accepted.price * pixels
        self.balances.debit(accepted.key, fee, self._clock())
        if self.metrics:
            self.metrics.fees.inc(float(fee))

    def expire(self) -> None:
        """Housekeeping: forget idle balances and the nonces of expired params."""
        self.balances.expire(self._clock())
        if self.watch.view is not None:
            self.recipient.forget_expired(self.watch.view.last_seen_block)

    async def housekeeping(self, every_s: float = 60.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.expire()

    def status(self) -> dict[str, Any]:
        """For /status: the chain as last read, and the winning tickets by state."""
        view = self.watch.view
        return {"recipient": self.watch.recipient, "active": self.watch.active,
                "chainError": self.watch.error, "ticketEV": self.recipient.ticket_ev,
                "lastSeenBlock": view.last_seen_block if view else None,
                "lastInitializedRound": view.last_initialized_round if view else None,
                "tickets": self.queue.counts(),
                "oldestPendingSeconds": round(self.queue.oldest_pending_age(), 1)}

    def _refused(self, status: int, message: str, reason: str) -> PaymentRefused:
        if self.metrics:
            self.metrics.error(reason)
        return PaymentRefused(status, message, reason)
