"""Every Grafana panel query returns data from the lab's Prometheus after a test stream.

    .venv/bin/python -m pytest tests/lab/test_dashboard_queries.py -q

Grafana itself is not installed anywhere here (tests/unit/test_dashboards.py checks the JSON and
parses the queries); this test runs each panel's query, with the dashboard's variables filled
in the way Grafana would, against the Prometheus the monitoring deploy runs on mon1
(10.77.0.31:9090), and expects data:

- a test stream (two streams, so both transcoders work) goes through o1 first, and the test
  waits until Prometheus has scraped its segments;
- range queries (time series panels) must return at least one series with a finite value over
  the last 10 minutes; instant queries (stat and table panels) at least one series now;
- the GPU panels need a transcoder with -nvidia: without one in the lab their queries must
  still be accepted by Prometheus and return nothing.

Runs on the deployed lab (the session's `deployed` fixture: Prometheus, its rules including the
inventory's expected transcoders, node exporters); without Prometheus on mon1 it fails saying so.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from lab import chain as lab_chain

from .monitoring_api import Prometheus, wait_until

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "monitoring" / "dashboards").glob("*.json"))
MONITORING_HOST = "mon1"
PROMETHEUS_PORT = 9090
ORCH = "o1"
WINDOW_S = 600            # how far back range queries look
STEP_S = 15
RATE_INTERVAL = "1m"      # Grafana's $__rate_interval for a 15 s scrape interval (the lab's 5 s fits too)


# -- collected at import: one test per panel query ------------------------------------------------

def _panel_targets():
    out = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        panels = [p for top in dashboard["panels"] for p in [top, *top.get("panels", [])]]
        for panel in panels:
            for target in panel.get("targets", []):
                out.append(pytest.param(path.stem, dashboard, panel, target,
                                        id=f"{path.stem}/{panel['title']}/{target['refId']}"))
    return out


@pytest.fixture(scope="module")
def prometheus(lab, deployed) -> Prometheus:
    address = lab.host(MONITORING_HOST).address
    prom = Prometheus(f"http://{address}:{PROMETHEUS_PORT}")
    try:
        urllib.request.urlopen(f"{prom.url}/-/ready", timeout=5).read()
    except OSError as exc:
        pytest.fail(f"no Prometheus at {prom.url} ({exc}): the monitoring deploy must run first "
                    f"(pyinfra -y inventory/lab.py deploys/fleet.py, with the Prometheus role on "
                    f"{MONITORING_HOST})")
    return prom


@pytest.fixture(scope="module")
def streamed(prometheus, lab) -> None:
    """Two streams through o1, then wait until Prometheus has scraped the segments."""
    segments = f'sum(livepeer_segment_source_appeared_total{{job="lpnode", host="{ORCH}"}})'
    before = prometheus.value(segments)
    assert before is not None, f"Prometheus has no lpnode series from {ORCH}: is its 7935 scraped? " \
                               f"(see {prometheus.url}/targets)"
    orch_address = lab.host(ORCH).address
    p = subprocess.run(
        [str(Path(sys.executable).with_name("lpnode")), "test-stream", "-orchAddr", f"{orch_address}:8935",
         "-streams", "2", "-segments", "8", "-resolution", "640x360", "-quiet", *lab_chain.stream_flags(lab.chain)],
        capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    wait_until(lambda: (prometheus.value(segments) or 0) >= before + 16, 90,
               "Prometheus to scrape the test stream's segments")
    # One more scrape of o1 after that, so rates over the stream have two points after it.
    last_scrape = f'timestamp(up{{job="lpnode", host="{ORCH}"}})'
    scraped_at = prometheus.value(last_scrape)
    wait_until(lambda: (prometheus.value(last_scrape) or 0) > scraped_at, 30,
               f"one more scrape of {ORCH}")


@pytest.fixture(scope="module")
def variable_values(prometheus, streamed) -> dict[str, dict[str, str]]:
    """Per dashboard, a value for each variable, chosen the way an operator would: All where
    the variable offers it, else the transcoder that did most of the test stream."""
    busiest = prometheus.instant(
        'topk(1, sum by (host) (increase(livepeer_segment_transcoded_total{job="lpnode", role=~".*transcoder.*"}[10m])))'
    )["data"]["result"]
    assert busiest, "no transcoder has transcoded segments in the last 10 minutes"
    host = busiest[0]["metric"]["host"]
    values = {}
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        chosen: dict[str, str] = {"__rate_interval": RATE_INTERVAL, "__interval": f"{STEP_S}s",
                                  "__range": f"{WINDOW_S}s"}
        for var in dashboard["templating"]["list"]:
            if var["type"] != "query":
                continue
            selector, label = re.fullmatch(r"label_values\((.+), (\w+)\)", var["definition"]).groups()
            options = prometheus.label_values(_fill(selector, chosen), label)
            if var["name"] == "host":
                assert host in options, f"{path.name}: ${var['name']} offers {options}, not {host}"
                chosen["host"] = host
                continue
            if var.get("includeAll"):
                chosen[var["name"]] = var.get("allValue", ".*")
                continue
            assert options, f"{path.name}: variable ${var['name']} ({var['definition']}) has no values"
            value = options[0]
            if var.get("regex"):
                match = re.search(var["regex"].strip("/"), value)
                value = match.group(1) if match and match.groups() else value
            chosen[var["name"]] = value
        values[path.stem] = chosen
    return values


def _fill(expr: str, chosen: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: chosen[m.group(1) or m.group(2)], expr)


@pytest.fixture(scope="module")
def lab_has_gpu(prometheus, streamed) -> bool:
    return bool(prometheus.instant('count(lpnode_gpu_info{job="lpnode"})')["data"]["result"])


@pytest.mark.parametrize("name, dashboard, panel, target", _panel_targets())
def test_panel_query_returns_data(prometheus, variable_values, lab_has_gpu, name, dashboard, panel, target):
    expr = _fill(target["expr"], variable_values[name])
    instant = target.get("instant", False)
    answer = prometheus.instant(expr) if instant else prometheus.range(expr, WINDOW_S, STEP_S)
    assert answer.get("status") == "success", \
        f"Prometheus refused the query of {panel['title']!r}:\n{expr}\n{answer.get('error')}"
    result = answer["data"]["result"]
    if instant:
        has_data = bool(result)
    else:
        has_data = any(math.isfinite(float(v)) for series in result for _, v in series["values"])
    if "lpnode_gpu_" in expr and not lab_has_gpu:
        # No transcoder has -nvidia in the lab: Prometheus accepted the query (above), and GPU
        # panels must show no GPU (a GPU count of 0 is right) rather than made-up readings.
        values = ([series["value"][1]] if instant else [v for _, v in series["values"]]
                  for series in result)
        made_up = [series for series in result if "gpu" in series["metric"]]
        assert not made_up and all(float(v) == 0 for vs in values for v in vs), \
            f"{panel['title']!r}: GPU data without a GPU:\n{expr}\n{result}"
        return
    assert has_data, (f"{panel['title']!r}: no data " + ("now" if instant else f"in the last {WINDOW_S} s")
                      + f":\n{expr}\n{result}")
