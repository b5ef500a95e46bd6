"""HAProxy (Debian's package) in front of the orchestrators: one address for gateways and the
on-chain service URI, TLS passed through to each orchestrator, a health check a draining
orchestrator fails by itself (lpnode's /ready), the runtime socket local only, the config
checked with `haproxy -c` before it goes live, and HAProxy's own Prometheus metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pyinfra.api import deploy
from pyinfra.operations import apt

from roles._ops import packaged_service, validated_template
from roles.common import missing_packages
from roles.node import CLI_PORT, SERVICE_PORT
from roles.settings import RoleSettings, duration, setting

PACKAGE = "haproxy"
CONFIG = "/etc/haproxy/haproxy.cfg"
METRICS_PORT = 8405


@dataclass(frozen=True)
class HaproxySettings(RoleSettings):
    """The balancer's settings: inventory data ``haproxy_<field>``."""

    PREFIX: ClassVar[str] = "haproxy_"
    ROLE: ClassVar[str] = "haproxy"

    port: int = setting(SERVICE_PORT, doc="where gateways connect; passed through to the orchestrators' "
                        "own port")
    check_port: int = setting(CLI_PORT, doc="the orchestrators' admin port, where /ready says whether one "
                              "takes new sessions (404 while draining)")
    check_interval: str = setting("2s", doc="how often each orchestrator is checked; two failed checks "
                                  "take it out, two good ones bring it back", check=duration)
    metrics_port: int = setting(METRICS_PORT, doc="HAProxy's Prometheus metrics, firewalled to the "
                                "monitoring hosts")


ADMIN_SOCKET = "/run/haproxy/admin.sock"
STATE_FILE = "/var/lib/haproxy/server-state"
BACKEND = "orchestrators"  # the backend's name in the runtime API: orchestrators/o1


@dataclass(frozen=True)
class Server:
    """One orchestrator behind the balancer: its inventory name and where HAProxy reaches it."""

    name: str
    address: str
    port: int = SERVICE_PORT
    check_port: int = CLI_PORT


def config_context(servers: Sequence[Server], settings: HaproxySettings, *, bind: str = "",
                   metrics_bind: str = "", admin_socket: str = ADMIN_SOCKET, state_file: str = STATE_FILE,
                   daemon: bool = True) -> dict[str, Any]:
    """The template's context. The keyword arguments are for running HAProxy outside the
    package (tests): an inherited socket (``fd@3``), its own runtime socket and state file."""
    return {"servers": list(servers), "bind": bind or f":{settings.port}",
            "metrics_bind": metrics_bind or f":{settings.metrics_port}", "check_interval": settings.check_interval,
            "admin_socket": admin_socket, "state_file": state_file, "daemon": daemon, "backend": BACKEND}


def servers_of(orchestrators: Sequence[tuple[str, str]], settings: HaproxySettings) -> list[Server]:
    """The orchestrators, (name, address) in inventory order, as HAProxy's servers."""
    return [Server(name, address, SERVICE_PORT, settings.check_port) for name, address in orchestrators]


@deploy("haproxy")
def haproxy(servers: Sequence[tuple[str, str]], settings: HaproxySettings | None = None) -> None:
    """Install HAProxy and balance ``servers`` (the orchestrators, in inventory order).

    + servers: (name, address) of each orchestrator behind this balancer; HAProxy reaches each
      on its service port and checks it on its admin port
    + settings: the operator's HaproxySettings
    """
    s = settings or HaproxySettings()
    package = apt.packages(name=f"Install {PACKAGE}", packages=[PACKAGE],
                           update=bool(missing_packages([PACKAGE])))
    config = validated_template(
        name=f"HAProxy configuration {CONFIG} (checked with haproxy -c)",
        src="haproxy.cfg.j2",
        dest=CONFIG,
        validate="haproxy -c -q -f {path}",
        **config_context(servers_of(servers, s), s),
    )
    # A reload keeps established connections (gateways' streams) on the old process until they end.
    packaged_service("HAProxy", PACKAGE, restart=package.will_change, reload=config.will_change)
