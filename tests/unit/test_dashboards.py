"""Grafana dashboards (monitoring/dashboards/*.json), without Grafana.

Grafana cannot be installed here, so the dashboards are checked for what Grafana 11 needs to
load them as provisioned files (classic JSON model, schemaVersion 39), and their queries with
real tools:

- structure: required keys, unique panel ids, a gridPos on the 24-column grid with no overlap,
  every panel and target on the `${datasource}` variable, every target with an expr and a
  unique refId, every `$variable` defined;
- every expr parses: they are written into a rules file as recording rules and checked with
  `promtool check rules` (Prometheus' own parser);
- every metric a query or an alert rule reads is one something exports: lpnode's registry
  (with the GPU collector on a pynvml test double) and a real node exporter's /metrics.

tests/lab/test_dashboard_queries.py runs the same queries against the lab's Prometheus.
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

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "monitoring" / "dashboards").glob("*.json"))
RULES = sorted((ROOT / "monitoring" / "rules").glob("*.yml"))

SCHEMA_VERSION = 39   # Grafana 11.0-11.2 write 39; later versions migrate it on load
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"row", "timeseries", "stat", "table", "gauge", "bargauge", "text"}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}
# What a Grafana variable stands for when an expr is parsed: any syntactically valid value.
SAMPLE_VALUES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600",
                 "__interval_ms": "15000"}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def all_panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))   # panels inside a collapsed row
    return out


def variables(dashboard: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def substitute(expr: str, dashboard: dict) -> str:
    """The expr with Grafana's variables replaced by values of the right shape."""
    defined = variables(dashboard)

    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in SAMPLE_VALUES:
            return SAMPLE_VALUES[name]
        var = defined[name]
        return var.get("allValue", ".*") if var.get("includeAll") else "sample"
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def targets(dashboard: dict) -> list[tuple[dict, dict]]:
    return [(p, t) for p in all_panels(dashboard) if p["type"] != "row" for t in p.get("targets", [])]


@pytest.fixture(params=DASHBOARDS, ids=lambda p: p.name)
def dashboard(request) -> dict:
    return load(request.param)


def test_both_dashboards_exist():
    assert {p.name for p in DASHBOARDS} >= {"fleet-overview.json", "transcoder-detail.json"}


def test_dashboard_model(dashboard):
    for key in ("title", "uid", "panels", "templating", "time", "schemaVersion", "tags", "editable",
                "annotations", "refresh"):
        assert key in dashboard, key
    assert dashboard["schemaVersion"] == SCHEMA_VERSION
    # Provisioned from files: Grafana assigns the numeric id; the uid keeps links stable.
    assert dashboard.get("id") is None
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert isinstance(dashboard["refresh"], str)   # schema 40 makes anything else ""
    assert "lpfleet" in dashboard["tags"]


def test_panels(dashboard):
    panels = all_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), ids
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        assert panel["type"] in PANEL_TYPES, panel["type"]
        assert panel.get("title"), panel["id"]
        grid = panel["gridPos"]
        assert set(grid) >= {"h", "w", "x", "y"} and all(isinstance(grid[k], int) for k in "hwxy")
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["y"] >= 0
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']}: wider than Grafana's 24 columns"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
        if panel["type"] == "row":
            assert grid["w"] == 24 and grid["h"] == 1 and "collapsed" in panel
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert "defaults" in panel["fieldConfig"] and "overrides" in panel["fieldConfig"]
        assert isinstance(panel["options"], dict)
        assert panel.get("description"), f"{panel['title']}: say what the panel shows"
        refs = [t["refId"] for t in panel["targets"]]
        assert panel["targets"] and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target.get("expr", "").strip(), f"{panel['title']} {target['refId']}: no expr"


def test_variables(dashboard):
    defined = variables(dashboard)
    assert len(defined) == len(dashboard["templating"]["list"])
    ds = defined["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for var in defined.values():
        assert re.fullmatch(r"[a-z]\w*", var["name"])
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE
            assert var["definition"] and var["query"]["query"] == var["definition"]
            assert re.fullmatch(r"label_values\(.+, \w+\)", var["definition"]), var["definition"]
    used = set()
    texts = [t["expr"] for _, t in targets(dashboard)] + \
            [v["definition"] for v in defined.values() if v["type"] == "query"]
    for text in texts:
        used |= {a or b for a, b in re.findall(r"\$\{(\w+)\}|\$(\w+)", text)}
    assert used - GRAFANA_BUILTINS <= set(defined), used - GRAFANA_BUILTINS - set(defined)


def test_every_expr_parses_with_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run scripts/setup (Debian package prometheus)")
    rules = []
    for path in DASHBOARDS:
        dashboard = load(path)
        exprs = [(f"{p['id']}_{t['refId']}", t["expr"]) for p, t in targets(dashboard)]
        # The variables' own queries too (label_values(SELECTOR, label): the selector).
        for var in variables(dashboard).values():
            if var["type"] == "query":
                selector = re.fullmatch(r"label_values\((.+), \w+\)", var["definition"]).group(1)
                exprs.append((f"var_{var['name']}", selector))
        for name, expr in exprs:
            rules.append({"record": f"dashboard:{path.stem.replace('-', '_')}:{name}",
                          "expr": substitute(expr, dashboard)})
    # JSON is YAML: no YAML library needed to write a rules file.
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}, indent=1))
    p = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(rules)} rules found" in p.stdout


