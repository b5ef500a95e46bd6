"""lpnode.pm.payments, wire and sender together: what an on-chain orchestrator quotes, what a
segment's payment must carry, what is credited and charged, and that a winning ticket is on
disk before the segment is accepted. Real signatures from anvil's test keys; the chain is a
stand-in holding what the node last read (ChainWatch's fields)."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path

import pytest
from eth_account import Account

from lpnode.net import lp_rpc_pb2 as pb
from lpnode.pm.errors import PaymentRefused
from lpnode.pm.payments import INSUFFICIENT_BALANCE, Payments
from lpnode.pm.pricing import PriceSpec, Pricing
from lpnode.pm.queue import TicketQueue
from lpnode.pm.recipient import ChainView, Recipient
from lpnode.pm.sender import PaymentSender, estimated_pixels
from lpnode.pm.wire import decode_payment, encode_payment, params_from_net, price_of, segment_hash
from lpnode.transcode.profiles import parse_profiles

GATEWAY_KEY = bytes.fromhex("5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a")
OTHER_KEY = bytes.fromhex("7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6")
ORCH = bytes.fromhex(Account.from_key(bytes.fromhex(
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")).address[2:])
EV = 10**12
PROFILES = parse_profiles("P144p30fps16x9")


class Watch:
    """ChainWatch's state, set by the test."""

    def __init__(self) -> None:
        self.view: ChainView | None = ChainView(last_seen_block=1000, last_initialized_round=7,
                                                round_block_hash=b"\x42" * 32, gas_price=10**8)
        self.active = True
        self.error: str | None = None
        self.recipient = "0x" + ORCH.hex()
        self.float = 10**20
        self.wei_per_currency_unit = None

    async def max_float(self, sender: bytes) -> int:
        return self.float


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Payments, Watch, TicketQueue, Pricing]:
    from lpnode.pm.ticket import RecipientRandKey
    watch, queue = Watch(), TicketQueue(tmp_path / "tickets.sqlite3")
    pricing = Pricing(PriceSpec(Fraction(1000)))
    recipient = Recipient(ORCH, RecipientRandKey(tmp_path), "lpfleet-local", ticket_ev=EV)
    payments = Payments(recipient, watch, queue, pricing, clock=Clock())  # type: ignore[arg-type]
    return payments, watch, queue, pricing


def quoted(payments: Payments, sender: PaymentSender) -> pb.OrchestratorInfo:
    request = sender.request(pb.OrchestratorRequest())
    address = payments.check_request(request)
    params, price = asyncio.run(payments.quote(address))
    info = pb.OrchestratorInfo(transcoder="https://o1:8935", price_info=price)
    if params is not None:
        info.ticket_params.CopyFrom(params)
    return info


def segment(seq: int = 0, manifest: bytes = b"stream-1") -> pb.SegData:
    return pb.SegData(manifestId=manifest, seq=seq, hash=b"\x11" * 32)


def paid(sender: PaymentSender, info: pb.OrchestratorInfo, seg: pb.SegData, pixels: int) -> str:
    fee = (price_of(info.price_info) or Fraction(0)) * pixels
    return sender.pay(info, seg, PROFILES, fee)


def test_the_request_signature_is_checked_and_the_quote_carries_params_and_price(setup) -> None:
    payments, watch, _, _ = setup
    gateway = PaymentSender(GATEWAY_KEY)
    info = quoted(payments, gateway)
    assert (info.price_info.pricePerUnit, info.price_info.pixelsPerUnit) == (1000, 1)
    params = params_from_net(info.ticket_params, Fraction(1000))
    assert params.recipient == ORCH and params.expiration_block == 1040 and params.ev() >= EV
    forged = gateway.request(pb.OrchestratorRequest())
    forged.address = bytes.fromhex(Account.from_key(OTHER_KEY).address[2:])
    with pytest.raises(PaymentRefused, match="orchestrator req sig check failed"):
        payments.check_request(forged)
    # The face value never exceeds what the gateway's reserve can pay.
    watch.float = 2 * 10**15  # below the 3.5e15 the gas price asks for, above 350k gas at 3 gwei
    assert params_from_net(quoted(payments, gateway).ticket_params, Fraction(1000)).face_value == 2 * 10**15
    watch.float = 5 * EV  # cannot even pay for its own redemption
    with pytest.raises(PaymentRefused, match="insufficient sender reserve"):
        quoted(payments, gateway)
    watch.view = None
    with pytest.raises(PaymentRefused) as refused:
        quoted(payments, gateway)
    assert refused.value.status == 503


