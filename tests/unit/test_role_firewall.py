"""The firewall role on injected facts: validated before it goes live, never locks out SSH."""

from __future__ import annotations

import pytest
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.files import Sha1File
from pyinfra.facts.systemd import SystemdStatus

from roles._facts import SshClientAddress
from roles.firewall import firewall
from tests.support.prepare import prepare

ADMIN = ["10.77.0.1/32", "2001:db8::/32"]


def run(client="10.77.0.1", facts=None, **kwargs):
    kwargs.setdefault("admin_networks", ADMIN)
    kwargs.setdefault("monitoring_sources", ["10.77.0.31"])
    ops, _ = prepare(firewall, facts={SshClientAddress: client, **(facts or {})}, host_name="o1", **kwargs)
    return ops


def test_ruleset_is_checked_by_nft_before_it_replaces_the_live_one():
    ops = run(public_tcp_ports=[8935], monitoring_tcp_ports=[7935, 9100])
    commands = ops.named("nftables ruleset").commands
    candidate = "/etc/.nftables.conf.lpfleet-new"
    assert f"<upload {candidate}>" in commands
    check = next(c for c in commands if c.startswith("nft -c -f"))
    assert check.startswith(f"nft -c -f {candidate} || {{")
    assert "rm -f /etc/.nftables.conf.lpfleet-new; exit 1; }" in check
    assert commands[-1] == f"mv -f {candidate} /etc/nftables.conf"
    assert commands.index(check) < commands.index(commands[-1])


def test_ruleset_applied_by_reloading_nftables():
    ops = run(facts={SystemdStatus: {"nftables.service": True}})
    assert ops.named("nftables loaded").commands == [
        "systemctl reload nftables.service", "systemctl enable nftables.service"]


def test_unchanged_ruleset_is_not_touched():
    from io import StringIO

    from pyinfra.api.util import get_file_sha1
    from pyinfra.facts.files import Directory, File
    from pyinfra.facts.systemd import SystemdEnabled

    from roles.firewall import parse_networks, render_ruleset

    text = render_ruleset(host_name="o1", roles=(), admin_networks=parse_networks(ADMIN, "a"),
                          monitoring_sources=parse_networks(["10.77.0.31"], "m"), monitoring_tcp_ports=(9100,))
    ops = run(facts={
        Sha1File: get_file_sha1(StringIO(text)),
        File: {"user": "root", "group": "root", "mode": 644},
        Directory: {"user": "root", "group": "root", "mode": 755},
        SystemdStatus: {"nftables.service": True},
        SystemdEnabled: {"nftables.service": True},
    })
    assert ops.commands() == []


@pytest.mark.parametrize("client", ["192.0.2.7", "2001:db9::1"])
def test_refuses_a_ruleset_that_would_not_admit_this_ssh_session(client):
    with pytest.raises(DeployError) as info:
        run(client=client)
    message = str(info.value)
    assert f"would refuse SSH (port 22) from {client}" in message
    assert f"Fix: add {client} (or its network) to admin_networks" in message


def test_session_inside_an_admin_network_is_fine():
    assert run(client="2001:db8::42").has("nftables ruleset")
    assert run(client="::ffff:10.77.0.1").has("nftables ruleset")


def test_no_ssh_client_known_still_deploys():
    # @local, or sudo dropping $SSH_CLIENT: the established-connection rule still protects the session.
    assert run(client=None).has("nftables ruleset")


def test_empty_admin_networks_is_refused():
    with pytest.raises(DeployError, match="admin_networks is empty"):
        run(admin_networks=[])


def test_monitoring_source_must_be_an_address():
    with pytest.raises(DeployError, match="monitoring host address entry 'mon1.example.net' is not an IP"):
        run(monitoring_sources=["mon1.example.net"])
