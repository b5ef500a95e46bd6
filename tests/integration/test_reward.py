"""The reward service on the local chain (anvil + the project's contracts), as a real lpnode
process: reward exactly once per round, through kill -9, an RPC outage and a gas spike; nothing
for an inactive orchestrator; LIP-118's reward caller; a wrong password."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fleet import Fleet, Proc
from tests.support.localchain import LocalChain

pytestmark = pytest.mark.integration

REWARD_SELECTORS = {"0x81871056", "0xb556966a"}  # rewardWithHint, rewardForTranscoderWithHint


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[LocalChain]:
    c = LocalChain(tmp_path)
    yield c
    c.close()


def reward_node(fleet: Fleet, chain: LocalChain, index: int = 1, *extra: str, url: str | None = None) -> Proc:
    flags = chain.flags(index)
    if url:
        flags[flags.index("-ethUrl") + 1] = url
    return fleet.start(f"reward-{index}", "-reward", "-initializeRound", "-initializeRoundMaxDelay", "0s",
                       "-blockPollingInterval", "1", "-monitor", *flags, *extra)


def reward_txs(chain: LocalChain, sender: str) -> list:
    return [tx for tx in chain.transactions_from(sender, chain.bonding.address)
            if "0x" + bytes(tx["input"][:4]).hex() in REWARD_SELECTORS]


def rewarded(chain: LocalChain, orch: str) -> bool:
    return chain.last_reward_round(orch) == chain.current_round()


def test_reward_exactly_once_in_each_of_five_rounds(fleet: Fleet, chain: LocalChain) -> None:
    orch = chain.register(1)
    node = reward_node(fleet, chain)
    rounds = []
    for _ in range(5):
        rounds.append(chain.next_round())
        chain.wait(lambda: rewarded(chain, orch), f"reward in round {rounds[-1]}", log=node.log)
    events = chain.reward_events(orch)
    assert [e["blockNumber"] for e in events] == sorted(e["blockNumber"] for e in events)
    assert len(events) == 5 and all(e["args"]["amount"] > 0 for e in events)
    assert len(reward_txs(chain, orch)) == 5  # no second transaction, none that failed
    # The chain can show the reward before the node has read its receipt: wait for the node.
    last = f'lpfleet_reward_last_round{{node_type="reward"}} {float(rounds[-1])}'
    node.wait_for(lambda: last in node.metrics(), "the last reward in its metrics")
    assert 'lpfleet_reward_calls_total{node_type="reward",result="mined"} 5.0' in node.metrics()
    assert node.status()["chain"]["rewarded"] is True


def test_kill_9_between_sending_and_the_receipt_sends_no_second_transaction(
        fleet: Fleet, chain: LocalChain) -> None:
    orch = chain.register(1)
    chain.next_round()
    chain.initialize_round()
    chain.automine(False)  # the reward transaction waits in the mempool
    node = reward_node(fleet, chain)
    pending = chain.tmp / "data-1" / "pending-tx.json"
    chain.wait(lambda: pending.exists() and "reward:" in pending.read_text(), "reward transaction sent", log=node.log)
    os.kill(node.pid, signal.SIGKILL)
    node.popen.wait()
    again = reward_node(fleet, chain)
    again.logged(r"still pending; waiting for it")
    chain.automine(True)
    chain.mine(1)
    chain.wait(lambda: rewarded(chain, orch), "reward after the restart", log=again.log)
    chain.mine(3)
    assert len(reward_txs(chain, orch)) == 1
    assert len(chain.reward_events(orch)) == 1


def test_a_pending_record_from_another_chain_does_not_block_the_reward(fleet: Fleet, chain: LocalChain) -> None:
    """A datadir that recorded a reward transaction on a chain since reset (the lab's test chain
    restarted): its nonce is beyond the account's, so sent again it would wait behind the gap."""
    orch = chain.register(1)
    chain.next_round()
    chain.initialize_round()
    data = chain.tmp / "data-1"
    data.mkdir(parents=True, exist_ok=True)
    (data / "pending-tx.json").write_text(json.dumps({
        "key": f"reward:{chain.current_round()}", "what": "reward (old chain)", "nonce": 500,
        "hashes": ["0x" + "ab" * 32], "sent_at": 0.0}))
    node = reward_node(fleet, chain)
    chain.wait(lambda: rewarded(chain, orch), "reward despite the stale record", log=node.log)
    node.logged(r"a record from another chain")
    assert len(reward_txs(chain, orch)) == 1


