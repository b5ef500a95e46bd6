"""The Alertmanager role on injected facts: receivers templated from inventory data, their
secrets uploaded as files or written into the configuration but never into pyinfra's output,
the configuration checked with amtool before it goes live, reload rather than restart."""

from __future__ import annotations

import logging
import shutil
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from pyinfra.api import Config
from pyinfra.api.exceptions import DeployError
from pyinfra.api.util import get_file_sha1
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, FileContents, Sha1File
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from roles._facts import ConfigLoaded, DirectoryFiles
from roles._ops import render
from roles.alertmanager import CONFIG_PATH, alertmanager, plan_receivers, render_config
from roles.alertmanager import AlertmanagerSettings
from tests.support.prepare import prepare, with_settings

ROOT = Path(__file__).resolve().parents[2]
SECRETS = "/etc/prometheus/secrets"
PAGERDUTY_KEY = "pd-routing-key-0123456789"
DISCORD_URL = "https://discord.com/api/webhooks/123/discord-token-abcdef"
SMTP_PASSWORD = "smtp password with spaces"


@pytest.fixture
def secrets_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_PAGERDUTY_KEY", PAGERDUTY_KEY + "\n")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    discord = tmp_path / "discord"
    discord.write_text(DISCORD_URL + "\n")
    discord.chmod(0o600)
    return {
        "receivers": {
            "page": [{"type": "pagerduty", "routing_key_file": {"env": "TEST_PAGERDUTY_KEY"}}],
            "ticket": [{"type": "email", "to": "ops@example.com"},
                       {"type": "discord", "webhook_url": {"file": str(discord)}}],
            "watchdog": [{"type": "webhook", "url": "https://hc-ping.example.net/abc", "send_resolved": False}],
        },
        "smtp": {"smarthost": "smtp.example.com:587", "from": "alerts@example.com",
                 "auth_username": "alerts", "auth_password_file": {"env": "TEST_SMTP_PASSWORD"}},
    }


def run(facts=None, config=None, **kwargs):
    ops, _ = prepare(alertmanager, facts=facts or {}, host_name="mon1", groups=["monitoring"],
                     address="10.77.0.31", config=config, **with_settings(AlertmanagerSettings, kwargs))
    return ops


def everything_printed(ops) -> str:
    """Operation names, commands and arguments: all pyinfra can print about them."""
    return "\n".join(f"{op.name} {op.commands} {op.global_arguments}" for op in ops)



def test_file_secrets_are_uploaded_for_prometheus_to_read(secrets_env):
    ops = run(**secrets_env)
    key = ops.named(f"{SECRETS}/page-1-pagerduty-routing_key_file")
    assert "from environment variable TEST_PAGERDUTY_KEY" in key.name
    path = f"{SECRETS}/page-1-pagerduty-routing_key_file"
    candidate = f"{SECRETS}/.page-1-pagerduty-routing_key_file.lpfleet-new"
    assert key.commands == [f"base64 -d | install -m 640 -o root -g prometheus /dev/stdin "
                            f"{candidate} && mv -f {candidate} {path}"]
    assert key.uploads == []   # on stdin, never through a file in /tmp
    # The value alone: no trailing newline for a reader that might not strip it.
    assert key.secret() == PAGERDUTY_KEY.encode()
    assert ops.named(f"{SECRETS}/smtp-auth_password_file").secret() == SMTP_PASSWORD.encode()
    assert ops.named("Receiver secrets directory").commands[-2:] == [
        f"chmod 750 {SECRETS}", f"chown root:prometheus {SECRETS}"]


def test_configuration_names_the_files_and_holds_the_url_secret(secrets_env):
    ops = run(**secrets_env)
    op = ops.named("Alertmanager configuration")
    assert op.uploads == []   # it holds a secret: on stdin, never through a file in /tmp
    config = op.secret().decode()
    assert f'routing_key_file: "{SECRETS}/page-1-pagerduty-routing_key_file"' in config
    assert f'smtp_auth_password_file: "{SECRETS}/smtp-auth_password_file"' in config
    assert f'webhook_url: "{DISCORD_URL}"' in config  # Alertmanager 0.25 has no webhook_url_file
    assert PAGERDUTY_KEY not in config and SMTP_PASSWORD not in config
    assert ("base64 -d | install -m 640 -o root -g prometheus /dev/stdin "
            "/etc/prometheus/.alertmanager.yml.lpfleet-new") in op.commands
    check = next(c for c in op.commands if c.startswith("amtool check-config"))
    assert check.startswith("amtool check-config /etc/prometheus/.alertmanager.yml.lpfleet-new || {")
    assert op.commands[-1] == "mv -f /etc/prometheus/.alertmanager.yml.lpfleet-new /etc/prometheus/alertmanager.yml"


def test_no_secret_value_in_anything_pyinfra_prints(secrets_env):
    printed = everything_printed(run(**secrets_env))
    for secret in (PAGERDUTY_KEY, DISCORD_URL, "discord-token", SMTP_PASSWORD):
        assert secret not in printed


@pytest.mark.parametrize("holds_secret", [True, False])
def test_diff_of_a_configuration_holding_secrets_is_not_shown(secrets_env, caplog, holds_secret):
    """pyinfra --diff: the file's change is announced; its content only if it holds no secret."""
    receivers = secrets_env["receivers"] if holds_secret else {
        "page": [{"type": "webhook", "url": "https://example.com/discord-token-in-a-plain-url"}]}
    facts = {FileContents: ["global:", "  resolve_timeout: 1m"], Sha1File: "0" * 40}
    with caplog.at_level(logging.INFO):
        run(facts, config=Config(DIFF=True), receivers=receivers, smtp=secrets_env["smtp"])
    assert "Will modify /etc/prometheus/alertmanager.yml" in caplog.text
    if holds_secret:
        assert "(diff not shown: the file holds secrets)" in caplog.text
        assert "discord-token" not in caplog.text and "resolve_timeout" not in caplog.text
    else:
        # The same capture shows a diff when there is one: the check above would see a leak.
        assert "resolve_timeout" in caplog.text and "discord-token-in-a-plain-url" in caplog.text