# -- every metric read is one that something exports --------------------------------------------

def metric_names(expr: str) -> set[str]:
    # Every selector in these files is written `name{...}`: collect the names before a brace.
    return set(re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\{", expr))


def lpnode_metric_names() -> set[str]:
    """Everything an orchestrator, a transcoder and a GPU transcoder expose on /metrics."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from lpnode.core.pool import WorkerSnapshot
    from lpnode.monitor import NodeMetrics
    from lpnode.server.tls import ensure_self_signed
    from tests.unit.test_gpu_metrics import FakeNvml, board, gpu   # the pynvml test double

    orch, trcr = NodeMetrics("orch"), NodeMetrics("trcr")
    orch.watch_pool(lambda: [WorkerSnapshot(id="w", address="10.0.0.1:1", name="t1:7935", capacity=1, load=0,
                                            connected_at=0.0, in_flight=0, draining=False,
                                            penalised=False)])
    orch.transcoder_result("10.0.0.1:1", True, 1.0, 2.0)
    orch.segment_done(1.0, 2.0)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        cert, _ = ensure_self_signed(Path(d), "127.0.0.1")
        orch.set_certificate(cert)
    # Two GPUs, one with a failing reading, so the error counter is there too.
    trcr.watch_gpus([gpu(), gpu(1, "GPU-bbbb")],
                    nvml=FakeNvml({"GPU-aaaa": board(), "GPU-bbbb": board(temp=FakeNvml.fail(9))}))
    from lpnode.eth.metrics import ChainMetrics
    from lpnode.pm.payments import PaymentMetrics
    from lpnode.pm.queue import TicketQueue
    with tempfile.TemporaryDirectory() as d:
        ChainMetrics(orch.registry, "orch")
        payments = PaymentMetrics(orch.registry, "orch", TicketQueue(Path(d) / "tickets.sqlite3"))
        # Labelled by reason: a series only once something was refused or failed.
        payments.error("insufficient_balance")
        payments.redeem_error("gas")
    names = set()
    for metrics in (orch, trcr):
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
            names |= {s.name for s in family.samples}
    return names


def node_exporter_metric_names() -> set[str]:
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        pytest.fail("the node exporter is not installed: run scripts/setup (Debian package "
                    "prometheus, which brings prometheus-node-exporter)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the node exporter did not start")
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def rule_exprs(path: Path) -> list[str]:
    """The `expr:` of every rule in a rule file: the line itself, or the block under `expr: |`."""
    exprs, lines = [], path.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if not m or line.lstrip().startswith("#"):
            continue
        if m.group(2) != "|":
            exprs.append(m.group(2))
            continue
        block = []
        for following in lines[i + 1:]:
            if following.strip() and len(following) - len(following.lstrip()) <= len(m.group(1)):
                break
            block.append(following)
        exprs.append("\n".join(block))
    return exprs


# Series from Prometheus and Alertmanager themselves, and recorded from the inventory.
OTHER_SOURCES = {"up", "ALERTS", "lpfleet:expected_transcoders", "prometheus_rule_evaluation_failures_total",
                 "alertmanager_notifications_failed_total"}


def test_every_metric_read_is_exported():
    exported = lpnode_metric_names() | node_exporter_metric_names() | OTHER_SOURCES
    read: dict[str, str] = {}
    for path in DASHBOARDS:
        for panel, target in targets(load(path)):
            for name in metric_names(target["expr"]):
                read[name] = f"{path.name}: {panel['title']}"
    for path in RULES:
        for expr in rule_exprs(path):
            for name in metric_names(expr):
                read.setdefault(name, path.name)
    unknown = {name: where for name, where in read.items() if name not in exported}
    assert not unknown, f"metrics nothing exports: {unknown}"
    # lpnode's GPU and process series are among them, so the check has teeth.
    assert {"lpnode_gpu_temperature_celsius", "process_start_time_seconds",
            "node_filesystem_avail_bytes", "lpnode_segment_realtime_ratio_bucket"} <= set(read)
