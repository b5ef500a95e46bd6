"""Alertmanager on the monitoring host, from Debian's package: routing and receivers rendered
from the inventory (monitoring/alertmanager/), checked with ``amtool check-config`` before
they go live, and the receivers' secrets brought from the machine the deploy runs on.

A receiver field's value may be a secret reference instead of the value itself:
``{"env": "NAME"}`` (an environment variable on this machine) or ``{"file": "~/path"}`` (a
file on this machine, mode 0600). In a field Alertmanager reads from a file (its name ends in
``_file``: ``routing_key_file``, ``api_url_file``, ``auth_password_file``,
``http_config.authorization.credentials_file``) the secret is uploaded to
/etc/prometheus/secrets/ and the field names that file; in any other field (Discord's
``webhook_url``, a webhook ``url`` with a token in it: Alertmanager 0.25 cannot read those
from a file) it is written into alertmanager.yml itself. Either way the file is 0640
root:prometheus and the value never appears in pyinfra's output, not even with ``--diff``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

from pyinfra import host
from pyinfra.api import deploy, operation
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, files

from roles._facts import ConfigLoaded
from roles._ops import (
    MONITORING_DIR,
    packaged_service,
    remove_stale_files,
    render_monitoring,
    service_flags,
    validated_put,
    wait_config_loaded,
)
from roles.common import missing_packages
from roles.monitoring import (
    ALERTMANAGER_PORT,
    ALERTMANAGER_SECRETS_DIR,
    ALERTMANAGER_TEMPLATES_DIR,
    PROMETHEUS_CONFIG_DIR,
    SERVICE_GROUP,
)
from roles.prometheus import default_external_url
from roles.secrets import SecretSource, secret_file
from roles.settings import RoleSettings, duration, setting

PACKAGE = "prometheus-alertmanager"
SERVICE = "prometheus-alertmanager"
DEFAULTS_FILE = "/etc/default/prometheus-alertmanager"
CONFIG_PATH = f"{PROMETHEUS_CONFIG_DIR}/alertmanager.yml"
DATA_DIR = "/var/lib/prometheus/alertmanager"
TEMPLATE = MONITORING_DIR / "alertmanager" / "lpfleet.tmpl"
METRICS_URL = f"http://127.0.0.1:{ALERTMANAGER_PORT}/metrics"

RECEIVERS = ("page", "ticket", "watchdog")
CHANNEL_TYPES = ("email", "pagerduty", "slack", "discord", "webhook")
ROUTES = ("default", *RECEIVERS)
TIMINGS = ("group_wait", "group_interval", "repeat_interval")


def secret_ref(value: Any) -> SecretSource | None:
    """The SecretSource a receiver field's value refers to, or None for a plain value."""
    if isinstance(value, dict) and len(value) == 1:
        (kind, where), = value.items()
        if kind in ("env", "file") and isinstance(where, str) and where:
            return SecretSource(what="", file=where if kind == "file" else None, env=where if kind == "env" else None)
    return None


@dataclass(frozen=True)
class UploadedSecret:
    """A secret Alertmanager reads from a file: uploaded to ``path``."""

    name: str  # file name in ALERTMANAGER_SECRETS_DIR, from where it is used: page-1-pagerduty-routing_key_file
    source: SecretSource

    @property
    def path(self) -> str:
        return f"{ALERTMANAGER_SECRETS_DIR}/{self.name}"


@dataclass(frozen=True)
class InlineSecret:
    """A secret written into alertmanager.yml itself; read only when the file is rendered."""

    source: SecretSource


@dataclass
class ReceiverPlan:
    """The receivers and smtp settings with every secret reference replaced: by the path of its
    uploaded file, or by an InlineSecret to fill in at rendering."""

    receivers: dict[str, list[dict[str, Any]]]
    smtp: dict[str, Any]
    uploads: list[UploadedSecret]

    @property
    def has_inline_secrets(self) -> bool:
        return _contains_inline([self.receivers, self.smtp])


