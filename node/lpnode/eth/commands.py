"""`lpnode chain ...`: an operator's one-time steps and a look at the chain, with the node's own
flags (go-livepeer needs its interactive livepeer_cli for these).

    lpnode chain status   [node flags]
    lpnode chain register --stake LPT --rewardCut PCT --feeShare PCT --serviceURI URI [node flags]
    lpnode chain set-reward-caller ADDRESS [node flags]
    lpnode chain fund --deposit ETH --reserve ETH [node flags]   (a gateway's TicketBroker funds)

Node flags are lpnode's (-network, -ethUrl, -ethController, -ethKeystorePath, -ethAcctAddr,
-ethPassword, -ethOrchAddr, -dataDir, -config). Amounts of LPT are in LPT (decimals allowed);
percentages in percent (go-livepeer's livepeer_cli asks the same way).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

from lpnode.config import FlagError, NodeConfig, parse_node_flags
from lpnode.eth import units
from lpnode.eth.client import Chain, ChainConfigError
from lpnode.eth.keystore import NodeAccount, parse_address, unlock
from lpnode.eth.tx import GasPolicy, GasPriceTooHigh, TxReverted, TxSender, TxTimeout
from lpnode.eth.units import WEI
from lpnode.secret import SecretError, load_rpc_url

log = logging.getLogger("lpnode.chain")

PERC_DIVISOR = 1_000_000
MAX_FUTURE_ROUND = 2**256 - 1


def _lpt(raw: str) -> int:
    value = units.lpt(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError("the stake must be more than 0 LPT")
    return value


def _percent(raw: str) -> int:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a percentage") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("a percentage from 0 to 100")
    return int(value * PERC_DIVISOR / 100)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lpnode chain", allow_abbrev=False,
                                description="On-chain steps and status; node flags (-ethUrl, ...) as lpnode's.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("status", help="round, registration, stake, reward and balances as JSON", allow_abbrev=False)
    r = sub.add_parser("register", help="approve, bond, transcoder, setServiceURI", allow_abbrev=False)
    r.add_argument("--stake", type=_lpt, required=True, help="LPT to bond to this account")
    r.add_argument("--rewardCut", type=_percent, required=True, help="percent of rewards kept")
    r.add_argument("--feeShare", type=_percent, required=True, help="percent of fees shared with delegators")
    r.add_argument("--serviceURI", required=True, help="the URI gateways reach this orchestrator at")
    c = sub.add_parser("set-reward-caller", help="LIP-118: let ADDRESS call reward for this account",
                       allow_abbrev=False)
    c.add_argument("address", help="the reward caller's address (0x0000... to remove it)")
    f = sub.add_parser("fund", help="a gateway's deposit and reserve in the TicketBroker", allow_abbrev=False)
    f.add_argument("--deposit", type=units.eth, default=0, help="ETH to add to the deposit (pays winning tickets)")
    f.add_argument("--reserve", type=units.eth, default=0, help="ETH to add to the reserve (backs face values)")
    return p


def chain_config(node_flags: list[str]) -> NodeConfig:
    """The chain flags of a command that is no node (`lpnode chain`, a paying test stream), checked
    as a node's: -reward makes them a valid role. FlagError unless they name a chain."""
    cfg = parse_node_flags([*node_flags, "-reward"], {})
    if not cfg.on_chain:
        raise FlagError("give the chain: -network and -ethUrl (and -ethController off Arbitrum One)")
    return cfg


