"""Sending a transaction so that a crash, a restart or a slow chain never sends it twice.

Each transaction is sent for a *key* that names the action (``reward:1234``). Before it goes out
its nonce and hash are written to ``<datadir>/pending-tx.json``; a later ``send`` for the same
key (after a timeout, an exception or a restart) first looks for that transaction's receipt,
waits for it while the node still knows it, and otherwise sends again with the same nonce, so
at most one of them can ever be mined. Gas follows go-livepeer's flags: -maxGasPrice (the fee
cap; above it nothing is sent), -minGasPrice, -gasLimit (0: estimate), -transactionTimeout,
-maxTransactionReplacements (+11% fees each).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from eth_account import Account
from eth_typing import HexStr
from web3.exceptions import ContractLogicError, TransactionNotFound
from web3.types import TxParams

from lpnode.config import NodeConfig
from lpnode.eth.client import Chain
from lpnode.eth.keystore import NodeAccount

log = logging.getLogger("lpnode.eth")

REPLACEMENT_BUMP = 1.11  # go-livepeer's: above the 10% nodes require to replace a transaction
GAS_MARGIN = 1.2  # on an estimate: the state may change between estimating and mining


class GasPriceTooHigh(Exception):
    """The chain's base fee is above -maxGasPrice: nothing was sent."""


class TxReverted(Exception):
    """The transaction reverted (when estimating, or mined with status 0); ``reason`` is the
    revert string when the chain gave one."""

    def __init__(self, what: str, reason: str, tx_hash: str | None = None) -> None:
        super().__init__(f"{what} reverted: {reason}" + (f" (transaction {tx_hash})" if tx_hash else ""))
        self.reason = reason
        self.tx_hash = tx_hash


class TxTimeout(Exception):
    """Not mined within -transactionTimeout after every replacement; still pending."""


@dataclass
class Pending:
    key: str
    what: str
    nonce: int
    hashes: list[str] = field(default_factory=list)
    sent_at: float = 0.0


@dataclass(frozen=True)
class GasPolicy:
    max_gas_price: int = 0  # wei; 0: no cap
    min_gas_price: int = 0
    gas_limit: int = 0  # 0: estimate
    timeout_s: float = 300.0
    max_replacements: int = 1

    @classmethod
    def from_config(cls, cfg: NodeConfig) -> GasPolicy:
        return cls(max_gas_price=cfg.max_gas_price, min_gas_price=cfg.min_gas_price, gas_limit=cfg.gas_limit,
                   timeout_s=cfg.transaction_timeout.total_seconds(),
                   max_replacements=cfg.max_transaction_replacements)


def revert_reason(exc: BaseException) -> str:
    """The revert string in a web3 error, without web3's prefix."""
    text = str(exc.args[0] if exc.args else exc)
    return text.removeprefix("execution reverted: ").removeprefix("execution reverted").strip() or "no reason given"


