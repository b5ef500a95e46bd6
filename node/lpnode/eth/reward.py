"""The reward service: reward() once in every round, never twice, never missed.

go-livepeer calls reward only when it sees a NewRound event and never retries (go-livepeer
#1741, #2118, #369): a restart, an RPC outage or a gas spike at that moment loses the round's
inflation. This service instead looks at the chain at every block poll: is the round
initialized (initializing it with -initializeRound after a random delay), is the orchestrator
active, is its lastRewardRound behind? Then it calls reward, with go-livepeer's pool hints, and
waits for the receipt. On any failure it tries again with backoff for as long as the round
lasts; a restart mid-round resumes (TxSender keeps the pending transaction in the datadir, so
the same nonce is reused and a second call can never be mined).

LIP-118: when the orchestrator (-ethOrchAddr) is not this node's account, the account must be
the orchestrator's reward caller, and the call is rewardForTranscoder(orchestrator).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from web3.logs import DISCARD

from lpnode.eth import abi
from lpnode.eth.client import ZERO_ADDRESS, Chain, ChainConfigError
from lpnode.eth.keystore import NodeAccount
from lpnode.eth.metrics import ChainMetrics
from lpnode.eth.tx import GasPriceTooHigh, TxReverted, TxSender, TxTimeout

log = logging.getLogger("lpnode.reward")

MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class RewardSettings:
    orchestrator: str  # the transcoder address rewarded (-ethOrchAddr, default the account)
    initialize_round: bool = False
    initialize_round_max_delay_s: float = 30.0
    poll_interval_s: float = 5.0
    # -reward unset (go-livepeer's default): reward only while the orchestrator is registered.
    only_if_registered: bool = False


def reward_hints(pool: list[tuple[str, int]], me: str, new_stake: int) -> tuple[str, str]:
    """(prev, next) around ``me``'s place in the pool once its stake is ``new_stake``, as
    go-livepeer's simulateTranscoderPoolUpdate computes them: the pool is sorted by stake,
    largest first, and a transcoder goes after those with at least its stake."""
    others = [(addr, stake) for addr, stake in pool if addr != me]
    position = 0
    while position < len(others) and others[position][1] >= new_stake:
        position += 1
    prev = others[position - 1][0] if position > 0 else ZERO_ADDRESS
    nxt = others[position][0] if position < len(others) else ZERO_ADDRESS
    return prev, nxt


class _Once:
    """Log a line once per (round, what): the state is read every few seconds."""

    def __init__(self) -> None:
        self._said: set[tuple[int, str]] = set()

    def __call__(self, round_: int, what: str, level: int, message: str, *args: Any) -> None:
        if (round_, what) not in self._said:
            self._said = {k for k in self._said if k[0] >= round_ - 1}
            self._said.add((round_, what))
            log.log(level, message, *args)


class RewardService:
    def __init__(self, chain: Chain, sender: TxSender, account: NodeAccount, settings: RewardSettings,
                 metrics: ChainMetrics | None = None, rng: random.Random | None = None) -> None:
        self.chain = chain
        self.sender = sender
        self.account = account
        self.settings = settings
        self.metrics = metrics
        self._rng = rng or random.Random()
        self._once = _Once()
        self._round = -1
        self._initialize_at: float | None = None
        self._backoff = settings.poll_interval_s
        self.state: dict[str, Any] = {"rpc": "connecting", "endpoint": chain.where}

    @property
    def via_caller(self) -> bool:
        return self.settings.orchestrator != self.account.address

    def status(self) -> dict[str, Any]:
        return {"account": self.account.address, "orchestrator": self.settings.orchestrator,
                "rewardCaller": self.via_caller, **self.state}

    async def run(self) -> None:
        """Forever: connect (retrying), then poll. Only a ChainConfigError ends it (raised: the
        operator must fix a flag; the supervisor stops the node)."""
        while self.chain.contracts is None:
            try:
                await self.chain.connect()
                self._rpc_ok()
                log.info("on chain %d via %s: Controller %s; rewarding %s%s", self.chain.chain_id, self.chain.where,
                         self.chain.controller_address, self.settings.orchestrator,
                         f" as its reward caller {self.account.address}" if self.via_caller else "")
            except ChainConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - the endpoint: retried, shown in /status
                self._rpc_failed(exc)
                await asyncio.sleep(self._next_backoff())
        while True:
            try:
                await self.tick()
                self._backoff = self.settings.poll_interval_s
                await asyncio.sleep(self.settings.poll_interval_s)
            except ChainConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is retried within the round
                self._failed(exc)
                await asyncio.sleep(self._next_backoff())

    def _next_backoff(self) -> float:
        delay = self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
        return delay

    def _rpc_ok(self) -> None:
        self.state["rpc"] = "ok"
        self.state.pop("rpcError", None)
        if self.metrics:
            self.metrics.rpc_up.set(1)

    def _rpc_failed(self, exc: BaseException) -> None:
        text = _describe(exc, self.chain.rpc_url)
        self.state.update(rpc="failing", rpcError=text)
        if self.metrics:
            self.metrics.rpc_up.set(0)
            self.metrics.rpc_errors.inc()
        log.warning("JSON-RPC endpoint %s: %s; retrying in %.0f s", self.chain.where, text, self._backoff)

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, (GasPriceTooHigh, TxReverted, TxTimeout)):
            if self.metrics:
                self.metrics.reward_errors.inc()
            log.error("round %d: %s; trying again in %.0f s", self._round, exc, self._backoff)
            self.state["lastError"] = str(exc)
        else:
            self._rpc_failed(exc)

    async def tick(self) -> None:
        """One look at the chain, and the one action it calls for."""
        c = self.chain.contracts
        assert c is not None
        rounds, bonding = c.rounds_manager.functions, c.bonding_manager.functions
        current = int(await rounds.currentRound().call())
        initialized = bool(await rounds.currentRoundInitialized().call())
        block = int(await rounds.blockNum().call())
        self._rpc_ok()
        if current != self._round:
            await self._new_round(current)
        self._seen(current, initialized, block)
        if not initialized:
            await self._maybe_initialize(current)
            return
        me = self.settings.orchestrator
        if self.settings.only_if_registered and int(await bonding.transcoderStatus(me).call()) != 1:
            self._once(current, "unregistered", logging.INFO,
                       "round %d: %s is not a registered transcoder, so no reward (-reward=true calls it "
                       "anyway; -reward=false turns this off)", current, me)
            self.state["registered"] = False
            return
        transcoder = await bonding.getTranscoder(me).call()
        last_reward = int(transcoder[0])
        self.state["lastRewardRound"] = last_reward
        if self.metrics:
            self.metrics.last_reward_round.set(last_reward)
        if last_reward >= current:
            self.sender.forget(f"reward:{current}")
            self.state["rewarded"] = True
            return
        self.state["rewarded"] = False
        if not await bonding.isActiveTranscoder(me).call():
            self._once(current, "inactive", logging.WARNING,
                       "round %d: %s is not an active transcoder (activation round %d): no reward this "
                       "round; register it (lpnode chain register) or raise its stake", current, me,
                       int(transcoder[4]))
            self.state["active"] = False
            return
        self.state["active"] = True
        if self.via_caller:
            caller = await bonding.transcoderToRewardCaller(me).call()
            if caller != self.account.address:
                self._once(current, "caller", logging.ERROR,
                           "round %d: %s is not %s's reward caller (its caller is %s): have the orchestrator's "
                           "account run `lpnode chain set-reward-caller %s`", current, self.account.address, me,
                           caller, self.account.address)
                self.state["lastError"] = "not the orchestrator's reward caller"
                return
        await self._reward(current, transcoder)

    async def _new_round(self, current: int) -> None:
        """Once a round: where it started and how long it is (the alert's share of the round is
        counted in blocks), and the account's balance, which pays for the round's transactions."""
        if not self.metrics:
            return
        rounds = self.chain.contracts.rounds_manager.functions  # type: ignore[union-attr]
        self.metrics.round_start_block.set(int(await rounds.currentRoundStartBlock().call()))
        self.metrics.round_length.set(int(await rounds.roundLength().call()))
        self.metrics.balance.set(await self.chain.w3.eth.get_balance(self.account.address))

    def _seen(self, current: int, initialized: bool, block: int) -> None:
        if current != self._round:
            if self._round >= 0:
                log.info("round %d started (block %d)", current, block)
            self._round = current
            self._initialize_at = None
            if self.metrics:
                self.metrics.round_start.set(time.time())
        if self.metrics:
            if block != self.state.get("block"):
                self.metrics.last_block.set(time.time())
            self.metrics.round.set(current)
            self.metrics.round_initialized.set(1 if initialized else 0)
            self.metrics.block.set(block)
        self.state.update(round=current, roundInitialized=initialized, block=block)

    async def _maybe_initialize(self, current: int) -> None:
        if not self.settings.initialize_round:
            self._once(current, "uninitialized", logging.INFO,
                       "round %d is not initialized yet; waiting (reward needs it; -initializeRound would do it)",
                       current)
            return
        now = time.monotonic()
        if self._initialize_at is None:
            # A random delay, as go-livepeer: nodes that all initialize at once waste gas.
            delay = self._rng.uniform(0, self.settings.initialize_round_max_delay_s)
            self._initialize_at = now + delay
            log.info("round %d is not initialized; initializing it in %.1f s unless someone else does", current, delay)
        if now < self._initialize_at:
            return
        rounds = self.chain.contracts.rounds_manager.functions  # type: ignore[union-attr]
        try:
            await self.sender.send(f"initializeRound:{current}", rounds.initializeRound(), f"initializeRound {current}")
        except TxReverted as exc:
            if exc.reason != abi.ROUND_ALREADY_INITIALIZED:
                raise
            self.sender.forget(f"initializeRound:{current}")

    async def _reward(self, current: int, transcoder: Any) -> None:
        c = self.chain.contracts
        assert c is not None
        bonding = c.bonding_manager.functions
        me = self.settings.orchestrator
        prev, nxt = reward_hints(await self._pool(), me, await self._stake_after_reward(me, transcoder))
        call = (bonding.rewardForTranscoderWithHint(me, prev, nxt) if self.via_caller
                else bonding.rewardWithHint(prev, nxt))
        try:
            receipt = await self.sender.send(f"reward:{current}", call, f"reward for round {current}")
        except TxReverted as exc:
            if exc.reason == abi.ALREADY_REWARDED:
                self.sender.forget(f"reward:{current}")
                return
            if self.metrics:
                self.metrics.reward_calls["failed"].inc()
            raise
        minted = 0
        # DISCARD: the receipt also holds the token's and the minter's logs, which are not Reward events.
        for event in c.bonding_manager.events.Reward().process_receipt(receipt, errors=DISCARD):
            minted += int(event["args"]["amount"])
        # Status and metrics together, before anything awaits: a reader sees both or neither.
        self.state.update(rewarded=True, lastRewardRound=current, lastMinted=minted)
        self.state.pop("lastError", None)
        log.info("round %d: reward called for %s, %d wei LPT minted", current, me, minted)
        if self.metrics:
            self.metrics.reward_calls["mined"].inc()
            self.metrics.minted.inc(minted)
            self.metrics.last_reward_round.set(current)
            self.metrics.reward_gas.set(int(receipt["gasUsed"]) * int(receipt.get("effectiveGasPrice", 0)))
            self.metrics.balance.set(await self.chain.w3.eth.get_balance(self.account.address))

    async def _pool(self) -> list[tuple[str, int]]:
        bonding = self.chain.contracts.bonding_manager.functions  # type: ignore[union-attr]
        pool, addr = [], await bonding.getFirstTranscoderInPool().call()
        while addr != ZERO_ADDRESS:
            pool.append((addr, int(await bonding.transcoderTotalStake(addr).call())))
            addr = await bonding.getNextTranscoderInPool(addr).call()
        return pool

    async def _stake_after_reward(self, me: str, transcoder: Any) -> int:
        """go-livepeer's estimate: the stake now plus mintable x (its stake in the round's
        earnings pool / total bonded); ``transcoder`` is getTranscoder(me)."""
        c = self.chain.contracts
        assert c is not None
        bonding = c.bonding_manager.functions
        stake = int(await bonding.transcoderTotalStake(me).call())
        pool_stake = int((await bonding.getTranscoderEarningsPoolForRound(me, int(transcoder[3])).call())[0])
        total = int(await bonding.getTotalBonded().call())
        mintable = int(await c.minter.functions.currentMintableTokens().call())
        return stake + (mintable * pool_stake // total if total else 0)


def _describe(exc: BaseException, rpc_url: str) -> str:
    """An exception's text without the RPC URL (which may hold an API key)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.replace(rpc_url, "<-ethUrl>")
