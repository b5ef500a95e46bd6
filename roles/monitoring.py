"""The monitoring host's base.

For now a monitoring host is a common, firewalled host; what makes it special today is only
that the other hosts' firewalls admit it to their admin and metrics ports (7935, 9100). The
Prometheus, Alertmanager, Grafana and node exporter roles build on this one.
"""

from __future__ import annotations

from pyinfra.api import deploy

# Ports this host serves to operators (admin_networks only), opened by the firewall role:
# Prometheus 9090, Alertmanager 9093 and Grafana 3000 go here once those roles exist.
ADMIN_TCP_PORTS: tuple[int, ...] = ()


@deploy("monitoring base")
def monitoring() -> None:
    """Everything a monitoring host needs before its services are installed.

    Nothing beyond common and firewall yet: this is the place for the packages and directories
    the monitoring services share (a data disk mount, the prometheus user) when they arrive.
    """
