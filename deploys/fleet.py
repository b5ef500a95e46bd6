"""The whole fleet, each host by its inventory groups:

    pyinfra inventory/prod.py deploys/fleet.py

all hosts        common, firewall, node exporter
orchestrators    secrets (orchSecret, admin token, TLS pair), lpnode -orchestrator
transcoders      secrets (orchSecret, admin token, orchestrator's certificate), [nvidia],
                 lpnode -transcoder -orchCert
gpu              nvidia (also any host with `nvidia = True`)
reward/redeemers secrets (keystore)
monitoring       prometheus, alertmanager, [grafana] (with `grafana = True`, production)

The inventory is validated before anything is prepared, so a broken inventory changes no host.
"""

from __future__ import annotations

import inspect
from typing import Any, cast

from pyinfra import host, inventory

from inventory.validate import (
    GPU,
    MONITORING,
    ORCHESTRATORS,
    REDEEMERS,
    REWARD,
    TRANSCODERS,
    check_pyinfra_inventory,
    spec_of,
)
from roles.alertmanager import alertmanager
from roles.common import common
from roles.firewall import firewall
from roles.grafana import grafana
from roles.monitoring import NODE_EXPORTER_PORT, admin_tcp_ports, monitoring_tcp_ports, scrape_hosts
from roles.node import CLI_PORT, SERVICE_PORT, node
from roles.node_exporter import node_exporter
from roles.nvidia import NvidiaResult, nvidia
from roles.prometheus import prometheus
from roles.secrets import SecretSource, SecretsResult, secrets, source_from_data
from roles.tls import orchestrator_pair


def role_kwargs(role_fn, prefix: str = "", /, **explicit: Any) -> dict[str, Any]:
    """The role's keyword arguments found in this host's data as ``<prefix><argument>``; the
    role's own defaults apply to the rest. ``explicit`` ones win."""
    params = inspect.signature(role_fn._inner).parameters
    found = {name: me.data[prefix + name] for name in params if prefix + name in me.data}
    return {**found, **explicit}


check_pyinfra_inventory(inventory)

me = spec_of(host)
is_orchestrator = me.in_group(ORCHESTRATORS)
is_transcoder = me.in_group(TRANSCODERS)
is_gpu = me.in_group(GPU) or bool(host.data.get("nvidia"))
holds_keystore = me.in_group(REWARD) or me.in_group(REDEEMERS)
is_monitoring = me.in_group(MONITORING)
with_grafana = is_monitoring and bool(host.data.get("grafana"))
monitoring_addresses = [spec_of(h).address for h in inventory.get_group(MONITORING, [])]

common(**role_kwargs(common))

public_ports = [SERVICE_PORT] if is_orchestrator else []
monitored_ports = [NODE_EXPORTER_PORT] + ([CLI_PORT] if is_orchestrator or is_transcoder else [])
if is_monitoring:
    monitored_ports += monitoring_tcp_ports()
firewall(
    admin_networks=host.data.get("admin_networks", []),
    monitoring_sources=monitoring_addresses,
    public_tcp_ports=public_ports,
    monitoring_tcp_ports=monitored_ports,
    admin_tcp_ports=admin_tcp_ports(with_grafana) if is_monitoring else [],
    ssh_port=int(host.data.get("ssh_port", 22)),
    roles=sorted(set(host.groups) & {ORCHESTRATORS, TRANSCODERS, GPU, REWARD, REDEEMERS, MONITORING}),
)

node_exporter(**role_kwargs(node_exporter, "node_exporter_"))

if is_monitoring:
    # Every host of the inventory, not only those this run is limited to: the scrape
    # configuration and the expected transcoder counts describe the whole fleet.
    prometheus(**role_kwargs(
        prometheus, "prometheus_", address=me.address, hosts=scrape_hosts(spec_of(h) for h in inventory),
    ))
    alertmanager(**role_kwargs(alertmanager, "alertmanager_", address=me.address))
    if with_grafana:
        grafana(**role_kwargs(
            grafana,
            "grafana_",
            address=me.address,
            scrape_interval=host.data.get("prometheus_scrape_interval", "15s"),
            admin_password=source_from_data(me.data, "grafana_admin_password", "Grafana admin password"),
        ))

# The orchestrator serves a pair the deploy knows (roles/tls.py); its transcoders pin it.
own_tls = orchestrator_pair(me.name, me.address, me.data) if is_orchestrator else None
orchestrator = spec_of(inventory.get_host(host.data.get("orchestrator"))) \
    if is_transcoder and not is_orchestrator else None
their_tls = orchestrator_pair(orchestrator.name, orchestrator.address, orchestrator.data) \
    if orchestrator else None

secrets_result: SecretsResult | None = None
if is_orchestrator or is_transcoder or holds_keystore:
    data = me.data
    node_secrets = is_orchestrator or is_transcoder
    # pyinfra types a @deploy's return value as an operation's; these return their own.
    secrets_result = cast(SecretsResult, secrets(
        orch_secret=source_from_data(data, "orch_secret", "orchSecret") if node_secrets else None,
        admin_token=source_from_data(data, "admin_token", "admin token") if node_secrets else None,
        keystore=SecretSource("keystore", file=data["keystore_path"]) if data.get("keystore_path") else None,
        keystore_password=source_from_data(data, "keystore_password", "keystore password"),
        keystore_allowed=holds_keystore and not is_transcoder,
        service_user=host.data.get("service_user", "lpnode"),
        tls_cert=own_tls.cert if own_tls else None,
        tls_key=SecretSource("TLS key", file=own_tls.key) if own_tls else None,
        orch_cert=their_tls.cert if their_tls else None,
    ))

nvidia_result = cast(NvidiaResult, nvidia(**role_kwargs(nvidia, "nvidia_"))) if is_gpu else None

if is_orchestrator or is_transcoder:
    orch_addr = f"{orchestrator.address}:{SERVICE_PORT}" if orchestrator else None
    node(**role_kwargs(
        node,
        "lpnode_",
        # An orchestrator that also transcodes is one process: lpnode -orchestrator -transcoder.
        role="+".join(r for r, member in (("orchestrator", is_orchestrator), ("transcoder", is_transcoder)) if member),
        address=me.address,
        orch_addr=orch_addr,
        gpus=host.data.get("lpnode_gpus", "all" if is_gpu else ""),
        service_user=host.data.get("service_user", "lpnode"),
        reload=bool(secrets_result and secrets_result.will_change),
        restart=bool(nvidia_result and nvidia_result.restart_node)
        or bool(secrets_result and secrets_result.tls_changed),
    ))
