"""The monitoring deploy on the lab, checked the way an operator would check it, and an alert
delivered end to end.

    .venv/bin/python -m pytest tests/lab/test_monitoring.py -q

After the session's fleet deploy (`deployed`): node exporters everywhere; Prometheus on mon1
scraping every target with the inventory's labels, its rules loaded; Alertmanager's
configuration loaded; the monitoring ports open to the admin network only; receiver secrets as
files only Alertmanager can read, never printed; a rule file, a Prometheus or an Alertmanager
configuration that does not pass promtool/amtool never goes live.

Last, delivery: a webhook receiver on this machine (10.77.0.1:9099, where the lab inventory
points Alertmanager's `page` and `ticket` receivers) stands in for the pager. `lpfleet lab stop
t1` must page LpnodeDown for t1 (after the rule's production `for: 2m`) with t1's labels and
runbook link, and `lpfleet lab start t1` must send its resolution. About three minutes.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import datetime
from pathlib import Path

import pytest

import lab as lablib
from lab.config import ALERT_RECEIVER_PORT

from .conftest import REPO, can_connect, can_connect_from_here, deploy, lpfleet
from .monitoring_api import AlertReceiver, Prometheus, get_json, wait_until

pytestmark = pytest.mark.lab

MON = "mon1"
ORCH = "o1"
NODES = ("o1", "t1", "t2")
VICTIM = "t1"  # the transcoder host the delivery test powers off
RULE_FILES = sorted(p.name for p in (REPO / "monitoring" / "rules").glob("*.yml"))
RUNBOOK_BASE = f"file://{REPO}/docs"  # inventory/lab.py
PAGE_SECRET = "/etc/prometheus/secrets/page-1-webhook-http_config.authorization.credentials_file"


@pytest.fixture(scope="module")
def prometheus(lab, deployed) -> Prometheus:
    return Prometheus(f"http://{lab.host(MON).address}:9090")


@pytest.fixture(scope="module")
def alertmanager_url(lab, deployed) -> str:
    return f"http://{lab.host(MON).address}:9093"


@pytest.fixture(scope="module")
def receiver_token(lab) -> str:
    return Path(lab.alert_receiver_token_file).read_text().strip()


def generations(name: str) -> str:
    """MainPID and last reload time of Prometheus and Alertmanager on mon1: unchanged means
    neither restarted nor reloaded."""
    p = lablib.ssh_run(name, (
        "systemctl show prometheus prometheus-alertmanager -p MainPID --value; "
        "curl -sf http://127.0.0.1:9090/metrics | grep '^prometheus_config_last_reload_success_timestamp'; "
        "curl -sf http://127.0.0.1:9093/metrics | grep '^alertmanager_config_last_reload_success_timestamp'"
    ), check=True)
    return p.stdout


def service_args(host, path: str) -> list[str]:
    """The flags in a Debian /etc/default file's ARGS="..." line."""
    return re.search(r'^ARGS="(.*)"$', host.file(path).content_string, re.M).group(1).split()


# --------------------------------------------------------------------------- what is installed


def test_node_exporter_on_every_host(hosts):
    for name, host in hosts.items():
        assert host.package("prometheus-node-exporter").is_installed, name
        service = host.service("prometheus-node-exporter")
        assert service.is_running and service.is_enabled, name
        assert "--web.listen-address=:9100" in service_args(host, "/etc/default/prometheus-node-exporter")
        assert host.socket("tcp://9100").is_listening, name


def test_prometheus_and_alertmanager_on_the_monitoring_host(hosts, lab):
    host = hosts[MON]
    for package in ("prometheus", "prometheus-alertmanager"):
        assert host.package(package).is_installed
        assert host.service(package).is_running and host.service(package).is_enabled
    address = lab.host(MON).address
    flags = service_args(host, "/etc/default/prometheus")
    assert {"--storage.tsdb.retention.time=30d", "--web.listen-address=:9090",
            f"--web.external-url=http://{address}:9090/", "--config.file=/etc/prometheus/prometheus.yml"} <= set(flags)
    flags = service_args(host, "/etc/default/prometheus-alertmanager")
    assert {"--cluster.listen-address=", "--web.listen-address=:9093", "--data.retention=120h",
            f"--web.external-url=http://{address}:9093/"} <= set(flags)
    assert not host.socket("tcp://9094").is_listening  # no cluster gossip
    config = host.file("/etc/prometheus/alertmanager.yml")
    assert (config.user, config.group, config.mode) == ("root", "prometheus", 0o640)
    rules = sorted(host.check_output("ls -A /etc/prometheus/rules").split())
    assert rules == sorted(RULE_FILES + ["expected-transcoders.yml"])  # and no leftover candidate
    assert host.check_output("ls -A /etc/prometheus | grep -c lpfleet-new || true") == "0"


