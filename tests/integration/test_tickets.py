"""Tickets made and signed by lpnode.pm.ticket against the local chain's TicketBroker: the same
hash, a winning ticket redeemed, and redeemWinningTicket's checks in the protocol's order with
its revert strings (reference: onchain.md 1.6)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import event_abi_to_log_topic, function_abi_to_4byte_selector
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from lpfleet.chain import compile_contracts
from lpnode.pm.ticket import MAX_WIN_PROB, SECP256K1_N, RecipientRandKey, Ticket, is_winning, recipient_rand_hash, sign
from tests.support.localchain import LocalChain

pytestmark = pytest.mark.integration

ETH = 10**18

# The reference's selectors (onchain.md 1.9) and event signatures (1.6) of the TicketBroker.
SELECTORS = {
    "redeemWinningTicket": "ec8b3cb6", "batchRedeemWinningTickets": "d01b808e", "getTicketHash": "b03fa864",
    "fundDeposit": "6caa736b", "fundReserve": "6f9c3c8f", "fundDepositAndReserve": "511f4073",
    "getSenderInfo": "e1a589da", "claimableReserve": "81779f38", "claimedReserve": "4ac826da",
    "usedTickets": "59a515ba", "unlock": "a69df4b5", "cancelUnlock": "c2c4c2c8", "withdraw": "3ccfd60b",
    "unlockPeriod": "20d3a0b4", "ticketValidityPeriod": "856a2cf8", "isUnlockInProgress": "121cdcc2",
}
EVENTS = {
    "DepositFunded(address,uint256)",
    "WinningTicketRedeemed(address,address,uint256,uint256,uint256,uint256,bytes)",
    "WinningTicketTransfer(address,address,uint256)",
    "Unlock(address,uint256,uint256)",
    "UnlockCancelled(address)",
    "Withdrawal(address,uint256,uint256)",
    "ReserveFunded(address,uint256)",
    "ReserveClaimed(address,address,uint256)",
}


def test_the_ticket_broker_has_the_protocols_selectors_and_events() -> None:
    from eth_utils import keccak

    contract_abi = compile_contracts()["TicketBroker"].abi
    selectors = {f["name"]: function_abi_to_4byte_selector(f).hex() for f in contract_abi if f["type"] == "function"}
    assert {name: selectors.get(name) for name in SELECTORS} == SELECTORS
    topics = {event_abi_to_log_topic(e) for e in contract_abi if e["type"] == "event"}
    assert {keccak(text=sig) for sig in EVENTS} <= topics


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[LocalChain]:
    c = LocalChain(tmp_path)
    yield c
    c.close()


def broker(chain: LocalChain) -> Any:
    return chain.w3.eth.contract(address=chain.info["contracts"]["TicketBroker"],
                                 abi=compile_contracts()["TicketBroker"].abi)


def send(chain: LocalChain, call: Any, sender: str, value: int = 0) -> Any:
    receipt = chain.w3.eth.wait_for_transaction_receipt(call.transact({"from": sender, "value": value}))
    assert receipt["status"] == 1
    return receipt


def revert_reason(call: Any, sender: str) -> str:
    with pytest.raises(ContractLogicError) as info:
        call.call({"from": sender})
    return str(info.value.args[0]).removeprefix("execution reverted: ")


class Setup:
    """An orchestrator (account 1, registered and active) paid by a gateway (account 2) with a
    deposit and a reserve."""

    def __init__(self, chain: LocalChain, tmp: Path) -> None:
        self.chain = chain
        self.broker = broker(chain)
        self.orch = chain.register(1)
        chain.next_round()
        chain.initialize_round()
        self.gateway = chain.account(2)
        send(chain, self.broker.functions.fundDepositAndReserve(1 * ETH, 1 * ETH), self.gateway["address"], 2 * ETH)
        self.key = RecipientRandKey(tmp / "orch-data")
        self.round = chain.current_round()
        self.block_hash = bytes(chain.rounds.functions.blockHashForRound(self.round).call())

    def ticket(self, face_value: int = 10**15, win_prob: int = MAX_WIN_PROB, nonce: int = 1,
               creation_round: int | None = None) -> tuple[Ticket, int]:
        rand = self.key.rand(seed=nonce * 7, sender=bytes.fromhex(self.gateway["address"][2:]), face_value=face_value,
                             win_prob=win_prob, expiration_block=1000, price_num=1, price_den=1, aux_data=b"")
        ticket = Ticket(recipient=bytes.fromhex(self.orch[2:]), sender=bytes.fromhex(self.gateway["address"][2:]),
                        face_value=face_value, win_prob=win_prob, sender_nonce=nonce,
                        recipient_rand_hash=recipient_rand_hash(rand),
                        creation_round=self.round if creation_round is None else creation_round,
                        creation_round_block_hash=self.block_hash)
        return ticket, rand

    def redeem(self, ticket: Ticket, sig: bytes, rand: int) -> Any:
        return self.broker.functions.redeemWinningTicket(ticket.as_contract_tuple(), sig, rand)


def test_the_ticket_hash_is_the_contracts(chain: LocalChain, tmp_path: Path) -> None:
    s = Setup(chain, tmp_path)
    ticket, _ = s.ticket(face_value=123456789, win_prob=2**200 + 5, nonce=42)
    assert bytes(s.broker.functions.getTicketHash(ticket.as_contract_tuple()).call()) == ticket.hash()


def test_a_winning_ticket_signed_here_is_redeemed_once(chain: LocalChain, tmp_path: Path) -> None:
    s = Setup(chain, tmp_path)
    ticket, rand = s.ticket()
    sig = sign(ticket.hash(), s.gateway["private_key"])
    assert is_winning(sig, rand, ticket.win_prob)
    receipt = send(chain, s.redeem(ticket, sig, rand), s.orch)
    [redeemed] = s.broker.events.WinningTicketRedeemed().process_receipt(receipt, errors=DISCARD)
    assert redeemed["args"]["recipientRand"] == rand and redeemed["args"]["faceValue"] == ticket.face_value
    assert s.broker.functions.usedTickets(ticket.hash()).call() is True
    deposit = s.broker.functions.getSenderInfo(s.gateway["address"]).call()[0][0]
    assert deposit == 1 * ETH - ticket.face_value
    assert chain.bonding.functions.getTranscoder(s.orch).call()[8] == ticket.face_value  # cumulativeFees
    assert revert_reason(s.redeem(ticket, sig, rand), s.orch) == "ticket is used"


def test_redeem_checks_come_in_the_protocols_order(chain: LocalChain, tmp_path: Path) -> None:
    s = Setup(chain, tmp_path)
    ticket, rand = s.ticket()
    sig = sign(ticket.hash(), s.gateway["private_key"])
    orch = s.orch
    # recipientRand before the signature: a wrong rand is named even with a bad signature.
    assert revert_reason(s.redeem(ticket, b"\0" * 65, rand + 1), orch) == \
        "recipientRand does not match recipientRandHash"
    # s above half the curve order: the same signature's twin, refused as OpenZeppelin does.
    r, s_value, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    high_s = r + (SECP256K1_N - s_value).to_bytes(32, "big") + bytes([55 - v])
    assert revert_reason(s.redeem(ticket, high_s, rand), orch) == "ECDSA: invalid signature 's' value"
    assert revert_reason(s.redeem(ticket, sig[:64] + b"\x01", rand), orch) == "ECDSA: invalid signature 'v' value"
    other = sign(ticket.hash(), chain.account(3)["private_key"])
    assert revert_reason(s.redeem(ticket, other, rand), orch) == "invalid signature over ticket hash"
    losing, losing_rand = s.ticket(win_prob=0, nonce=2)
    losing_sig = sign(losing.hash(), s.gateway["private_key"])
    assert revert_reason(s.redeem(losing, losing_sig, losing_rand), orch) == "ticket did not win"
    # More than the deposit and this orchestrator's share of the reserve: refused and left unused
    # (protocol#657), so it can be redeemed once the sender has funds again.
    big, big_rand = s.ticket(face_value=5 * ETH, nonce=3)
    big_sig = sign(big.hash(), s.gateway["private_key"])
    assert revert_reason(s.redeem(big, big_sig, big_rand), orch) == \
        "sender deposit and reserve insufficient to cover ticket face value"
    assert s.broker.functions.usedTickets(big.hash()).call() is False
    # Two rounds on, the first round's tickets have expired.
    chain.next_round()
    chain.initialize_round()
    chain.next_round()
    chain.initialize_round()
    assert revert_reason(s.redeem(ticket, sig, rand), orch) == "ticket is expired"
    stale, stale_rand = s.ticket(creation_round=s.round + 10, nonce=4)
    assert revert_reason(s.redeem(stale, sign(stale.hash(), s.gateway["private_key"]), stale_rand), orch) == \
        "ticket creationRound does not have a block hash"
