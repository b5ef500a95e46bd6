"""The lab's chain: the local Livepeer chain (lpfleet/chain.py) on the control machine's bridge
address, where it stands for the operator's RPC provider, with the lab orchestrator registered.

`lpfleet lab up` calls ``ensure``: the chain is started if it is not running (a fresh one after
`lab down` or a reboot of this machine), the reward host's keystore is made from the chain's
test account ORCHESTRATOR_ACCOUNT (encrypted with the lab's keystore password), the RPC URL is
written as a secret file like a provider's keyed URL would be, and the account is registered as
a transcoder (bonded, service URI o1's 8935) unless the chain already has it. The deploy then
puts the keystore, its password and the URL on the reward host only (inventory/lab.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import config
from .config import LabError
from .secrets import eth_url_path, keystore_password_path, keystore_path
from .util import Log, quiet_log, write_secret

PORT = 8545
BLOCK_TIME = 1  # seconds
ROUND_LENGTH = 20  # blocks: a 20 s round, so the lab's tests and demo see rounds pass
NETWORK = "lab"  # -network for a chain that is not a known one (with -ethController)
# anvil's test account 0 deployed the contracts; 1 is the lab orchestrator's (its cold key).
ORCHESTRATOR_ACCOUNT = 1
STAKE_LPT = "1000"
# scrypt's cost: geth's own "light" setting, so the reward service unlocks it in well under a
# second on a lab host (the throwaway key guards nothing).
SCRYPT_N = 4096


def chain_dir() -> Path:
    return config.state_dir() / "chain"


def ensure(service_uri: str, log: Log = quiet_log) -> dict[str, Any]:
    """The lab chain running, the orchestrator's keystore and the RPC URL file written, the
    orchestrator registered. Returns the lab state's `chain` entry."""
    from lpfleet import chain

    try:
        desc = chain.up(host=config.GATEWAY, port=PORT, block_time=BLOCK_TIME, round_length=ROUND_LENGTH,
                        base=chain_dir())
    except chain.ChainError as exc:
        raise LabError(f"the lab chain: {exc}") from None
    account = desc["accounts"][ORCHESTRATOR_ACCOUNT]
    _ensure_keystore(account)
    if not eth_url_path().exists() or eth_url_path().read_text() != desc["rpc_url"] + "\n":
        write_secret(eth_url_path(), desc["rpc_url"] + "\n")
    info = {"rpc_url": desc["rpc_url"], "chain_id": desc["chain_id"], "controller": desc["controller"],
            "round_length": desc["round_length"], "block_time": desc["block_time"], "network": NETWORK,
            "orchestrator": account["address"], "eth_url_file": str(eth_url_path()),
            "keystore_path": str(keystore_path()), "keystore_password_file": str(keystore_password_path())}
    if not Reader(info).registered():
        log(f"chain: registering the lab orchestrator {account['address']} ({service_uri})")
        _register(desc, service_uri)
    return info


def down() -> None:
    from lpfleet import chain

    chain.down(PORT, base=chain_dir())


def _ensure_keystore(account: dict[str, str]) -> None:
    """A geth v3 keystore of ``account`` under the lab's password, unless one is there."""
    from eth_account import Account
    from eth_typing import HexStr

    try:
        have = json.loads(keystore_path().read_text()).get("address", "")
    except (OSError, ValueError):
        have = ""
    if have.lower().removeprefix("0x") == account["address"].lower().removeprefix("0x"):
        return
    password = keystore_password_path().read_text().strip()
    keystore = Account.encrypt(HexStr(account["private_key"]), password, kdf="scrypt", iterations=SCRYPT_N)
    write_secret(keystore_path(), json.dumps(keystore) + "\n")


def _register(desc: dict[str, Any], service_uri: str) -> None:
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

    def block(self) -> int:
        return int(self.w3.eth.block_number)

    def round(self) -> int:
        return int(self.rounds.functions.currentRound().call())

    def round_start(self) -> int:
        return int(self.rounds.functions.currentRoundStartBlock().call())

    def round_length(self) -> int:
        return int(self.rounds.functions.roundLength().call())

    def registered(self) -> bool:
        return int(self.bonding.functions.transcoderStatus(self.orchestrator).call()) == 1

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
