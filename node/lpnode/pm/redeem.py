"""Redeeming the queue's winning tickets on chain, losing none.

At every poll: the tickets whose params have expired (reference 2.6: go-livepeer waits for that
too) are redeemed one at a time through the node's TxSender (a crash mid-transaction resumes the
same nonce, never a second transaction). Each outcome is recorded in the queue:

- mined: redeemed, with the transaction hash;
- the chain already has the ticket as used (another redeemer, a previous run): used;
- the ticket's creation round has expired (`creationRound + ticketValidityPeriod <= round`):
  expired, logged as an error, never sent (it would only revert);
- a revert or a refusal (deposit and reserve cannot cover it, round not initialized, gas above
  -maxGasPrice, not mined in time): kept pending with the reason and tried again at the next
  poll, while it can still be redeemed. go-livepeer drops such a ticket (#4013).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from web3.logs import DISCARD

from lpnode.eth.client import Chain
from lpnode.eth.tx import GasPriceTooHigh, TxReverted, TxSender, TxTimeout
from lpnode.pm.queue import EXPIRED, REDEEMED, USED, TicketQueue, WinningTicket

log = logging.getLogger("lpnode.redeem")

TICKET_IS_USED = "ticket is used"
MAX_BACKOFF_S = 60.0


class Redeemer:
    def __init__(self, chain: Chain, sender: TxSender, queue: TicketQueue, poll_interval_s: float = 5.0,
                 on_redeemed: Any = None, on_error: Any = None, on_balance: Any = None) -> None:
        self.chain = chain
        self.sender = sender
        self.queue = queue
        self.poll_interval_s = poll_interval_s
        self._on_redeemed = on_redeemed  # called with the wei paid out and the wei the gas cost
        self._on_error = on_error  # called with a short reason
        self._on_balance = on_balance  # called with the redeeming account's ETH at every poll
        self._reported: dict[bytes, str] = {}  # the last reason logged per ticket

    async def run(self) -> None:
        """Poll for ever; failures of the endpoint back off up to a minute."""
        if self.chain.contracts is None:
            await self.chain.connect()
        backoff = self.poll_interval_s
        while True:
            try:
                await self.tick()
                backoff = self.poll_interval_s
            except Exception as exc:  # noqa: BLE001 - the endpoint: retried, the tickets stay queued
                log.warning("redeeming: %s; trying again in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            await asyncio.sleep(self.poll_interval_s)

    async def tick(self) -> None:
        c = self.chain.contracts
        assert c is not None
        block = int(await c.rounds_manager.functions.blockNum().call())
        for winning in self.queue.due(block):
            await self.redeem(winning)
        if self._on_balance is not None:
            self._on_balance(int(await self.chain.w3.eth.get_balance(self.sender.account.address)))

    async def redeem(self, w: WinningTicket) -> str | None:
        """Try to redeem one ticket; returns its new state, or None while it stays pending."""
        c = self.chain.contracts
        assert c is not None
        broker, rounds = c.ticket_broker.functions, c.rounds_manager.functions
        ticket_hash = w.ticket.hash()
        short = "0x" + ticket_hash.hex()[:12]
        if await broker.usedTickets(ticket_hash).call():
            self._done(w, USED)
            log.info("ticket %s (nonce %d) is already redeemed on chain", short, w.ticket.sender_nonce)
            return USED
        current = int(await rounds.currentRound().call())
        validity = int(await broker.ticketValidityPeriod().call())
        if w.ticket.creation_round + validity > current and not await rounds.currentRoundInitialized().call():
            # The round just began and is not initialized yet: a redemption now would revert
            # (and pay its gas). It waits, quietly, for the next poll.
            return None
        if w.ticket.creation_round + validity <= current:
            self._done(w, EXPIRED, reason="ticket is expired")
            log.error("ticket %s worth %d wei expired unredeemed (created in round %d, valid %d rounds, now %d)",
                      short, w.ticket.face_value, w.ticket.creation_round, validity, current)
            self._error("expired")
            return EXPIRED
        call = broker.redeemWinningTicket(w.ticket.as_contract_tuple(), w.sig, w.recipient_rand)
        try:
            receipt = await self.sender.send(f"redeem:{ticket_hash.hex()}", call, f"redeem ticket {short}")
        except TxReverted as exc:
            if exc.reason == TICKET_IS_USED:
                self.sender.forget(f"redeem:{ticket_hash.hex()}")
                self._done(w, USED)
                return USED
            self._keep(w, short, exc.reason, "reverted", w.ticket.creation_round + validity - 1)
            return None
        except (GasPriceTooHigh, TxTimeout) as exc:
            self._keep(w, short, str(exc), "gas" if isinstance(exc, GasPriceTooHigh) else "timeout",
                       w.ticket.creation_round + validity - 1)
            return None
        tx_hash = receipt["transactionHash"]
        tx_hash = tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()
        paid = sum(int(e["args"]["amount"]) for e in _transfers(c.ticket_broker, receipt))
        self._done(w, REDEEMED, tx_hash=tx_hash)
        log.info("ticket %s redeemed: %d wei (transaction %s)", short, paid, tx_hash)
        if self._on_redeemed is not None:
            self._on_redeemed(paid, int(receipt.get("gasUsed", 0)) * int(receipt.get("effectiveGasPrice", 0)))
        return REDEEMED

    def _done(self, w: WinningTicket, state: str, tx_hash: str | None = None, reason: str | None = None) -> None:
        self.queue.done(w.sig, state, tx_hash=tx_hash, reason=reason)
        self._reported.pop(w.sig, None)

    def _keep(self, w: WinningTicket, short: str, reason: str, kind: str, last_round: int) -> None:
        self.queue.failed(w.sig, reason)
        self._error(kind)
        # Once per reason, not at every poll: the queue holds the count.
        if self._reported.get(w.sig) != reason:
            self._reported[w.sig] = reason
            log.warning("ticket %s worth %d wei not redeemed: %s; kept, and tried again at every poll while "
                        "it is valid (to round %d)", short, w.ticket.face_value, reason, last_round)

    def _error(self, kind: str) -> None:
        if self._on_error is not None:
            self._on_error(kind)


def _transfers(broker: Any, receipt: Any) -> list[Any]:
    return list(broker.events.WinningTicketTransfer().process_receipt(receipt, errors=DISCARD))
