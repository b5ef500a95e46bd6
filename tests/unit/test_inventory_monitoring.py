"""Inventory validation of the monitoring hosts' data: receivers and their secrets, durations,
the runbook base, extra rule files, Grafana. Each message names the host, the setting and the
fix; nothing reaches a host."""

from __future__ import annotations

import pytest

from inventory.validate import describe, validate
from tests.support.inventory import REWARD_ENV, reward_data

ALL = {"admin_networks": ["10.0.0.0/8"]}
PAGE = {"type": "webhook", "url": "http://10.0.0.99/page"}
GOOD = {
    "prometheus_runbook_base": "https://github.com/example/lpfleet/blob/main/docs",
    "alertmanager_receivers": {"page": [PAGE]},
}


def problems(environ=None, **data):
    """Problems of a one-host fleet (reward + monitoring), the monitoring data being GOOD + data."""
    merged = {**GOOD, **data}
    merged = {k: v for k, v in merged.items() if v is not None}
    hosts = describe({"monitoring": [("mon1", {"ssh_hostname": "10.0.0.31", **merged})], "reward": ["mon1"]},
                     {"all": ALL, "reward": reward_data()})
    return [str(p) for p in validate(hosts, {**REWARD_ENV, **(environ or {})})]


def test_good_monitoring_data_passes():
    assert problems() == []


def test_receivers_are_required():
    [msg] = problems(alertmanager_receivers=None)
    assert msg.startswith("mon1: no alertmanager_receivers: alerts would reach nobody. Fix: set alertmanager_receivers")


def test_page_must_have_a_channel():
    [msg] = problems(alertmanager_receivers={"page": [], "ticket": [PAGE]})
    assert msg == ("mon1: alertmanager_receivers has no `page` channel, so pages would reach nobody. Fix: add at "
                   "least one channel under \"page\" (docs/monitoring.md#receivers)")


def test_unknown_receiver_and_type():
    found = problems(alertmanager_receivers={"page": [{"type": "sms", "to": "+1555"}], "critical": [PAGE]})
    assert "mon1: alertmanager_receivers: unknown receiver(s) critical; the receivers are page, ticket, watchdog" in found
    assert ("mon1: alertmanager_receivers page #1: type must be one of email, pagerduty, slack, discord, webhook, "
            "not 'sms'") in found


@pytest.mark.parametrize("channel, needs", [
    ({"type": "pagerduty"}, "routing_key_file or service_key_file or routing_key or service_key"),
    ({"type": "slack", "api_url_file": "/etc/prometheus/secrets/slack"}, "channel"),
    ({"type": "discord"}, "webhook_url"),
    ({"type": "webhook"}, "url"),
])
def test_required_fields(channel, needs):
    assert f"mon1: alertmanager_receivers page #1 ({channel['type']}) needs {needs}" in problems(
        alertmanager_receivers={"page": [channel]})


def test_email_needs_smtp():
    found = problems(alertmanager_receivers={"page": [{"type": "email", "to": "ops@example.com"}]})
    assert any("(email) needs an SMTP smarthost: set alertmanager_smtp" in p for p in found)
    assert problems(alertmanager_receivers={"page": [{"type": "email", "to": "ops@example.com"}]},
                    alertmanager_smtp={"smarthost": "smtp.example.com:587", "from": "a@example.com"}) == []


@pytest.mark.parametrize("channel, field", [
    ({"type": "discord", "webhook_url": "https://discord.com/api/webhooks/1/token"}, "webhook_url"),
    ({"type": "pagerduty", "routing_key": "abc123"}, "routing_key"),
    ({"type": "slack", "api_url": "https://hooks.slack.com/services/T/B/x", "channel": "#ops"}, "api_url"),
    ({"type": "webhook", "url": "http://x/", "http_config": {"authorization": {"credentials": "tok"}}},
     "http_config.authorization.credentials"),
])
def test_a_secret_written_into_the_inventory_is_refused(channel, field):
    [msg] = problems(alertmanager_receivers={"page": [channel]})
    assert msg.startswith(f"mon1: alertmanager_receivers page #1 {field} is a secret written into the inventory. "
                          "Fix: name where it is on the machine you deploy from instead")
    assert "abc123" not in msg and "token" not in msg.split("Fix")[0].replace("/token", "")


def test_smtp_password_must_be_a_reference():
    [msg] = problems(alertmanager_receivers={"page": [PAGE]}, alertmanager_smtp={"auth_password": "hunter2"})
    assert msg.startswith("mon1: alertmanager_smtp auth_password is a secret written into the inventory")
    assert "hunter2" not in msg


