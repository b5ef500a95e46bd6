"""Prometheus on the monitoring host, from Debian's package: the scrape configuration and the
alert rules rendered from the inventory, each checked with promtool before it goes live.

Rule files go live first, each after ``promtool check rules``, because ``promtool check config``
also loads every rule file the configuration names: checked in the other order, a new
configuration would be judged against the old rules. Prometheus is then reloaded once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, files

from roles._facts import ConfigLoaded
from roles._ops import (
    MONITORING_DIR,
    packaged_service,
    remove_stale_files,
    service_flags,
    validated_template,
    wait_config_loaded,
)
from roles.common import missing_packages
from roles.monitoring import PROMETHEUS_CONFIG_DIR, PROMETHEUS_PORT, RULES_DIR
from roles.settings import RoleSettings, duration, setting

PACKAGE = "prometheus"
SERVICE = "prometheus"
DEFAULTS_FILE = "/etc/default/prometheus"
CONFIG_PATH = f"{PROMETHEUS_CONFIG_DIR}/prometheus.yml"
DATA_DIR = "/var/lib/prometheus/metrics2"
# Rendered from the inventory into the rules directory, next to monitoring/rules/*.yml.
EXPECTED_TRANSCODERS = "expected-transcoders.yml"
METRICS_URL = f"http://127.0.0.1:{PROMETHEUS_PORT}/metrics"

# Prometheus' duration syntax (1d, 15s, 1h30m); checked here so a typo stops the deploy with the
# setting's name instead of a promtool message about the rendered file.


def shipped_rule_files() -> list[Path]:
    return sorted((MONITORING_DIR / "rules").glob("*.yml"))


def rule_file_names(extra_rule_files: list[str] | None = None) -> list[tuple[str, str]]:
    """(source, file name in the rules directory) for every rule file: the shipped ones
    (monitoring/rules/), then the operator's own (local paths). Names must not clash."""
    sources = [(f"rules/{p.name}", p.name) for p in shipped_rule_files()]
    taken = {name for _, name in sources} | {EXPECTED_TRANSCODERS}
    for path in extra_rule_files or []:
        local = Path(path).expanduser()
        if not local.is_file():
            raise DeployError(f"{host.name}: prometheus_extra_rule_files: {local} is not a file on this machine")
        if local.suffix != ".yml" or local.name in taken:
            raise DeployError(
                f"{host.name}: prometheus_extra_rule_files: {local.name} must end in .yml and not be one of "
                f"{', '.join(sorted(taken))} (rename it)"
            )
        taken.add(local.name)
        sources.append((str(local.resolve()), local.name))
    return sources


def server_flags(address: str, retention_time: str, retention_size: str, external_url: str) -> list[str]:
    flags = [
        f"--config.file={CONFIG_PATH}",
        f"--storage.tsdb.path={DATA_DIR}",
        f"--storage.tsdb.retention.time={retention_time}",
        f"--web.listen-address=:{PROMETHEUS_PORT}",
        f"--web.external-url={external_url or default_external_url(address, PROMETHEUS_PORT)}",
    ]
    if retention_size:
        flags.append(f"--storage.tsdb.retention.size={retention_size}")
    return flags


def default_external_url(address: str, port: int) -> str:
    """Where operators reach the UI (links in alerts and notifications point there)."""
    return f"http://{'[' + address + ']' if ':' in address else address}:{port}/"


def runbook_base_problem(value: Any) -> str | None:
    if not value:
        return "is empty: alerts would have no runbook link; set it to where your copy of docs/ can be read"
    if not re.fullmatch(r"(https?|file)://[^\s\"'<>]+", str(value)) or str(value).endswith("/"):
        return ("should be an http(s):// or file:// URL without spaces, quotes or a trailing slash, "
                "e.g. https://github.com/ORG/lpfleet/blob/main/docs")
    return None


def extra_rule_files_problem(paths: list[str]) -> str | None:
    taken = {p.name for p in shipped_rule_files()} | {EXPECTED_TRANSCODERS}
    found = []
    for value in paths:
        path = Path(str(value)).expanduser()
        if not path.is_file():
            found.append(f"{path} is not a file on this machine")
        elif path.suffix != ".yml" or path.name in taken:
            found.append(f"{path.name} must end in .yml and not be named like another rule file "
                         f"({', '.join(sorted(taken))}); rename it")
        taken.add(path.name)
    return "has problems: " + "; ".join(found) if found else None