# --------------------------------------------------------------------------- Prometheus works


def test_every_target_is_up(prometheus, lab):
    """Every lab node's 7935, the reward service's 7936 on o1, every node exporter, lb1's
    HAProxy, Alertmanager and Prometheus itself, each with the inventory's host, role and orchestrator
    labels."""
    expected = {("lpnode", n) for n in NODES} | {("node", h.name) for h in lab.hosts} \
        | {("alertmanager", MON), ("prometheus", MON), ("lpnode-reward", ORCH)} \
        | {("lpnode", h.name) for h in lab.hosts if h.group == "orchestrators"} \
        | {("haproxy", h.name) for h in lab.hosts if h.group == "load_balancers"}

    def all_up():
        targets = prometheus.targets()
        found = {(t["labels"]["job"], t["labels"]["host"]): t for t in targets}
        return found if set(found) == expected and all(t["health"] == "up" for t in targets) else None

    try:
        found = wait_until(all_up, 60, "every target up")
    except AssertionError:
        states = [(t["labels"].get("job"), t["labels"].get("host"), t["health"], t["lastError"])
                  for t in prometheus.targets()]
        raise AssertionError(f"targets not all up as expected: {states}") from None
    assert found[("lpnode", "t1")]["labels"].items() >= {"role": "transcoder", "orchestrator": ORCH}.items()
    assert found[("lpnode", ORCH)]["labels"]["role"] == "orchestrator"
    assert found[("node", ORCH)]["labels"]["role"] == "orchestrator+reward"  # o1 is the reward host
    assert found[("node", MON)]["labels"]["role"] == "monitoring" and "orchestrator" not in found[("node", MON)]["labels"]
    assert found[("lpnode", "t2")]["scrapeUrl"] == f"http://{lab.host('t2').address}:7935/metrics"
    assert found[("lpnode-reward", ORCH)]["scrapeUrl"] == f"http://{lab.host(ORCH).address}:7936/metrics"
    assert found[("lpnode-reward", ORCH)]["labels"]["role"] == "reward"
    assert found[("lpnode", "o2")]["labels"]["role"] == "orchestrator+transcoder"
    assert found[("haproxy", "lb1")]["scrapeUrl"] == f"http://{lab.host('lb1').address}:8405/metrics"
    assert found[("node", "lb1")]["labels"]["role"] == "balancer"


def test_rules_loaded(prometheus):
    groups = prometheus.get("/api/v1/rules")["data"]["groups"]
    files = {Path(g["file"]).name for g in groups}
    assert files == set(RULE_FILES + ["expected-transcoders.yml"])
    alerts = {r["name"]: r for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert {"LpnodeDown", "HostDown", "LpnodeTranscodersBelowExpected", "Watchdog", "LpnodeGpuHot",
            "LpnodeRewardServiceDown", "LpnodeRewardNotCalled"} <= set(alerts)
    assert alerts["LpnodeDown"]["duration"] == 120  # the production `for: 2m`, in the lab too
    assert alerts["LpnodeDown"]["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}/alerts.md#lpnodedown"
    unhealthy = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] == "err"]
    assert not unhealthy
    # The inventory's count: o1 has t1 and t2.
    assert prometheus.value('lpfleet:expected_transcoders{orchestrator="o1"}') == 2
    assert prometheus.value("prometheus_config_last_reload_successful") == 1