def _contains_inline(value: Any) -> bool:
    if isinstance(value, InlineSecret):
        return True
    if isinstance(value, dict):
        return any(_contains_inline(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_inline(v) for v in value)
    return False


def plan_receivers(receivers: dict[str, list[dict[str, Any]]], smtp: dict[str, Any] | None = None) -> ReceiverPlan:
    """Check the receivers' shape and replace their secret references (see the module's doc)."""
    if not isinstance(receivers, dict):
        raise DeployError(f"{host.name}: alertmanager_receivers must be a mapping of page/ticket/watchdog "
                          "to lists of channels")
    unknown = sorted(set(receivers) - set(RECEIVERS))
    if unknown:
        raise DeployError(f"{host.name}: alertmanager_receivers: unknown receiver(s) {', '.join(unknown)}; "
                          f"the receivers are {', '.join(RECEIVERS)}")
    if not receivers.get("page"):
        raise DeployError(f"{host.name}: alertmanager_receivers has no `page` channel, so pages would reach nobody. "
                          "Fix: add at least one channel under \"page\" (docs/monitoring.md)")
    uploads: list[UploadedSecret] = []

    def replace(value: Any, name: str, key: str) -> Any:
        source = secret_ref(value)
        if source is not None:
            described = SecretSource(what=f"alertmanager {name}", file=source.file, env=source.env)
            if key.endswith("_file"):
                upload = UploadedSecret(name, described)
                uploads.append(upload)
                return upload.path
            return InlineSecret(described)
        if isinstance(value, dict):
            return {k: replace(v, f"{name}.{k}", k) for k, v in value.items()}
        if isinstance(value, list):
            return [replace(v, f"{name}.{i}", key) for i, v in enumerate(value)]
        return value

    planned: dict[str, list[dict[str, Any]]] = {}
    for receiver in RECEIVERS:
        planned[receiver] = []
        for index, channel in enumerate(receivers.get(receiver) or [], start=1):
            kind = channel.get("type") if isinstance(channel, dict) else None
            if kind not in CHANNEL_TYPES:
                raise DeployError(f"{host.name}: alertmanager_receivers {receiver} #{index}: type must be one of "
                                  f"{', '.join(CHANNEL_TYPES)}, not {kind!r}")
            planned[receiver].append({k: replace(v, f"{receiver}-{index}-{kind}-{k}", k) for k, v in channel.items()})
    planned_smtp = {k: replace(v, f"smtp-{k}", k) for k, v in (smtp or {}).items()}
    return ReceiverPlan(planned, planned_smtp, uploads)


def _resolve(value: Any) -> Any:
    if isinstance(value, InlineSecret):
        # Alertmanager takes the value as it is: no trailing newline from the source file.
        return value.source.read().decode().strip()
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


def render_config(plan: ReceiverPlan, resolve_secrets: bool = True, **context: Any) -> str:
    """alertmanager.yml for ``plan``; inline secrets are read here (or shown as
    ``<secret>`` with resolve_secrets=False, for tests and messages)."""
    receivers, smtp = copy.deepcopy(plan.receivers), copy.deepcopy(plan.smtp)
    if resolve_secrets:
        receivers, smtp = _resolve(receivers), _resolve(smtp)
    else:
        receivers, smtp = _placeholder(receivers), _placeholder(smtp)
    return render_monitoring("alertmanager/alertmanager.yml.j2", receivers=receivers, smtp=smtp,
                             templates_dir=ALERTMANAGER_TEMPLATES_DIR, **context)


def _placeholder(value: Any) -> Any:
    if isinstance(value, InlineSecret):
        return "<secret>"
    if isinstance(value, dict):
        return {k: _placeholder(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholder(v) for v in value]
    return value


@operation()
def alertmanager_config(plan: ReceiverPlan, resolve_timeout: str, route_timings: dict[str, dict[str, str]]):
    """alertmanager.yml, 0640 root:prometheus, put live only if ``amtool check-config`` accepts it.

    The inline secrets are read here, inside the operation, so they are in no operation
    argument pyinfra could print; ``--diff`` only says the file changed when it holds any.
    """
    content = render_config(plan, resolve_timeout=resolve_timeout, route_timings=route_timings)
    yield from validated_put(
        content,
        CONFIG_PATH,
        # Also loads the notification templates (lpfleet.tmpl) the configuration names.
        "amtool check-config {path}",
        user="root",
        group=SERVICE_GROUP,
        mode="640",
        secret=plan.has_inline_secrets,
    )


def route_timings_problem(timings: dict[str, dict[str, str]]) -> str | None:
    found = []
    for route, values in timings.items():
        if route not in ROUTES:
            found.append(f"{route!r} is not a route (routes: {', '.join(ROUTES)})")
            continue
        for key, value in values.items():
            if key not in TIMINGS:
                found.append(f"{route}: {key!r} is not one of {', '.join(TIMINGS)}")
            elif duration(value):
                found.append(f"{route}.{key} = {value!r} is not a duration (e.g. 30s)")
    return "has problems: " + "; ".join(found) if found else None


@dataclass(frozen=True)
class AlertmanagerSettings(RoleSettings):
    """The alertmanager role's settings: inventory data ``alertmanager_<field>``."""

    PREFIX: ClassVar[str] = 'alertmanager_'
    ROLE: ClassVar[str] = 'alertmanager'

    receivers: dict[str, list[dict[str, Any]]] = setting(
        factory=dict,
        doc='where alerts go: `{"page": [channel, ...], "ticket": [...], "watchdog": [...]}`; a channel'
            ' is `{"type": "email" | "pagerduty" | "slack" | "discord" | "webhook", ...}`, secrets '
            'as `{"env": ...}`/`{"file": ...}` references (docs/monitoring.md). `page` must not be '
            "empty")
    smtp: dict[str, Any] = setting(
        factory=dict,
        doc="for email channels: `smarthost`, `from`, `auth_username`, `auth_password_file`...")
    resolve_timeout: str = setting(
        '5m', check=duration,
        doc="when an alert that stopped being re-sent counts as resolved")
    route_timings: dict[str, dict[str, str]] = setting(
        factory=dict, check=route_timings_problem,
        doc="`{\"page\": {\"group_wait\": \"5s\", ...}}`: a route's group_wait/group_interval/repeat_interval"
            " (routes: default, page, ticket, watchdog)")
    data_retention: str = setting("120h", doc='how long silences and the notification log are kept', check=duration)
    external_url: str = setting(
        '',
        doc="the URL operators use to reach this Alertmanager (links in notifications); default "
            "`http://<address>:9093/`")


@deploy("alertmanager")
def alertmanager(
    address: str,
    settings: AlertmanagerSettings | None = None,
) -> None:
    """Alertmanager routing the fleet's alerts to its receivers (AlertmanagerSettings).

    + address: this host's address (the default external URL)
    """
    s = settings or AlertmanagerSettings()
    plan = plan_receivers(s.receivers, s.smtp)

    package = apt.packages(
        name=f"Install {PACKAGE}",
        packages=[PACKAGE],
        no_recommends=True,
        update=bool(missing_packages([PACKAGE])),
    )
    flags = service_flags("Alertmanager", DEFAULTS_FILE, [
        f"--config.file={CONFIG_PATH}",
        f"--storage.path={DATA_DIR}",
        f"--data.retention={s.data_retention}",
        f"--web.listen-address=:{ALERTMANAGER_PORT}",
        f"--web.external-url={s.external_url or default_external_url(address, ALERTMANAGER_PORT)}",
        # One Alertmanager per monitoring host, not a cluster: an empty address turns off the
        # gossip listener (0.0.0.0:9094 by default) that nothing here uses.
        "--cluster.listen-address=",
    ])

    changed = [files.put(
        name=f"Notification templates {ALERTMANAGER_TEMPLATES_DIR}/{TEMPLATE.name}",
        src=str(TEMPLATE),
        dest=f"{ALERTMANAGER_TEMPLATES_DIR}/{TEMPLATE.name}",
        mode="644",
        create_remote_dir=True,
    )]

    # Only root writes and only Alertmanager (group prometheus) reads the s.receivers' secrets.
    files.directory(
        name=f"Receiver secrets directory {ALERTMANAGER_SECRETS_DIR} (root:{SERVICE_GROUP} 0750)",
        path=ALERTMANAGER_SECRETS_DIR,
        user="root",
        group=SERVICE_GROUP,
        mode="750",
    )
    for upload in plan.uploads:
        changed.append(secret_file(
            name=f"Receiver secret {upload.path} (from {upload.source.describe()})",
            source=upload.source,
            dest=upload.path,
            user="root",
            group=SERVICE_GROUP,
            mode="640",
            newline=False,
        ))
    changed.append(alertmanager_config(
        name=f"Alertmanager configuration {CONFIG_PATH} (checked with amtool check-config)",
        plan=plan,
        resolve_timeout=s.resolve_timeout,
        route_timings=s.route_timings,
    ))
    # Only once the configuration that no longer names them is live: a refused configuration
    # leaves the live one with every file it reads.
    remove_stale_files(
        name=f"No other files in {ALERTMANAGER_SECRETS_DIR}",
        directory=ALERTMANAGER_SECRETS_DIR,
        keep=[upload.name for upload in plan.uploads],
    )

    reload_metric, watched = "alertmanager_config_last_reload", [CONFIG_PATH, f"{ALERTMANAGER_TEMPLATES_DIR}/*.tmpl"]
    loaded = host.get_fact(ConfigLoaded, metrics_url=METRICS_URL, prefix=reload_metric, patterns=watched)
    service = packaged_service(
        "Alertmanager",
        SERVICE,
        restart=package.will_change or flags.will_change,
        # The configuration and templates are read when Alertmanager (re)loads. The secret
        # files are read when a notification goes out, but a reload is cheap and makes sure
        # a receiver that checks its file at load time sees the new one.
        reload=any(op.will_change for op in changed) or loaded is False,
    )
    wait_config_loaded(name="Alertmanager runs the new configuration", label="Alertmanager",
                       metrics_url=METRICS_URL, prefix=reload_metric, patterns=watched,
                       _if=service.did_change)

