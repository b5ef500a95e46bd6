"""Base of every fleet host: the service user, base packages, time sync and journald limits."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt, files, server, systemd

from roles._facts import ContainerVirt
from roles._ops import jinja_options, template_path

BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "nftables")


def missing_packages(packages: list[str] | tuple[str, ...]) -> list[str]:
    """The packages in ``packages`` that dpkg does not have installed."""
    installed = host.get_fact(DebPackages)
    return [name for name in packages if name.split("=", 1)[0] not in installed]


@deploy("common")
def common(
    service_user: str = "lpnode",
    service_home: str = "/var/lib/lpnode",
    extra_packages: list[str] | None = None,
    time_sync: str = "systemd-timesyncd",
    journald_system_max_use: str = "2G",
    journald_system_keep_free: str = "4G",
    journald_system_max_file_size: str = "128M",
    journald_max_retention: str = "30day",
    journald_rate_limit_interval: str = "30s",
    journald_rate_limit_burst: int = 10000,
) -> None:
    """Prepare any fleet host.

    + service_user: the system user lpnode (and later the reward service) runs as; no shell, no login
    + service_home: its home, which is also lpnode's ``-datadir``
    + extra_packages: more apt packages for this host
    + time_sync: the time sync daemon package and unit (``systemd-timesyncd`` or ``chrony``);
      tickets, TLS and round timing all go wrong on a drifting clock
    + journald_*: the journald limits (``SystemMaxUse`` etc., see journald.conf(5))
    """
    packages = [*BASE_PACKAGES, time_sync, *(extra_packages or [])]
    missing = missing_packages(packages)
    apt.packages(
        name="Install base packages",
        packages=packages,
        no_recommends=True,
        # Refresh the index only when something has to be installed, so a re-run of a complete
        # host stays a no-op instead of reporting an apt update as a change.
        update=bool(missing),
    )

    server.group(name=f"Service group {service_user}", group=service_user, system=True)
    server.user(
        name=f"Service user {service_user}",
        user=service_user,
        group=service_user,
        system=True,
        shell="/usr/sbin/nologin",
        home=service_home,
        ensure_home=False,
        create_home=False,
    )

    # In a container (the lab) the clock belongs to the machine underneath, and the time sync
    # units refuse to start there (ConditionVirtualization/ConditionCapability); enabled is
    # still right, so the same host image keeps time when it runs on metal.
    systemd.service(
        name=f"Time sync ({time_sync})",
        service=time_sync,
        enabled=True,
        running=host.get_fact(ContainerVirt) is None,
    )

    journald = files.template(
        name="journald limits",
        src=template_path("journald.conf.j2"),
        dest="/etc/systemd/journald.conf.d/50-lpfleet.conf",
        mode="644",
        jinja_env_kwargs=jinja_options(),
        system_max_use=journald_system_max_use,
        system_keep_free=journald_system_keep_free,
        system_max_file_size=journald_system_max_file_size,
        max_retention=journald_max_retention,
        rate_limit_interval=journald_rate_limit_interval,
        rate_limit_burst=journald_rate_limit_burst,
    )
    # Storage=persistent needs the directory; journald creates it on restart.
    systemd.service(
        name="Apply journald limits",
        service="systemd-journald",
        running=True,
        restarted=journald.will_change,
    )
