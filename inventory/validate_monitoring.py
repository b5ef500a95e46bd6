"""Inventory validation for the monitoring hosts' data (docs/monitoring.md): receivers and
their secrets, Grafana's password. Part of inventory.validate: every problem names the host, the
setting and the fix. Single settings (durations, the runbook base, rule files) are checked by
the roles' settings models (roles/settings.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inventory.hosts import MONITORING, ORCHESTRATORS, HostSpec, Problem
from inventory.secret_checks import check_secret, check_secret_file
from roles.alertmanager import CHANNEL_TYPES, RECEIVERS, secret_ref

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
                problems += check_secret_file(h.name, source.file, where, "receiver secret")
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


def _check_grafana(h: HostSpec, environ: Mapping[str, str]) -> list[Problem]:
    problems = []
    if not isinstance(h.data.get("grafana", False), bool):
        problems.append(Problem(h.name, f"grafana = {h.data.get('grafana')!r}: True or False"))
    problems += check_secret(h, "grafana_admin_password", "Grafana admin password", environ, required=False)
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
        problems += _check_grafana(h, environ)
    return problems
