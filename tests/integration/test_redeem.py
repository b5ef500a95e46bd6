"""Winning tickets through lpnode.pm's queue (sqlite) and redeemer on the local chain: redeemed
only once their params expired, kept through a restart, kept and retried after a revert until
the sender can pay, and never sent when the chain says used or the ticket has expired."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from lpnode.eth import abi
from lpnode.eth.client import Chain
from lpnode.eth.keystore import NodeAccount
from lpnode.eth.tx import GasPolicy, TxSender
from lpnode.pm.queue import EXPIRED, PENDING, REDEEMED, USED, TicketQueue, WinningTicket
from lpnode.pm.redeem import Redeemer
from lpnode.pm.ticket import MAX_WIN_PROB, RecipientRandKey, Ticket, recipient_rand_hash, sign
from tests.support.localchain import LocalChain

pytestmark = pytest.mark.integration

ETH = 10**18


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[LocalChain]:
    c = LocalChain(tmp_path)
    yield c
    c.close()


class Orchestrator:
    """Account 1 registered and active, paid by account 2; its queue and redeemer in datadir."""

    def __init__(self, chain: LocalChain, tmp: Path, deposit: int = 1 * ETH, reserve: int = 0) -> None:
        self.chain = chain
        self.address = chain.register(1)
        chain.next_round()
        chain.initialize_round()
        self.gateway = chain.account(2)
        self.broker = chain.w3.eth.contract(address=chain.info["contracts"]["TicketBroker"], abi=abi.TICKET_BROKER)
        if deposit or reserve:
            self.fund(deposit, reserve)
        self.datadir = tmp / "orch"
        self.key = RecipientRandKey(self.datadir)
        self.queue = TicketQueue(self.datadir / "tickets.sqlite3")
        self.redeemed: list[int] = []
        self.errors: list[str] = []

    def fund(self, deposit: int, reserve: int = 0) -> None:
        tx = self.broker.functions.fundDepositAndReserve(deposit, reserve).transact(
            {"from": self.gateway["address"], "value": deposit + reserve})
        assert self.chain.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1

    def winning(self, nonce: int = 1, face_value: int = 10**15, expires_in: int = 0) -> WinningTicket:
        round_ = self.chain.current_round()
        block_hash = bytes(self.chain.rounds.functions.blockHashForRound(round_).call())
        expiration = self.chain.w3.eth.block_number + expires_in
        rand = self.key.rand(seed=nonce, sender=bytes.fromhex(self.gateway["address"][2:]), face_value=face_value,
                             win_prob=MAX_WIN_PROB, expiration_block=expiration, price_num=1, price_den=1,
                             aux_data=b"")
        ticket = Ticket(recipient=bytes.fromhex(self.address[2:]), sender=bytes.fromhex(self.gateway["address"][2:]),
                        face_value=face_value, win_prob=MAX_WIN_PROB, sender_nonce=nonce,
                        recipient_rand_hash=recipient_rand_hash(rand), creation_round=round_,
                        creation_round_block_hash=block_hash)
        return WinningTicket(ticket=ticket, sig=sign(ticket.hash(), self.gateway["private_key"]), recipient_rand=rand,
                             params_expiration_block=expiration)

    def redeemer(self) -> Redeemer:
        key = self.chain.account(1)["private_key"]
        account = NodeAccount(address=Account.from_key(key).address, key_file="(test)",
                              private_key=bytes.fromhex(key[2:]))
        node_chain = Chain(self.chain.rpc_url, self.chain.info["controller"], str(self.datadir))
        sender = TxSender(node_chain, account, str(self.datadir), GasPolicy(timeout_s=30))
        return Redeemer(node_chain, sender, self.queue, poll_interval_s=0.2,
                        on_redeemed=lambda paid, gas: self.redeemed.append(paid), on_error=self.errors.append)

    def tick(self, redeemer: Redeemer) -> None:
        async def once() -> None:
            if redeemer.chain.contracts is None:
                await redeemer.chain.connect()
            try:
                await redeemer.tick()
            finally:
                await redeemer.chain.w3.provider.disconnect()  # its HTTP session belongs to this loop
        asyncio.run(once())

    def used(self, w: WinningTicket) -> bool:
        return bool(self.broker.functions.usedTickets(w.ticket.hash()).call())


def state(o: Orchestrator, w: WinningTicket) -> Any:
    found = o.queue.get(w.sig)
    assert found is not None
    return found.state


def test_a_ticket_is_redeemed_once_its_params_expired_and_survives_a_restart(chain: LocalChain, tmp_path: Path) -> None:
    o = Orchestrator(chain, tmp_path)
    w = o.winning(expires_in=5)
    assert o.queue.add(w) and not o.queue.add(w)       # the same ticket twice is one
    o.tick(o.redeemer())
    assert state(o, w) == PENDING and not o.used(w)    # its params are still live
    # A restart: the queue is reopened from the datadir.
    o.queue.close()
    o.queue = TicketQueue(o.datadir / "tickets.sqlite3")
    chain.mine(5)
    o.tick(o.redeemer())
    assert state(o, w) == REDEEMED and o.used(w)
    assert o.redeemed == [w.ticket.face_value]
    assert o.queue.counts() == {REDEEMED: 1} and o.queue.oldest_pending_age() == 0.0


def test_a_reverted_redemption_is_kept_and_redeemed_once_the_sender_can_pay(chain: LocalChain, tmp_path: Path) -> None:
    o = Orchestrator(chain, tmp_path, deposit=10**14)   # less than the ticket's face value, no reserve
    w = o.winning(face_value=10**15)
    o.queue.add(w)
    redeemer = o.redeemer()
    o.tick(redeemer)
    o.tick(redeemer)
    kept = o.queue.get(w.sig)
    assert kept is not None and kept.state == PENDING and kept.attempts == 2
    assert kept.last_error == "sender deposit and reserve insufficient to cover ticket face value"
    assert o.errors == ["reverted", "reverted"] and not o.used(w)
    o.fund(1 * ETH)
    o.tick(redeemer)
    assert state(o, w) == REDEEMED and o.used(w)


def test_a_ticket_the_chain_has_as_used_is_not_sent_again(chain: LocalChain, tmp_path: Path) -> None:
    o = Orchestrator(chain, tmp_path)
    w = o.winning()
    o.queue.add(w)
    tx = o.broker.functions.redeemWinningTicket(w.ticket.as_contract_tuple(), w.sig, w.recipient_rand).transact(
        {"from": o.address})
    assert chain.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    before = len(chain.transactions_from(o.address, o.broker.address))
    o.tick(o.redeemer())
    assert state(o, w) == USED
    assert len(chain.transactions_from(o.address, o.broker.address)) == before


def test_an_expired_ticket_is_reported_and_never_sent(chain: LocalChain, tmp_path: Path) -> None:
    o = Orchestrator(chain, tmp_path)
    w = o.winning()
    o.queue.add(w)
    for _ in range(2):   # the ticket validity period: 2 rounds
        chain.next_round()
        chain.initialize_round()
    before = len(chain.transactions_from(o.address, o.broker.address))
    o.tick(o.redeemer())
    kept = o.queue.get(w.sig)
    assert kept is not None and kept.state == EXPIRED and kept.last_error == "ticket is expired"
    assert o.errors == ["expired"]
    assert len(chain.transactions_from(o.address, o.broker.address)) == before


def test_a_new_round_not_yet_initialized_holds_redemption_without_a_reverted_transaction(
        chain: LocalChain, tmp_path: Path) -> None:
    o = Orchestrator(chain, tmp_path)
    w = o.winning()
    o.queue.add(w)
    chain.next_round()                     # the round began; nobody has initialized it yet
    before = len(chain.transactions_from(o.address, o.broker.address))
    redeemer = o.redeemer()
    o.tick(redeemer)
    assert state(o, w) == PENDING and o.errors == []
    assert len(chain.transactions_from(o.address, o.broker.address)) == before   # no gas spent on a revert
    chain.initialize_round()
    o.tick(redeemer)
    assert state(o, w) == REDEEMED and o.used(w)
