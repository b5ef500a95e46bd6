"""Inventory validation for the monitoring hosts' data (docs/monitoring.md): receivers and
their secrets, durations, the runbook base, Grafana's settings. Part of inventory.validate:
every problem names the host, the setting and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from inventory.validate import MONITORING, ORCHESTRATORS, HostSpec, Problem, _check_secret, _check_secret_file
from roles.alertmanager import CHANNEL_TYPES, RECEIVERS, ROUTES, TIMINGS, secret_ref
from roles.prometheus import DURATION, EXPECTED_TRANSCODERS, shipped_rule_files

# Fields that hold a secret when given as a value: written in the inventory, it would be in
# the repository. (A webhook `url` may or may not carry a token: allowed either way.)
SECRET_FIELDS = {
    "routing_key": "routing_key_file", "service_key": "service_key_file", "api_url": "api_url_file",
    "webhook_url": None, "auth_password": "auth_password_file", "auth_secret": None,
    "password": "password_file", "credentials": "credentials_file", "bearer_token": "bearer_token_file",
}

# What each channel type cannot do without (one of each tuple).
REQUIRED: dict[str, list[tuple[str, ...]]] = {
    "email": [("to",)],
    "pagerduty": [("routing_key_file", "service_key_file", "routing_key", "service_key")],
    "slack": [("api_url_file", "api_url"), ("channel",)],
    "discord": [("webhook_url",)],
    "webhook": [("url",)],
}

DOCS = "docs/monitoring.md"


def _walk(value: Any, path: str):
    """(dotted path, key, value) of every field under ``value``; secret references (and
    mappings that look like a broken one) are leaves."""
    if isinstance(value, dict) and not set(value) & {"env", "file"}:
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")
    else:
        yield path, path.rsplit(".", 1)[-1], value


def _check_fields(h: HostSpec, setting: str, fields: Mapping[str, Any], environ: Mapping[str, str]) -> list[Problem]:
    """Secret references resolve on this machine, no secret is written out, ``*_file`` paths
    are absolute."""
    problems = []
    for path, key, value in _walk(dict(fields), ""):
        where = f"{setting} {path}"
        source = secret_ref(value)
        if source is not None:
            if source.file:
                problems += _check_secret_file(h.name, source.file, where, "receiver secret")
            elif not environ.get(source.env or ""):
                problems.append(Problem(h.name, f"{where}: environment variable {source.env} is not set or empty. "
                                                f"Fix: export {source.env}=... in the shell you deploy from"))
            continue
        if isinstance(value, dict) and set(value) & {"env", "file"}:
            problems.append(Problem(h.name, f"{where}: a secret reference is {{\"env\": \"NAME\"}} or "
                                            "{\"file\": \"path\"}, exactly one key"))
        elif key in SECRET_FIELDS and value not in (None, ""):
            instead = SECRET_FIELDS[key]
            fix = f"{key}: {{\"env\": \"NAME\"}}" + (f" or {instead}: {{\"file\": \"~/path\"}}" if instead else "")
            problems.append(Problem(h.name, f"{where} is a secret written into the inventory. Fix: name where it is "
                                            f"on the machine you deploy from instead ({fix}; {DOCS})"))
        elif key.endswith("_file") and isinstance(value, str) and not value.startswith("/"):
            problems.append(Problem(h.name, f"{where} = {value!r}: a plain *_file value is a path on the monitoring "
                                            "host and must be absolute; to upload a file from this machine write "
                                            f"{{\"file\": {value!r}}}"))
    return problems


def _check_receivers(h: HostSpec, environ: Mapping[str, str]) -> list[Problem]:
    receivers = h.data.get("alertmanager_receivers")
    if not receivers:
        return [Problem(h.name, "no alertmanager_receivers: alerts would reach nobody. Fix: set alertmanager_receivers "
                                f"with at least one `page` channel in the monitoring host's data ({DOCS}#receivers)")]
    if not isinstance(receivers, Mapping):
        return [Problem(h.name, "alertmanager_receivers must be a mapping: {\"page\": [...], \"ticket\": [...], "
                                "\"watchdog\": [...]}")]
    problems = []
    unknown = sorted(set(receivers) - set(RECEIVERS))
    if unknown:
        problems.append(Problem(h.name, f"alertmanager_receivers: unknown receiver(s) {', '.join(map(str, unknown))}; "
                                        f"the receivers are {', '.join(RECEIVERS)}"))
    if not receivers.get("page"):
        problems.append(Problem(h.name, "alertmanager_receivers has no `page` channel, so pages would reach nobody. "
                                        f"Fix: add at least one channel under \"page\" ({DOCS}#receivers)"))
    smtp = h.data.get("alertmanager_smtp") or {}
    for receiver in RECEIVERS:
        channels = receivers.get(receiver) or []
        if not isinstance(channels, list):
            problems.append(Problem(h.name, f"alertmanager_receivers {receiver} must be a list of channels"))
            continue
        for index, channel in enumerate(channels, start=1):
            where = f"alertmanager_receivers {receiver} #{index}"
            kind = channel.get("type") if isinstance(channel, Mapping) else None
            if kind not in CHANNEL_TYPES:
                problems.append(Problem(
                    h.name, f"{where}: type must be one of {', '.join(CHANNEL_TYPES)}, not {kind!r}"))
                continue
            for options in REQUIRED[kind]:
                if not any(channel.get(o) for o in options):
                    problems.append(Problem(h.name, f"{where} ({kind}) needs {' or '.join(options)}"))
            if kind == "email":
                for key in ("smarthost", "from"):
                    if not (channel.get(key) or smtp.get(key)):
                        problems.append(Problem(h.name, f"{where} (email) needs an SMTP {key}: set alertmanager_smtp "
                                                        f"{{\"{key}\": ...}} (or {key} in the channel)"))
            problems += _check_fields(h, where, {k: v for k, v in channel.items() if k != "type"}, environ)
    if smtp:
        if not isinstance(smtp, Mapping):
            problems.append(Problem(
                h.name, "alertmanager_smtp must be a mapping (smarthost, from, auth_username, ...)"))
        else:
            problems += _check_fields(h, "alertmanager_smtp", smtp, environ)
    return problems


def _check_durations(h: HostSpec) -> list[Problem]:
    problems = []
    for key in ("prometheus_scrape_interval", "prometheus_evaluation_interval", "prometheus_retention_time",
                "alertmanager_resolve_timeout", "alertmanager_data_retention"):
        value = h.data.get(key)
        if value is not None and not DURATION.match(str(value)):
            problems.append(Problem(h.name, f"{key} = {value!r} is not a Prometheus duration. Fix: a number and a "
                                            "unit, e.g. 15s, 5m, 30d"))
    timings = h.data.get("alertmanager_route_timings") or {}
    if not isinstance(timings, Mapping):
        return problems + [Problem(h.name, "alertmanager_route_timings must be a mapping of route to timings")]
    for route, values in timings.items():
        if route not in ROUTES or not isinstance(values, Mapping):
            problems.append(Problem(h.name, f"alertmanager_route_timings: {route!r} is not a route; routes: "
                                            f"{', '.join(ROUTES)}, each a mapping"))
            continue
        for key, value in values.items():
            if key not in TIMINGS:
                problems.append(Problem(h.name, f"alertmanager_route_timings {route}: {key!r} is not one of "
                                                f"{', '.join(TIMINGS)}"))
            elif not DURATION.match(str(value)):
                problems.append(Problem(h.name, f"alertmanager_route_timings {route}.{key} = {value!r} is not a "
                                                "duration (e.g. 30s)"))
    return problems


def _check_runbook_base(h: HostSpec) -> list[Problem]:
    value = h.data.get("prometheus_runbook_base")
    if not value:
        return [Problem(h.name, "prometheus_runbook_base is not set: alerts would have no runbook link. Fix: set it to "
                                "where your copy of docs/ can be read (group_data/monitoring.py)")]
    if not re.fullmatch(r"(https?|file)://[^\s\"'<>]+", str(value)) or str(value).endswith("/"):
        return [Problem(h.name, f"prometheus_runbook_base = {value!r}: give an http(s):// or file:// URL without "
                                "spaces, quotes or a trailing slash, e.g. https://github.com/ORG/lpfleet/blob/main/docs")]
    return []


def _check_rule_files(h: HostSpec) -> list[Problem]:
    extra = h.data.get("prometheus_extra_rule_files") or []
    if isinstance(extra, str):
        return [Problem(h.name, "prometheus_extra_rule_files must be a list of paths")]
    problems = []
    taken = {p.name for p in shipped_rule_files()} | {EXPECTED_TRANSCODERS}
    for value in extra:
        path = Path(str(value)).expanduser()
        if not path.is_file():
            problems.append(Problem(h.name, f"prometheus_extra_rule_files: {path} is not a file on this machine"))
        elif path.suffix != ".yml" or path.name in taken:
            problems.append(Problem(h.name, f"prometheus_extra_rule_files: {path.name} must end in .yml and "
                                            f"not be named like another rule file "
                                            f"({', '.join(sorted(taken))}). Fix: rename it"))
        taken.add(path.name)
    return problems


def _check_grafana(h: HostSpec, environ: Mapping[str, str]) -> list[Problem]:
    problems = []
    if not isinstance(h.data.get("grafana", False), bool):
        problems.append(Problem(h.name, f"grafana = {h.data.get('grafana')!r}: True or False"))
    if h.data.get("grafana_admin_password"):
        problems.append(Problem(h.name, "grafana_admin_password is a secret written into the inventory. Fix: set "
                                        "grafana_admin_password_env (or _file) to where it is on this machine"))
    problems += _check_secret(h, "grafana_admin_password", "Grafana admin password", environ, required=False)
    return problems


def _check_expected_transcoders(h: HostSpec) -> list[Problem]:
    value = h.data.get("expected_transcoders")
    if value is None or not h.in_group(ORCHESTRATORS):
        return []
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return [Problem(h.name, f"expected_transcoders = {value!r}: a whole number of transcoders (0 or more)")]
    return []


def check_monitoring(hosts: list[HostSpec], environ: Mapping[str, str]) -> list[Problem]:
    problems = []
    for h in hosts:
        problems += _check_expected_transcoders(h)
        if not h.in_group(MONITORING):
            continue
        problems += _check_receivers(h, environ)
        problems += _check_durations(h)
        problems += _check_runbook_base(h)
        problems += _check_rule_files(h)
        problems += _check_grafana(h, environ)
    return problems