def main(argv: list[str]) -> int:
    args, node_flags = _parser().parse_known_args(argv)
    try:
        cfg = chain_config(node_flags)
        return asyncio.run(_run(args, cfg))
    except (FlagError, SecretError, ChainConfigError, TxReverted, GasPriceTooHigh, TxTimeout) as exc:
        print(f"lpnode chain: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, FlagError) else 1


async def _run(args: argparse.Namespace, cfg: NodeConfig) -> int:
    assert cfg.eth_url and cfg.controller
    chain = Chain(load_rpc_url(cfg.eth_url, log=log), cfg.controller, cfg.datadir)
    contracts = await chain.connect()
    if args.command == "status":
        account = None
        if cfg.eth_orch_addr:
            address = parse_address(cfg.eth_orch_addr, "-ethOrchAddr")
        else:
            account = unlock(cfg.keystore_path, cfg.eth_acct_addr, cfg.eth_password)
            address = account.address
        print(json.dumps(await status(chain, address), indent=1))
        return 0
    account = unlock(cfg.keystore_path, cfg.eth_acct_addr, cfg.eth_password)
    sender = TxSender(chain, account, cfg.datadir, GasPolicy.from_config(cfg))
    if args.command == "register":
        await register(sender, contracts, account, args.stake, args.rewardCut, args.feeShare, args.serviceURI)
    elif args.command == "fund":
        print(json.dumps(await fund(sender, contracts, account.address, args.deposit, args.reserve)))
    else:
        caller = parse_address(args.address, "set-reward-caller")
        await sender.send(f"setRewardCaller:{caller}", contracts.bonding_manager.functions.setRewardCaller(caller),
                          f"setRewardCaller {caller}")
        print(f"{caller} may now call reward for {account.address} (rewardForTranscoder)")
    return 0


async def register(sender: TxSender, contracts: Any, account: NodeAccount, stake: int, reward_cut: int,
                   fee_share: int, service_uri: str) -> None:
    """The steps go-livepeer's livepeer_cli walks through, each waited for: approve the stake,
    bond it to the account itself, become a transcoder, publish the service URI. A transcoder
    joins the active set from the next round."""
    bonding, token = contracts.bonding_manager, contracts.token
    balance = await token.functions.balanceOf(account.address).call()
    if balance < stake:
        raise TxReverted("register", f"{account.address} holds {balance / WEI} LPT, less than the stake "
                                     f"{stake / WEI} LPT")
    steps = [
        ("approve", token.functions.approve(bonding.address, stake), f"approve {stake / WEI} LPT for bonding"),
        ("bond", bonding.functions.bond(stake, account.address), f"bond {stake / WEI} LPT to {account.address}"),
        ("transcoder", bonding.functions.transcoder(reward_cut, fee_share),
         f"transcoder(rewardCut {reward_cut / PERC_DIVISOR:.2%}, feeShare {fee_share / PERC_DIVISOR:.2%})"),
        ("serviceURI", contracts.service_registry.functions.setServiceURI(service_uri),
         f"setServiceURI {service_uri}"),
    ]
    # A re-run after a failure repeats none of the steps already on chain.
    done = set()
    if await bonding.functions.transcoderStatus(account.address).call() == 1:
        done |= {"approve", "bond"}
        t = await bonding.functions.getTranscoder(account.address).call()
        # In the pool: the protocol sets deactivationRound to its "never" on joining.
        if (t[1], t[2]) == (reward_cut, fee_share) and t[5] == MAX_FUTURE_ROUND:
            done.add("transcoder")
    if await contracts.service_registry.functions.getServiceURI(account.address).call() == service_uri:
        done.add("serviceURI")
    rounds = contracts.rounds_manager.functions
    for key, call, what in steps:
        if key in done:
            print(f"already on chain: {what}")
            continue
        if key in ("bond", "transcoder") and not await rounds.currentRoundInitialized().call():
            # Bonding needs an initialized round; anyone may initialize it.
            current = await rounds.currentRound().call()
            await sender.send(f"initializeRound:{current}", rounds.initializeRound(), f"initializeRound {current}")
            print(f"done: initializeRound {current} (bonding needs an initialized round)")
        if key == "transcoder" and await rounds.currentRoundLocked().call():
            raise TxReverted(what, "the round is locked (its last 10%): run register again in the next round; "
                                   "the steps already done are not repeated")
        await sender.send(f"register:{key}:{account.address}", call, what)
        print(f"done: {what}")


async def fund(sender: TxSender, contracts: Any, address: str, deposit: int, reserve: int) -> dict[str, int]:
    """Add ``deposit`` and ``reserve`` wei to ``address``'s TicketBroker funds (go-livepeer's
    livepeer_cli "deposit broadcasting funds"); returns what the broker then holds for it."""
    broker = contracts.ticket_broker.functions
    if deposit or reserve:
        before, _ = await broker.getSenderInfo(address).call()
        # The key names the funds expected afterwards: a retry after a crash finds the same
        # transaction instead of paying twice.
        await sender.send(f"fund:{address}:{before[0] + deposit}:{reserve}",
                          broker.fundDepositAndReserve(deposit, reserve),
                          f"fund deposit {deposit / WEI} ETH and reserve {reserve / WEI} ETH", value=deposit + reserve)
    info, reserve_info = await broker.getSenderInfo(address).call()
    return {"depositWei": int(info[0]), "reserveWei": int(reserve_info[0])}


async def status(chain: Chain, address: str) -> dict[str, Any]:
    """What an operator checks: the round, the orchestrator's registration, stake and reward."""
    c = chain.contracts
    assert c is not None
    rounds, bonding = c.rounds_manager.functions, c.bonding_manager.functions
    t = await bonding.getTranscoder(address).call()
    return {
        "chainId": chain.chain_id,
        "block": await rounds.blockNum().call(),
        "round": await rounds.currentRound().call(),
        "roundInitialized": await rounds.currentRoundInitialized().call(),
        "roundLocked": await rounds.currentRoundLocked().call(),
        "orchestrator": address,
        "registered": await bonding.transcoderStatus(address).call() == 1,
        "active": await bonding.isActiveTranscoder(address).call(),
        "stakeWei": await bonding.transcoderTotalStake(address).call(),
        "rewardCutPercent": t[1] * 100 / PERC_DIVISOR,
        "feeSharePercent": t[2] * 100 / PERC_DIVISOR,
        "lastRewardRound": t[0],
        "activationRound": t[4],
        "rewardCaller": await bonding.transcoderToRewardCaller(address).call(),
        "serviceURI": await c.service_registry.functions.getServiceURI(address).call(),
        "ethBalanceWei": await chain.w3.eth.get_balance(parse_address(address, "address")),
        "lptBalanceWei": await c.token.functions.balanceOf(address).call(),
    }
