"""The node exporter and Prometheus roles on injected facts: what a first deploy installs, that
rule files are checked before the configuration and the configuration before it goes live,
that a re-run does nothing, and which changes restart and which only reload.

The candidate/check/move commands are also run for real here, against a temporary directory
with Debian's promtool: a rule file promtool refuses never replaces the live one."""

from __future__ import annotations

import hashlib
import subprocess
from io import BytesIO, StringIO
from pathlib import Path

import pytest
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.api.util import get_file_sha1
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from roles._facts import ConfigLoaded, DirectoryFiles
from roles._ops import render, render_monitoring, validated_template
from roles.monitoring import admin_tcp_ports, monitoring_tcp_ports, scrape_hosts
from roles.node_exporter import node_exporter
from roles.prometheus import CONFIG_PATH, RULES_DIR, prometheus, server_flags
from roles.prometheus import PrometheusSettings
from roles.node_exporter import NodeExporterSettings
from tests.support.prepare import prepare, with_settings
from inventory.validate import HostSpec

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted(p.name for p in (ROOT / "monitoring" / "rules").glob("*.yml"))
HOSTS = [
    {"name": "o1", "address": "10.77.0.11", "groups": ["orchestrators", "reward"]},
    {"name": "t1", "address": "10.77.0.21", "groups": ["transcoders"], "orchestrator": "o1"},
    {"name": "mon1", "address": "10.77.0.31", "groups": ["monitoring"]},
]
RUNBOOK = "https://example.com/lpfleet/docs"
ARGS = dict(address="10.77.0.31", hosts=HOSTS, runbook_base=RUNBOOK)


def sha1(text: str) -> str:
    return get_file_sha1(StringIO(text))


def live_files(**overrides) -> dict[str, str]:
    """What a previous run wrote, path -> content."""
    files = {f"{RULES_DIR}/{name}": render_monitoring(f"rules/{name}", runbook_base=RUNBOOK) for name in RULE_FILES}
    files[f"{RULES_DIR}/expected-transcoders.yml"] = render_monitoring(
        "prometheus/expected-transcoders.yml.j2", hosts=HOSTS)
    files[CONFIG_PATH] = render_monitoring("prometheus/prometheus.yml.j2", hosts=HOSTS, rules_dir=RULES_DIR,
                                           scrape_interval="15s", evaluation_interval="15s", external_labels={})
    files["/etc/default/prometheus"] = render(
        "service-args.default.j2", label="Prometheus",
        args=server_flags("10.77.0.31", "30d", "", ""))
    files.update(overrides)
    return files


def done_facts(files: dict[str, str], loaded=True) -> dict:
    """A monitoring host where a previous run wrote ``files`` and Prometheus runs them."""
    return {
        DebPackages: {"prometheus": ["2.42.0+ds-5+deb12u1"]},
        Sha1File: lambda path: sha1(files[path]) if path in files else None,
        File: lambda path: {"user": "root", "group": "root", "mode": 644} if path in files else None,
        Directory: lambda path: {"user": "root", "group": "root", "mode": 755},
        DirectoryFiles: lambda path: {p.rsplit("/", 1)[1]: (sha1(c), 644, "root", "root")
                                      for p, c in files.items() if p.startswith(path + "/")},
        SystemdStatus: {"prometheus.service": True},
        SystemdEnabled: {"prometheus.service": True},
        ConfigLoaded: loaded,
    }


def run(facts=None, **kwargs):
    ops, _ = prepare(prometheus, facts=facts or {}, host_name="mon1", groups=["monitoring"],
                     **with_settings(PrometheusSettings, {**ARGS, **kwargs}))
    return ops


# --------------------------------------------------------------------------- first deploy


def test_first_deploy_installs_checks_and_restarts():
    ops = run()
    assert "--no-install-recommends prometheus" in ops.named("Install prometheus").commands[-1]
    names = ops.names()
    rules = [i for i, n in enumerate(names) if "Alert rules" in n or "Expected transcoders" in n]
    config = names.index(next(n for n in names if "Prometheus configuration" in n))
    # Every rule file goes live (checked) before the configuration, whose check loads them.
    assert len(rules) == len(RULE_FILES) + 1 and max(rules) < config
    for name in RULE_FILES:
        commands = ops.named(f"Alert rules {RULES_DIR}/{name}").commands
        assert f"promtool check rules {RULES_DIR}/.{name}.lpfleet-new || {{" in " ".join(commands)
        assert commands[-1] == f"mv -f {RULES_DIR}/.{name}.lpfleet-new {RULES_DIR}/{name}"
    check = ops.named("Prometheus configuration").commands
    assert any(c.startswith("promtool check config /etc/prometheus/.prometheus.yml.lpfleet-new ||") for c in check)
    # The package started Prometheus with its own flags and configuration: restart, not start.
    assert ops.named("Prometheus running").commands == [
        "systemctl start prometheus.service", "systemctl restart prometheus.service",
        "systemctl enable prometheus.service"]


