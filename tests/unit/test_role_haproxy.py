"""roles/haproxy.py: the balancer's configuration, checked by the real haproxy (Debian's), and
the role putting it live only after `haproxy -c` accepts it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from roles._ops import render
from roles.haproxy import HaproxySettings, config_context, haproxy, servers_of
from tests.support.prepare import prepare

SERVERS = [("o1", "10.0.0.11"), ("o2", "10.0.0.12")]


def checked(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        pytest.fail("haproxy is not installed: run scripts/setup (Debian package haproxy)")
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    return subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)


def test_the_configuration_passes_haproxy_check_and_balances_every_orchestrator(tmp_path: Path) -> None:
    text = render("haproxy.cfg.j2", **config_context(servers_of(SERVERS, HaproxySettings()), HaproxySettings()))
    run = checked(tmp_path, text)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "    server o1 10.0.0.11:8935 check port 7935\n" in text
    assert "    server o2 10.0.0.12:8935 check port 7935\n" in text
    assert "mode tcp" in text and "option httpchk GET /ready" in text and "http-check disable-on-404" in text
    assert "default-server inter 2s fall 2 rise 2" in text
    # The runtime API is a root-only local socket: nothing on the network changes a server's state.
    assert "stats socket /run/haproxy/admin.sock mode 600 level admin" in text and "stats socket ipv4" not in text


def test_a_broken_configuration_is_what_haproxy_check_refuses(tmp_path: Path) -> None:
    text = render("haproxy.cfg.j2", **config_context(servers_of(SERVERS, HaproxySettings()), HaproxySettings()))
    run = checked(tmp_path, text.replace("balance source", "balance nowhere"))
    assert run.returncode != 0


def test_settings_are_checked() -> None:
    assert HaproxySettings.problems({"haproxy_check_interval": "soon"}) != []
    assert HaproxySettings.problems({"haproxy_check_interval": "500ms"}) == []


def test_the_role_checks_the_candidate_before_it_goes_live() -> None:
    ops, _ = prepare(haproxy, facts={}, host_name="lb1", servers=SERVERS)
    commands = ops.named("HAProxy configuration").commands
    assert any(c.startswith("haproxy -c -q -f /etc/haproxy/.haproxy.cfg.lpfleet-new") for c in commands), commands
