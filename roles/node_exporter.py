"""The Prometheus node exporter on every host: disks, CPU, memory, and whether the host is up at
all (HostDown, HostDiskFilling in monitoring/rules/host.yml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pyinfra.api import deploy
from pyinfra.operations import apt

from roles._ops import packaged_service, service_flags
from roles.common import missing_packages
from roles.monitoring import NODE_EXPORTER_PORT
from roles.settings import RoleSettings, setting

PACKAGE = "prometheus-node-exporter"
DEFAULTS_FILE = "/etc/default/prometheus-node-exporter"


@dataclass(frozen=True)
class NodeExporterSettings(RoleSettings):
    """The node_exporter role's settings: inventory data ``node_exporter_<field>``."""

    PREFIX: ClassVar[str] = 'node_exporter_'
    ROLE: ClassVar[str] = 'node_exporter'

    extra_args: list[str] = setting(
        factory=list,
        doc='more node exporter flags, e.g. `["--collector.systemd"]` (`prometheus-node-exporter '
            "--help` lists them); no spaces or quotes")


@deploy("node exporter")
def node_exporter(
    settings: NodeExporterSettings | None = None,
) -> None:
    """Install Debian's prometheus-node-exporter on 9100 (NodeExporterSettings); the firewall
    admits only the monitoring hosts there."""
    s = settings or NodeExporterSettings()
    package = apt.packages(
        name=f"Install {PACKAGE}",
        packages=[PACKAGE],
        # Its Recommends (the textfile collector scripts) bring smartmontools and timers that
        # run as root; the exporter alone is what the rules and dashboards read.
        no_recommends=True,
        update=bool(missing_packages([PACKAGE])),
    )
    flags = service_flags(
        "node exporter",
        DEFAULTS_FILE,
        [f"--web.listen-address=:{NODE_EXPORTER_PORT}", *(s.extra_args or [])],
    )
    packaged_service("node exporter", PACKAGE, restart=package.will_change or flags.will_change)
