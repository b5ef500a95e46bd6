"""What the monitoring roles share: their ports, who may reach them, and the inventory as the
scrape configuration sees it.

The roles themselves are one module each: node_exporter (every host), prometheus and
alertmanager (monitoring hosts), grafana (monitoring hosts, production).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from roles.haproxy import METRICS_PORT as HAPROXY_PORT
from roles.redeemer import CLI_PORT as REDEEMER_PORT
from roles.reward import CLI_PORT as REWARD_PORT

NODE_EXPORTER_PORT = 9100
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
GRAFANA_PORT = 3000

# The Debian packages' layout (prometheus, prometheus-alertmanager).
PROMETHEUS_CONFIG_DIR = "/etc/prometheus"
RULES_DIR = f"{PROMETHEUS_CONFIG_DIR}/rules"
ALERTMANAGER_TEMPLATES_DIR = f"{PROMETHEUS_CONFIG_DIR}/alertmanager_templates"
# Receiver secrets (keys, webhook URLs) the deploy uploads; Alertmanager reads them by path.
ALERTMANAGER_SECRETS_DIR = f"{PROMETHEUS_CONFIG_DIR}/secrets"
SERVICE_GROUP = "prometheus"  # the packages' system user and group


def admin_tcp_ports(grafana: bool) -> list[int]:
    """Ports a monitoring host serves to operators (admin_networks only): the Prometheus and
    Alertmanager web UIs and APIs, and Grafana where it runs."""
    return [PROMETHEUS_PORT, ALERTMANAGER_PORT] + ([GRAFANA_PORT] if grafana else [])


def monitoring_tcp_ports() -> list[int]:
    """Ports a monitoring host serves to the other monitoring hosts: each Prometheus scrapes
    every Prometheus and Alertmanager and sends its alerts to every Alertmanager
    (monitoring/prometheus/prometheus.yml.j2)."""
    return [PROMETHEUS_PORT, ALERTMANAGER_PORT]


def scrape_hosts(specs: Iterable[Any]) -> list[dict[str, Any]]:
    """The ``hosts`` context of prometheus.yml.j2 and expected-transcoders.yml.j2 from the
    inventory's hosts (``inventory.validate.HostSpec``), in inventory order.

    Only what the templates read goes in, so a change elsewhere in a host's data does not touch
    the monitoring host's files."""
    hosts = []
    for spec in specs:
        entry: dict[str, Any] = {
            "name": spec.name,
            "address": spec.address,
            "groups": sorted(spec.groups),
        }
        if spec.data.get("orchestrator"):
            entry["orchestrator"] = str(spec.data["orchestrator"])
        if spec.data.get("expected_transcoders") is not None:
            entry["expected_transcoders"] = int(spec.data["expected_transcoders"])
        if "reward" in spec.groups:
            entry["reward_port"] = int(spec.data.get("reward_cli_port", REWARD_PORT))
        if "redeemers" in spec.groups:
            entry["redeemer_port"] = int(spec.data.get("redeemer_cli_port", REDEEMER_PORT))
        if "load_balancers" in spec.groups:
            entry["haproxy_port"] = int(spec.data.get("haproxy_metrics_port", HAPROXY_PORT))
        hosts.append(entry)
    return hosts
