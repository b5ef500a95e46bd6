"""Base of every fleet host: the service user, base packages, time sync and journald limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt, files, systemd

from roles._facts import ContainerVirt
from roles._ops import jinja_options, system_account, template_path
from roles.settings import RoleSettings, setting

BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "nftables")


def missing_packages(packages: list[str] | tuple[str, ...]) -> list[str]:
    """The packages in ``packages`` that dpkg does not have installed."""
    installed = host.get_fact(DebPackages)
    return [name for name in packages if name.split("=", 1)[0] not in installed]


@dataclass(frozen=True)
class CommonSettings(RoleSettings):
    """Every host's base: inventory data under these names (no prefix)."""

    ROLE: ClassVar[str] = "common"

    service_user: str = setting("lpnode", doc="the system user lpnode (and later the reward "
                                              "service) runs as; no shell, no login")
    service_home: str = setting("/var/lib/lpnode", doc="its home, which is also lpnode's `-datadir`")
    extra_packages: list[str] = setting(factory=list, doc="more apt packages for this host")
    time_sync: Literal["systemd-timesyncd", "chrony"] = setting(
        "systemd-timesyncd", doc="the time sync daemon: tickets, TLS and round timing all go "
                                 "wrong on a drifting clock")
    journald_system_max_use: str = setting("2G", doc="journald `SystemMaxUse`")
    journald_system_keep_free: str = setting("4G", doc="journald `SystemKeepFree`")
    journald_system_max_file_size: str = setting("128M", doc="journald `SystemMaxFileSize`")
    journald_max_retention: str = setting("30day", doc="journald `MaxRetentionSec`")
    journald_rate_limit_interval: str = setting("30s", doc="journald `RateLimitIntervalSec`")
    journald_rate_limit_burst: int = setting(10000, doc="journald `RateLimitBurst`")


@deploy("common")
def common(settings: CommonSettings | None = None) -> None:
    """Prepare any fleet host (CommonSettings)."""
    s = settings or CommonSettings()
    packages = [*BASE_PACKAGES, s.time_sync, *s.extra_packages]
    missing = missing_packages(packages)
    apt.packages(
        name="Install base packages",
        packages=packages,
        no_recommends=True,
        # Refresh the index only when something has to be installed, so a re-run of a complete
        # host stays a no-op instead of reporting an apt update as a change.
        update=bool(missing),
    )

    system_account(
        name=f"Service user {s.service_user} (system account, group {s.service_user})",
        user=s.service_user,
        group=s.service_user,
        home=s.service_home,
    )

    # In a container (the lab) the clock belongs to the machine underneath, and the time sync
    # units refuse to start there (ConditionVirtualization/ConditionCapability); enabled is
    # still right, so the same host image keeps time when it runs on metal.
    systemd.service(
        name=f"Time sync ({s.time_sync})",
        service=s.time_sync,
        enabled=True,
        running=host.get_fact(ContainerVirt) is None,
    )

    journald = files.template(
        name="journald limits",
        src=template_path("journald.conf.j2"),
        dest="/etc/systemd/journald.conf.d/50-lpfleet.conf",
        mode="644",
        jinja_env_kwargs=jinja_options(),
        system_max_use=s.journald_system_max_use,
        system_keep_free=s.journald_system_keep_free,
        system_max_file_size=s.journald_system_max_file_size,
        max_retention=s.journald_max_retention,
        rate_limit_interval=s.journald_rate_limit_interval,
        rate_limit_burst=s.journald_rate_limit_burst,
    )
    # Storage=persistent needs the directory; journald creates it on restart.
    systemd.service(
        name="Apply journald limits",
        service="systemd-journald",
        running=True,
        restarted=journald.will_change,
    )