def test_secret_references_are_checked_on_this_machine(tmp_path):
    loose = tmp_path / "slack"
    loose.write_text("https://hooks.slack.com/services/x\n")
    loose.chmod(0o644)
    channels = [{"type": "pagerduty", "routing_key_file": {"env": "PD_KEY"}},
                {"type": "slack", "api_url_file": {"file": str(loose)}, "channel": "#ops"},
                {"type": "discord", "webhook_url": {"file": str(tmp_path / "missing")}}]
    found = problems(alertmanager_receivers={"page": channels})
    assert ("mon1: alertmanager_receivers page #1 routing_key_file: environment variable PD_KEY is not set or "
            "empty. Fix: export PD_KEY=... in the shell you deploy from") in found
    assert any(p.startswith(f"mon1: receiver secret file {loose} (alertmanager_receivers page #2 api_url_file) is "
                            "open to group/others") for p in found)
    assert any(p.startswith(f"mon1: receiver secret file {tmp_path / 'missing'} (alertmanager_receivers page #3 "
                            "webhook_url) does not exist") for p in found)
    loose.chmod(0o600)
    (tmp_path / "missing").write_text("https://discord.com/api/webhooks/1/t\n")
    (tmp_path / "missing").chmod(0o600)
    assert problems({"PD_KEY": "k"}, alertmanager_receivers={"page": channels}) == []


def test_plain_file_fields_are_paths_on_the_monitoring_host():
    [msg] = problems(alertmanager_receivers={"page": [{"type": "pagerduty", "routing_key_file": "keys/pd"}]})
    assert msg.startswith("mon1: alertmanager_receivers page #1 routing_key_file = 'keys/pd': a plain *_file value "
                          "is a path on the monitoring host and must be absolute")
    assert problems(alertmanager_receivers={"page": [{"type": "pagerduty",
                                                      "routing_key_file": "/etc/prometheus/pd"}]}) == []


def test_malformed_secret_reference():
    [msg] = problems(alertmanager_receivers={"page": [{"type": "webhook", "url": {"env": "A", "file": "/x"}}]})
    assert "a secret reference is {\"env\": \"NAME\"} or {\"file\": \"path\"}, exactly one key" in msg


@pytest.mark.parametrize("key", ["prometheus_scrape_interval", "prometheus_evaluation_interval",
                                 "prometheus_retention_time", "alertmanager_resolve_timeout",
                                 "alertmanager_data_retention"])
def test_durations(key):
    [msg] = problems(**{key: "15 seconds"})
    assert msg == f"mon1: {key} = '15 seconds' is not a duration: a number and a unit, e.g. 15s, 5m, 30d"


def test_route_timings():
    found = problems(alertmanager_route_timings={"pager": {"group_wait": "5s"}, "page": {"group_wait": "now",
                                                                                        "wait": "5s"}})
    [msg] = found
    assert msg.startswith("mon1: alertmanager_route_timings = ")
    assert "'pager' is not a route (routes: default, page, ticket, watchdog)" in msg
    assert "page.group_wait = 'now' is not a duration (e.g. 30s)" in msg
    assert "page: 'wait' is not one of group_wait, group_interval, repeat_interval" in msg
    assert problems(alertmanager_route_timings={"page": {"group_wait": "5s", "repeat_interval": "1h"}}) == []


@pytest.mark.parametrize("value", [None, "github.com/x/docs", "https://x/docs/", "https://x/my docs"])
def test_runbook_base(value):
    [msg] = problems(prometheus_runbook_base=value)
    assert msg.startswith("mon1: prometheus_runbook_base")


def test_extra_rule_files(tmp_path):
    (tmp_path / "site.yml").write_text("groups: []\n")
    (tmp_path / "lpnode.yml").write_text("groups: []\n")
    assert problems(prometheus_extra_rule_files=[str(tmp_path / "site.yml")]) == []
    found = problems(prometheus_extra_rule_files=[str(tmp_path / "lpnode.yml"), str(tmp_path / "nope.yml")])
    [msg] = found
    assert msg.startswith("mon1: prometheus_extra_rule_files = ")
    assert "lpnode.yml must end in .yml and not be named like another rule file" in msg
    assert f"{tmp_path / 'nope.yml'} is not a file on this machine" in msg


def test_grafana_settings():
    assert problems(grafana="yes") == ["mon1: grafana = 'yes': True or False"]
    [msg] = problems(grafana_admin_password="admin123")
    assert msg.startswith("mon1: grafana_admin_password is a secret written into the inventory") and "admin123" not in msg
    [msg] = problems(grafana_admin_password_env="GF_PW")
    assert "Grafana admin password: environment variable GF_PW (grafana_admin_password_env) is not set" in msg


def test_expected_transcoders_override():
    hosts = describe({"orchestrators": [("o1", {"ssh_hostname": "10.0.0.11", "expected_transcoders": -1})],
                      "monitoring": [("mon1", {"ssh_hostname": "10.0.0.31", **GOOD})], "reward": ["mon1"]},
                     {"all": {**ALL, "orch_secret_env": "S", "admin_token_env": "T"}, "reward": reward_data()})
    found = [str(p) for p in validate(hosts, {"S": "s", "T": "t", **REWARD_ENV})]
    assert found == ["o1: expected_transcoders = -1: a whole number of transcoders (0 or more)"]
