"""The lab's chain: the local Livepeer chain (lpfleet/chain.py) on the control machine's bridge
address, where it stands for the operator's RPC provider, with the lab orchestrator registered.

`lpfleet lab up` calls ``ensure``: the chain is started if it is not running (a fresh one after
`lab down` or a reboot of this machine), the reward host's keystore is made from the chain's
test account ORCHESTRATOR_ACCOUNT (encrypted with the lab's keystore password), the RPC URL is
written as a secret file like a provider's keyed URL would be, and the account is registered as
a transcoder (bonded, service URI lb1's 8935, or o1's without a balancer) unless the chain
already has it. The deploy then
puts the keystore, its password and the URL on the reward host only (inventory/lab.py).

Payments: each orchestrator gets its own hot key (o1 HOT_ACCOUNT, o2 the next, ...), which
redeems the tickets it takes, paying the registered account; the lab's gateway
(GATEWAY_ACCOUNT, its keystore kept on this machine) has its TicketBroker deposit and reserve
funded, and `stream_flags` are what a lab test stream (and a runbook's check stream) pays with.
Rounds here are 20 s, so tickets stay valid for TICKET_VALIDITY_ROUNDS rounds (Arbitrum One's 2
rounds are two days).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import config
from .config import LabError
from .secrets import eth_url_path, gateway_keystore_path, hot_keystore_path, keystore_password_path, keystore_path
from .util import Log, quiet_log, write_secret

PORT = 8545
BLOCK_TIME = 1  # seconds
ROUND_LENGTH = 20  # blocks: a 20 s round, so the lab's tests and demo see rounds pass
NETWORK = "lab"  # -network for a chain that is not a known one (with -ethController)
# anvil's test account 0 deployed the contracts; 1 is the lab orchestrator's (its cold key).
ORCHESTRATOR_ACCOUNT = 1
GATEWAY_ACCOUNT = 2
HOT_ACCOUNT = 4  # o1's hot key; o2's is 5, and so on up to anvil's last test account, 9
LAST_ACCOUNT = 9
GATEWAY_FUNDS_WEI = 10 * 10**18  # deposit and reserve each, topped up when the deposit falls below half
TICKET_VALIDITY_ROUNDS = 20
STAKE_LPT = "1000"
# scrypt's cost: geth's own "light" setting, so the reward service unlocks it in well under a
# second on a lab host (the throwaway key guards nothing).
SCRYPT_N = 4096


def chain_dir() -> Path:
    return config.state_dir() / "chain"


def ensure(service_uri: str, orchestrators: list[str], log: Log = quiet_log) -> dict[str, Any]:
    """The lab chain running, the orchestrator's keystore, each of ``orchestrators``' hot
    keystore and the RPC URL file written, the orchestrator registered at ``service_uri``.
    Returns the lab state's `chain` entry."""
    from lpfleet import chain

    try:
        desc = chain.up(host=config.GATEWAY, port=PORT, block_time=BLOCK_TIME, round_length=ROUND_LENGTH,
                        base=chain_dir(), ticket_validity_period=TICKET_VALIDITY_ROUNDS)
    except chain.ChainError as exc:
        raise LabError(f"the lab chain: {exc}") from None
    account = desc["accounts"][ORCHESTRATOR_ACCOUNT]
    _ensure_keystore(account, keystore_path())
    hot = {}
    for n, name in enumerate(orchestrators):
        if HOT_ACCOUNT + n > LAST_ACCOUNT:
            raise LabError(f"{name}: the lab chain has test accounts for {LAST_ACCOUNT - HOT_ACCOUNT + 1} "
                           "orchestrators' hot keys only")
        _ensure_keystore(desc["accounts"][HOT_ACCOUNT + n], hot_keystore_path(name))
        hot[name] = {"keystore": str(hot_keystore_path(name)), "account": desc["accounts"][HOT_ACCOUNT + n]["address"]}
    _ensure_keystore(desc["accounts"][GATEWAY_ACCOUNT], gateway_keystore_path())
    if not eth_url_path().exists() or eth_url_path().read_text() != desc["rpc_url"] + "\n":
        write_secret(eth_url_path(), desc["rpc_url"] + "\n")
    info = {"rpc_url": desc["rpc_url"], "chain_id": desc["chain_id"], "controller": desc["controller"],
            "round_length": desc["round_length"], "block_time": desc["block_time"], "network": NETWORK,
            "orchestrator": account["address"], "eth_url_file": str(eth_url_path()),
            "keystore_path": str(keystore_path()), "keystore_password_file": str(keystore_password_path()),
            "hot_keys": hot,
            "gateway": desc["accounts"][GATEWAY_ACCOUNT]["address"],
            "gateway_keystore_path": str(gateway_keystore_path()),
            "ticket_broker": desc["contracts"]["TicketBroker"]}
    reader = Reader(info)
    if not reader.registered():
        log(f"chain: registering the lab orchestrator {account['address']} ({service_uri})")
        _register(desc, service_uri)
    if reader.deposit(info["gateway"]) < GATEWAY_FUNDS_WEI // 2:
        log(f"chain: funding the lab gateway {info['gateway']} (deposit and reserve)")
        reader.fund(info["gateway"], GATEWAY_FUNDS_WEI, GATEWAY_FUNDS_WEI)
    return info


