"""Grafana on the monitoring host, from Grafana's own apt repository, with the local Prometheus
as its data source and lpfleet's dashboards (monitoring/dashboards/*.json) provisioned from
files.

Production only: enabled by ``grafana = True`` in the inventory (group_data/monitoring.py);
the lab sets it False because its hosts reach only the Debian mirror. tests/unit/test_role_grafana.py
checks the operations it generates against injected facts instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pyinfra.api import deploy
from pyinfra.operations import apt, files

from roles._ops import MONITORING_DIR, jinja_options, packaged_service, sync_directory, template_path
from roles.common import missing_packages
from roles.monitoring import GRAFANA_PORT, PROMETHEUS_PORT
from roles.prometheus import PrometheusSettings, default_external_url
from roles.secrets import SecretSource, secret_file
from roles.settings import RoleSettings, setting

PACKAGE = "grafana"
SERVICE = "grafana-server"
KEYRING = "/etc/apt/keyrings/grafana.asc"
SOURCES = "/etc/apt/sources.list.d/grafana.sources"
DROPIN = f"/etc/systemd/system/{SERVICE}.service.d/lpfleet.conf"
PROVISIONING_DIR = "/etc/grafana/provisioning"
DATASOURCE_FILE = f"{PROVISIONING_DIR}/datasources/lpfleet.yaml"
DASHBOARD_PROVIDER_FILE = f"{PROVISIONING_DIR}/dashboards/lpfleet.yaml"
DASHBOARDS_DIR = "/var/lib/grafana/dashboards/lpfleet"
ADMIN_PASSWORD_FILE = "/etc/grafana/lpfleet-admin-password"
GROUP = "grafana"  # the package's system group


@dataclass(frozen=True)
class GrafanaSettings(RoleSettings):
    """The grafana role's settings: inventory data ``grafana_<field>``."""

    PREFIX: ClassVar[str] = 'grafana_'
    ROLE: ClassVar[str] = 'grafana'

    repository: str = setting("https://apt.grafana.com", doc="Grafana's apt repository (or a mirror of it)")
    apt_key_url: str = setting(
        'https://apt.grafana.com/gpg.key',
        doc="the key that signs it, trusted for that repository only (deb822 `Signed-By`)")
    apt_key_sha256: str | None = setting(
        None,
        doc="the key file's sha256; recommended: without it the first download is trusted")
    version: str = setting("", doc='pin a Grafana version (`11.2.2`); empty: the newest in the repository')
    root_url: str = setting("", doc='the URL operators use (`GF_SERVER_ROOT_URL`); default `http://<address>:3000/`')
    admin_password: str | None = setting(
        None, secret=True,
        check=lambda v: None if v is None else (
            "is a secret written into the inventory; set grafana_admin_password_env (or _file) to "
            "where it is on this machine"),
        doc="never set: the password would be in the inventory; use `grafana_admin_password_env` "
            "or `grafana_admin_password_file`")
    admin_password_env: str | None = setting(
        None,
        doc="environment variable on this machine holding the first admin password (used when Grafana "
            "creates its database); without it Grafana starts with admin/admin")
    admin_password_file: str | None = setting(None, doc='or a file on this machine holding it (mode 0600); a file wins')


@deploy("grafana")
def grafana(
    address: str,
    scrape_interval: str = PrometheusSettings.scrape_interval,
    admin_password_source: SecretSource | None = None,
    settings: GrafanaSettings | None = None,
) -> None:
    """Install Grafana and provision the data source and dashboards (GrafanaSettings).

    + address: this host's address (the default root URL)
    + scrape_interval: Prometheus' scrape interval, the data source's ``timeInterval`` (rates)
    + admin_password_source: where the first admin password comes from (GrafanaSettings'
      ``admin_password_env``/``_file``), used when Grafana creates its database, i.e. on the first
      start
    """
    s = settings or GrafanaSettings()
    package_spec = f"{PACKAGE}={s.version}" if s.version else PACKAGE

    # curl fetches the key; gpg is not needed: apt reads an armored key named *.asc itself.
    apt.packages(name="curl for the Grafana apt key", packages=["curl", "ca-certificates"],
                 no_recommends=True, update=bool(missing_packages(["curl", "ca-certificates"])))
    files.directory(name="/etc/apt/keyrings", path="/etc/apt/keyrings", user="root", group="root", mode="755")
    key = files.download(
        name=f"Grafana apt key {KEYRING} (from {s.apt_key_url})",
        src=s.apt_key_url,
        dest=KEYRING,
        mode="644",
        sha256sum=s.apt_key_sha256,
    )
    source = files.template(
        name=f"Grafana apt repository {SOURCES}",
        src=template_path("grafana.sources.j2"),
        dest=SOURCES,
        mode="644",
        jinja_env_kwargs=jinja_options(),
        repository=s.repository,
        keyring=KEYRING,
    )
    package = apt.packages(
        name=f"Install {package_spec} (Grafana's repository)",
        packages=[package_spec],
        no_recommends=True,
        # apt needs a fresh index for a s.repository (or key) it has just been given; a run
        # that changes neither leaves the index alone and so reports nothing.
        update=key.will_change or source.will_change or bool(missing_packages([PACKAGE])),
    )

    if admin_password_source is not None:
        secret_file(
            name=f"Grafana admin password {ADMIN_PASSWORD_FILE} (from {admin_password_source.describe()})",
            source=admin_password_source,
            dest=ADMIN_PASSWORD_FILE,
            user="root",
            group=GROUP,
            mode="640",
            newline=False,
        )
    dropin = files.template(
        name=f"Grafana settings {DROPIN}",
        src=template_path("grafana-server.conf.j2"),
        dest=DROPIN,
        mode="644",
        create_remote_dir=True,
        jinja_env_kwargs=jinja_options(),
        port=GRAFANA_PORT,
        root_url=s.root_url or default_external_url(address, GRAFANA_PORT),
        admin_password_file=ADMIN_PASSWORD_FILE if admin_password_source is not None else None,
    )
    datasource = files.template(
        name=f"Grafana data source {DATASOURCE_FILE} (the local Prometheus)",
        src=template_path("grafana-datasource.yaml.j2"),
        dest=DATASOURCE_FILE,
        user="root",
        group=GROUP,
        mode="640",
        create_remote_dir=True,
        jinja_env_kwargs=jinja_options(),
        prometheus_url=f"http://localhost:{PROMETHEUS_PORT}",
        scrape_interval=scrape_interval,
    )
    provider = files.template(
        name=f"Grafana dashboard provider {DASHBOARD_PROVIDER_FILE}",
        src=template_path("grafana-dashboards.yaml.j2"),
        dest=DASHBOARD_PROVIDER_FILE,
        user="root",
        group=GROUP,
        mode="640",
        create_remote_dir=True,
        jinja_env_kwargs=jinja_options(),
        dashboards_dir=DASHBOARDS_DIR,
    )
    # Grafana rereads this directory every 30 s (updateIntervalSeconds): no restart for a
    # changed dashboard.
    sync_directory(
        name=f"lpfleet dashboards -> {DASHBOARDS_DIR}",
        src=str(MONITORING_DIR / "dashboards"),
        dest=DASHBOARDS_DIR,
        user="root",
        group=GROUP,
        mode="644",
        pattern="*.json",
    )
    packaged_service(
        "Grafana",
        SERVICE,
        # Provisioning files and settings are read at start only. The admin password only
        # matters at the first start, which the package change covers.
        restart=any(op.will_change for op in (package, dropin, datasource, provider)),
        daemon_reload=dropin.will_change,
    )