def test_flags_keep_retention_and_listen_address():
    flags = server_flags("10.77.0.31", "90d", "50GB", "")
    assert "--storage.tsdb.retention.time=90d" in flags and "--storage.tsdb.retention.size=50GB" in flags
    assert "--web.listen-address=:9090" in flags and "--web.external-url=http://10.77.0.31:9090/" in flags
    assert "--web.external-url=http://[2001:db8::31]:9090/" in server_flags("2001:db8::31", "30d", "", "")


def test_rules_carry_the_runbook_base():
    ops = run()
    upload = next(src for op in ops for src, dest in op.uploads if dest.endswith("/.lpnode.yml.lpfleet-new"))
    text = upload.getvalue().decode()
    assert f'runbook_url: "{RUNBOOK}/alerts.md#lpnodedown"' in text and "[[" not in text


# --------------------------------------------------------------------------- later runs


def test_rerun_changes_nothing():
    ops = run(done_facts(live_files()))
    assert ops.commands(conditional=False) == []
    # after a reload or restart only: the deploy ends once Prometheus runs the new configuration
    assert ops.named("Prometheus runs the new configuration").conditional


def test_new_rule_reloads_without_restart():
    files = live_files(**{f"{RULES_DIR}/lpnode.yml": "an older version\n"})
    ops = run(done_facts(files))
    assert ops.named("Alert rules /etc/prometheus/rules/lpnode.yml").commands[-1].startswith("mv -f")
    assert ops.named("Prometheus running").commands == ["systemctl reload prometheus.service"]


def test_inventory_change_rerenders_expected_transcoders_and_reloads():
    ops = run(done_facts(live_files()), hosts=HOSTS + [
        {"name": "t2", "address": "10.77.0.22", "groups": ["transcoders"], "orchestrator": "o1"}])
    assert ops.named("Expected transcoders").commands
    assert ops.named("Prometheus configuration").commands
    assert ops.named("Prometheus running").commands == ["systemctl reload prometheus.service"]


def test_new_flags_restart():
    ops = run(done_facts(live_files()), retention_time="90d")
    assert ops.named("Prometheus flags").commands
    assert ops.named("Prometheus running").commands == ["systemctl restart prometheus.service"]


def test_files_newer_than_the_last_reload_are_reloaded():
    """A run that stopped between putting a file live and reloading: the next one reloads."""
    ops = run(done_facts(live_files(), loaded=False))
    assert ops.commands(conditional=False) == ["systemctl reload prometheus.service"]
    [wait] = ops.named("Prometheus runs the new configuration").commands
    assert "prometheus_config_last_reload" in wait and "= loaded ] && exit 0" in wait


def test_rule_files_no_longer_shipped_are_removed_after_the_configuration():
    files = live_files(**{f"{RULES_DIR}/old-name.yml": "groups: []\n"})
    ops = run(done_facts(files))
    names = ops.names()
    assert ops.named("No other rule files").commands == [f"rm -f {RULES_DIR}/old-name.yml"]
    assert names.index(next(n for n in names if "No other rule files" in n)) > \
        names.index(next(n for n in names if "Prometheus configuration" in n))
    assert ops.named("Prometheus running").commands == ["systemctl reload prometheus.service"]


def test_extra_rule_files_are_installed_and_checked(tmp_path):
    extra = tmp_path / "site.yml"
    extra.write_text('groups: [{name: site, rules: [{alert: X, expr: "up == 0", annotations: '
                     '{runbook_url: "[[ runbook_base ]]/site.md"}}]}]\n')
    ops = run(extra_rule_files=[str(extra)])
    op = ops.named(f"Alert rules {RULES_DIR}/site.yml")
    assert "promtool check rules" in " ".join(op.commands)
    assert f"{RUNBOOK}/site.md".encode() in op.uploads[0][0].getvalue()


@pytest.mark.parametrize("name", ["lpnode.yml", "expected-transcoders.yml", "site.yaml"])
def test_extra_rule_file_names_must_not_clash(tmp_path, name):
    extra = tmp_path / name
    extra.write_text("groups: []\n")
    with pytest.raises(ValueError, match="must end in .yml and not be named like another rule file"):
        run(extra_rule_files=[str(extra)])


@pytest.mark.parametrize("setting", ["scrape_interval", "evaluation_interval", "retention_time"])
def test_durations_are_checked(setting):
    with pytest.raises(ValueError, match=f"prometheus_{setting} = '5 seconds' is not a duration"):
        run(**{setting: "5 seconds"})


