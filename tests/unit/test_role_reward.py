"""roles/reward.py: the reward service as its own unit, its config checked by lpnode, restarted
on what it reads at start, and never a secret in its config or unit."""

from __future__ import annotations

from io import StringIO

import pytest
from pyinfra.api.util import get_file_sha1
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from lpnode.config import parse_node_flags
from roles._ops import render
from roles.node import Installed
from roles.reward import RewardSettings, config_flags, reward
from tests.support.prepare import prepare, with_settings

CONTROLLER = "0x" + "ab" * 20


def run(facts=None, installed=False, **kwargs):
    kwargs.setdefault("controller", CONTROLLER)
    kwargs.setdefault("network", "lab")
    ops, _ = prepare(reward, facts=facts or {}, host_name="o1", installed=Installed(will_change=installed),
                     **with_settings(RewardSettings, kwargs))
    return ops


def deployed_facts(settings: RewardSettings) -> dict:
    """A host where the previous run wrote exactly this config and unit, service running."""
    config = render("lpnode.conf.j2", role="reward", host_name="o1", flags=config_flags(settings))
    unit = render("lpnode.service.j2", role="reward", service_user="lpnode", venv="/opt/lpnode/venv",
                  config_path="/etc/lpnode/reward.conf", restart_sec=5, gpu=False, reloadable=False,
                  state_directory="lpnode-reward")
    sums = {"/etc/lpnode/reward.conf": get_file_sha1(StringIO(config)),
            "/etc/systemd/system/lpnode-reward.service": get_file_sha1(StringIO(unit))}
    return {
        File: lambda path: {"user": "root", "group": "lpnode" if path.endswith(".conf") else "root",
                            "mode": 640 if path.endswith(".conf") else 644},
        Directory: lambda path: {"user": "root", "group": "lpnode" if path == "/etc/lpnode" else "root",
                                 "mode": 750 if path == "/etc/lpnode" else 755},
        Sha1File: lambda path: sums.get(path),
        SystemdStatus: {"lpnode-reward.service": True},
        SystemdEnabled: {"lpnode-reward.service": True},
    }


def test_the_config_is_the_reward_service_alone_with_secrets_as_paths(tmp_path):
    text = render("lpnode.conf.j2", role="reward", host_name="o1",
                  flags=config_flags(RewardSettings(network="lab", controller=CONTROLLER, max_gas_price=10**9)))
    path = tmp_path / "reward.conf"
    path.write_text(text)
    cfg = parse_node_flags(["-config", str(path)], {})
    assert cfg.reward_only and cfg.on_chain and cfg.initialize_round
    assert cfg.eth_url == "/etc/lpnode/ethUrl"          # a file, read by lpnode at start
    assert cfg.eth_password == "/etc/lpnode/keystore/password"
    assert cfg.keystore_path == "/etc/lpnode/keystore/keystore.json"
    assert cfg.cli_addr == "0.0.0.0:7936" and cfg.datadir == "/var/lib/lpnode-reward"
    assert cfg.max_gas_price == 10**9


def test_lip_118_caller_and_no_round_initialization():
    flags = dict(config_flags(RewardSettings(network="lab", controller=CONTROLLER, orch_addr="0x" + "cd" * 20,
                                             initialize_round=False)))
    assert flags["ethOrchAddr"] == "0x" + "cd" * 20 and "initializeRound" not in flags


def test_first_deploy_checks_the_config_and_starts_its_own_unit():
    ops = run()
    check = next(c for c in ops.named("reward service config").commands if "check-config" in c)
    assert check.startswith("/opt/lpnode/venv/bin/lpnode check-config /etc/lpnode/.reward.conf.lpfleet-new")
    assert ops.named("reward service running").commands == [
        "systemctl daemon-reload", "systemctl start lpnode-reward.service", "systemctl enable lpnode-reward.service"]
    unit = render("lpnode.service.j2", role="reward", service_user="lpnode", venv="/opt/lpnode/venv",
                  config_path="/etc/lpnode/reward.conf", restart_sec=5, gpu=False, reloadable=False,
                  state_directory="lpnode-reward")
    assert "StateDirectory=lpnode-reward\n" in unit and "ExecStart=/opt/lpnode/venv/bin/lpnode -config " \
           "/etc/lpnode/reward.conf\n" in unit and "ExecReload" not in unit


def test_rerun_changes_nothing():
    settings = RewardSettings(network="lab", controller=CONTROLLER)
    ops = run(facts=deployed_facts(settings))
    assert [(op.name, op.commands) for op in ops if op.commands] == []


@pytest.mark.parametrize("cause", ["secrets", "build", "config"])
def test_what_it_reads_at_start_restarts_it(cause):
    settings = RewardSettings(network="lab", controller=CONTROLLER)
    kwargs = {"secrets_changed": cause == "secrets", "installed": cause == "build"}
    if cause == "config":
        kwargs["block_polling_interval"] = 2
    ops = run(facts=deployed_facts(settings), **kwargs)
    assert ops.named("reward service running").commands == ["systemctl restart lpnode-reward.service"]


def test_bad_settings_are_refused_before_any_host():
    with pytest.raises(ValueError, match="reward_network = 'offchain' is off chain"):
        RewardSettings(network="offchain")
    with pytest.raises(ValueError, match="reward_controller = '0x12' is not an address"):
        RewardSettings(controller="0x12")