class CuttableProxy:
    """A TCP relay to the chain's RPC port that the test can cut and restore: the RPC endpoint
    going away, as a provider outage looks to the node."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.up.clear()
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conns.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.cut()
        self.server.close()


def test_rpc_down_for_most_of_a_round_then_reward_in_that_round(fleet: Fleet, chain: LocalChain) -> None:
    orch = chain.register(1)
    proxy = CuttableProxy(chain.port)
    try:
        node = reward_node(fleet, chain, url=f"http://127.0.0.1:{proxy.port}")
        chain.next_round()
        chain.wait(lambda: rewarded(chain, orch), "first reward", log=node.log)
        proxy.cut()
        round_ = chain.next_round()
        chain.initialize_round()
        chain.mine(15)  # 16 of the round's 20 blocks pass while the node cannot reach the chain
        node.logged(r"JSON-RPC endpoint http://127\.0\.0\.1:\d+: .*retrying")
        assert node.status()["chain"]["rpc"] == "failing"
        assert chain.last_reward_round(orch) < round_
        proxy.restore()
        chain.wait(lambda: rewarded(chain, orch), "reward once the endpoint is back", log=node.log)
        assert chain.current_round() == round_
        assert len(reward_txs(chain, orch)) == 2
    finally:
        proxy.close()


def test_gas_above_max_gas_price_waits_and_rewards_when_it_falls(fleet: Fleet, chain: LocalChain) -> None:
    orch = chain.register(1)
    chain.next_round()
    chain.initialize_round()
    chain.w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(50 * 10**9)])
    chain.mine(1)
    node = reward_node(fleet, chain, 1, "-maxGasPrice", str(20 * 10**9))
    node.logged(r"above -maxGasPrice 20000000000 wei; trying again")
    assert chain.last_reward_round(orch) < chain.current_round()
    chain.w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(10**9)])
    chain.mine(1)
    chain.wait(lambda: rewarded(chain, orch), "reward once gas fell", log=node.log)
    assert len(reward_txs(chain, orch)) == 1
    assert 'livepeer_reward_call_errors_total{node_type="reward"}' in node.metrics()


def test_an_inactive_orchestrator_sends_nothing_and_says_so_once(fleet: Fleet, chain: LocalChain) -> None:
    orch = chain.account(2)["address"]  # never registered
    chain.next_round()
    chain.initialize_round()
    node = reward_node(fleet, chain, 2, "-reward=true")
    node.logged(r"is not an active transcoder")
    chain.mine(3)
    node.wait_for(lambda: node.status()["chain"].get("block", 0) >= chain.w3.eth.block_number, "a look at the chain")
    assert node.log().count("is not an active transcoder") == 1
    assert reward_txs(chain, orch) == []


def test_lip118_reward_caller_rewards_the_orchestrator(fleet: Fleet, chain: LocalChain) -> None:
    orch = chain.register(1)
    caller = chain.account(3)["address"]
    run = chain.lpnode_chain("set-reward-caller", caller, index=1)
    assert run.returncode == 0, run.stdout + run.stderr
    node = reward_node(fleet, chain, 3, "-ethOrchAddr", orch)
    chain.next_round()
    chain.wait(lambda: rewarded(chain, orch), "reward through the caller", log=node.log)
    assert len(reward_txs(chain, caller)) == 1 and reward_txs(chain, orch) == []
    assert node.status()["chain"]["rewardCaller"] is True


def test_a_wrong_password_stops_the_start_and_shows_no_key(fleet: Fleet, chain: LocalChain) -> None:
    flags = chain.flags(1)
    wrong = chain.tmp / "wrong-password"
    wrong.write_text("not the password\n")
    wrong.chmod(0o600)
    flags[flags.index("-ethPassword") + 1] = str(wrong)
    node = fleet.spawn("reward", "-reward", *flags)
    assert node.popen.wait(timeout=30) == 1
    log = node.log()
    assert "wrong password for " + chain.account(1)["address"] in log and "-ethPassword" in log
    assert chain.account(1)["private_key"][2:] not in log and "not the password" not in log
