"""Host firewall: an nftables ruleset, validated with ``nft -c`` before it is applied."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import systemd

from roles._facts import SshClientAddress
from roles._ops import render, validated_template

NFTABLES_CONF = "/etc/nftables.conf"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(value: str, what: str) -> Network:
    """A network from an address or CIDR (``10.0.0.5``, ``192.0.2.0/24``, ``2001:db8::/32``)."""
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"{what} entry {value!r} is not an IP address or network; "
            "nftables rules need addresses (e.g. 192.0.2.10 or 192.0.2.0/24)"
        ) from None


def parse_networks(values: Iterable[str] | str, what: str) -> list[Network]:
    return [parse_network(value, what) for value in ([values] if isinstance(values, str) else values)]


def ruleset_context(
    host_name: str,
    roles: Iterable[str],
    admin_networks: Iterable[Network],
    monitoring_sources: Iterable[Network],
    public_tcp_ports: Iterable[int] = (),
    monitoring_tcp_ports: Iterable[int] = (),
    admin_tcp_ports: Iterable[int] = (),
    ssh_port: int = 22,
    balancer_sources: Iterable[Network] = (),
    balancer_tcp_ports: Iterable[int] = (),
) -> dict:
    """The template variables for templates/nftables.conf.j2."""
    admin = list(admin_networks)
    monitoring = list(monitoring_sources)
    balancers = list(balancer_sources)

    def by_version(networks: list[Network], version: int) -> list[str]:
        same = [n for n in networks if n.version == version]
        collapsed = ipaddress.collapse_addresses(same)  # type: ignore[type-var]  # one version
        return [str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n) for n in collapsed]

    return {
        "host_name": host_name,
        "roles": sorted(roles),
        "admin_v4": by_version(admin, 4),
        "admin_v6": by_version(admin, 6),
        "monitoring_v4": by_version(monitoring, 4),
        "monitoring_v6": by_version(monitoring, 6),
        "public_tcp_ports": sorted(set(public_tcp_ports)),
        "monitoring_tcp_ports": sorted(set(monitoring_tcp_ports) - set(public_tcp_ports)),
        "admin_tcp_ports": sorted(set(admin_tcp_ports) - set(public_tcp_ports)),
        "balancers_v4": by_version(balancers, 4),
        "balancers_v6": by_version(balancers, 6),
        "balancer_tcp_ports": sorted(set(balancer_tcp_ports) - set(public_tcp_ports)) if balancers else [],
        "ssh_port": ssh_port,
    }


def render_ruleset(**kwargs) -> str:
    return render("nftables.conf.j2", **ruleset_context(**kwargs))


def check_ssh_session_admitted(admin_networks: list[Network], ssh_port: int) -> None:
    """Refuse a ruleset that would not let the operator back in over SSH.

    The session this deploy runs over survives (established connections are accepted), so a
    missing admin network would only show at the next login: too late to fix it remotely.
    """
    client = host.get_fact(SshClientAddress, _sudo=False)
    if client is None:
        logger.warning(
            f"{host.name}: cannot tell where this SSH session comes from ($SSH_CLIENT unset); "
            "make sure admin_networks covers the address you deploy from"
        )
        return
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if not any(address in network for network in admin_networks):
        raise DeployError(
            f"{host.name}: the new firewall would refuse SSH (port {ssh_port}) from {address}, "
            "the address this deploy connects from, so the next login would be locked out. "
            f"Fix: add {address} (or its network) to admin_networks in the inventory data."
        )


@deploy("firewall")
def firewall(
    admin_networks: list[str] | tuple[str, ...] = (),
    monitoring_sources: list[str] | tuple[str, ...] = (),
    public_tcp_ports: list[int] | tuple[int, ...] = (),
    monitoring_tcp_ports: list[int] | tuple[int, ...] = (9100,),
    admin_tcp_ports: list[int] | tuple[int, ...] = (),
    ssh_port: int = 22,
    roles: list[str] | tuple[str, ...] = (),
    balancer_sources: list[str] | tuple[str, ...] = (),
    balancer_tcp_ports: list[int] | tuple[int, ...] = (),
) -> None:
    """Default-drop inbound firewall.

    + admin_networks: addresses/CIDRs allowed to SSH in (inventory: ``admin_networks``); required
    + monitoring_sources: addresses allowed on ``monitoring_tcp_ports`` (the monitoring hosts)
    + public_tcp_ports: open to everyone (8935 on orchestrators)
    + monitoring_tcp_ports: admin API, metrics, exporters (7935, 9100)
    + admin_tcp_ports: services for operators on this host (later: Grafana on the monitoring host)
    + ssh_port: the port sshd listens on
    + roles: this host's roles, written into the ruleset's header for the reader
    + balancer_sources: the load balancers' addresses, allowed on ``balancer_tcp_ports``
    + balancer_tcp_ports: what a balancer's health check reads (an orchestrator's 7935 /ready)
    """
    try:
        admin = parse_networks(admin_networks, "admin_networks")
        monitoring = parse_networks(monitoring_sources, "monitoring host address")
        balancers = parse_networks(balancer_sources, "load balancer address")
    except ValueError as exc:
        raise DeployError(f"{host.name}: {exc}") from None
    if not admin:
        raise DeployError(
            f"{host.name}: admin_networks is empty, so the firewall would refuse every SSH login. "
            "Fix: set admin_networks in inventory/group_data/all.py (or the host's data)."
        )
    check_ssh_session_admitted(admin, ssh_port)

    ruleset = validated_template(
        name="nftables ruleset (checked with nft -c)",
        src="nftables.conf.j2",
        dest=NFTABLES_CONF,
        validate="nft -c -f {path}",
        mode="644",
        **ruleset_context(
            host_name=host.name,
            roles=roles,
            admin_networks=admin,
            monitoring_sources=monitoring,
            public_tcp_ports=public_tcp_ports,
            monitoring_tcp_ports=monitoring_tcp_ports,
            admin_tcp_ports=admin_tcp_ports,
            ssh_port=ssh_port,
            balancer_sources=balancers,
            balancer_tcp_ports=balancer_tcp_ports,
        ),
    )
    # nftables.service loads /etc/nftables.conf at boot and on reload.
    systemd.service(
        name="nftables loaded and enabled at boot",
        service="nftables",
        running=True,
        enabled=True,
        reloaded=ruleset.will_change,
    )
