"""The templates the deploy writes: what they contain, and that the tools that read them accept
them (nft -c for the ruleset, lpnode's own parser for its config)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from lpnode.config import parse_node_flags
from roles._ops import render
from roles.firewall import parse_networks, render_ruleset
from roles.node import NodeSettings, config_flags
from tests.support.prepare import with_settings

ADMIN = ["10.77.0.0/24", "2001:db8:100::/48"]
MONITORING = ["10.77.0.31"]


def ruleset(roles, public=(), monitored=(9100,), admin_ports=()):
    return render_ruleset(
        host_name="h1",
        roles=roles,
        admin_networks=parse_networks(ADMIN, "admin_networks"),
        monitoring_sources=parse_networks(MONITORING, "monitoring"),
        public_tcp_ports=public,
        monitoring_tcp_ports=monitored,
        admin_tcp_ports=admin_ports,
    )


ORCHESTRATOR = dict(roles=["orchestrators"], public=[8935], monitored=[7935, 9100])
TRANSCODER = dict(roles=["transcoders"], monitored=[7935, 9100])
MONITOR = dict(roles=["monitoring"], monitored=[9100])


def rules(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_ruleset_default_drop_with_established_loopback_and_icmp():
    lines = rules(ruleset(**TRANSCODER))
    assert "type filter hook input priority filter; policy drop;" in lines
    assert "ct state established,related accept" in lines
    assert 'iifname "lo" accept' in lines
    assert "meta l4proto icmp accept" in lines
    assert "meta l4proto ipv6-icmp accept" in lines
    # Established first: nothing below can cut the session a deploy runs over.
    assert lines.index("ct state established,related accept") < lines.index("tcp dport 22 ip saddr @admin_v4 accept")


def test_ruleset_ssh_only_from_admin_networks():
    text = ruleset(**ORCHESTRATOR)
    assert "elements = { 10.77.0.0/24 }" in text
    assert "elements = { 2001:db8:100::/48 }" in text
    ssh_rules = [line for line in rules(text) if "dport 22" in line]
    assert ssh_rules == ["tcp dport 22 ip saddr @admin_v4 accept", "tcp dport 22 ip6 saddr @admin_v6 accept"]


def test_orchestrator_opens_8935_to_all_and_7935_9100_to_monitoring_only():
    lines = rules(ruleset(**ORCHESTRATOR))
    assert "tcp dport { 8935 } accept" in lines
    assert "tcp dport { 7935, 9100 } ip saddr @monitoring_v4 accept" in lines
    assert not [line for line in lines if "7935" in line and "@monitoring" not in line]


def test_transcoder_has_no_public_port():
    lines = rules(ruleset(**TRANSCODER))
    assert not [line for line in lines if "8935" in line]
    assert "tcp dport { 7935, 9100 } ip saddr @monitoring_v4 accept" in lines


def test_monitoring_host_exposes_only_its_exporter_to_monitoring():
    lines = rules(ruleset(**MONITOR))
    assert not [line for line in lines if "7935" in line or "8935" in line]
    assert "tcp dport { 9100 } ip saddr @monitoring_v4 accept" in lines


def test_monitoring_set_holds_the_monitoring_addresses():
    text = ruleset(**ORCHESTRATOR)
    assert re.search(r"set monitoring_v4 \{[^}]*elements = \{ 10\.77\.0\.31 \}", text)


def test_ruleset_replaces_only_its_own_table():
    text = ruleset(**ORCHESTRATOR)
    assert "flush ruleset" not in text
    assert "table inet lpfleet\ndelete table inet lpfleet\n" in text


def test_bad_address_is_refused():
    with pytest.raises(ValueError, match="not an IP address"):
        parse_networks(["mon1.example.com"], "monitoring host address")


@pytest.mark.parametrize("variant", [ORCHESTRATOR, TRANSCODER, MONITOR, dict(roles=["monitoring"], admin_ports=[3000, 9090])])
def test_rendered_ruleset_passes_nft_check(tmp_path, variant):
    # Not a skip: scripts/setup installs nftables, and the tests run as root (as CI does).
    assert shutil.which("nft"), "nft is missing: run scripts/setup (Debian's nftables)"
    assert os.geteuid() == 0, "nft -c needs root: run the tests as root, as CI does"
    path = tmp_path / "nftables.conf"
    path.write_text(ruleset(**variant))
    result = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_nft_check_catches_a_broken_ruleset(tmp_path):
    assert shutil.which("nft") and os.geteuid() == 0, "needs nftables and root: see above"
    # The deploy relies on nft -c failing for a bad file: prove it does.
    path = tmp_path / "nftables.conf"
    path.write_text(ruleset(**ORCHESTRATOR).replace("policy drop;", "policy dorp;"))
    assert subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True).returncode != 0


# --------------------------------------------------------------------------- systemd unit


def unit(gpu=False, reloadable=False):
    return render("lpnode.service.j2", role="transcoder", service_user="lpnode", venv="/opt/lpnode/venv",
                  config_path="/etc/lpnode/lpnode.conf", restart_sec=5, gpu=gpu, reloadable=reloadable)


def unit_settings(text: str) -> dict[str, str]:
    settings = {}
    for line in rules(text):
        if "=" in line and not line.startswith("["):
            key, value = line.split("=", 1)
            settings[key] = value
    return settings


def test_unit_is_hardened():
    settings = unit_settings(unit())
    for key, value in {
        "User": "lpnode", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "StateDirectory": "lpnode", "Restart": "on-failure",
        "CapabilityBoundingSet": "", "RestrictNamespaces": "yes",
    }.items():
        assert settings.get(key) == value, key
    assert settings["RestartSec"] == "5"
    assert settings["ExecStart"] == "/opt/lpnode/venv/bin/lpnode -config /etc/lpnode/lpnode.conf"


def test_only_an_orchestrator_unit_reloads():
    # lpnode handles SIGHUP only as an orchestrator; a transcoder would die of it.
    assert unit_settings(unit(reloadable=True))["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "ExecReload" not in unit_settings(unit(reloadable=False))


def test_gpu_unit_keeps_devices():
    settings = unit_settings(unit(gpu=True))
    assert settings["PrivateDevices"] == "no"
    assert settings["NoNewPrivileges"] == "yes"


def test_unit_passes_no_secret_on_the_command_line_or_in_the_environment():
    # The values themselves: tests/unit/test_role_node.py::test_the_secret_reaches_only_its_own_file
    text = unit()
    assert "orchSecret" not in unit_settings(text).get("ExecStart", "")
    assert "Environment" not in unit_settings(text)


def test_unit_passes_systemd_analyze(tmp_path):
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: apt-get install systemd"
    path = tmp_path / "lpnode.service"
    path.write_text(unit().replace("/opt/lpnode/venv/bin/lpnode", "/bin/true"))
    result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    # Only complaints about this file count (the machine's other units are not ours to judge).
    ours = [line for line in result.stderr.splitlines() if "lpnode.service" in line]
    assert not ours, result.stderr


# --------------------------------------------------------------------------- lpnode config


def write_config(tmp_path, **kwargs) -> str:
    role = kwargs.pop("role")
    text = render("lpnode.conf.j2", role=role, host_name="h1",
                  flags=config_flags(role, **with_settings(NodeSettings, kwargs)))
    path = tmp_path / "lpnode.conf"
    path.write_text(text)
    return str(path)


def test_orchestrator_config_parses_with_lpnode(tmp_path):
    path = write_config(tmp_path, role="orchestrator", address="10.77.0.11", max_sessions=20, price_per_unit=1200)
    cfg = parse_node_flags(["-config", path], {})
    assert cfg.orchestrator and not cfg.transcoder
    assert cfg.service_addr == "10.77.0.11:8935"
    assert cfg.http_addr == "0.0.0.0:8935"
    assert cfg.cli_addr == "0.0.0.0:7935"
    assert cfg.monitor is True
    assert cfg.datadir == "/var/lib/lpnode"
    assert cfg.max_sessions == 20
    assert cfg.price_per_unit == "1200"
    assert cfg.orch_secret == "/etc/lpnode/orchSecret"
    assert cfg.admin_token_file == "/etc/lpnode/adminToken"


def test_transcoder_config_parses_with_lpnode(tmp_path):
    path = write_config(tmp_path, role="transcoder", address="10.77.0.21", orch_addr="10.77.0.11:8935",
                        max_sessions=8, gpus="all")
    cfg = parse_node_flags(["-config", path], {})
    assert cfg.transcoder and not cfg.orchestrator
    assert cfg.orch_addr == ("10.77.0.11:8935",)
    assert cfg.max_sessions == 8
    assert cfg.nvidia == "all"
    assert cfg.cli_addr == "0.0.0.0:7935"
    assert cfg.monitor is True
    assert cfg.orch_secret == "/etc/lpnode/orchSecret"


def test_cpu_transcoder_config_has_no_nvidia(tmp_path):
    path = write_config(tmp_path, role="transcoder", address="10.77.0.21", orch_addr="10.77.0.11:8935")
    assert parse_node_flags(["-config", path], {}).nvidia == ""


def test_solo_config_transcodes_locally(tmp_path):
    path = write_config(tmp_path, role="orchestrator+transcoder", address="10.77.0.11", gpus="0")
    cfg = parse_node_flags(["-config", path], {})
    assert cfg.orchestrator and cfg.transcoder and cfg.orch_addr == () and cfg.nvidia == "0"


def test_config_holds_secret_paths_never_values(tmp_path):
    text = open(write_config(tmp_path, role="orchestrator", address="10.77.0.11")).read()
    assert "orchSecret /etc/lpnode/orchSecret\n" in text


def test_value_that_would_break_the_config_format_is_refused():
    from pyinfra.api.exceptions import DeployError

    with pytest.raises(DeployError, match="cannot be written"):
        config_flags("orchestrator", "10.77.0.11",
                     NodeSettings(extra_flags={"orchSecretGrace": "5m # oops"}))


# --------------------------------------------------------------------------- journald, nvidia


def test_journald_dropin_limits():
    text = render("journald.conf.j2", system_max_use="2G", system_keep_free="4G", system_max_file_size="128M",
                  max_retention="30day", rate_limit_interval="30s", rate_limit_burst=10000)
    lines = rules(text)
    assert lines[0] == "[Journal]"
    assert "SystemMaxUse=2G" in lines and "SystemKeepFree=4G" in lines and "MaxRetentionSec=30day" in lines


def test_nvidia_apt_pin():
    text = render("nvidia-apt-preferences.j2", branch="535", packages=["nvidia-driver", "libnvidia-encode1"])
    assert rules(text) == ["Package: nvidia-driver libnvidia-encode1", "Pin: version 535.*", "Pin-Priority: 1001"]


def test_check_config_catches_what_only_the_combination_makes_wrong(tmp_path, capsys):
    """The deploy's check of a candidate config: every flag alone is fine here, together they
    are not (auto sessions on a transcoder), which `lpnode -version` never looked at."""
    from lpnode.cli import check_config

    path = write_config(tmp_path, role="transcoder", address="10.77.0.21", orch_addr="10.77.0.11:8935",
                        max_sessions="auto")
    assert check_config([path]) == 2
    assert "-maxSessions auto is only for an orchestrator" in capsys.readouterr().err
    good = write_config(tmp_path, role="transcoder", address="10.77.0.21", orch_addr="10.77.0.11:8935")
    assert check_config([good]) == 0