def stream_flags(info: dict[str, Any]) -> list[str]:
    """`lpnode test-stream` flags that pay o1 as the lab's gateway."""
    return ["-ethKeystorePath", info["gateway_keystore_path"], "-ethPassword", info["keystore_password_file"]]


def down() -> None:
    from lpfleet import chain

    chain.down(PORT, base=chain_dir())


def _ensure_keystore(account: dict[str, str], path: Path) -> None:
    """A geth v3 keystore of ``account`` at ``path`` under the lab's password, unless one is there."""
    from eth_account import Account
    from eth_typing import HexStr

    try:
        have = json.loads(path.read_text()).get("address", "")
    except (OSError, ValueError):
        have = ""
    if have.lower().removeprefix("0x") == account["address"].lower().removeprefix("0x"):
        return
    password = keystore_password_path().read_text().strip()
    keystore = Account.encrypt(HexStr(account["private_key"]), password, kdf="scrypt", iterations=SCRYPT_N)
    write_secret(path, json.dumps(keystore) + "\n")


def _register(desc: dict[str, Any], service_uri: str, attempts: int = 3) -> None:
    """`lpnode chain register`, run again when it fails: with 20-block rounds of 1 s blocks a
    step can be mined just after a round ends (the new round not yet initialized) or in its
    lock, and a re-run repeats none of the steps already on chain."""
    for attempt in range(attempts):
        try:
            _register_once(desc, service_uri)
            return
        except LabError:
            if attempt == attempts - 1:
                raise


def _register_once(desc: dict[str, Any], service_uri: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lpnode.cli", "chain", "register", "--stake", STAKE_LPT, "--rewardCut", "10",
         "--feeShare", "50", "--serviceURI", service_uri, "-network", NETWORK,
         "-ethController", desc["controller"], "-ethUrl", str(eth_url_path()),
         "-ethKeystorePath", str(keystore_path()), "-ethPassword", str(keystore_password_path()),
         "-datadir", str(chain_dir() / "register")],
        capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise LabError(f"registering the lab orchestrator on the lab chain failed:\n{result.stderr.strip()[-3000:]}")


class Reader:
    """The lab chain as a test or the demo reads it: the round, the orchestrator's rewards."""

    def __init__(self, chain_info: dict[str, Any]) -> None:
        from eth_utils import keccak
        from web3 import Web3

        from lpnode.eth import abi

        self.w3 = Web3(Web3.HTTPProvider(chain_info["rpc_url"], request_kwargs={"timeout": 10}))
        self.orchestrator = chain_info["orchestrator"]
        controller = self.w3.eth.contract(address=chain_info["controller"], abi=abi.CONTROLLER)

        def contract(name: str, contract_abi: list[dict[str, Any]]) -> Any:
            address = controller.functions.getContract(keccak(text=name)).call()
            return self.w3.eth.contract(address=address, abi=contract_abi)

        self.bonding = contract("BondingManager", abi.BONDING_MANAGER)
        self.rounds = contract("RoundsManager", abi.ROUNDS_MANAGER)
        self.broker = contract("TicketBroker", abi.TICKET_BROKER)

    def deposit(self, sender: str) -> int:
        return int(self.broker.functions.getSenderInfo(sender).call()[0][0])

    def fund(self, sender: str, deposit: int, reserve: int) -> None:
        """Fund ``sender``'s deposit and reserve (anvil signs for its test accounts)."""
        tx = self.broker.functions.fundDepositAndReserve(deposit, reserve).transact(
            {"from": sender, "value": deposit + reserve})
        if self.w3.eth.wait_for_transaction_receipt(tx, timeout=60)["status"] != 1:
            raise LabError(f"funding the lab gateway {sender} failed")

    def redemptions(self, from_block: int) -> list[Any]:
        """WinningTicketRedeemed events paying the lab orchestrator since ``from_block``."""
        return list(self.broker.events.WinningTicketRedeemed().get_logs(
            from_block=from_block, argument_filters={"recipient": self.orchestrator}))

    def block(self) -> int:
        return int(self.w3.eth.block_number)

    def round(self) -> int:
        return int(self.rounds.functions.currentRound().call())

    def round_start(self) -> int:
        return int(self.rounds.functions.currentRoundStartBlock().call())

    def round_length(self) -> int:
        return int(self.rounds.functions.roundLength().call())

    def registered(self) -> bool:
        """Bonded to itself and in the transcoder pool (`transcoder()` done: its deactivation
        round is the protocol's "never"); a half-done registration is not."""
        if int(self.bonding.functions.transcoderStatus(self.orchestrator).call()) != 1:
            return False
        return int(self.bonding.functions.getTranscoder(self.orchestrator).call()[5]) == 2**256 - 1

    def last_reward_round(self) -> int:
        return int(self.bonding.functions.getTranscoder(self.orchestrator).call()[0])

    def reward_events(self, from_block: int, to_block: int | str = "latest") -> list[Any]:
        return list(self.bonding.events.Reward().get_logs(
            from_block=from_block, to_block=to_block, argument_filters={"transcoder": self.orchestrator}))