# --------------------------------------------------------------------------- the check, for real


@deploy("one rule file")
def _one_rule_file(dest: str, src: str):
    validated_template(name="rules", src=src, dest=dest, validate="promtool check rules {path}",
                       source="monitoring", runbook_base=RUNBOOK)


def execute(ops, root: Path) -> subprocess.CompletedProcess | None:
    """Run prepared operations' commands locally, uploads written where they go; the first
    failing command's result, or None."""
    for op in ops:
        uploads = iter(op.uploads)
        for command in op.commands:
            if command.startswith("<upload "):
                src, dest = next(uploads)
                Path(dest).write_bytes(src.getvalue() if isinstance(src, BytesIO) else Path(src).read_bytes())
                continue
            if command.startswith("chown "):
                continue  # the files are ours; the owner is not what this test is about
            p = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=root)
            if p.returncode:
                return p
    return None


def test_a_rule_file_promtool_refuses_never_goes_live(tmp_path):
    (tmp_path / "rules").mkdir()
    live = tmp_path / "rules" / "lpnode.yml"
    live.write_text(render_monitoring("rules/lpnode.yml", runbook_base=RUNBOOK))
    before = hashlib.sha256(live.read_bytes()).hexdigest()
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: rate(up[5m]\n")

    ops, _ = prepare(_one_rule_file, dest=str(live), src=str(broken))
    failed = execute(ops, tmp_path)
    assert failed is not None and failed.returncode == 1
    assert f"lpfleet: {live} not updated: the new version failed `promtool check rules" in failed.stderr
    assert hashlib.sha256(live.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in (tmp_path / "rules").iterdir()) == ["lpnode.yml"]  # no candidate left

    good = tmp_path / "good.yml"
    good.write_text(render_monitoring("rules/host.yml", runbook_base="[[ runbook_base ]]"))
    ops, _ = prepare(_one_rule_file, dest=str(live), src=str(good))
    assert execute(ops, tmp_path) is None
    assert live.read_text() == render_monitoring("rules/host.yml", runbook_base=RUNBOOK)


# --------------------------------------------------------------------------- node exporter


def test_node_exporter_first_deploy():
    ops, _ = prepare(node_exporter, host_name="t1",
                     settings=NodeExporterSettings(extra_args=["--collector.systemd"]))
    assert "--no-install-recommends prometheus-node-exporter" in ops.named("Install").commands[-1]
    args = ops.named("node exporter flags").uploads[0][0].getvalue()
    assert 'ARGS="--web.listen-address=:9100 --collector.systemd"' in args
    assert "systemctl restart prometheus-node-exporter.service" in ops.named("running").commands


def test_node_exporter_rerun_changes_nothing():
    args = render("service-args.default.j2", label="node exporter", args=["--web.listen-address=:9100"])
    ops, _ = prepare(node_exporter, host_name="t1", facts={
        DebPackages: {"prometheus-node-exporter": ["1.5.0-1+b6"]},
        Sha1File: sha1(args),
        File: {"user": "root", "group": "root", "mode": 644},
        Directory: {"user": "root", "group": "root", "mode": 755},
        SystemdStatus: {"prometheus-node-exporter.service": True},
        SystemdEnabled: {"prometheus-node-exporter.service": True},
    })
    assert ops.commands() == []


def test_flags_with_spaces_are_refused():
    with pytest.raises(DeployError, match="cannot contain spaces"):
        prepare(node_exporter, host_name="t1", settings=NodeExporterSettings(
            extra_args=["--collector.filesystem.mount-points-exclude=a b"]))


# --------------------------------------------------------------------------- shared


def test_scrape_hosts_from_the_inventory():
    specs = [HostSpec("o1", frozenset({"orchestrators", "reward", "prod"}), {"ssh_hostname": "10.0.0.11",
                                                                             "expected_transcoders": 3}),
             HostSpec("t1", frozenset({"transcoders"}), {"ssh_hostname": "t1.example", "address": "10.0.0.21",
                                                         "orchestrator": "o1", "lpnode_max_sessions": 8})]
    assert scrape_hosts(specs) == [
        {"name": "o1", "address": "10.0.0.11", "groups": ["orchestrators", "prod", "reward"], "expected_transcoders": 3,
         "reward_port": 7936},
        {"name": "t1", "address": "10.0.0.21", "groups": ["transcoders"], "orchestrator": "o1"},
    ]


def test_monitoring_ports():
    assert admin_tcp_ports(grafana=True) == [9090, 9093, 3000]
    assert admin_tcp_ports(grafana=False) == [9090, 9093]
    assert monitoring_tcp_ports() == [9090, 9093]