class TxSender:
    def __init__(self, chain: Chain, account: NodeAccount, datadir: str, policy: GasPolicy,
                 gas_spent: Callable[[int], None] | None = None) -> None:
        self.chain = chain
        self.account = account
        self.policy = policy
        self._path = Path(datadir) / "pending-tx.json"
        self._gas_spent = gas_spent  # told the wei of every mined transaction
        # One account, one nonce sequence, one pending record: the reward service and the
        # ticket redeemer of one node take turns.
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ the pending record

    def pending(self) -> Pending | None:
        try:
            return Pending(**json.loads(self._path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            log.error("%s is unreadable; set aside as %s.bad", self._path, self._path.name)
            os.replace(self._path, self._path.with_suffix(".json.bad"))
            return None

    def _save(self, pending: Pending) -> None:
        tmp = self._path.with_suffix(".new")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(asdict(pending), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)

    def forget(self, key: str) -> None:
        """Drop the record for ``key`` (the chain shows the action done)."""
        pending = self.pending()
        if pending is not None and pending.key == key:
            self._path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ sending

    async def send(self, key: str, function: Any, what: str, value: int = 0) -> dict[str, Any]:
        """Send ``function`` (a bound contract function, with ``value`` wei) for ``key`` and
        return its receipt. Raises GasPriceTooHigh, TxReverted or TxTimeout; web3/aiohttp errors
        when the endpoint fails. Call again with the same key to resume."""
        async with self._lock:
            return await self._send(key, function, what, value)

    async def _send(self, key: str, function: Any, what: str, value: int) -> dict[str, Any]:
        w3 = self.chain.w3
        pending = self.pending()
        if pending is not None and await self._from_elsewhere(pending):
            log.warning("%s: the recorded transaction (%s, nonce %d) is unknown to this chain and its nonce is "
                        "ahead of the account's: a record from another chain (a reset test chain, a copied "
                        "datadir); set aside", what, pending.what, pending.nonce)
            self._path.unlink(missing_ok=True)
            pending = None
        if pending is not None and pending.key != key:
            # Another action's transaction: its nonce decides whether it is still in the way.
            if await w3.eth.get_transaction_count(self.account.address, "latest") > pending.nonce:
                self._path.unlink(missing_ok=True)
                pending = None
            else:
                log.warning("an earlier transaction (%s, nonce %d) is still pending; %s waits for it",
                            pending.what, pending.nonce, what)
                receipt = await self._wait(pending, self.policy.timeout_s)
                self._path.unlink(missing_ok=True)
                if receipt is None:
                    raise TxTimeout(f"{pending.what} still pending after {self.policy.timeout_s:.0f} s")
                pending = None
        if pending is not None:
            receipt = await self._receipt(pending.hashes)
            if receipt is not None:
                return self._done(pending, receipt)
            if await w3.eth.get_transaction_count(self.account.address, "latest") > pending.nonce:
                # The nonce went to something else (sent outside lpnode): ours was never mined.
                log.warning("%s: nonce %d was used by another transaction; sending again", what, pending.nonce)
                pending = None
            elif await self._known(pending.hashes):
                log.info("%s: transaction %s sent before is still pending; waiting for it", what, pending.hashes[-1])
                receipt = await self._wait(pending, self.policy.timeout_s)
                if receipt is not None:
                    return self._done(pending, receipt)
        if pending is None:
            nonce = await w3.eth.get_transaction_count(self.account.address, "pending")
            pending = Pending(key=key, what=what, nonce=nonce)
        data = function._encode_transaction_data()
        tx: dict[str, Any] = {"from": self.account.address, "to": function.address, "data": data,
                              "nonce": pending.nonce, "chainId": self.chain.chain_id, "value": value}
        tx["gas"] = self.policy.gas_limit or await self._estimate(tx, what)
        fee_cap, tip = await self._fees()
        for attempt in range(self.policy.max_replacements + 1):
            tx["maxFeePerGas"], tx["maxPriorityFeePerGas"] = fee_cap, tip
            signed = Account.sign_transaction(tx, self.account.private_key)
            tx_hash = "0x" + signed.hash.hex().removeprefix("0x")
            pending.hashes.append(tx_hash)
            pending.sent_at = time.time()
            self._save(pending)  # before sending: a crash right after must find it
            try:
                await w3.eth.send_raw_transaction(signed.raw_transaction)
            except ValueError as exc:
                if "already known" not in str(exc) and "nonce too low" not in str(exc):
                    raise
            log.info("%s: sent transaction %s (nonce %d, fee cap %d wei, tip %d wei, gas %d)",
                     what, tx_hash, pending.nonce, fee_cap, tip, tx["gas"])
            receipt = await self._wait(pending, self.policy.timeout_s)
            if receipt is not None:
                return self._done(pending, receipt)
            if attempt == self.policy.max_replacements:
                break
            fee_cap, tip = self._bumped(fee_cap, tip)
            log.warning("%s: not mined in %.0f s; replacing it with fees +11%% (%d of %d)", what,
                        self.policy.timeout_s, attempt + 1, self.policy.max_replacements)
        raise TxTimeout(f"{what}: not mined within -transactionTimeout {self.policy.timeout_s:.0f} s after "
                        f"{self.policy.max_replacements} replacements; it may still be mined")

    async def _from_elsewhere(self, pending: Pending) -> bool:
        """A record no chain state can explain: none of its transactions known here, and its
        nonce beyond every nonce the account has used or has waiting. Sent again with that
        nonce it would wait behind a gap forever."""
        count = await self.chain.w3.eth.get_transaction_count(self.account.address, "pending")
        return pending.nonce > count and not await self._known(pending.hashes)

    async def _estimate(self, tx: dict[str, Any], what: str) -> int:
        try:
            return math.ceil(await self.chain.w3.eth.estimate_gas(cast(TxParams, tx)) * GAS_MARGIN)
        except ContractLogicError as exc:
            raise TxReverted(what, revert_reason(exc)) from None

    async def _fees(self) -> tuple[int, int]:
        """(fee cap, tip) as go-livepeer: 2 x base fee + tip, capped by -maxGasPrice, at least
        -minGasPrice."""
        w3, p = self.chain.w3, self.policy
        block = await w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas", 0) or 0)
        if p.max_gas_price and base > p.max_gas_price:
            raise GasPriceTooHigh(f"the base fee is {base} wei, above -maxGasPrice {p.max_gas_price} wei")
        tip = int(await w3.eth.max_priority_fee)
        cap = max(2 * base + tip, p.min_gas_price)
        if p.max_gas_price:
            cap = min(cap, p.max_gas_price)
        return cap, min(tip, cap)

    def _bumped(self, fee_cap: int, tip: int) -> tuple[int, int]:
        new_cap, new_tip = math.ceil(fee_cap * REPLACEMENT_BUMP), math.ceil(tip * REPLACEMENT_BUMP)
        if self.policy.max_gas_price and new_cap > self.policy.max_gas_price:
            raise GasPriceTooHigh(f"replacing the transaction needs a fee cap of {new_cap} wei, above "
                                  f"-maxGasPrice {self.policy.max_gas_price} wei")
        return new_cap, new_tip

    async def _receipt(self, hashes: list[str]) -> dict[str, Any] | None:
        for tx_hash in reversed(hashes):
            try:
                return dict(await self.chain.w3.eth.get_transaction_receipt(HexStr(tx_hash)))
            except TransactionNotFound:
                continue
        return None

    async def _known(self, hashes: list[str]) -> bool:
        for tx_hash in hashes:
            try:
                await self.chain.w3.eth.get_transaction(HexStr(tx_hash))
                return True
            except TransactionNotFound:
                continue
        return False

    async def _wait(self, pending: Pending, timeout_s: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while True:
            receipt = await self._receipt(pending.hashes)
            if receipt is not None or time.monotonic() >= deadline:
                return receipt
            await asyncio.sleep(min(0.5, max(0.05, deadline - time.monotonic())))

    def _done(self, pending: Pending, receipt: dict[str, Any]) -> dict[str, Any]:
        self._path.unlink(missing_ok=True)
        if self._gas_spent is not None:
            self._gas_spent(int(receipt.get("gasUsed", 0)) * int(receipt.get("effectiveGasPrice", 0)))
        tx_hash = receipt["transactionHash"]
        tx_hash = tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()
        if receipt.get("status") != 1:
            raise TxReverted(pending.what, "the mined transaction failed (status 0)", tx_hash)
        log.info("%s: mined in block %d (transaction %s, gas %d)", pending.what, receipt["blockNumber"],
                 tx_hash, receipt.get("gasUsed", 0))
        return receipt
