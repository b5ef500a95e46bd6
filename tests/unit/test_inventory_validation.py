"""Inventory validation: each rule, the message it gives, and inventory/prod.py itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inventory.validate import (
    HostSpec,
    InventoryValidationError,
    check,
    describe,
    load,
    main,
    validate,
)

from tests.support.inventory import REWARD_ENV, reward_data

ENV = {"LPFLEET_ORCH_SECRET": "c2VjcmV0", "LPFLEET_ADMIN_TOKEN": "dG9rZW4", **REWARD_ENV}
ALL = {
    "admin_networks": ["10.0.0.0/8"],
    "orch_secret_env": "LPFLEET_ORCH_SECRET",
    "admin_token_env": "LPFLEET_ADMIN_TOKEN",
}


# What a monitoring host needs (tests/unit/test_inventory_monitoring.py checks it).
MONITORING = {
    "prometheus_runbook_base": "https://example.com/lpfleet/docs",
    "alertmanager_receivers": {"page": [{"type": "webhook", "url": "http://10.0.0.99/page"}]},
}


def fleet(**changes):
    """A valid fleet; ``changes`` replaces whole groups."""
    groups = {
        "orchestrators": [("o1", {"ssh_hostname": "10.0.0.11"}), ("o2", {"ssh_hostname": "10.0.0.12"})],
        "transcoders": [
            ("t1", {"ssh_hostname": "10.0.0.21", "orchestrator": "o1"}),
            ("t2", {"ssh_hostname": "10.0.0.22", "orchestrator": "o2"}),
        ],
        "monitoring": [("mon1", {"ssh_hostname": "10.0.0.31"})],
        "reward": [("r1", {"ssh_hostname": "10.0.0.41"})],
    }
    groups.update(changes)
    return describe(groups, {"all": ALL, "monitoring": MONITORING, "reward": reward_data()})


def messages(hosts, environ=ENV):
    return [str(p) for p in validate(hosts, environ)]


def test_valid_fleet_has_no_problems():
    assert messages(fleet()) == []


def test_describe_merges_data_like_pyinfra():
    hosts = describe(
        {"transcoders": [("t1", {"x": "host"})], "gpu": ["t1"]},
        {"all": {"x": "all", "y": "all", "z": "all"}, "transcoders": {"y": "group", "z": "group"}, "gpu": {"z": "gpu"}},
    )
    assert hosts == [HostSpec("t1", frozenset({"transcoders", "gpu"}), {"x": "host", "y": "group", "z": "gpu"})]


# --------------------------------------------------------------------------- reward


def test_no_reward_host():
    assert messages(fleet(reward=[])) == [
        "no reward host: put exactly one host in the `reward` group (it calls reward() once per round; "
        "a host may also be an orchestrator)"
    ]


def test_two_reward_hosts():
    [msg] = messages(fleet(reward=[("r1", {"ssh_hostname": "10.0.0.41"}), ("r2", {"ssh_hostname": "10.0.0.42"})]))
    assert msg.startswith("2 reward hosts (r1, r2): keep exactly one in the `reward` group")


def test_reward_host_may_be_an_orchestrator():
    assert messages(fleet(reward=["o1"])) == []


# --------------------------------------------------------------------------- keystores


def keystore(tmp_path, mode=0o600) -> str:
    path = tmp_path / "keystore.json"
    path.write_text('{"address": "00"}')
    path.chmod(mode)
    return str(path)


def test_keystore_on_transcoder(tmp_path):
    ks = keystore(tmp_path)
    hosts = fleet(transcoders=[("t1", {"ssh_hostname": "10.0.0.21", "orchestrator": "o1", "keystore_path": ks})])
    assert messages(hosts) == [
        "t1: keystore_path is set on a transcoder; transcoders never hold a keystore. Fix: remove keystore_path "
        "from this host's data (or from the group data it inherits it from)"
    ]


def test_keystore_inherited_by_a_transcoder_from_all(tmp_path):
    groups = {"orchestrators": [("o1", {})], "transcoders": [("t1", {"orchestrator": "o1"})], "reward": ["o1"]}
    hosts = describe(groups, {"all": {**ALL, "keystore_path": keystore(tmp_path)}, "reward": reward_data()})
    problems = messages(hosts)
    assert any(p.startswith("t1: keystore_path is set on a transcoder") for p in problems)


def test_keystore_on_a_host_that_is_not_reward_or_redeemer(tmp_path):
    hosts = fleet(monitoring=[("mon1", {"ssh_hostname": "10.0.0.31", "keystore_path": keystore(tmp_path)})])
    [msg] = messages(hosts)
    assert msg.startswith("mon1: keystore_path is set, but keystores only go to the reward and redeemer hosts")


def test_keystore_on_reward_host_is_checked_like_a_secret(tmp_path):
    assert messages(fleet(reward=[("r1", {"ssh_hostname": "10.0.0.41", "keystore_path": keystore(tmp_path)})])) == []
    loose = keystore(tmp_path, mode=0o644)
    [msg] = messages(fleet(reward=[("r1", {"ssh_hostname": "10.0.0.41", "keystore_path": loose})]))
    assert msg == f"r1: keystore file {loose} (keystore_path) is open to group/others (mode 0644). Fix: chmod 600 {loose}"


def test_reward_host_needs_its_keystore_password_and_rpc_url():
    found = messages(fleet(reward=[("r1", {"ssh_hostname": "10.0.0.41", "keystore_path": None,
                                           "keystore_password_env": None, "eth_url_env": None})]))
    assert found == [
        "r1: the reward host has no keystore_path: the reward service signs with it. Fix: set keystore_path to the "
        "orchestrator's keystore file on this machine (or its reward caller's, with reward_orch_addr; "
        "docs/on-chain.md)",
        "r1: no RPC URL (the chain's JSON-RPC endpoint): set eth_url_file (a path on this machine) or eth_url_env "
        "(the name of an environment variable holding it) in the inventory data; never the value",
    ]
    [msg] = messages(fleet(reward=[("r1", {"ssh_hostname": "10.0.0.41", "keystore_password_env": None})]))
    assert msg.startswith("r1: no keystore password: set keystore_password_file")


def test_the_rpc_url_never_goes_to_a_transcoder():
    hosts = fleet(transcoders=[("t1", {"ssh_hostname": "10.0.0.21", "orchestrator": "o1",
                                       "eth_url_env": "LPFLEET_ETH_URL"}),
                               ("t2", {"ssh_hostname": "10.0.0.22", "orchestrator": "o2"})])
    [msg] = messages(hosts)
    assert msg.startswith("t1: eth_url_file/eth_url_env is set, but the RPC URL (it often carries the provider's "
                          "API key) only goes to the reward and redeemer hosts and on-chain orchestrators, never "
                          "to a transcoder")


def test_reward_settings_are_checked():
    found = messages(fleet(reward=[("r1", {"ssh_hostname": "10.0.0.41", "reward_network": "offchain",
                                           "reward_controler": "0x1"})]))
    assert "r1: reward_controler is not a setting of the reward role; did you mean reward_controller?" in found
    assert any(m.startswith("r1: reward_network = 'offchain' is off chain") for m in found)


# --------------------------------------------------------------------------- transcoder -> orchestrator


def test_transcoder_without_orchestrator():
    [msg] = messages(fleet(transcoders=[("t1", {"ssh_hostname": "10.0.0.21"})]))
    assert msg == 't1: transcoder without an orchestrator. Fix: set orchestrator = "<host>" in its data (orchestrators: o1, o2)'


def test_transcoder_pointing_at_a_host_that_is_not_an_orchestrator():
    [msg] = messages(fleet(transcoders=[("t1", {"ssh_hostname": "10.0.0.21", "orchestrator": "mon1"})]))
    assert msg == "t1: orchestrator 'mon1' is not a host in the orchestrators group. Fix: use one of: o1, o2"


def test_transcoder_pointing_at_an_unknown_host():
    [msg] = messages(fleet(transcoders=[("t1", {"ssh_hostname": "10.0.0.21", "orchestrator": "o9"})]))
    assert "orchestrator 'o9' is not a host in the orchestrators group" in msg


def test_transcoder_and_orchestrator_must_share_the_secret():
    hosts = fleet(transcoders=[("t1", {"ssh_hostname": "10.0.0.21", "orchestrator": "o1", "orch_secret_env": "OTHER"})])
    [msg] = messages(hosts, {**ENV, "OTHER": "x"})
    assert msg.startswith("t1: its orchSecret comes from environment variable OTHER, its orchestrator o1's from "
                          "environment variable LPFLEET_ORCH_SECRET")


def test_solo_orchestrator_that_transcodes_needs_no_orchestrator_link():
    hosts = fleet(transcoders=["o1"])
    assert messages(hosts) == []


# --------------------------------------------------------------------------- secrets


def test_missing_environment_variable_names_it():
    problems = messages(fleet(), {"LPFLEET_ADMIN_TOKEN": "x", **REWARD_ENV})
    assert problems[0] == ("o1: orchSecret: environment variable LPFLEET_ORCH_SECRET (orch_secret_env) is not set or "
                           "empty. Fix: export LPFLEET_ORCH_SECRET=... in the shell you deploy from (or set orch_secret_file)")
    # Every node host is named, monitoring and reward hosts need no orchSecret.
    assert [p.split(":")[0] for p in problems] == ["o1", "o2", "t1", "t2"]


def test_empty_environment_variable_counts_as_missing():
    assert len(messages(fleet(), {**ENV, "LPFLEET_ORCH_SECRET": ""})) == 4


def test_no_secret_source_at_all():
    hosts = describe({"orchestrators": [("o1", {})], "reward": ["o1"]}, {"all": {"admin_networks": ["10.0.0.0/8"]}, "reward": reward_data()})
    assert messages(hosts) == [
        "o1: no orchSecret: set orch_secret_file (a path on this machine) or orch_secret_env (the name of an "
        "environment variable holding it) in the inventory data; never the value",
        "o1: no admin token: set admin_token_file (a path on this machine) or admin_token_env (the name of an "
        "environment variable holding it) in the inventory data; never the value",
    ]


def secret_file(tmp_path, mode=0o600, content="c2VjcmV0\n") -> str:
    path = tmp_path / "orchSecret"
    path.write_text(content)
    path.chmod(mode)
    return str(path)


def with_secret_file(path):
    return describe(
        {"orchestrators": [("o1", {})], "reward": ["o1"]},
        {"all": {**ALL, "orch_secret_file": path}, "reward": reward_data()},
    )


def test_secret_file_is_used_when_present(tmp_path):
    assert messages(with_secret_file(secret_file(tmp_path)), {"LPFLEET_ADMIN_TOKEN": "x", **REWARD_ENV}) == []


def test_secret_file_missing(tmp_path):
    path = str(tmp_path / "nope")
    [msg] = messages(with_secret_file(path))
    assert msg == (f"o1: orchSecret file {path} (orch_secret_file) does not exist on this machine. Fix: create it "
                   f"(install -m 600 /dev/null {path}, then write the secret into it) or fix the path")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_secret_file_readable_by_group_or_others(tmp_path, mode):
    path = secret_file(tmp_path, mode=mode)
    [msg] = messages(with_secret_file(path))
    assert msg == f"o1: orchSecret file {path} (orch_secret_file) is open to group/others (mode {mode:04o}). Fix: chmod 600 {path}"


def test_secret_file_empty(tmp_path):
    [msg] = messages(with_secret_file(secret_file(tmp_path, content="")))
    assert msg.endswith("(orch_secret_file) is empty. Fix: write the secret into it")


def test_secret_file_path_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    secret_file(tmp_path)
    assert messages(with_secret_file("~/orchSecret")) == []


# --------------------------------------------------------------------------- addresses and networks


def test_duplicate_ssh_hostname():
    hosts = fleet(monitoring=[("mon1", {"ssh_hostname": "10.0.0.11"})])
    [msg] = messages(hosts)
    assert msg == ("mon1: has the same address (10.0.0.11) as o1. Fix: give each host its own ssh_hostname "
                   "(one host with several roles is one entry in several groups)")


def test_host_name_counts_as_address_without_ssh_hostname():
    hosts = describe({"orchestrators": [("o1.example.net", {}), ("o2", {"ssh_hostname": "o1.example.net"})],
                      "reward": ["o2"]}, {"all": ALL, "reward": reward_data()})
    assert any("same address (o1.example.net)" in m for m in messages(hosts))


def test_admin_networks_required():
    hosts = describe({"monitoring": [("mon1", {"ssh_hostname": "10.0.0.31"})], "reward": ["mon1"]},
                     {"monitoring": MONITORING, "reward": reward_data()})
    [msg] = messages(hosts)
    assert msg.startswith("mon1: admin_networks is empty: the firewall would refuse every SSH login. Fix: set admin_networks")


def test_admin_network_must_be_an_address():
    hosts = describe({"monitoring": [("mon1", {"ssh_hostname": "10.0.0.31"})], "reward": ["mon1"]},
                     {"all": {"admin_networks": ["office"]}, "monitoring": MONITORING, "reward": reward_data()})
    assert messages(hosts) == ["mon1: admin_networks entry 'office' is not an IP address or network; nftables "
                               "rules need addresses (e.g. 192.0.2.10 or 192.0.2.0/24)"]


def test_monitoring_host_needs_an_ip_address():
    hosts = fleet(monitoring=[("mon1", {"ssh_hostname": "mon1.example.net"})])
    [msg] = messages(hosts)
    assert msg.startswith("mon1: monitoring host address 'mon1.example.net' is not an IP address")
    fixed = fleet(monitoring=[("mon1", {"ssh_hostname": "mon1.example.net", "address": "10.0.0.31"})])
    assert messages(fixed) == []


def test_check_raises_with_every_problem():
    with pytest.raises(InventoryValidationError) as info:
        check(fleet(reward=[]), {})
    text = str(info.value)
    assert "no host was changed" in text
    assert "no reward host" in text and "o1: orchSecret" in text
    assert len(info.value.problems) == 1 + 8


# --------------------------------------------------------------------------- inventory/prod.py

REPO = Path(__file__).resolve().parents[2]
# The receiver secrets and Grafana password inventory/prod.py names.
PROD_MONITORING_ENV = {
    "LPFLEET_PAGERDUTY_ROUTING_KEY": "key", "LPFLEET_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/x",
    "LPFLEET_WATCHDOG_URL": "https://hc-ping.example.net/x", "LPFLEET_SMTP_PASSWORD": "pw",
    "LPFLEET_GRAFANA_ADMIN_PASSWORD": "pw",
}


@pytest.fixture
def prod_hosts(monkeypatch):
    monkeypatch.chdir(REPO)
    return load("inventory/prod.py")


def test_prod_inventory_shape(prod_hosts):
    groups = {name: sorted(h.name for h in prod_hosts if name in h.groups)
              for name in ("orchestrators", "transcoders", "gpu", "monitoring", "reward")}
    assert len(groups["orchestrators"]) == 2
    assert groups["transcoders"] and groups["transcoders"] == groups["gpu"]
    assert len(groups["monitoring"]) == 1 and len(groups["reward"]) == 1
    # group_data reached the hosts
    by_name = {h.name: h for h in prod_hosts}
    assert by_name["gpu-fra-1"].data["nvidia_driver_branch"] == "550"
    assert by_name["orch-ams-1"].data["lpnode_max_sessions"] == 20
    assert by_name["orch-fra-1"].data["lpnode_max_sessions"] == 40


def test_prod_inventory_validates_once_the_operator_provides_the_secrets(prod_hosts, tmp_path, monkeypatch):
    keystore_dir = tmp_path / ".lpfleet" / "keystore"
    keystore_dir.mkdir(parents=True)
    keystore_file = keystore_dir / "reward.json"
    keystore_file.write_text("{}")
    keystore_file.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    env = {**ENV, "LPFLEET_KEYSTORE_PASSWORD": "pw", **PROD_MONITORING_ENV}
    assert messages(prod_hosts, env) == []


def test_prod_inventory_without_secrets_says_which_to_set(prod_hosts, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("LPFLEET_ORCH_SECRET", "LPFLEET_ADMIN_TOKEN", "LPFLEET_KEYSTORE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert main(["inventory/prod.py"]) == 1
    err = capsys.readouterr().err
    assert "orch-fra-1: orchSecret: environment variable LPFLEET_ORCH_SECRET (orch_secret_env) is not set" in err
    assert "reward-1: keystore file" in err
    assert "inventory/prod.py: " in err
    assert os.environ.get("LPFLEET_ORCH_SECRET") is None


def test_a_misspelt_role_setting_names_the_host_and_the_closest_key():
    hosts = fleet(transcoders=[
        ("t1", {"ssh_hostname": "10.0.0.21", "orchestrator": "o1", "lpnode_max_sesions": 4,
                "nvidia_skip_reboot": "yes"}),
        ("t2", {"ssh_hostname": "10.0.0.22", "orchestrator": "o2"})])
    found = messages(hosts)
    assert "t1: lpnode_max_sesions is not a setting of the lpnode role; did you mean lpnode_max_sessions?" in found
    assert "t1: nvidia_skip_reboot = 'yes' should be True or False" in found


def test_a_required_setting_is_only_required_where_its_role_runs():
    hosts = describe({"orchestrators": [("o1", {"ssh_hostname": "10.0.0.11"})],
                      "monitoring": [("mon1", {"ssh_hostname": "10.0.0.31"})], "reward": ["o1"]},
                     {"all": ALL, "reward": reward_data(), "monitoring": {k: v for k, v in MONITORING.items()
                                                                          if k != "prometheus_runbook_base"}})
    assert "mon1: prometheus_runbook_base is not set: where your copy of docs/ can be read, no " \
           "trailing slash: every alert links to `<runbook_base>/alerts.md#<alert>`" in messages(hosts)
    assert not any("prometheus_runbook_base" in m for m in messages(fleet()))