def test_a_paid_segment_is_credited_and_its_pixels_charged_at_the_first_price(setup) -> None:
    payments, _, _, price = setup
    gateway = PaymentSender(GATEWAY_KEY)
    info = quoted(payments, gateway)
    pixels = estimated_pixels(PROFILES, 2000)
    seg = segment()
    header = paid(gateway, info, seg, pixels)
    tickets = len(decode_payment(header).ticket_sender_params)
    assert tickets == -(-(1000 * pixels) // EV)  # enough tickets for the estimated fee
    accepted = payments.accept(header, seg, PROFILES)
    key = (gateway.address, b"stream-1".hex())
    credit = payments.balances.balance(key)
    assert credit >= tickets * EV
    payments.charge(accepted, pixels)
    gateway.charged(info, b"stream-1", pixels)
    assert payments.balances.balance(key) == credit - 1000 * pixels
    assert gateway.sent.credit[("https://o1:8935", b"stream-1".hex())] == credit - 1000 * pixels
    # A price change leaves the running stream at its first price.
    price.set(PriceSpec(Fraction(5000)))
    info = quoted(payments, gateway)
    seg2 = segment(1)
    accepted2 = payments.accept(paid(gateway, info, seg2, pixels), seg2, PROFILES)
    assert accepted2.price == 1000


def test_a_gateway_moved_to_another_orchestrator_pays_it_afresh(setup, tmp_path: Path) -> None:
    """Two orchestrators behind one balancer advertise the same address; a stream credited at
    one holds nothing at the other, which refuses it until the gateway starts a new session."""
    payments, watch, queue, pricing = setup
    from lpnode.pm.ticket import RecipientRandKey
    other = Payments(Recipient(ORCH, RecipientRandKey(tmp_path / "o2"), "lpfleet-local", ticket_ev=EV),
                     watch, queue, pricing, clock=Clock())  # type: ignore[arg-type]
    gateway = PaymentSender(GATEWAY_KEY)
    pixels = estimated_pixels(PROFILES, 2000)
    info = quoted(payments, gateway)
    seg = segment()
    payments.accept(paid(gateway, info, seg, pixels), seg, PROFILES)
    # Credit left over (a ticket's EV rounds the payment up): the next segment sends none.
    seg1 = segment(1)
    header = paid(gateway, info, seg1, 1)
    assert decode_payment(header).ticket_sender_params == []
    with pytest.raises(PaymentRefused, match=INSUFFICIENT_BALANCE):
        other.accept(header, seg1, PROFILES)
    gateway.new_session(info.transcoder, "stream-1")
    fresh = quoted(other, gateway)
    assert other.accept(paid(gateway, fresh, seg1, pixels), seg1, PROFILES).price == 1000


def test_no_payment_no_transcoding_and_price_zero_needs_none(setup) -> None:
    payments, _, _, price = setup
    gateway = PaymentSender(GATEWAY_KEY)
    seg = segment()
    header = gateway.pay(pb.OrchestratorInfo(), seg, PROFILES, Fraction(0))  # signed, no tickets
    with pytest.raises(PaymentRefused, match=INSUFFICIENT_BALANCE):
        payments.accept(header, seg, PROFILES)
    price.set(PriceSpec(Fraction(0)))
    info = quoted(payments, gateway)
    assert not info.HasField("ticket_params")
    assert payments.accept(paid(gateway, info, seg, 10**6), seg, PROFILES).price == 0


def test_a_winning_ticket_is_on_disk_before_the_segment_is_accepted(setup, tmp_path: Path) -> None:
    payments, _, queue, _ = setup
    # Face value = EV (enough to pay for its redemption): every ticket wins.
    payments.recipient.ticket_ev = payments.recipient.max_face_value = 2 * 10**15
    gateway = PaymentSender(GATEWAY_KEY)
    seg = segment()
    header = paid(gateway, quoted(payments, gateway), seg, 1)
    payments.accept(header, seg, PROFILES)
    sig = bytes(decode_payment(header).ticket_sender_params[0].sig)
    # Another connection to the file sees it: it is committed, not in a cache.
    assert TicketQueue(tmp_path / "tickets.sqlite3").get(sig) is not None
    assert queue.pending_value(gateway.address) == 2 * 10**15


def test_signatures_recipient_activity_and_headers_are_checked(setup) -> None:
    payments, watch, _, _ = setup
    gateway = PaymentSender(GATEWAY_KEY)
    info = quoted(payments, gateway)
    seg = segment()
    header = paid(gateway, info, seg, 10**6)
    other = segment(seq=5)  # signed for seq 0, sent as seq 5
    other.sig = seg.sig
    with pytest.raises(PaymentRefused, match="segment sig check failed") as refused:
        payments.accept(header, other, PROFILES)
    assert refused.value.status == 403
    assert segment_hash(seg, PROFILES) != segment_hash(seg, parse_profiles("P240p30fps16x9"))
    with pytest.raises(PaymentRefused, match="malformed Livepeer-Payment header") as refused:
        payments.accept("%%%", seg, PROFILES)
    assert refused.value.status == 402
    watch.active = False
    with pytest.raises(PaymentRefused, match="is inactive in round 7, cannot process payments"):
        payments.accept(header, seg, PROFILES)
    watch.active = True
    payment = decode_payment(header)
    payment.ClearField("expected_price")
    with pytest.raises(PaymentRefused, match="missing expected price"):
        payments.accept(encode_payment(payment), seg, PROFILES)
    # A gateway naming a lower price than quoted breaks recipientRand: refused, not cheaper.
    payment = decode_payment(header)
    payment.expected_price.pricePerUnit = 1
    with pytest.raises(PaymentRefused, match="invalid recipientRand"):
        payments.accept(encode_payment(payment), seg, PROFILES)
    assert payments.accept(header, seg, PROFILES).price == 1000