def test_page_receiver_is_required():
    with pytest.raises(DeployError, match="has no `page` channel"):
        run(receivers={"ticket": [{"type": "email", "to": "ops@example.com"}]})


def test_unknown_channel_type_and_receiver():
    with pytest.raises(DeployError, match="type must be one of email, pagerduty, slack, discord, webhook, not 'sms'"):
        run(receivers={"page": [{"type": "sms", "to": "+1555"}]})
    with pytest.raises(DeployError, match="unknown receiver"):
        run(receivers={"page": [{"type": "webhook", "url": "http://x/"}], "critical": []})


def test_route_timings_are_checked():
    page = {"page": [{"type": "webhook", "url": "http://x/"}]}
    # by the settings model, before the role (and inventory validation) use them
    with pytest.raises(ValueError, match=r"'pages' is not a route \(routes: default, page, ticket, watchdog\)"):
        run(receivers=page, route_timings={"pages": {"group_wait": "5s"}})
    with pytest.raises(ValueError, match="page.group_wait = 'soon' is not a duration"):
        run(receivers=page, route_timings={"page": {"group_wait": "soon"}})


def test_first_deploy_restarts_with_lpfleet_flags():
    ops = run(receivers={"page": [{"type": "webhook", "url": "http://10.77.0.1:9099/page"}]})
    flags = ops.named("Alertmanager flags").uploads[0][0].getvalue()
    assert ('ARGS="--config.file=/etc/prometheus/alertmanager.yml --storage.path=/var/lib/prometheus/alertmanager '
            '--data.retention=120h --web.listen-address=:9093 --web.external-url=http://10.77.0.31:9093/ '
            '--cluster.listen-address="') in flags
    assert "systemctl restart prometheus-alertmanager.service" in ops.named("Alertmanager running").commands


def done_facts(receivers: dict, **files: str) -> dict:
    plan = plan_receivers(receivers)
    live = {CONFIG_PATH: render_config(plan, resolve_timeout="5m", route_timings={}), **files}
    live["/etc/default/prometheus-alertmanager"] = render("service-args.default.j2", label="Alertmanager", args=[
        "--config.file=/etc/prometheus/alertmanager.yml", "--storage.path=/var/lib/prometheus/alertmanager",
        "--data.retention=120h", "--web.listen-address=:9093", "--web.external-url=http://10.77.0.31:9093/",
        "--cluster.listen-address="])
    live["/etc/prometheus/alertmanager_templates/lpfleet.tmpl"] = (ROOT / "monitoring/alertmanager/lpfleet.tmpl").read_text()

    def owner(path):
        if path not in live:
            return None
        return {"user": "root", "group": "prometheus", "mode": 640} if path == CONFIG_PATH else \
            {"user": "root", "group": "root", "mode": 644}

    return {
        DebPackages: {"prometheus-alertmanager": ["0.25.0-1+b4"]},
        Sha1File: lambda path: get_file_sha1(StringIO(live[path])) if path in live else None,
        File: owner,
        Directory: lambda path: {"user": "root", "group": "prometheus" if path == SECRETS else "root",
                                 "mode": 750 if path == SECRETS else 755},
        DirectoryFiles: {},
        SystemdStatus: {"prometheus-alertmanager.service": True},
        SystemdEnabled: {"prometheus-alertmanager.service": True},
        ConfigLoaded: True,
    }


def test_rerun_changes_nothing_and_new_receivers_reload():
    receivers = {"page": [{"type": "webhook", "url": "http://10.77.0.1:9099/page"}]}
    assert run(done_facts(receivers), receivers=receivers).commands(conditional=False) == []
    changed = {"page": [{"type": "webhook", "url": "http://10.77.0.1:9099/page2"}]}
    ops = run(done_facts(receivers), receivers=changed)
    assert ops.named("Alertmanager running").commands == ["systemctl reload prometheus-alertmanager.service"]


def test_unused_secret_files_are_removed_after_the_new_configuration():
    receivers = {"page": [{"type": "webhook", "url": "http://10.77.0.1:9099/page"}]}
    facts = done_facts(receivers)
    facts[DirectoryFiles] = {"page-1-pagerduty-routing_key_file": ("x", 640, "root", "prometheus")}
    ops = run(facts, receivers=receivers)
    assert ops.named("No other files").commands == [f"rm -f {SECRETS}/page-1-pagerduty-routing_key_file"]
    names = ops.names()
    assert names.index(next(n for n in names if "No other files" in n)) > \
        names.index(next(n for n in names if "Alertmanager configuration" in n))


def test_rendered_configuration_passes_amtool(secrets_env, tmp_path):
    """The configuration the role writes, secrets and all, is one amtool accepts."""
    amtool = shutil.which("amtool")
    assert amtool, "amtool is not installed: run scripts/setup"
    plan = plan_receivers(secrets_env["receivers"], secrets_env["smtp"])
    config = tmp_path / "alertmanager.yml"
    config.write_text(render_config(plan, resolve_timeout="5m", route_timings={"page": {"group_wait": "5s"}})
                      .replace("/etc/prometheus/alertmanager_templates", str(ROOT / "monitoring/alertmanager")))
    p = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "3 receivers" in p.stdout
