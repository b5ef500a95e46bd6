"""Alert rules, the Prometheus and Alertmanager configuration templates, with the real tools.

- every rule file passes `promtool check rules`, as committed and as the deploy renders it;
- the promtool unit tests (monitoring/tests/*_test.yml) pass, and every alert has a firing
  and a not-firing case there;
- every alert has a severity, a summary, a description and a runbook link whose anchor is a
  heading in docs/alerts.md;
- prometheus.yml.j2 renders from a sample inventory into a config `promtool check config`
  accepts (rules included), with the labels the alerts use;
- alertmanager.yml.j2 renders into a config `amtool check-config` accepts, routes by
  severity, and its inhibitions do what docs say, checked on a real Alertmanager.

promtool and amtool come from Debian's `prometheus` and `prometheus-alertmanager` packages
(scripts/setup installs them); without them these tests fail and say so.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import jinja2
import pytest

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
RULES = sorted((MONITORING / "rules").glob("*.yml"))
UNIT_TESTS = sorted((MONITORING / "tests").glob("*_test.yml"))
ALERTS_DOC = ROOT / "docs" / "alerts.md"
RUNBOOK_BASE = "https://github.com/example/lpfleet/blob/main/docs"

# The Jinja2 settings every template under monitoring/ is written for
# (monitoring/prometheus/README.md); the deploy renders with the same.
JINJA_OPTIONS = dict(
    variable_start_string="[[", variable_end_string="]]",
    block_start_string="[%", block_end_string="%]",
    comment_start_string="[#", comment_end_string="#]",
    trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
)

# The sample inventory: an orchestrator with two transcoders (one on IPv6), a solo
# orchestrator+transcoder, a monitoring host. monitoring/tests/expected-transcoders.sample.yml
# is expected-transcoders.yml.j2 rendered for it.
SAMPLE_HOSTS = [
    {"name": "o1", "address": "10.77.0.11", "groups": ["orchestrators", "reward"]},
    {"name": "t1", "address": "10.77.0.21", "groups": ["transcoders"], "orchestrator": "o1"},
    {"name": "t2", "address": "2001:db8::22", "groups": ["transcoders", "gpu"], "orchestrator": "o1"},
    {"name": "solo", "address": "10.77.0.12", "groups": ["orchestrators", "transcoders"]},
    {"name": "mon1", "address": "10.77.0.31", "groups": ["monitoring"]},
]

SAMPLE_RECEIVERS = {
    "page": [{"type": "pagerduty", "routing_key_file": "/etc/prometheus/secrets/pagerduty"},
             {"type": "slack", "api_url_file": "/etc/prometheus/secrets/slack", "channel": "#oncall"}],
    "ticket": [{"type": "email", "to": "ops@example.com"},
               {"type": "discord", "webhook_url": "https://discord.com/api/webhooks/1/token"},
               {"type": "webhook", "url": "http://127.0.0.1:9/tickets"}],
    "watchdog": [{"type": "webhook", "url": "https://hc-ping.example.net/abc", "send_resolved": False}],
}
SAMPLE_SMTP = {"smarthost": "smtp.example.com:587", "from": "alerts@example.com",
               "auth_username": "alerts", "auth_password_file": "/etc/prometheus/secrets/smtp",
               "require_tls": True}


def render(template: str, **context) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(MONITORING)),
                             undefined=jinja2.StrictUndefined, **JINJA_OPTIONS)
    return env.get_template(template).render(**context)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/setup (it installs Debian's "
                    f"prometheus and prometheus-alertmanager packages)")
    return path


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert p.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{p.stdout}\n{p.stderr}"
    return p


def alerts_in(path: Path) -> list[dict]:
    """The alerting rules of a rule file, read line by line (the files keep one layout:
    `- alert:` then `labels:`/`annotations:` blocks of `key: value` lines)."""
    alerts, current, block = [], None, None
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        if m := re.match(r"\s*- (alert|record):\s*(\S+)", line):
            current = {"alert": m.group(2), "labels": {}, "annotations": {}} if m.group(1) == "alert" else None
            if current is not None:
                alerts.append(current)
            block = None
        elif current is not None and (m := re.match(r"\s+(labels|annotations):\s*$", line)):
            block = m.group(1)
        elif current is not None and block and (m := re.match(r"\s+(\w+):\s*(.*)$", line)):
            value = m.group(2)
            current[block][m.group(1)] = json.loads(value) if value.startswith('"') else value
        elif current is not None and re.match(r"\s+\w+:", line):
            block = None
    return alerts


ALL_ALERTS = [a for path in RULES for a in alerts_in(path)]


def test_rules_were_found():
    names = {a["alert"] for a in ALL_ALERTS}
    assert {"LpnodeDown", "LpnodeTranscodersBelowExpected", "LpnodeGpuHot", "HostDiskFilling",
            "Watchdog"} <= names, names


# -- promtool ---------------------------------------------------------------------------------

def test_rule_files_pass_promtool_check_as_committed():
    run(tool("promtool"), "check", "rules", *RULES)


def test_rule_files_pass_promtool_check_as_rendered(tmp_path):
    for path in RULES:
        text = render(f"rules/{path.name}", runbook_base=RUNBOOK_BASE)
        assert "[[" not in text, path.name
        (tmp_path / path.name).write_text(text)
    run(tool("promtool"), "check", "rules", *sorted(tmp_path.glob("*.yml")))
    rendered = alerts_in(tmp_path / "lpnode.yml")
    assert rendered[0]["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}/alerts.md#lpnodedown"


def test_promtool_unit_tests_pass():
    out = run(tool("promtool"), "test", "rules", *[p.name for p in UNIT_TESTS],
              cwd=MONITORING / "tests").stdout
    assert out.count("SUCCESS") == len(UNIT_TESTS), out


def unit_test_cases() -> dict[str, set[str]]:
    """alertname -> {"firing", "not firing"} from the promtool test files (an `alertname:`
    line followed by `exp_alerts: []` is a not-firing case, by `exp_alerts:` a firing one)."""
    cases: dict[str, set[str]] = {}
    for path in UNIT_TESTS:
        lines = [line.strip() for line in path.read_text().splitlines()
                 if line.strip() and not line.strip().startswith("#")]
        for i, line in enumerate(lines):
            if m := re.fullmatch(r"alertname:\s*(\w+)", line):
                nxt = lines[i + 1]
                kind = "not firing" if nxt == "exp_alerts: []" else "firing" if nxt == "exp_alerts:" else None
                assert kind, f"{path.name}: {m.group(1)}: expected exp_alerts after alertname, got {nxt!r}"
                cases.setdefault(m.group(1), set()).add(kind)
    return cases


def test_every_alert_has_a_firing_and_a_not_firing_case():
    cases = unit_test_cases()
    missing = []
    for name in sorted({a["alert"] for a in ALL_ALERTS}):
        # Watchdog fires always, by design: its "not firing" is the dead man's switch noticing.
        wanted = {"firing"} if name == "Watchdog" else {"firing", "not firing"}
        if not wanted <= cases.get(name, set()):
            missing.append(f"{name}: has {sorted(cases.get(name, set()))}")
    assert not missing, "alerts without both promtool cases:\n" + "\n".join(missing)


def test_every_alert_has_severity_summary_description_and_runbook():
    doc = ALERTS_DOC.read_text()
    headings = set(re.findall(r"^#{2,4} (\w+)\s*$", doc, re.M))
    for alert in ALL_ALERTS:
        name = alert["alert"]
        severity = alert["labels"].get("severity")
        assert severity in ({"none"} if name == "Watchdog" else {"page", "ticket"}), (name, severity)
        annotations = alert["annotations"]
        assert annotations.get("summary") and annotations.get("description"), name
        assert annotations.get("runbook_url") == f"[[ runbook_base ]]/alerts.md#{name.lower()}", name
        # GitHub and most renderers make the anchor from the heading: lower-cased name.
        assert name in headings, f"docs/alerts.md has no heading `## {name}` for its runbook link"


def test_every_documented_alert_exists():
    doc = ALERTS_DOC.read_text()
    documented = set(re.findall(r"^### (\w+)\s*$", doc, re.M))
    assert documented == {a["alert"] for a in ALL_ALERTS}


def test_every_metric_a_rule_reads_is_one_lpnode_exports(tmp_path):
    """A rule on a name nobody exports never fires (prometheus_client adds _total to counters)."""
    from prometheus_client import generate_latest

    from lpnode.eth.metrics import ChainMetrics
    from lpnode.monitor import NodeMetrics
    from lpnode.pm.payments import PaymentMetrics
    from lpnode.pm.queue import TicketQueue

    metrics = NodeMetrics("orch")
    metrics.watch_pool(lambda: [])
    ChainMetrics(metrics.registry, "orch")
    PaymentMetrics(metrics.registry, "orch", TicketQueue(tmp_path / "q.sqlite3"))
    exported = set(re.findall(r"^# TYPE (\S+)", generate_latest(metrics.registry).decode(), re.M))
    rules = (MONITORING / "rules" / "onchain.yml").read_text() + (MONITORING / "rules" / "lpnode.yml").read_text()
    used = set(re.findall(r"\b((?:lpfleet|livepeer)_[a-z0-9_]+)", rules))
    assert used - exported == set()


# -- expected transcoders, from the inventory --------------------------------------------------

def test_expected_transcoders_sample_is_the_template_rendered():
    sample = MONITORING / "tests" / "expected-transcoders.sample.yml"
    assert render("prometheus/expected-transcoders.yml.j2", hosts=SAMPLE_HOSTS) == sample.read_text(), (
        "monitoring/tests/expected-transcoders.sample.yml is stale: re-render it from "
        "SAMPLE_HOSTS in tests/unit/test_alert_rules.py")


def test_expected_transcoders_counts_and_override(tmp_path):
    hosts = SAMPLE_HOSTS + [
        {"name": "o2", "address": "10.77.0.13", "groups": ["orchestrators"], "expected_transcoders": 5},
        {"name": "o3", "address": "10.77.0.14", "groups": ["orchestrators"]},
    ]
    text = render("prometheus/expected-transcoders.yml.j2", hosts=hosts)
    found = dict(re.findall(r'expr: vector\((\d+)\)\n\s+labels:\n\s+orchestrator: "(\w+)"', text))
    assert {v: int(k) for k, v in found.items()} == {"o1": 2, "solo": 1, "o2": 5, "o3": 0}
    (tmp_path / "expected.yml").write_text(text)
    run(tool("promtool"), "check", "rules", tmp_path / "expected.yml")


def test_expected_transcoders_with_no_orchestrator_is_valid(tmp_path):
    path = tmp_path / "expected.yml"
    path.write_text(render("prometheus/expected-transcoders.yml.j2", hosts=SAMPLE_HOSTS[-1:]))
    run(tool("promtool"), "check", "rules", path)


# -- prometheus.yml ---------------------------------------------------------------------------

def rendered_rules_dir(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    for path in RULES:
        (rules / path.name).write_text(render(f"rules/{path.name}", runbook_base=RUNBOOK_BASE))
    (rules / "expected-transcoders.yml").write_text(
        render("prometheus/expected-transcoders.yml.j2", hosts=SAMPLE_HOSTS))
    return rules


def test_prometheus_config_renders_and_passes_promtool(tmp_path):
    rules = rendered_rules_dir(tmp_path)
    config = tmp_path / "prometheus.yml"
    config.write_text(render("prometheus/prometheus.yml.j2", hosts=SAMPLE_HOSTS, rules_dir=str(rules),
                             external_labels={"fleet": "lab"}))
    out = run(tool("promtool"), "check", "config", config).stdout
    # promtool also checked every rule file the config names.
    assert f"SUCCESS: {len(RULES) + 1} rule files found" in out, out
    text = config.read_text()
    for job in ("lpnode", "lpnode-reward", "node", "alertmanager", "prometheus"):
        assert f"job_name: {job}\n" in text
    # The reward service beside o1's orchestrator: its own port, role reward.
    reward_job = text.split("job_name: lpnode-reward\n", 1)[1].split("job_name:", 1)[0]
    assert re.findall(r'targets: \["([^"]+)"\]\n\s+labels:\n\s+host: "(\w+)"\n\s+role: "(\w+)"', reward_job) == [
        ("10.77.0.11:7936", "o1", "reward")]
    # A transcoder's lpnode target: its address, host, role and orchestrator.
    assert re.search(r'targets: \["10\.77\.0\.21:7935"\]\n\s+labels:\n\s+host: "t1"\n'
                     r'\s+role: "transcoder"\n\s+orchestrator: "o1"', text)
    assert '"[2001:db8::22]:7935"' in text            # IPv6 bracketed
    assert 'role: "orchestrator+transcoder"\n          orchestrator: "solo"' in text
    assert 'role: "orchestrator+reward"' in text       # node exporter: all of the host's roles
    assert '- "10.77.0.31:9093"' in text               # Alertmanager
    assert text.count(":9100\"]") == len(SAMPLE_HOSTS)  # a node exporter on every host


def test_prometheus_config_without_monitoring_host_is_valid(tmp_path):
    config = tmp_path / "prometheus.yml"
    (tmp_path / "rules").mkdir()
    config.write_text(render("prometheus/prometheus.yml.j2", hosts=SAMPLE_HOSTS[:2],
                             rules_dir=str(tmp_path / "rules")))
    run(tool("promtool"), "check", "config", config)


# -- alertmanager.yml -------------------------------------------------------------------------

def alertmanager_config(tmp_path: Path, **context) -> Path:
    templates = tmp_path / "templates"
    templates.mkdir(exist_ok=True)
    shutil.copy(MONITORING / "alertmanager" / "lpfleet.tmpl", templates)
    config = tmp_path / "alertmanager.yml"
    config.write_text(render("alertmanager/alertmanager.yml.j2", templates_dir=str(templates), **context))
    return config


def test_alertmanager_config_renders_every_receiver_type_and_passes_amtool(tmp_path):
    config = alertmanager_config(tmp_path, receivers=SAMPLE_RECEIVERS, smtp=SAMPLE_SMTP)
    out = run(tool("amtool"), "check-config", config).stdout
    assert "1 templates" in out and "3 receivers" in out and "4 inhibit rules" in out, out
    text = config.read_text()
    for integration in ("pagerduty", "slack", "email", "discord", "webhook"):
        assert f"{integration}_configs:" in text
    assert 'smtp_auth_password_file: "/etc/prometheus/secrets/smtp"' in text
    assert 'severity: "critical"' in text                     # PagerDuty severity of a page
    assert 'title: "{{ template \\"lpfleet.title\\" . }}"' in text   # Go templates untouched


def test_alertmanager_config_with_only_a_page_receiver(tmp_path):
    config = alertmanager_config(tmp_path, receivers={"page": [{"type": "webhook", "url": "http://127.0.0.1:9/"}]})
    run(tool("amtool"), "check-config", config)


def test_alertmanager_route_timings_override_the_defaults(tmp_path):
    """The lab's short timings: overrides per route, the other routes and keys untouched."""
    config = alertmanager_config(tmp_path, receivers=SAMPLE_RECEIVERS, smtp=SAMPLE_SMTP, route_timings={
        "default": {"group_wait": "5s"}, "page": {"group_wait": "5s", "group_interval": "10s"}})
    run(tool("amtool"), "check-config", config)
    text = config.read_text()
    assert re.search(r"receiver: ticket\n.*\n.*\n  group_by: \[alertname, orchestrator\]\n  group_wait: 5s\n"
                     r"  group_interval: 5m\n  repeat_interval: 12h\n", text)
    assert "receiver: page\n      group_wait: 5s\n      group_interval: 10s\n      repeat_interval: 2h\n" in text
    assert "receiver: ticket\n      group_wait: 2m\n      group_interval: 15m\n      repeat_interval: 24h\n" in text
    assert "receiver: watchdog\n      group_wait: 0s\n      group_interval: 1m\n      repeat_interval: 1m\n" in text


