"""The local Livepeer chain: anvil with the project's protocol contracts (chain/contracts).

    lpfleet chain up [--host H] [--port N] [--block-time S] [--round-length N]
    lpfleet chain mine N
    lpfleet chain down

``up`` starts anvil in the background, compiles and deploys the contracts, registers them in
the Controller, sets the round length and the TicketBroker's ticket validity and unlock
periods, unpauses the system, initializes the current round and gives every test account LPT.
Its last line of output is the chain's description (JSON): the RPC URL, chain id, Controller and
the other contracts, the round length and the test accounts with their private keys (anvil's
published development keys: never use them anywhere else). A second ``up`` on the same port
finds the chain running and prints the same description.

State per port under ``$LPFLEET_CHAIN_DIR`` (default ~/.local/state/lpfleet/chain): the pid,
anvil's log and the description.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHAIN_DIR = ROOT / "chain"
CONTRACTS_DIR = CHAIN_DIR / "contracts"
BUILD_DIR = ROOT / "build" / "chain"

DEFAULT_PORT = 8545
DEFAULT_ROUND_LENGTH = 50  # the protocol's gethDev preset
ROUND_LOCK_AMOUNT = 100000  # 10% of a round, as on Arbitrum One
NUM_ACTIVE_TRANSCODERS = 10
INFLATION = 137  # parts per million per round: the protocol's default preset
LPT_PER_ACCOUNT = 10_000 * 10**18
ACCOUNTS = 10

# The contracts, in deployment order, and the Controller name each is registered under.
PRICE_FEED_DECIMALS = 8
PRICE_FEED_ANSWER = 3000 * 10**PRICE_FEED_DECIMALS  # 1 ETH = 3000 USD
REGISTERED = ("LivepeerToken", "Minter", "BondingManager", "RoundsManager", "ServiceRegistry", "TicketBroker")
# TicketBroker: tickets stay valid for 2 rounds, as on Arbitrum One; a sender's unlock takes 2
# rounds here (on Arbitrum One: 5,760 blocks' worth of rounds).
TICKET_VALIDITY_PERIOD = 2
UNLOCK_PERIOD = 2


class ChainError(Exception):
    """A local chain that cannot be started or used; the message says what to do."""


def state_dir(port: int, base: Path | None = None) -> Path:
    """Where the chain on ``port`` keeps its pid, log and description: under ``base`` (the
    lab's own), else $LPFLEET_CHAIN_DIR, else ~/.local/state/lpfleet/chain."""
    base = base or Path(os.environ.get("LPFLEET_CHAIN_DIR") or Path.home() / ".local" / "state" / "lpfleet" / "chain")
    return Path(base) / str(port)


def tool(name: str) -> Path:
    path = CHAIN_DIR / "node_modules" / ".bin" / name
    if not path.exists():
        raise ChainError(f"{path} is missing: run scripts/setup (it installs anvil and solc from npm into chain/)")
    return path


@dataclass(frozen=True)
class Artifact:
    abi: list[dict[str, Any]]
    bytecode: str


def compile_contracts() -> dict[str, Artifact]:
    """Every contract in chain/contracts, compiled with the pinned solc (cached by source hash)."""
    sources = {p.name: {"content": p.read_text()} for p in sorted(CONTRACTS_DIR.glob("*.sol"))}
    request = {
        "language": "Solidity",
        "sources": sources,
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            # anvil's default hardfork accepts newer opcodes; paris keeps the bytecode valid on
            # any chain lpnode's tests might point at.
            "evmVersion": "paris",
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }
    text = json.dumps(request, sort_keys=True)
    key = hashlib.sha256((text + (CHAIN_DIR / "package-lock.json").read_text()).encode()).hexdigest()[:16]
    out = BUILD_DIR / f"contracts-{key}.json"
    if not out.exists():
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        request_file = BUILD_DIR / f"input-{key}.json"
        request_file.write_text(text)
        tool("solcjs")  # the solc package is installed
        result = subprocess.run(["node", str(CHAIN_DIR / "compile.js"), str(request_file), str(out) + ".new"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise ChainError(f"compiling chain/contracts failed: {result.stderr.strip()[-2000:]}")
        output = json.loads(Path(str(out) + ".new").read_text())
        errors = [e["formattedMessage"] for e in output.get("errors", []) if e["severity"] == "error"]
        if errors:
            Path(str(out) + ".new").unlink()
            raise ChainError("compiling chain/contracts failed:\n" + "\n".join(errors))
        os.replace(str(out) + ".new", out)
    output = json.loads(out.read_text())
    return {
        name: Artifact(abi=c["abi"], bytecode=c["evm"]["bytecode"]["object"])
        for contracts in output["contracts"].values()
        for name, c in contracts.items()
        if c["evm"]["bytecode"]["object"]
    }


def _pid(port: int, base: Path | None = None) -> int | None:
    try:
        pid = int((state_dir(port, base) / "anvil.pid").read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _web3(rpc_url: str) -> Any:
    from web3 import Web3

    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))


def _wait_rpc(rpc_url: str, pid: int, log: Path, timeout: float = 30) -> Any:
    w3 = _web3(rpc_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if w3.eth.chain_id:
                return w3
        except Exception:  # noqa: BLE001 - not listening yet
            try:
                os.kill(pid, 0)
            except OSError:
                raise ChainError(f"anvil exited at start-up; its log, {log}:\n{log.read_text()[-2000:]}") from None
            time.sleep(0.1)
    raise ChainError(f"anvil did not answer on {rpc_url} within {timeout:.0f} s; see {log}")


def up(host: str = "127.0.0.1", port: int = DEFAULT_PORT, block_time: float | None = None,
       round_length: int = DEFAULT_ROUND_LENGTH, base: Path | None = None,
       ticket_validity_period: int = TICKET_VALIDITY_PERIOD) -> dict[str, Any]:
    """Start (or find) the chain on ``port`` and return its description."""
    d = state_dir(port, base)
    described = d / "chain.json"
    if _pid(port, base) is not None and described.exists():
        return dict(json.loads(described.read_text()))
    if round_length < 2:
        raise ChainError(f"--round-length {round_length}: a round needs at least 2 blocks")
    artifacts = compile_contracts()
    d.mkdir(parents=True, exist_ok=True)
    log, keys = d / "anvil.log", d / "anvil-accounts.json"
    cmd = [str(tool("anvil")), "--host", host, "--port", str(port), "--accounts", str(ACCOUNTS),
           "--config-out", str(keys)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    (d / "anvil.pid").write_text(str(proc.pid))
    rpc_url = f"http://{host}:{port}"
    try:
        w3 = _wait_rpc(rpc_url, proc.pid, log)
        accounts = _test_accounts(keys)
        addresses = _deploy(w3, artifacts, accounts[0]["address"], [a["address"] for a in accounts], round_length,
                            ticket_validity_period)
        if block_time:
            # Deployed with a block per transaction; from now on blocks come on the clock.
            w3.provider.make_request("evm_setIntervalMining", [block_time])
    except BaseException:
        down(port, base)
        raise
    description = {
        "rpc_url": rpc_url,
        "chain_id": w3.eth.chain_id,
        "controller": addresses["Controller"],
        "contracts": addresses,
        "round_length": round_length,
        "block_time": block_time,
        "accounts": accounts,
        "pid": proc.pid,
        "log": str(log),
    }
    tmp = described.with_suffix(".new")
    tmp.write_text(json.dumps(description, indent=1))
    os.replace(tmp, described)
    return description


def _test_accounts(config_out: Path) -> list[dict[str, str]]:
    from eth_account import Account

    deadline = time.monotonic() + 10
    while not config_out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    keys = json.loads(config_out.read_text())["private_keys"]
    return [{"address": Account.from_key(k).address, "private_key": k} for k in keys]


def _deploy(w3: Any, artifacts: dict[str, Artifact], owner: str, holders: list[str],
            round_length: int, ticket_validity_period: int = TICKET_VALIDITY_PERIOD) -> dict[str, str]:
    def send(call: Any) -> Any:
        receipt = w3.eth.wait_for_transaction_receipt(call.transact({"from": owner}), timeout=60)
        if receipt["status"] != 1:
            raise ChainError(f"local chain set-up: transaction {receipt['transactionHash'].hex()} reverted")
        return receipt

    def deploy(name: str, *args: Any) -> Any:
        a = artifacts[name]
        receipt = send(w3.eth.contract(abi=a.abi, bytecode=a.bytecode).constructor(*args))
        return w3.eth.contract(address=receipt["contractAddress"], abi=a.abi)

    from lpnode.eth.client import contract_id

    controller = deploy("Controller")
    contracts = {
        "LivepeerToken": deploy("LivepeerToken"),
        "Minter": deploy("Minter", controller.address, INFLATION, 3, 500000),
        "BondingManager": deploy("BondingManager", controller.address),
        "RoundsManager": deploy("RoundsManager", controller.address),
        "ServiceRegistry": deploy("ServiceRegistry", controller.address),
        "TicketBroker": deploy("TicketBroker", controller.address),
    }
    for name in REGISTERED:
        send(controller.functions.setContractInfo(contract_id(name), contracts[name].address, b"\0" * 20))
    token, bonding, rounds = contracts["LivepeerToken"], contracts["BondingManager"], contracts["RoundsManager"]
    minter_role = token.functions.MINTER_ROLE().call()
    send(token.functions.grantRole(minter_role, contracts["Minter"].address))
    send(token.functions.grantRole(minter_role, owner))
    for holder in holders:
        send(token.functions.mint(holder, LPT_PER_ACCOUNT))
    send(bonding.functions.setNumActiveTranscoders(NUM_ACTIVE_TRANSCODERS))
    send(bonding.functions.setUnbondingPeriod(7))
    send(rounds.functions.setRoundLength(round_length))
    send(rounds.functions.setRoundLockAmount(ROUND_LOCK_AMOUNT))
    broker = contracts["TicketBroker"]
    send(broker.functions.setTicketValidityPeriod(ticket_validity_period))
    send(broker.functions.setUnlockPeriod(UNLOCK_PERIOD))
    # ETH/USD as Chainlink's feed on Arbitrum One answers it (8 decimals), for currency prices.
    contracts["PriceFeed"] = deploy("PriceFeed", PRICE_FEED_DECIMALS, "ETH / USD", PRICE_FEED_ANSWER)
    send(controller.functions.unpause())
    if not rounds.functions.currentRoundInitialized().call():
        # Round 0 counts as initialized: with rounds longer than the deployment's blocks it is current.
        send(rounds.functions.initializeRound())
    return {"Controller": controller.address, **{name: c.address for name, c in contracts.items()}}


def description(port: int = DEFAULT_PORT, base: Path | None = None) -> dict[str, Any]:
    """The running chain's description; ChainError if there is none."""
    path = state_dir(port, base) / "chain.json"
    if _pid(port, base) is None or not path.exists():
        raise ChainError(f"no local chain on port {port}: start one with `lpfleet chain up --port {port}`")
    return dict(json.loads(path.read_text()))


def mine(blocks: int, port: int = DEFAULT_PORT, base: Path | None = None) -> int:
    """Advance ``blocks`` blocks; returns the new block number."""
    if blocks < 1:
        raise ChainError(f"mine {blocks}: give a number of blocks of at least 1")
    w3 = _web3(description(port, base)["rpc_url"])
    w3.provider.make_request("anvil_mine", [hex(blocks)])
    return int(w3.eth.block_number)


def down(port: int = DEFAULT_PORT, base: Path | None = None) -> bool:
    """Stop the chain on ``port``; False if none was running."""
    d = state_dir(port, base)
    pid = _pid(port, base)
    if pid is not None:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _pid(port, base) is not None and time.monotonic() < deadline:
            try:  # reap it when it is this process's own child (tests start chains in-process)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
    for name in ("anvil.pid", "chain.json", "anvil-accounts.json"):
        (d / name).unlink(missing_ok=True)
    return pid is not None