@dataclass(frozen=True)
class PrometheusSettings(RoleSettings):
    """The prometheus role's settings: inventory data ``prometheus_<field>``."""

    PREFIX: ClassVar[str] = 'prometheus_'
    ROLE: ClassVar[str] = 'prometheus'

    runbook_base: str = setting(
        check=runbook_base_problem,
        doc="where your copy of docs/ can be read, no trailing slash: every alert links to "
            "`<runbook_base>/alerts.md#<alert>`")
    scrape_interval: str = setting(
        '15s', check=duration,
        doc="how often every target is scraped (the dashboards' rates assume 15s)")
    evaluation_interval: str = setting("15s", doc='how often the rules are evaluated', check=duration)
    retention_time: str = setting(
        '30d', check=duration,
        doc="how long samples are kept (`--storage.tsdb.retention.time`)")
    retention_size: str = setting("", doc="also cap the database's size, e.g. `50GB`; empty: no cap")
    external_labels: dict[str, str] = setting(
        factory=dict,
        doc='labels added to every alert and series leaving this Prometheus, e.g. `{"fleet": "eu"}`')
    external_url: str = setting(
        '',
        doc="the URL operators use to reach this Prometheus; default `http://<address>:9090/`")
    extra_rule_files: list[str] = setting(
        factory=list, check=extra_rule_files_problem,
        doc="your own rule files (paths on this machine), installed and checked with lpfleet's (`[[ "
            "runbook_base ]]` is filled in)")


@deploy("prometheus")
def prometheus(
    address: str,
    hosts: list[dict],
    settings: PrometheusSettings,
) -> None:
    """Prometheus scraping the fleet and evaluating lpfleet's alert rules (PrometheusSettings).

    + address: this host's address (the default external URL, and its own scrape target)
    + hosts: every host of the inventory as the scrape template takes it (roles.monitoring.scrape_hosts)
    """
    s = settings
    rules = rule_file_names(s.extra_rule_files)

    package = apt.packages(
        name=f"Install {PACKAGE}",
        packages=[PACKAGE],
        # Its one Recommends is the node exporter, which the node_exporter role installs.
        no_recommends=True,
        update=bool(missing_packages([PACKAGE])),
    )
    flags = service_flags("Prometheus", DEFAULTS_FILE,
                          server_flags(address, s.retention_time, s.retention_size, s.external_url))

    files.directory(name=f"Rules directory {RULES_DIR}", path=RULES_DIR, user="root", group="root", mode="755")
    changed = []
    for src, name in rules:
        changed.append(validated_template(
            name=f"Alert rules {RULES_DIR}/{name} (checked with promtool check rules)",
            src=src,
            dest=f"{RULES_DIR}/{name}",
            validate="promtool check rules {path}",
            source="monitoring",
            runbook_base=s.runbook_base,
        ))
    changed.append(validated_template(
        name=f"Expected transcoders {RULES_DIR}/{EXPECTED_TRANSCODERS}, from the inventory (promtool check rules)",
        src=f"prometheus/{EXPECTED_TRANSCODERS}.j2",
        dest=f"{RULES_DIR}/{EXPECTED_TRANSCODERS}",
        validate="promtool check rules {path}",
        source="monitoring",
        hosts=hosts,
    ))
    changed.append(validated_template(
        name=f"Prometheus configuration {CONFIG_PATH} (checked with promtool check config)",
        src="prometheus/prometheus.yml.j2",
        dest=CONFIG_PATH,
        # Also loads every rule file it names: the ones just put live.
        validate="promtool check config {path}",
        source="monitoring",
        hosts=hosts,
        rules_dir=RULES_DIR,
        scrape_interval=s.scrape_interval,
        evaluation_interval=s.evaluation_interval,
        external_labels=s.external_labels or {},
    ))
    # After the configuration: a refused one leaves Prometheus and its rules directory as they
    # were. (A stale file was checked when it went live, so it cannot fail the check above.)
    changed.append(remove_stale_files(
        name=f"No other rule files in {RULES_DIR}",
        directory=RULES_DIR,
        pattern="*.yml",
        keep=[name for _, name in rules] + [EXPECTED_TRANSCODERS],
    ))

    reload_metric, watched = "prometheus_config_last_reload", [CONFIG_PATH, f"{RULES_DIR}/*.yml"]
    loaded = host.get_fact(ConfigLoaded, metrics_url=METRICS_URL, prefix=reload_metric, patterns=watched)
    service = packaged_service(
        "Prometheus",
        SERVICE,
        # New flags need a new process; a new configuration or rule file only a reload (SIGHUP),
        # which keeps the data in memory and the scrapes going.
        restart=package.will_change or flags.will_change,
        reload=any(op.will_change for op in changed) or loaded is False,
    )
    wait_config_loaded(name="Prometheus runs the new configuration", label="Prometheus",
                       metrics_url=METRICS_URL, prefix=reload_metric, patterns=watched,
                       _if=service.did_change)