def watch_rewards(rounds: int, chain_info: dict[str, Any], log: Log, timeout_per_round: float = 120) -> bool:
    """Watch ``rounds`` rounds pass on the lab chain and report the orchestrator's Reward
    events in each. True when every one of them was rewarded exactly once."""
    import time

    chain = Reader(chain_info)
    ok = True
    watched = chain.round() + 1
    for _ in range(rounds):
        deadline = time.monotonic() + timeout_per_round
        # Wait for the round after it to start: everything mined in between is the round.
        while chain.round() < watched + 1:
            if time.monotonic() > deadline:
                log(f"round {watched}: the chain did not move on within {timeout_per_round:.0f} s")
                return False
            time.sleep(1)
        start, length = chain.round_start(), chain.round_length()
        events = chain.reward_events(start - length, start - 1)
        minted = sum(int(e["args"]["amount"]) for e in events)
        log(f"round {watched}: blocks {start - length}-{start - 1}, reward called {len(events)} time(s), "
            f"{minted / 1e18:.4f} LPT minted")
        ok = ok and len(events) == 1
        watched += 1
    return ok


def paid_stream(state: Any, args: list[str], log: Log, monitor: str = "mon1", timeout: float = 180) -> int:
    """`lpnode test-stream` through the lab's balancer (o1 without one) paying as the lab's
    gateway, then wait until every winning ticket the orchestrators took is redeemed and report
    them. 0 when the stream succeeded and each new winning ticket was redeemed on chain exactly
    once."""
    import time

    from .ssh import ssh_run

    info = state.chain
    orchestrators = [h for h in state.hosts if h.group == "orchestrators"]
    front = next((h for h in state.hosts if h.group == "load_balancers"), orchestrators[0])

    def tickets() -> dict[str, int]:
        # The admin ports answer the monitoring hosts only (the firewall), so ask from there.
        total: dict[str, int] = {}
        for h in orchestrators:
            p = ssh_run(monitor, f"curl -sf -m 5 http://{h.address}:7935/status", state=state)
            if p.returncode != 0:
                raise LabError(f"{h.name}'s /status (from {monitor}): {p.stderr.strip() or p.returncode}")
            for kind, n in json.loads(p.stdout)["chain"]["payments"]["tickets"].items():
                total[kind] = total.get(kind, 0) + int(n)
        return total

    chain = Reader(info)
    from_block, before = chain.block(), tickets()
    log(f"stream: through {front.name} ({front.address}:8935)")
    stream = subprocess.run([sys.executable, "-m", "lpnode.cli", "test-stream", "-orchAddr", f"{front.address}:8935",
                             *stream_flags(info), *args], timeout=900)
    if stream.returncode != 0:
        return stream.returncode
    deadline = time.monotonic() + timeout
    counts = tickets()
    log(f"tickets: the orchestrators took {counts.get('pending', 0)} winning tickets; waiting for their params "
        "to expire "
        f"(40 blocks) and their redemption...")
    while counts.get("pending", 0) and time.monotonic() < deadline:
        time.sleep(2)
        counts = tickets()
    events = chain.redemptions(from_block)
    paid = sum(int(e["args"]["faceValue"]) for e in events)
    unique = {(e["args"]["sender"], e["args"]["senderNonce"], e["args"]["recipientRand"]) for e in events}
    redeemed = counts.get("redeemed", 0) - before.get("redeemed", 0)
    log(f"tickets: {redeemed} redeemed by {', '.join(h.name for h in orchestrators)}, {len(events)} "
        f"WinningTicketRedeemed on chain, {paid / 1e18:.4f} ETH of face value to {chain.orchestrator}; "
        f"they now hold {counts}")
    ok = not counts.get("pending", 0) and redeemed == len(events) == len(unique)
    return 0 if ok else 1
