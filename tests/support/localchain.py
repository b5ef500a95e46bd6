"""A local Livepeer chain (lpfleet.chain: anvil + the project's contracts) for one test, and
what the tests do with it: keystores, registering an orchestrator, advancing rounds, reading
what the chain recorded."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from lpfleet import chain as localchain
from lpnode.eth import abi
from tests.support.fleet import LPNODE

PASSWORD = "integration-test-keystore-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalChain:
    def __init__(self, tmp: Path, round_length: int = 20) -> None:
        self.tmp = tmp
        self.port = free_port()
        os.environ["LPFLEET_CHAIN_DIR"] = str(tmp / "chains")
        self.info = localchain.up(port=self.port, round_length=round_length)
        self.w3 = Web3(Web3.HTTPProvider(self.info["rpc_url"], request_kwargs={"timeout": 30}))
        contracts = self.info["contracts"]
        self.bonding = self.w3.eth.contract(address=contracts["BondingManager"], abi=abi.BONDING_MANAGER)
        self.rounds = self.w3.eth.contract(address=contracts["RoundsManager"], abi=abi.ROUNDS_MANAGER)

    def close(self) -> None:
        localchain.down(self.port)

    @property
    def rpc_url(self) -> str:
        return str(self.info["rpc_url"])

    def account(self, index: int) -> dict[str, str]:
        return dict(self.info["accounts"][index])

    def flags(self, index: int, keystore: bool = True) -> list[str]:
        """lpnode's chain flags for test account ``index`` (its own keystore and datadir)."""
        flags = ["-network", "lpfleet-local", "-ethController", self.info["controller"], "-ethUrl", self.rpc_url,
                 "-dataDir", str(self.tmp / f"data-{index}")]
        if keystore:
            key_dir, password = self.keystore(index)
            flags += ["-ethKeystorePath", str(key_dir), "-ethPassword", str(password)]
        return flags

    def keystore(self, index: int, password: str = PASSWORD) -> tuple[Path, Path]:
        """A keystore directory holding account ``index`` (geth v3, pbkdf2 to be quick) and a
        0600 password file."""
        account = self.account(index)
        key_dir = self.tmp / f"keystore-{index}"
        key_dir.mkdir(exist_ok=True)
        encrypted = Account.encrypt(account["private_key"], password, kdf="pbkdf2", iterations=1024)
        name = f"UTC--2026-12-02T00-00-00.000000000Z--{account['address'][2:].lower()}"
        (key_dir / name).write_text(json.dumps(encrypted))
        password_file = self.tmp / f"password-{index}"
        password_file.write_text(PASSWORD + "\n")
        password_file.chmod(0o600)
        return key_dir, password_file

    def lpnode_chain(self, *args: str, index: int = 1) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*LPNODE, "chain", *args, *self.flags(index)], capture_output=True, text=True,
                              timeout=120)

    def register(self, index: int = 1, stake: str = "1000") -> str:
        """Register test account ``index`` as a transcoder with ``lpnode chain register``."""
        run = self.lpnode_chain("register", "--stake", stake, "--rewardCut", "10", "--feeShare", "50",
                                "--serviceURI", f"https://127.0.0.1:{8935 + index}", index=index)
        assert run.returncode == 0, run.stdout + run.stderr
        return self.account(index)["address"]

    # ------------------------------------------------------------------ the chain's clock

    def mine(self, blocks: int = 1) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]

    def automine(self, on: bool) -> None:
        self.w3.provider.make_request("evm_setAutomine", [on])  # type: ignore[arg-type]

    def current_round(self) -> int:
        return int(self.rounds.functions.currentRound().call())

    def next_round(self) -> int:
        """Mine to the first block of the next round; returns that round."""
        start = self.rounds.functions.currentRoundStartBlock().call()
        length = self.rounds.functions.roundLength().call()
        self.mine(start + length - self.w3.eth.block_number)
        return self.current_round()

    def initialize_round(self) -> None:
        tx = self.rounds.functions.initializeRound().transact({"from": self.account(0)["address"]})
        self.w3.eth.wait_for_transaction_receipt(tx)

    # ------------------------------------------------------------------ what the chain recorded

    def last_reward_round(self, orchestrator: str) -> int:
        return int(self.bonding.functions.getTranscoder(orchestrator).call()[0])

    def reward_events(self, orchestrator: str) -> list[Any]:
        return list(self.bonding.events.Reward().get_logs(from_block=0, argument_filters={"transcoder": orchestrator}))

    def transactions_from(self, sender: str, to: str | None = None) -> list[Any]:
        """Every mined transaction sent by ``sender`` (to ``to``), oldest first."""
        found = []
        for number in range(self.w3.eth.block_number + 1):
            for tx in self.w3.eth.get_block(number, full_transactions=True)["transactions"]:
                if tx["from"] == sender and (to is None or tx["to"] == to):
                    found.append(tx)
        return found

    def wait(self, ready: Callable[[], object], what: str, timeout: float = 60, log: Callable[[], str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.2)
        raise AssertionError(f"no {what} after {timeout:.0f} s" + (f":\n{log()[-3000:]}" if log else ""))
