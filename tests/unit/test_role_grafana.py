"""The Grafana role on injected facts. Grafana comes from Grafana's own apt repository, which
neither this machine nor the lab can reach, so its operations are checked here: the signed
repository, the package, the provisioned data source and dashboards, restarts only when
something Grafana reads at start changed, and a re-run that does nothing."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from pyinfra.api.exceptions import DeployError
from pyinfra.api.util import get_file_sha1
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Sha1File, Sha256File
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from roles._facts import DirectoryFiles
from roles._ops import render
from roles.grafana import (
    ADMIN_PASSWORD_FILE,
    DASHBOARD_PROVIDER_FILE,
    DASHBOARDS_DIR,
    DATASOURCE_FILE,
    DROPIN,
    KEYRING,
    SOURCES,
    grafana,
)
from roles.secrets import SecretSource
from roles.grafana import GrafanaSettings
from tests.support.prepare import prepare, with_settings

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "monitoring" / "dashboards").glob("*.json"))
KEY_SHA256 = "a" * 64


def run(facts=None, **kwargs):
    ops, _ = prepare(grafana, facts=facts or {}, host_name="mon-1", groups=["monitoring"],
                     address="203.0.113.30", **with_settings(GrafanaSettings, kwargs))
    return ops


def upload_of(op) -> str:
    src = op.uploads[0][0]
    return src.getvalue() if isinstance(src, StringIO) else src.getvalue().decode()


def test_bare_host_gets_the_signed_repository_then_grafana():
    ops = run(apt_key_sha256=KEY_SHA256)
    names = ops.names()
    key = ops.named("Grafana apt key /etc")
    assert any("curl -sSLf https://apt.grafana.com/gpg.key" in c for c in key.commands)
    assert any(KEY_SHA256 in c for c in key.commands)  # checked after the download
    source = upload_of(ops.named("Grafana apt repository"))
    assert "Types: deb\nURIs: https://apt.grafana.com\nSuites: stable\nComponents: main\n" in source
    assert f"Signed-By: {KEYRING}\n" in source
    assert ops.named("Grafana apt repository").commands[1] == f"<upload {SOURCES}>"
    install = ops.named("Install grafana")
    assert install.commands[0] == "apt-get update"  # the new repository's index first
    assert install.commands[-1].endswith("install --no-install-recommends grafana")
    assert names.index(key.name) < names.index(ops.named("Grafana apt repository").name) < names.index(install.name)


def test_datasource_is_the_local_prometheus():
    ops = run(scrape_interval="15s")
    datasource = upload_of(ops.named("Grafana data source"))
    assert "url: http://localhost:9090\n" in datasource and "uid: lpfleet-prometheus\n" in datasource
    assert "isDefault: true\n" in datasource and "timeInterval: 15s\n" in datasource
    assert ops.named("Grafana data source").commands[-2:] == [
        f"chown root:grafana {DATASOURCE_FILE}", f"chmod 640 {DATASOURCE_FILE}"]


def test_dashboards_provisioned_from_files():
    ops = run()
    provider = upload_of(ops.named("Grafana dashboard provider"))
    assert f"path: {DASHBOARDS_DIR}\n" in provider and "allowUiUpdates: false" in provider
    sync = ops.named("lpfleet dashboards")
    uploaded = sorted(Path(dest).name for _, dest in sync.uploads)
    assert uploaded == [p.name for p in DASHBOARDS]  # the JSON only, not the README
    for src, _ in sync.uploads:
        json.loads(Path(src).read_text())


def test_settings_and_first_start():
    ops = run()
    dropin = upload_of(ops.named("Grafana settings"))
    assert "Environment=GF_SERVER_HTTP_PORT=3000\n" in dropin
    assert "Environment=GF_SERVER_ROOT_URL=http://203.0.113.30:3000/\n" in dropin
    assert "Environment=GF_ANALYTICS_REPORTING_ENABLED=false\n" in dropin
    assert "ADMIN_PASSWORD" not in dropin
    # Grafana's package neither enables nor starts it; a daemon-reload picks up the drop-in.
    assert ops.named("Grafana running").commands == [
        "systemctl daemon-reload", "systemctl start grafana-server.service",
        "systemctl restart grafana-server.service", "systemctl enable grafana-server.service"]


def test_version_pin():
    assert run(version="11.2.2").named("Install grafana=11.2.2")


def test_admin_password_comes_from_this_machine(monkeypatch):
    monkeypatch.setenv("TEST_GRAFANA_PASSWORD", "correct horse battery staple")
    ops = run(admin_password_source=SecretSource("Grafana admin password", env="TEST_GRAFANA_PASSWORD"))
    secret = ops.named(ADMIN_PASSWORD_FILE)
    assert secret.secret() == b"correct horse battery staple" and secret.uploads == []
    assert secret.commands[-1].startswith("base64 -d | install -m 640 -o root -g grafana /dev/stdin ")
    assert f"Environment=GF_SECURITY_ADMIN_PASSWORD__FILE={ADMIN_PASSWORD_FILE}" in upload_of(ops.named("Grafana settings"))
    printed = "\n".join(f"{op.name} {op.commands}" for op in ops)
    assert "correct horse" not in printed


def done_facts(scrape_interval: str = "15s") -> dict:
    """A monitoring host where a previous run installed and provisioned Grafana."""
    live = {
        SOURCES: render("grafana.sources.j2", repository="https://apt.grafana.com", keyring=KEYRING),
        DROPIN: render("grafana-server.conf.j2", port=3000, root_url="http://203.0.113.30:3000/",
                       admin_password_file=None),
        DATASOURCE_FILE: render("grafana-datasource.yaml.j2", prometheus_url="http://localhost:9090",
                                scrape_interval=scrape_interval),
        DASHBOARD_PROVIDER_FILE: render("grafana-dashboards.yaml.j2", dashboards_dir=DASHBOARDS_DIR),
    }
    grafana_group = {DATASOURCE_FILE, DASHBOARD_PROVIDER_FILE}
    return {
        DebPackages: {"grafana": ["11.2.2"], "curl": ["7.88.1-10+deb12u8"], "ca-certificates": ["20230311"]},
        Sha1File: lambda path: get_file_sha1(StringIO(live[path])) if path in live else None,
        Sha256File: KEY_SHA256,
        File: lambda path: ({"user": "root", "group": "grafana" if path in grafana_group else "root",
                             "mode": 640 if path in grafana_group else 644}
                            if path in live or path == KEYRING else None),
        Directory: lambda path: {"user": "root", "group": "grafana" if path == DASHBOARDS_DIR or
                                 path.startswith("/etc/grafana") else "root", "mode": 755},
        DirectoryFiles: {p.name: (get_file_sha1(str(p)), 644, "root", "grafana") for p in DASHBOARDS},
        SystemdStatus: {"grafana-server.service": True},
        SystemdEnabled: {"grafana-server.service": True},
    }


def test_rerun_changes_nothing():
    assert run(done_facts(), apt_key_sha256=KEY_SHA256).commands() == []


def test_changed_datasource_restarts_grafana():
    ops = run(done_facts(), apt_key_sha256=KEY_SHA256, scrape_interval="30s")
    assert ops.named("Grafana data source").commands
    assert ops.named("Grafana running").commands == ["systemctl restart grafana-server.service"]


def test_changed_dashboard_needs_no_restart():
    facts = done_facts()
    facts[DirectoryFiles] = {**facts[DirectoryFiles], DASHBOARDS[0].name: ("0" * 40, 644, "root", "grafana")}
    ops = run(facts, apt_key_sha256=KEY_SHA256)
    assert ops.named("lpfleet dashboards").commands
    assert ops.named("Grafana running").commands == []


