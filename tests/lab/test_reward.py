"""The reward service on the lab: the lab chain on this machine's bridge address stands for the
operator's RPC provider, o1 is the reward host (and the registered orchestrator).

    .venv/bin/python -m pytest tests/lab/test_reward.py -q

After the session's fleet deploy: lpnode-reward runs on o1 only, with the keystore, its password
and the RPC URL as files only the service user reads; no other host holds any chain material.
Rounds are 20 one-second blocks: the service rewards each round exactly once. Stopping it pages
LpnodeRewardServiceDown through Alertmanager (the rule's production `for: 2m`), and once it is
started again it rewards the round it finds unrewarded.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lab.chain import Reader
from lab.config import ALERT_RECEIVER_PORT

from .conftest import lpfleet
from .monitoring_api import AlertReceiver, Prometheus, wait_until

pytestmark = pytest.mark.lab

REWARD = "o1"
MON = "mon1"
OTHERS = ("t1", "t2", "mon1")


@pytest.fixture(scope="module")
def chain(lab, deployed) -> Reader:
    return Reader(lab.chain)


def test_the_reward_service_runs_on_the_reward_host_with_its_secrets_as_files(hosts, lab):
    host = hosts[REWARD]
    assert host.service("lpnode-reward").is_running and host.service("lpnode-reward").is_enabled
    for path in ("/etc/lpnode/keystore/keystore.json", "/etc/lpnode/keystore/password", "/etc/lpnode/ethUrl"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("lpnode", "lpnode", 0o400), path
    assert host.file("/etc/lpnode/ethUrl").content_string.strip() == lab.chain["rpc_url"]
    config = host.file("/etc/lpnode/reward.conf").content_string
    assert "ethUrl /etc/lpnode/ethUrl\n" in config and "ethPassword /etc/lpnode/keystore/password\n" in config
    password = Path(lab.chain["keystore_password_file"]).read_text().strip()
    seen = host.check_output("ps -eo args; journalctl --no-pager -o cat -u lpnode-reward; "
                             "cat /etc/lpnode/reward.conf /etc/systemd/system/lpnode-reward.service")
    assert password not in seen
    assert "-config /etc/lpnode/reward.conf" in seen


@pytest.mark.parametrize("name", OTHERS)
def test_no_other_host_holds_chain_material(hosts, lab, name):
    host = hosts[name]
    assert not host.file("/etc/lpnode/keystore").exists
    assert not host.file("/etc/lpnode/ethUrl").exists
    assert not host.service("lpnode-reward").is_enabled
    address = lab.chain["orchestrator"].lower().removeprefix("0x")
    found = host.run(f"grep -rlsiF {address} /etc /root /home /tmp /var/tmp /var/lib /opt")
    assert found.stdout.split() == [], name
    if host.file("/etc/lpnode/lpnode.conf").exists:
        assert "eth" not in host.file("/etc/lpnode/lpnode.conf").content_string


def test_each_round_is_rewarded_exactly_once(chain):
    """Three rounds in a row (a minute): each rewarded, by one Reward event."""
    start_block = chain.block()
    first = chain.round() + 1
    wait_until(lambda: chain.round() >= first + 2 and chain.last_reward_round() == chain.round(), 150,
               f"rounds {first} to {first + 2} rewarded", interval=1)
    length, now, now_start = chain.round_length(), chain.round(), chain.round_start()
    # The round each event was mined in, counted back from the current one.
    rounds = [now + (int(e["blockNumber"]) - now_start) // length for e in chain.reward_events(start_block)]
    assert sorted(rounds) == rounds and len(rounds) == len(set(rounds)), rounds
    assert {first, first + 1, first + 2} <= set(rounds), rounds


def test_stopping_the_reward_service_pages_and_it_rewards_once_started(lab, chain, hosts):
    prometheus = Prometheus(f"http://{lab.host(MON).address}:9090")
    wait_until(lambda: prometheus.value(f'up{{job="lpnode-reward", host="{REWARD}"}}') == 1, 60, "reward scraped")

    def page(status: str):
        def match(n) -> bool:
            return n.path == "/page" and any(a["status"] == status
                                             for a in n.alerts(alertname="LpnodeRewardServiceDown", host=REWARD))
        return match

    with AlertReceiver(lab.gateway, ALERT_RECEIVER_PORT) as receiver:
        stopped = time.time()
        try:
            hosts[REWARD].run_expect([0], "systemctl stop lpnode-reward")
            firing = receiver.wait_for(page("firing"), 300, "the LpnodeRewardServiceDown page")
            missed = chain.round()
            assert chain.last_reward_round() < missed      # nobody rewarded while it was down
        finally:
            hosts[REWARD].run_expect([0], "systemctl start lpnode-reward")
            started = time.time()
        # Started mid-round, it rewards the round it finds unrewarded.
        wait_until(lambda: chain.last_reward_round() == chain.round(), 60, "reward after the restart", interval=1)
        resolved = receiver.wait_for(page("resolved"), 120, "the resolution of LpnodeRewardServiceDown")

    print(f"\nLpnodeRewardServiceDown: paged {firing.received - stopped:.0f} s after the stop; rewarded "
          f"again {time.time() - started:.0f} s after the start")
    alert = firing.alerts(alertname="LpnodeRewardServiceDown", host=REWARD)[0]
    assert alert["labels"].items() >= {"severity": "page", "job": "lpnode-reward", "role": "reward"}.items()
    assert alert["annotations"]["runbook_url"].endswith("/alerts.md#lpnoderewardservicedown")
    assert firing.received - stopped >= 120          # the production `for: 2m`
    assert resolved.received >= started
    assert lpfleet("lab", "status").returncode == 0
