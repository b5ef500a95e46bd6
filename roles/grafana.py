"""Grafana on the monitoring host, from Grafana's own apt repository, with the local Prometheus
as its data source and lpfleet's dashboards (monitoring/dashboards/*.json) provisioned from
files.

Production only: enabled by ``grafana = True`` in the inventory (group_data/monitoring.py);
the lab sets it False because its hosts reach only the Debian mirror. tests/unit/test_role_grafana.py
checks the operations it generates against injected facts instead.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, files

from roles._ops import MONITORING_DIR, jinja_options, packaged_service, sync_directory, template_path
from roles.common import missing_packages
from roles.monitoring import GRAFANA_PORT, PROMETHEUS_PORT
from roles.prometheus import DURATION, default_external_url
from roles.secrets import SecretSource, secret_file

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


@deploy("grafana")
def grafana(
    address: str,
    repository: str = "https://apt.grafana.com",
    apt_key_url: str = "https://apt.grafana.com/gpg.key",
    apt_key_sha256: str | None = None,
    version: str = "",
    root_url: str = "",
    scrape_interval: str = "15s",
    admin_password: SecretSource | None = None,
) -> None:
    """Install Grafana and provision the data source and dashboards.

    + address: this host's address (the default root URL)
    + repository: Grafana's apt repository (or a mirror of it)
    + apt_key_url: the key that signs it, stored as /etc/apt/keyrings/grafana.asc and trusted for
      that repository only (deb822 ``Signed-By``)
    + apt_key_sha256: the key file's sha256; recommended: without it the first download is trusted
    + version: pin a Grafana version (``11.2.2``); empty: the newest in the repository
    + root_url: the URL operators use (``GF_SERVER_ROOT_URL``); default ``http://<address>:3000/``
    + scrape_interval: Prometheus' scrape interval, the data source's ``timeInterval`` (rates)
    + admin_password: where the first admin password comes from (inventory
      ``grafana_admin_password_env``/``_file``); used when Grafana creates its database, i.e. on the
      first start. Without it Grafana starts with admin/admin and asks for a new one at first login
    """
    if not DURATION.match(str(scrape_interval)):
        raise DeployError(f"{host.name}: scrape interval {scrape_interval!r} is not a duration")
    package_spec = f"{PACKAGE}={version}" if version else PACKAGE

    # curl fetches the key; gpg is not needed: apt reads an armored key named *.asc itself.
    apt.packages(name="curl for the Grafana apt key", packages=["curl", "ca-certificates"],
                 no_recommends=True, update=bool(missing_packages(["curl", "ca-certificates"])))
    files.directory(name="/etc/apt/keyrings", path="/etc/apt/keyrings", user="root", group="root", mode="755")
    key = files.download(
        name=f"Grafana apt key {KEYRING} (from {apt_key_url})",
        src=apt_key_url,
        dest=KEYRING,
        mode="644",
        sha256sum=apt_key_sha256,
    )
    source = files.template(
        name=f"Grafana apt repository {SOURCES}",
        src=template_path("grafana.sources.j2"),
        dest=SOURCES,
        mode="644",
        jinja_env_kwargs=jinja_options(),
        repository=repository,
        keyring=KEYRING,
    )
    package = apt.packages(
        name=f"Install {package_spec} (Grafana's repository)",
        packages=[package_spec],
        no_recommends=True,
        # apt needs a fresh index for a repository (or key) it has just been given; a run
        # that changes neither leaves the index alone and so reports nothing.
        update=key.will_change or source.will_change or bool(missing_packages([PACKAGE])),
    )

    if admin_password is not None:
        secret_file(
            name=f"Grafana admin password {ADMIN_PASSWORD_FILE} (from {admin_password.describe()})",
            source=admin_password,
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
        root_url=root_url or default_external_url(address, GRAFANA_PORT),
        admin_password_file=ADMIN_PASSWORD_FILE if admin_password is not None else None,
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
