"""The deploy's side of payments: an on-chain orchestrator's config (its hot key, the RPC URL,
ticket settings, the redeemer), the redeemer's own unit, what the inventory must carry for
them, and Prometheus scraping the redeemers."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory.validate import describe, validate
from lpnode.config import parse_node_flags
from roles._ops import render, render_monitoring
from roles.monitoring import scrape_hosts
from roles.node import Installed, NodeSettings
from roles.node import config_flags as node_flags
from roles.redeemer import RedeemerSettings, redeemer
from roles.redeemer import config_flags as redeemer_flags
from tests.support.inventory import REWARD_ENV, reward_data
from tests.support.prepare import prepare, with_settings

CONTROLLER = "0x" + "ab" * 20
ORCH = "0x" + "cd" * 20
ENV = {"LPFLEET_ORCH_SECRET": "c2VjcmV0", "LPFLEET_ADMIN_TOKEN": "dG9rZW4", "LPFLEET_HOT_PASSWORD": "pw",
       "LPFLEET_REDEEM_TOKEN": "t0k", **REWARD_ENV}
ALL = {"admin_networks": ["10.0.0.0/8"], "orch_secret_env": "LPFLEET_ORCH_SECRET",
       "admin_token_env": "LPFLEET_ADMIN_TOKEN"}
MONITORING = {"prometheus_runbook_base": "https://example.com/lpfleet/docs",
              "alertmanager_receivers": {"page": [{"type": "webhook", "url": "http://10.0.0.99/page"}]}}


def parsed(tmp_path: Path, flags: list, role: str) -> object:
    path = tmp_path / f"{role}.conf"
    path.write_text(render("lpnode.conf.j2", role=role, host_name="h1", flags=flags))
    return parse_node_flags(["-config", str(path)], {})


def test_an_on_chain_orchestrator_signs_with_its_hot_key_for_the_registered_address(tmp_path: Path) -> None:
    settings = NodeSettings(network="lab", eth_controller=CONTROLLER, eth_orch_addr=ORCH, ticket_ev=10**12,
                            max_face_value=10**15, price_per_unit="0.5USD", extra_flags={"priceFeedAddr": ORCH})
    cfg = parsed(tmp_path, node_flags("orchestrator", "10.0.0.11", settings, redeemer_addr="10.0.0.51:8936"),
                 "orchestrator")
    assert cfg.on_chain and cfg.controller == CONTROLLER and cfg.eth_orch_addr == ORCH
    assert cfg.eth_url == "/etc/lpnode/ethUrl" and cfg.keystore_path == "/etc/lpnode/hot-keystore/keystore.json"
    assert cfg.eth_password == "/etc/lpnode/hot-keystore/password"
    assert cfg.reward is False  # the reward host rewards; the hot key never does
    assert (cfg.ticket_ev, cfg.max_face_value, cfg.price_per_unit) == (10**12, 10**15, "0.5USD")
    assert (cfg.redeemer_addr, cfg.redeemer_token_file) == ("10.0.0.51:8936", "/etc/lpnode/redeemerToken")
    # Off chain nothing of it, and a transcoder never gets any.
    off = dict(node_flags("orchestrator", "10.0.0.11", NodeSettings()))
    assert off["network"] == "offchain" and "ethUrl" not in off
    remote = dict(node_flags("transcoder", "10.0.0.21", settings, orch_addr="10.0.0.11:8935"))
    assert remote["network"] == "offchain" and not {"ethUrl", "ethKeystorePath", "ethPassword"} & set(remote)


def test_the_redeemer_runs_alone_for_the_orchestrator_with_the_token(tmp_path: Path) -> None:
    cfg = parsed(tmp_path, redeemer_flags(RedeemerSettings(network="lab", controller=CONTROLLER, orch_addr=ORCH)),
                 "redeemer")
    assert cfg.role == "redeemer" and cfg.eth_orch_addr == ORCH
    assert cfg.http_addr == "0.0.0.0:8936" and cfg.cli_addr == "0.0.0.0:7937"
    assert cfg.keystore_path == "/etc/lpnode/keystore/keystore.json"
    assert cfg.redeemer_token_file == "/etc/lpnode/redeemerToken" and cfg.datadir == "/var/lib/lpnode-redeemer"
    assert RedeemerSettings.problems({"redeemer_orch_addr": ""}) != []


def test_first_deploy_of_a_redeemer_checks_its_config_and_starts_its_own_unit() -> None:
    ops, _ = prepare(redeemer, facts={}, host_name="r1", installed=Installed(will_change=False),
                     **with_settings(RedeemerSettings, {"network": "lab", "controller": CONTROLLER,
                                                        "orch_addr": ORCH}))
    check = next(c for c in ops.named("ticket redeemer config").commands if "check-config" in c)
    assert check.startswith("/opt/lpnode/venv/bin/lpnode check-config /etc/lpnode/.redeemer.conf.lpfleet-new")
    assert "systemctl start lpnode-redeemer.service" in ops.named("ticket redeemer running").commands


def on_chain_fleet(o1: dict, r1: dict | None = None) -> list:
    hot = Path(reward_data()["keystore_path"]).with_name("hot.json")
    hot.write_text("{}")
    hot.chmod(0o600)
    data = {"ssh_hostname": "10.0.0.11", "lpnode_network": "lab", "lpnode_eth_controller": CONTROLLER,
            "hot_keystore_path": str(hot), "hot_keystore_password_env": "LPFLEET_HOT_PASSWORD",
            "eth_url_env": "LPFLEET_ETH_URL", "redeem_token_env": "LPFLEET_REDEEM_TOKEN"}
    groups = {
        "orchestrators": [("o1", {**data, **o1})],
        "transcoders": [("t1", {"ssh_hostname": "10.0.0.21", "orchestrator": "o1"})],
        "monitoring": [("mon1", {"ssh_hostname": "10.0.0.31"})],
        "reward": [("rw1", {"ssh_hostname": "10.0.0.41"})],
    }
    if r1 is not None:
        groups["redeemers"] = [("r1", {"ssh_hostname": "10.0.0.51", "redeemer_network": "lab",
                                       "redeemer_controller": CONTROLLER, "redeemer_orch_addr": ORCH,
                                       **reward_data(), "redeem_token_env": "LPFLEET_REDEEM_TOKEN", **r1})]
    return describe(groups, {"all": ALL, "monitoring": MONITORING, "reward": reward_data()})


def messages(hosts: list) -> list[str]:
    return [str(p) for p in validate(hosts, ENV)]


def test_the_inventory_carries_what_an_on_chain_orchestrator_and_a_redeemer_need() -> None:
    assert messages(on_chain_fleet({}, {})) == []
    assert any("o1: an on-chain orchestrator has no hot_keystore_path" in m
               for m in messages(on_chain_fleet({"hot_keystore_path": ""})))
    assert any(m.startswith("o1: no hot keystore password") for m in messages(
        on_chain_fleet({"hot_keystore_password_env": ""})))
    assert any(m.startswith("r1: no redeemer token") for m in messages(on_chain_fleet({}, {"redeem_token_env": ""})))
    assert any("r1: a redeemer has no keystore_path" in m for m in messages(on_chain_fleet({}, {"keystore_path": ""})))
    assert any("redeemer_orch_addr" in m for m in messages(on_chain_fleet({}, {"redeemer_orch_addr": ""})))
    # Chain material never on a transcoder, and the hot key never off an on-chain orchestrator.
    hosts = on_chain_fleet({"lpnode_network": "offchain"})
    assert any(m.startswith("o1: hot_keystore_path is set, but a hot keystore only goes to an on-chain") for m in
               messages(hosts))


@pytest.mark.parametrize("with_redeemer", [True, False])
def test_prometheus_scrapes_the_redeemers(with_redeemer: bool) -> None:
    hosts = scrape_hosts(on_chain_fleet({}, {} if with_redeemer else None))
    text = render_monitoring("prometheus/prometheus.yml.j2", hosts=hosts)
    assert ("job_name: lpnode-redeemer" in text) is with_redeemer
    if with_redeemer:
        assert "10.0.0.51:7937" in text