def test_the_deploy_renders_with_these_settings():
    """roles._ops.render_monitoring (what the deploy uses) renders every template exactly as
    the Jinja2 settings above do."""
    from roles._ops import render_monitoring

    cases = [(f"rules/{p.name}", {"runbook_base": RUNBOOK_BASE}) for p in RULES] + [
        ("prometheus/expected-transcoders.yml.j2", {"hosts": SAMPLE_HOSTS}),
        ("prometheus/prometheus.yml.j2", {"hosts": SAMPLE_HOSTS, "external_labels": {"fleet": "lab"}}),
        ("alertmanager/alertmanager.yml.j2", {"receivers": SAMPLE_RECEIVERS, "smtp": SAMPLE_SMTP}),
    ]
    for template, context in cases:
        assert render_monitoring(template, **context) == render(template, **context), template


def test_alertmanager_routes_by_severity(tmp_path):
    config = alertmanager_config(tmp_path, receivers=SAMPLE_RECEIVERS, smtp=SAMPLE_SMTP)
    amtool = tool("amtool")
    for labels, receiver in [
        (["alertname=LpnodeDown", "severity=page", "host=t1"], "page"),
        (["alertname=HostDiskFilling", "severity=ticket", "host=t1"], "ticket"),
        (["alertname=Watchdog", "severity=none"], "watchdog"),
        (["alertname=SomethingNew"], "ticket"),
    ]:
        out = run(amtool, "config", "routes", "test", f"--config.file={config}", *labels).stdout
        assert out.strip() == receiver, (labels, out)


