"""What the orchestrator's payments need from the chain, read at every block poll: the block
rounds count in, the last initialized round and its block hash, the gas price, whether the
orchestrator is active; and, per gateway, how much of its reserve this orchestrator may still
claim (max float, reference 2.6), read once per block.

Until the first read succeeds ``view`` is None and payments are refused with a clear reason;
an endpoint that stops answering keeps the last view, whose params then expire by themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from fractions import Fraction

from eth_utils import to_checksum_address

from lpnode.eth import abi
from lpnode.eth.client import Chain, ChainConfigError
from lpnode.eth.metrics import ChainMetrics
from lpnode.pm.pricing import Pricing
from lpnode.pm.recipient import ChainView

log = logging.getLogger("lpnode.payments")

MAX_BACKOFF_S = 60.0
# go-livepeer's maxFloat: with at least this many times the pending value in deposit, pending
# tickets are not taken off the reserve's allocation.
DEPOSIT_TO_PENDING_RATIO = 3


class ChainWatch:
    def __init__(self, chain: Chain, recipient: bytes, poll_interval_s: float,
                 pending_value: Callable[[bytes], int] = lambda sender: 0, price_feed: str | None = None,
                 pricing: Pricing | None = None,
                 remote_max_float: Callable[[bytes], Awaitable[int]] | None = None,
                 metrics: ChainMetrics | None = None) -> None:
        self.chain = chain
        self._metrics = metrics  # lpfleet_rpc_up and _errors: this node's view of its endpoint
        self._block = -1  # the last block number seen, for when the chain last moved
        self.recipient = to_checksum_address(recipient)
        self.poll_interval_s = poll_interval_s
        self._pending_value = pending_value  # face value of the sender's tickets not yet redeemed
        self.view: ChainView | None = None
        self.active = False
        self.error: str | None = "not read yet"
        self._floats: dict[bytes, tuple[int, int]] = {}  # sender -> (block, max float)
        self._feed = chain.w3.eth.contract(address=to_checksum_address(price_feed), abi=abi.PRICE_FEED) \
            if price_feed else None
        self.wei_per_currency_unit: Fraction | None = None  # from the price feed, for currency prices
        self._pricing = pricing  # the feed is read only while a price is in a currency
        self._remote_max_float = remote_max_float  # a separate redeemer's answer, which holds the pending tickets

    async def run(self) -> None:
        backoff = self.poll_interval_s
        while True:
            try:
                view = await self.refresh()
                backoff = self.poll_interval_s
                self._seen(view.last_seen_block)
            except ChainConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - the endpoint: retried; the last view stays
                if self._metrics:
                    self._metrics.rpc_up.set(0)
                    self._metrics.rpc_errors.inc()
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("reading the chain for payments failed (%s); trying again in %.0f s",
                            self.error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            await asyncio.sleep(self.poll_interval_s)

    def _seen(self, block: int) -> None:
        """The endpoint answered: lpfleet_rpc_up, and when the chain last moved (LpnodeChainStale)."""
        if not self._metrics:
            return
        self._metrics.rpc_up.set(1)
        if block != self._block:
            self._block = block
            self._metrics.last_block.set(time.time())
            self._metrics.block.set(block)

    async def refresh(self) -> ChainView:
        c = self.chain.contracts or await self.chain.connect()
        rounds = c.rounds_manager.functions
        block = int(await rounds.blockNum().call())
        last_initialized = int(await rounds.lastInitializedRound().call())
        block_hash = bytes(await rounds.blockHashForRound(last_initialized).call())
        if not any(block_hash) and last_initialized > 0:
            # go-livepeer's workaround for a round whose hash was never stored (Arbitrum).
            last_initialized -= 1
            block_hash = bytes(await rounds.blockHashForRound(last_initialized).call())
        gas_price = int(await self.chain.w3.eth.gas_price)
        active = bool(await c.bonding_manager.functions.isActiveTranscoder(self.recipient).call())
        if self._feed is not None and self._pricing is not None and self._pricing.needs_feed:
            await self._read_feed()
        if active != self.active or self.view is None:
            log.info("orchestrator %s is %s in round %d", self.recipient, "active" if active else "NOT active",
                     last_initialized)
        self.view = ChainView(last_seen_block=block, last_initialized_round=last_initialized,
                              round_block_hash=block_hash, gas_price=gas_price)
        self.active, self.error = active, None
        return self.view

    async def _read_feed(self) -> None:
        """ETH in the feed's currency (e.g. 3000.12345678 USD, 8 decimals) as wei per currency unit."""
        assert self._feed is not None
        decimals = int(await self._feed.functions.decimals().call())
        _, answer, _, _, _ = await self._feed.functions.latestRoundData().call()
        if int(answer) <= 0:
            raise ValueError(f"the price feed {self._feed.address} answers {answer}: not a price")
        rate = Fraction(10**18 * 10**decimals, int(answer))
        if rate != self.wei_per_currency_unit:
            log.info("price feed %s: 1 ETH = %s (%.0f wei per unit of its currency)", self._feed.address,
                     Fraction(int(answer), 10**decimals).limit_denominator(10**decimals), float(rate))
        self.wei_per_currency_unit = rate

    async def max_float(self, sender: bytes) -> int:
        """What a ticket from ``sender`` can be worth at most and still be paid (go-livepeer's
        maxFloat): its reserve allocation for this orchestrator, less its tickets waiting for
        redemption unless its deposit covers them three times."""
        block = self.view.last_seen_block if self.view else -1
        cached = self._floats.get(sender)
        if cached is not None and cached[0] == block:
            return cached[1]
        value = None
        if self._remote_max_float is not None:
            try:
                value = await self._remote_max_float(sender)
            except Exception as exc:  # noqa: BLE001 - the redeemer is away: the chain's own answer
                log.debug("max float from the redeemer failed (%s); reading the chain", exc)
        if value is None:
            value = await self._chain_max_float(sender)
        if len(self._floats) > 10_000:  # one entry per gateway seen: bounded against many senders
            self._floats.clear()
        self._floats[sender] = (block, value)
        return value

    async def _chain_max_float(self, sender: bytes) -> int:
        c = self.chain.contracts or await self.chain.connect()
        broker = c.ticket_broker.functions
        address = to_checksum_address(sender)
        reserve = int(await broker.claimableReserve(address, self.recipient).call())
        info, _ = await broker.getSenderInfo(address).call()
        deposit = int(info[0])
        pending = self._pending_value(sender)
        return reserve if pending == 0 or deposit >= DEPOSIT_TO_PENDING_RATIO * pending else max(0, reserve - pending)