def test_alertmanager_config_loaded(prometheus, alertmanager_url, lab):
    status = get_json(f"{alertmanager_url}/api/v2/status")
    assert status["cluster"]["status"] == "disabled"
    config = status["config"]["original"]
    assert f"url: http://{lab.gateway}:{ALERT_RECEIVER_PORT}/page" in config
    assert "credentials_file: /etc/prometheus/secrets/" in config
    for receiver in ("page", "ticket", "watchdog"):
        assert f"- name: {receiver}\n" in config
    active = prometheus.get("/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
    assert [a["url"] for a in active] == [f"http://{lab.host(MON).address}:9093/api/v2/alerts"]
    assert prometheus.value('alertmanager_config_last_reload_successful{job="alertmanager"}') == 1
    # The Watchdog reaches Alertmanager: the whole path Prometheus -> Alertmanager works.
    alerts = get_json(f"{alertmanager_url}/api/v2/alerts")
    assert any(a["labels"]["alertname"] == "Watchdog" for a in alerts)


def test_monitoring_ports_open_to_admin_networks_only(hosts, lab):
    # Lab hosts share one bridge: an answer takes milliseconds, a dropped probe the whole timeout.
    mon = lab.host(MON).address
    for port in (9090, 9093):
        assert can_connect_from_here(mon, port), port  # 10.77.0.1: the lab's admin network
        assert not can_connect(hosts["t1"], mon, port, timeout=1), port
    assert not can_connect_from_here(mon, 3000, timeout=1)  # no Grafana in the lab
    # 9100: the monitoring host only.
    assert can_connect(hosts[MON], lab.host(ORCH).address, 9100)
    assert not can_connect(hosts["t2"], lab.host(ORCH).address, 9100, timeout=1)
    assert not can_connect_from_here(lab.host(ORCH).address, 9100, timeout=1)


# --------------------------------------------------------------------------- receiver secrets


def test_receiver_secrets_are_files_only_alertmanager_reads(hosts, receiver_token):
    host = hosts[MON]
    directory = host.file("/etc/prometheus/secrets")
    assert (directory.user, directory.group, directory.mode) == ("root", "prometheus", 0o750)
    secret = host.file(PAGE_SECRET)
    assert (secret.user, secret.group, secret.mode) == ("root", "prometheus", 0o640)
    # The token alone, as the lab's file holds it; compared by hash so it is never printed.
    assert secret.sha256sum == hashlib.sha256(receiver_token.encode()).hexdigest()
    everything = host.check_output("cat /etc/prometheus/alertmanager.yml /etc/default/prometheus-alertmanager; "
                                   "ps -eo args; journalctl --no-pager -o cat")
    assert receiver_token not in everything


def test_secret_written_into_the_configuration_is_never_printed(lab, hosts, tmp_path):
    """A Discord-style secret (a URL Alertmanager 0.25 cannot read from a file) goes into
    alertmanager.yml; `--diff` then says the file changed, never what is in it."""
    secret = f"s3cr3t-{time.time_ns()}"
    url_file = tmp_path / "ticket-url"
    url_file.write_text(f"http://{lab.gateway}:{ALERT_RECEIVER_PORT}/ticket?key={secret}\n")
    url_file.chmod(0o600)
    page = {"type": "webhook", "url": f"http://{lab.gateway}:{ALERT_RECEIVER_PORT}/page"}
    receivers = {"page": [page], "ticket": [{"type": "webhook", "url": {"file": str(url_file)}}]}
    run = deploy("--limit", MON, "--diff", "--data", f"alertmanager_receivers={json.dumps(receivers)}")
    try:
        assert run.returncode == 0, run.output[-4000:]
        assert secret not in run.output
        assert "Will modify /etc/prometheus/alertmanager.yml" in run.output
        assert "(diff not shown: the file holds secrets)" in run.output
        found = lablib.ssh_run(MON, "grep -cFf - /etc/prometheus/alertmanager.yml", input=secret + "\n")
        assert found.stdout.strip() == "1"
        config = hosts[MON].file("/etc/prometheus/alertmanager.yml")
        assert (config.user, config.group, config.mode) == ("root", "prometheus", 0o640)
        # The page receiver's secret file is no longer used: removed.
        assert not hosts[MON].file(PAGE_SECRET).exists
    finally:
        back = deploy("--limit", MON)
    assert back.returncode == 0, back.output[-4000:]
    assert secret not in back.output
    assert lablib.ssh_run(MON, "grep -cFf - /etc/prometheus/alertmanager.yml", input=secret + "\n").stdout.strip() == "0"


# --------------------------------------------------------------------------- refused changes

BAD_RULE = """groups:
  - name: site
    rules:
      - alert: SiteBroken
        expr: rate(up[5m]
"""

REFUSED = {
    # A rule file with a PromQL syntax error (an operator's own rules: prometheus_extra_rule_files).
    "rule file": ("/etc/prometheus/rules/site-rules.yml", "promtool check rules",
                  lambda tmp: ["--data", f"prometheus_extra_rule_files={json.dumps([str(tmp / 'site-rules.yml')])}"]),
    # A label name Prometheus does not accept, in the scrape configuration.
    "prometheus.yml": ("/etc/prometheus/prometheus.yml", "promtool check config",
                       lambda tmp: ["--data", 'prometheus_external_labels={"fleet name": "lab"}']),
    # A receiver URL Alertmanager cannot send to.
    "alertmanager.yml": ("/etc/prometheus/alertmanager.yml", "amtool check-config",
                         lambda tmp: ["--data", 'alertmanager_receivers={"page": [{"type": "webhook", '
                                                '"url": "ftp://10.77.0.1/page"}]}']),
}


@pytest.mark.parametrize("what", REFUSED)
def test_refused_configuration_never_goes_live(hosts, tmp_path, what):
    dest, check, args = REFUSED[what]
    (tmp_path / "site-rules.yml").write_text(BAD_RULE)
    host = hosts[MON]
    before = host.file(dest).sha256sum if host.file(dest).exists else None
    secret_before = host.file(PAGE_SECRET).sha256sum
    running = generations(MON)
    run = deploy("--limit", MON, *args(tmp_path))
    assert run.returncode != 0
    assert f"lpfleet: {dest} not updated: the new version failed `{check}" in run.output
    assert (host.file(dest).sha256sum if host.file(dest).exists else None) == before
    candidate = Path(dest).with_name(f".{Path(dest).name}.lpfleet-new")
    assert not host.file(str(candidate)).exists
    assert generations(MON) == running  # neither restarted nor reloaded
    assert host.file(PAGE_SECRET).sha256sum == secret_before  # what the live configuration reads stays


def test_deploy_after_refused_ones_changes_nothing(prometheus):
    run = deploy("--limit", MON)
    assert run.returncode == 0 and run.totals().changed == 0, run.output[-4000:]
    assert "SiteBroken" not in json.dumps(prometheus.get("/api/v1/rules"))


# --------------------------------------------------------------------------- delivery


def _started(alert: dict) -> float:
    # Alertmanager's RFC 3339 with nanoseconds; seconds are enough here.
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", alert["startsAt"]).replace("Z", "+00:00")).timestamp()


def test_stopped_transcoder_pages_and_its_recovery_resolves(lab, prometheus, receiver_token):
    wait_until(lambda: prometheus.value(f'up{{job="lpnode", host="{VICTIM}"}}') == 1, 60, f"{VICTIM} scraped")

    def page_about_victim(status: str, since: float):
        def match(n) -> bool:
            return n.path == "/page" and any(a["status"] == status and _started(a) >= since - 30
                                             for a in n.alerts(alertname="LpnodeDown", host=VICTIM))
        return match

    with AlertReceiver(lab.gateway, ALERT_RECEIVER_PORT) as receiver:
        stopped = time.time()
        try:
            lpfleet("lab", "stop", VICTIM)
            firing = receiver.wait_for(page_about_victim("firing", stopped), 300,
                                       f"the LpnodeDown page for {VICTIM}")
        finally:
            lpfleet("lab", "start", VICTIM, timeout=180)
            started = time.time()
            # Whatever happened above, leave the lab as the other tests expect it: t1's lpnode
            # back and registered at o1.
            wait_until(lambda: prometheus.value(f'max(livepeer_transcoders_number{{job="lpnode", host="{ORCH}"}})') == 2,
                       120, f"{VICTIM} registered at {ORCH} again")
        resolved = receiver.wait_for(page_about_victim("resolved", stopped), 120,
                                     f"the resolution of LpnodeDown for {VICTIM}")

    print(f"\nLpnodeDown for {VICTIM}: paged {firing.received - stopped:.0f} s after the stop, "
          f"resolved {resolved.received - started:.0f} s after the start")
    alert = firing.alerts(alertname="LpnodeDown", host=VICTIM)[0]
    assert firing.body["receiver"] == "page" and firing.body["status"] == "firing"
    assert alert["labels"].items() >= {"severity": "page", "host": VICTIM, "orchestrator": ORCH,
                                       "role": "transcoder", "job": "lpnode"}.items()
    assert alert["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}/alerts.md#lpnodedown"
    assert f"lpnode on {VICTIM} (transcoder) is down" in alert["annotations"]["summary"]
    assert alert["generatorURL"].startswith(f"http://{lab.host(MON).address}:9090/")
    assert firing.body["externalURL"] == f"http://{lab.host(MON).address}:9093"
    # The receiver secret arrived as the bearer token.
    assert firing.authorization == f"Bearer {receiver_token}"
    # The production `for: 2m` held: no page before two minutes of t1 being down.
    assert firing.received - stopped >= 120
    assert resolved.received >= started
    gone = resolved.alerts(alertname="LpnodeDown", host=VICTIM)[0]
    assert gone["status"] == "resolved" and gone["endsAt"] > gone["startsAt"]
