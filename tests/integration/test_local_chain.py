"""`lpfleet chain` and the local chain's contracts: what lpnode calls is there with the same
layout, and the protocol semantics lpnode relies on hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3

from lpfleet import chain as localchain
from lpnode.eth import abi
from tests.support.localchain import LocalChain, free_port

pytestmark = pytest.mark.integration

LPFLEET = [sys.executable, "-m", "lpfleet.cli", "chain"]
SOURCES = "".join(p.read_text() for p in sorted(localchain.CONTRACTS_DIR.glob("*.sol")))


def test_chain_up_reuses_a_running_chain_and_down_stops_it(tmp_path: Path) -> None:
    env = {**os.environ, "LPFLEET_CHAIN_DIR": str(tmp_path)}
    port = str(free_port())

    def lpfleet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*LPFLEET, *args, "--port", port], capture_output=True, text=True, env=env, timeout=180)

    try:
        first = lpfleet("up", "--round-length", "7")
        assert first.returncode == 0, first.stderr
        info = json.loads(first.stdout.strip().splitlines()[-1])
        assert {"rpc_url", "chain_id", "controller", "round_length", "accounts"} <= set(info)
        assert info["round_length"] == 7 and len(info["accounts"]) == 10
        w3 = Web3(Web3.HTTPProvider(info["rpc_url"]))
        assert w3.eth.chain_id == info["chain_id"]
        assert json.loads(lpfleet("up").stdout.strip().splitlines()[-1])["controller"] == info["controller"]
        before = w3.eth.block_number
        assert lpfleet("mine", "5").stdout.strip() == f"block {before + 5}"
    finally:
        assert lpfleet("down").returncode == 0
    after = lpfleet("mine", "1")
    assert after.returncode == 1 and "no local chain" in after.stderr and "lpfleet chain up" in after.stderr


def test_the_contracts_present_what_lpnode_calls() -> None:
    compiled = localchain.compile_contracts()
    for name, items in [("Controller", abi.CONTROLLER), *abi.BY_NAME.items()]:
        theirs = {abi.signature(i): i for i in compiled[name].abi if i["type"] in ("function", "event")}
        for item in items:
            sig = abi.signature(item)
            assert sig in theirs, f"{name} lacks {sig}"
            if item["type"] == "function":
                assert [o["type"] for o in theirs[sig]["outputs"]] == [o["type"] for o in item["outputs"]], sig
            else:
                assert [p["indexed"] for p in theirs[sig]["inputs"]] == [p["indexed"] for p in item["inputs"]], sig
    for reason in (abi.ALREADY_REWARDED, abi.NOT_ACTIVE, abi.ROUND_NOT_INITIALIZED, abi.ROUND_ALREADY_INITIALIZED,
                   abi.SYSTEM_PAUSED, abi.ROUND_LOCKED):
        assert f'"{reason}"' in SOURCES


def test_protocol_semantics(tmp_path: Path) -> None:
    chain = LocalChain(tmp_path)
    try:
        orch = chain.register(1)
        bonding = chain.bonding.functions
        registered_in = chain.current_round()
        # Active only from the next round, after it is initialized.
        assert bonding.transcoderStatus(orch).call() == 1 and not bonding.isActiveTranscoder(orch).call()
        chain.next_round()
        chain.initialize_round()
        assert bonding.isActiveTranscoder(orch).call() and chain.current_round() == registered_in + 1
        # One reward per round.
        sender = {"from": orch}
        chain.w3.eth.wait_for_transaction_receipt(bonding.reward().transact(sender))
        with pytest.raises(Exception, match=abi.ALREADY_REWARDED):
            bonding.reward().call(sender)
        # An uninitialized round refuses reward.
        chain.next_round()
        with pytest.raises(Exception, match=abi.ROUND_NOT_INITIALIZED):
            bonding.reward().call(sender)
        with pytest.raises(Exception, match=abi.ROUND_ALREADY_INITIALIZED):
            chain.initialize_round()
            chain.rounds.functions.initializeRound().call({"from": orch})
        # A paused system refuses it too.
        controller = chain.w3.eth.contract(address=chain.info["controller"], abi=localchain.compile_contracts()[
            "Controller"].abi)
        chain.w3.eth.wait_for_transaction_receipt(controller.functions.pause().transact({"from": chain.account(0)["address"]}))
        with pytest.raises(Exception, match=abi.SYSTEM_PAUSED):
            bonding.reward().call(sender)
    finally:
        chain.close()


def test_register_twice_bonds_once(tmp_path: Path) -> None:
    chain = LocalChain(tmp_path)
    try:
        orch = chain.register(1)
        again = chain.lpnode_chain("register", "--stake", "1000", "--rewardCut", "10", "--feeShare", "50",
                                   "--serviceURI", "https://127.0.0.1:8936", index=1)
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("already on chain") == 4
        assert chain.bonding.functions.transcoderTotalStake(orch).call() == 1000 * 10**18
        status = chain.lpnode_chain("status", index=1)
        assert status.returncode == 0, status.stderr
        shown = json.loads(status.stdout)
        assert shown["registered"] and shown["serviceURI"] == "https://127.0.0.1:8936"
        assert shown["rewardCutPercent"] == 10 and shown["feeSharePercent"] == 50
    finally:
        chain.close()
