"""lpnode.pm.recipient and balance: the params an orchestrator quotes and the checks a payment's
tickets go through (go-livepeer's pm.Recipient and ProcessPayment, reference 2.1, 2.2, 2.5),
with real signatures from a gateway key."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from eth_account import Account

from lpnode.pm.balance import Balances
from lpnode.pm.recipient import (
    MAX_NONCES_PER_RAND,
    PARAMS_EXPIRATION_BLOCKS,
    REDEEM_GAS_L1,
    REDEEM_GAS_L2,
    ChainView,
    PaymentError,
    Recipient,
    TicketParams,
)
from lpnode.pm.ticket import MAX_WIN_PROB, RecipientRandKey, Ticket, is_winning, sign

GATEWAY_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # anvil's test account 2
GATEWAY = bytes.fromhex(Account.from_key(GATEWAY_KEY).address[2:])
ORCH = b"\x70" * 20
EV = 10**12
CHAIN = ChainView(last_seen_block=1000, last_initialized_round=7, round_block_hash=b"\x42" * 32, gas_price=10**8)


@pytest.fixture
def recipient(tmp_path: Path) -> Recipient:
    seeds = iter(range(1, 10**6))
    return Recipient(ORCH, RecipientRandKey(tmp_path), "arbitrum-one-mainnet", ticket_ev=EV, seed=lambda: next(seeds))


def pay(params: TicketParams, nonces: list[int], key: str = GATEWAY_KEY) -> list[tuple[int, bytes]]:
    out = []
    for nonce in nonces:
        t = Ticket(recipient=params.recipient, sender=GATEWAY, face_value=params.face_value, win_prob=params.win_prob,
                   sender_nonce=nonce, recipient_rand_hash=params.recipient_rand_hash,
                   creation_round=params.creation_round, creation_round_block_hash=params.creation_round_block_hash)
        out.append((nonce, sign(t.hash(), key)))
    return out


def test_face_value_is_a_hundred_redemptions_and_win_prob_gives_the_ev(recipient: Recipient) -> None:
    params = recipient.ticket_params(GATEWAY, CHAIN, price_num=1, price_den=1)
    assert params.face_value == REDEEM_GAS_L2 * 10**8 * 100
    assert params.win_prob == EV * -(-MAX_WIN_PROB // params.face_value)
    assert EV <= params.ev() < EV * Fraction(1001, 1000)
    assert params.expiration_block == CHAIN.last_seen_block + PARAMS_EXPIRATION_BLOCKS
    assert (params.creation_round, params.creation_round_block_hash) == (7, b"\x42" * 32)
    assert recipient.redeem_gas == REDEEM_GAS_L2
    assert Recipient(ORCH, recipient.key, "lpfleet-local", ticket_ev=EV).redeem_gas == REDEEM_GAS_L1


def test_face_value_capped_by_max_float_and_refused_below_the_ev(recipient: Recipient) -> None:
    assert recipient.ticket_params(GATEWAY, CHAIN, 1, 1, max_float=10**15).face_value == 10**15
    with pytest.raises(PaymentError, match="insufficient sender reserve"):
        recipient.ticket_params(GATEWAY, CHAIN, 1, 1, max_float=EV - 1)


def test_a_free_orchestrator_asks_for_no_tickets(recipient: Recipient) -> None:
    params = recipient.ticket_params(GATEWAY, CHAIN, price_num=0, price_den=1)
    assert params.face_value == 0 and params.win_prob == 0


def test_a_valid_payment_credits_each_tickets_ev_and_returns_the_winners(recipient: Recipient) -> None:
    params = recipient.ticket_params(GATEWAY, CHAIN, 1, 1)
    received = recipient.receive(params, GATEWAY, pay(params, [1, 2, 3]), last_seen_block=CHAIN.last_seen_block)
    assert received.error is None and received.credit == 3 * params.ev()
    for ticket, sig, rand in received.winning:      # whatever won is handed over, with its rand
        assert is_winning(sig, rand, ticket.win_prob) and ticket.recipient == ORCH


@pytest.mark.parametrize("change,message", [
    ({"recipient": b"\x01" * 20}, "invalid ticket recipient"),
    ({"face_value": 1}, "invalid recipientRand for ticket recipientRandHash"),
    ({"seed": 12345}, "invalid recipientRand for ticket recipientRandHash"),
    ({"win_prob": MAX_WIN_PROB}, "invalid recipientRand for ticket recipientRandHash"),
])
def test_params_the_orchestrator_did_not_issue_are_refused(recipient: Recipient, change: dict, message: str) -> None:
    params = recipient.ticket_params(GATEWAY, CHAIN, 1, 1)
    forged = TicketParams(**{**params.__dict__, **change})
    with pytest.raises(PaymentError, match=message) as info:
        recipient.receive(forged, GATEWAY, pay(forged, [1]), CHAIN.last_seen_block)
    assert info.value.fatal


def test_a_zero_sender_is_refused(recipient: Recipient) -> None:
    params = recipient.ticket_params(GATEWAY, CHAIN, 1, 1)
    with pytest.raises(PaymentError, match="invalid ticket sender"):
        recipient.receive(params, b"\0" * 20, [], CHAIN.last_seen_block)


def test_a_bad_signature_is_not_credited_nor_anything_after_it(recipient: Recipient) -> None:
    params = recipient.ticket_params(GATEWAY, CHAIN, 1, 1)
    other_key = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"  # anvil account 3
    tickets = pay(params, [1]) + pay(params, [2], key=other_key) + pay(params, [3])
    received = recipient.receive(params, GATEWAY, tickets, CHAIN.last_seen_block)
    assert received.error is not None and str(received.error) == "invalid ticket signature"
    assert not received.error.fatal and received.credit == params.ev()


def test_a_replayed_nonce_is_refused(recipient: Recipient) -> None:
    params = recipient.ticket_params(GATEWAY, CHAIN, 1, 1)
    recipient.receive(params, GATEWAY, pay(params, [1, 2]), CHAIN.last_seen_block)
    with pytest.raises(PaymentError, match="invalid ticket senderNonce: already seen"):
        recipient.receive(params, GATEWAY, pay(params, [2]), CHAIN.last_seen_block)


def test_at_most_600_nonces_per_recipient_rand(tmp_path: Path) -> None:
    assert MAX_NONCES_PER_RAND == 600 and Recipient(ORCH, RecipientRandKey(tmp_path), "x", EV).max_nonces == 600
    r = Recipient(ORCH, RecipientRandKey(tmp_path), "arbitrum-one-mainnet", ticket_ev=EV, max_nonces=3)
    params = r.ticket_params(GATEWAY, CHAIN, 1, 1)
    with pytest.raises(PaymentError, match="invalid ticket senderNonce: too many values"):
        r.receive(params, GATEWAY, pay(params, [1, 2, 3, 4]), CHAIN.last_seen_block)


def test_expired_params_credit_nothing_but_winners_still_count(recipient: Recipient) -> None:
    params = recipient.ticket_params(GATEWAY, CHAIN, 1, 1)
    received = recipient.receive(params, GATEWAY, pay(params, [1, 2]), last_seen_block=params.expiration_block)
    assert received.error is not None and str(received.error) == "TicketParams expired"
    assert not received.error.fatal and received.credit == 0


def test_params_survive_a_restart(tmp_path: Path) -> None:
    """recipientRand's key is in the datadir: params quoted before a restart validate after it."""
    before = Recipient(ORCH, RecipientRandKey(tmp_path), "arbitrum-one-mainnet", ticket_ev=EV)
    params = before.ticket_params(GATEWAY, CHAIN, 1, 1)
    after = Recipient(ORCH, RecipientRandKey(tmp_path), "arbitrum-one-mainnet", ticket_ev=EV)
    assert after.receive(params, GATEWAY, pay(params, [1]), CHAIN.last_seen_block).credit == params.ev()


def test_balances_credit_debit_fixed_price_and_idle_expiry() -> None:
    b = Balances(ttl_s=600)
    key = (GATEWAY, "manifest-1")
    assert not b.sufficient(key, Fraction(EV))
    b.credit(key, Fraction(3 * EV), now=0)
    assert b.sufficient(key, Fraction(EV))
    assert b.fix_price(key, Fraction(1, 3), now=1) == Fraction(1, 3)
    assert b.fix_price(key, Fraction(5), now=2) == Fraction(1, 3)        # the first price sticks
    assert b.debit(key, Fraction(2 * EV), now=3) == EV
    assert b.expire(now=500) == 0 and b.expire(now=604) == 1
    assert b.balance(key) == 0