def test_notification_template_renders(tmp_path):
    data = {
        "receiver": "page", "status": "firing", "externalURL": "http://mon1:9093",
        "groupLabels": {"alertname": "LpnodeDown", "orchestrator": "o1"},
        "commonLabels": {"alertname": "LpnodeDown", "severity": "page", "orchestrator": "o1"},
        "commonAnnotations": {},
        "alerts": [
            {"status": "firing", "labels": {"alertname": "LpnodeDown", "severity": "page", "host": "t1"},
             "annotations": {"summary": "lpnode on t1 is down: run systemctl status lpnode",
                             "description": "No scrape for 2 minutes.",
                             "runbook_url": f"{RUNBOOK_BASE}/alerts.md#lpnodedown"},
             "startsAt": "2026-11-23T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "", "fingerprint": "1"},
            {"status": "resolved", "labels": {"alertname": "LpnodeDown", "severity": "page", "host": "t2"},
             "annotations": {"summary": "lpnode on t2 is down"},
             "startsAt": "2026-11-23T09:00:00Z", "endsAt": "2026-11-23T09:30:00Z",
             "generatorURL": "", "fingerprint": "2"},
        ],
    }
    (tmp_path / "data.json").write_text(json.dumps(data))
    glob = str(MONITORING / "alertmanager" / "lpfleet.tmpl")

    def rendered(name: str) -> str:
        return run(tool("amtool"), "template", "render", f"--template.glob={glob}",
                   f"--template.text={{{{ template \"{name}\" . }}}}",
                   f"--template.data={tmp_path / 'data.json'}").stdout

    assert rendered("lpfleet.title").strip() == "[PAGE x1] LpnodeDown on o1"
    text = rendered("lpfleet.text")
    assert "lpnode on t1 is down: run systemctl status lpnode\nNo scrape for 2 minutes.\n" in text
    assert "Host: t1. Since 2026-11-23 10:00 UTC." in text
    assert f"Runbook: {RUNBOOK_BASE}/alerts.md#lpnodedown" in text
    assert "Resolved: lpnode on t2 is down (host t2)" in text


# -- inhibitions, on a real Alertmanager ------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_inhibitions_on_a_real_alertmanager(tmp_path):
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.fail("prometheus-alertmanager is not installed: run scripts/setup")
    # Receivers that deliver nowhere (a closed local port): only the inhibition state matters.
    nowhere = [{"type": "webhook", "url": "http://127.0.0.1:9/"}]
    config = alertmanager_config(tmp_path, receivers={"page": nowhere, "ticket": nowhere, "watchdog": nowhere})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Alertmanager did not start: {proc.stderr.read().decode() if proc.poll() is not None else 'timeout'}")
                time.sleep(0.2)

        def alert(name, severity, **labels):
            return {"labels": {"alertname": name, "severity": severity, **labels}}
        sent = {
            # 1. t1 is down as a host: its lpnode and disk alerts are consequences.
            "t1 host down": alert("HostDown", "page", host="t1", role="transcoder", orchestrator="o1"),
            "t1 lpnode down": alert("LpnodeDown", "page", host="t1", role="transcoder", orchestrator="o1"),
            "t1 disk": alert("HostDiskFilling", "ticket", host="t1", mountpoint="/"),
            # ... and o1's missing transcoder is t1; o2's missing one is not explained by it.
            "o1 below expected": alert("LpnodeTranscodersBelowExpected", "ticket", host="o1", orchestrator="o1"),
            "o2 below expected": alert("LpnodeTranscodersBelowExpected", "ticket", host="o2", orchestrator="o2"),
            # 2. lpnode down on t3 (host up): its GPU alert goes, its restart loop and disk stay.
            "t3 lpnode down": alert("LpnodeDown", "page", host="t3", role="transcoder", orchestrator="o3"),
            "t3 gpu hot": alert("LpnodeGpuHot", "ticket", host="t3", gpu="0", uuid="GPU-a"),
            "t3 restart loop": alert("LpnodeRestartLoop", "page", host="t3", role="transcoder", orchestrator="o3"),
            "t3 disk": alert("HostDiskFilling", "ticket", host="t3", mountpoint="/"),
            # 3. A page suppresses the ticket of the same alert and labels, not another GPU's.
            "t4 gpu0 page": alert("LpnodeGpuMemoryPressure", "page", host="t4", gpu="0", uuid="GPU-b"),
            "t4 gpu0 ticket": alert("LpnodeGpuMemoryPressure", "ticket", host="t4", gpu="0", uuid="GPU-b"),
            "t4 gpu1 ticket": alert("LpnodeGpuMemoryPressure", "ticket", host="t4", gpu="1", uuid="GPU-c"),
            "watchdog": alert("Watchdog", "none"),
        }
        request = urllib.request.Request(f"{url}/api/v2/alerts", data=json.dumps(list(sent.values())).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(request, timeout=5).read()
        expected_suppressed = {"t1 lpnode down", "t1 disk", "o1 below expected", "t3 gpu hot", "t4 gpu0 ticket"}

        def states() -> dict[str, str]:
            got = json.load(urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5))
            by_labels = {json.dumps(a["labels"], sort_keys=True): a["status"]["state"] for a in got}
            return {key: by_labels.get(json.dumps(a["labels"], sort_keys=True), "missing")
                    for key, a in sent.items()}
        deadline = time.monotonic() + 10
        while True:   # inhibition is worked out as alerts arrive; give it a moment
            current = states()
            if {k for k, s in current.items() if s == "suppressed"} == expected_suppressed \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert {k for k, s in current.items() if s == "suppressed"} == expected_suppressed, current
        assert all(s == "active" for k, s in current.items() if k not in expected_suppressed), current
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
