"""The whole fleet, each host by its inventory groups:

    pyinfra inventory/prod.py deploys/fleet.py

all hosts        common, firewall, node exporter
orchestrators    secrets (orchSecret, admin token, TLS pair), lpnode -orchestrator
transcoders      secrets (orchSecret, admin token, orchestrator's certificate), [nvidia],
                 lpnode -transcoder -orchCert
gpu              nvidia (also any host with `nvidia = True`)
reward/redeemers secrets (keystore, its password, the RPC URL)
on-chain orch.   secrets (hot keystore, its password, the RPC URL, the redeemer token)
reward           lpnode -reward as its own unit, lpnode-reward (roles/reward.py)
redeemers        lpnode -redeemer as its own unit, lpnode-redeemer (roles/redeemer.py)
monitoring       prometheus, alertmanager, [grafana] (with `grafana = True`, production)
load_balancers   haproxy in front of the orchestrators (roles/haproxy.py); the orchestrators
                 then advertise the first balancer and share the auth-token key

The inventory is validated before anything is prepared, so a broken inventory changes no host.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

from pyinfra import host, inventory

from inventory.validate import (
    GPU,
    LOAD_BALANCERS,
    MONITORING,
    ORCHESTRATORS,
    REDEEMERS,
    REWARD,
    TRANSCODERS,
    check_pyinfra_inventory,
    on_chain_orchestrator,
    spec_of,
)
from roles import fact_cache, op_order
from roles.alertmanager import AlertmanagerSettings, alertmanager
from roles.common import CommonSettings, common
from roles.firewall import firewall
from roles.grafana import GrafanaSettings, grafana
from roles.haproxy import HaproxySettings, haproxy
from roles.monitoring import NODE_EXPORTER_PORT, admin_tcp_ports, monitoring_tcp_ports, scrape_hosts
from roles.node import CLI_PORT, SERVICE_PORT, Installed, NodeSettings, install_lpnode, node
from roles.node_exporter import NodeExporterSettings, node_exporter
from roles.nvidia import NvidiaResult, NvidiaSettings, nvidia
from roles.prometheus import PrometheusSettings, prometheus
from roles.redeemer import RedeemerSettings, redeemer
from roles.reward import RewardSettings, reward
from roles.secrets import SecretSource, SecretsResult, secrets, source_from_data
from roles.tls import orchestrator_pair

check_pyinfra_inventory(inventory)
# Facts asked once per host until something changes there (roles/fact_cache.py).
fact_cache.install()
# Operation order from the frames, without pyinfra reading source lines (roles/op_order.py).
op_order.install()

me = spec_of(host)
is_orchestrator = me.in_group(ORCHESTRATORS)
is_transcoder = me.in_group(TRANSCODERS)
is_gpu = me.has_gpu
is_reward = me.in_group(REWARD)
is_redeemer = me.in_group(REDEEMERS)
holds_keystore = is_reward or is_redeemer
on_chain = on_chain_orchestrator(me)
redeemers = [spec_of(h) for h in inventory.get_group(REDEEMERS, [])]
is_monitoring = me.in_group(MONITORING)
with_grafana = me.runs_grafana
monitoring_addresses = [spec_of(h).address for h in inventory.get_group(MONITORING, [])]
balancers = [spec_of(h) for h in inventory.get_group(LOAD_BALANCERS, [])]
is_balancer = me.in_group(LOAD_BALANCERS)
balancer_settings = HaproxySettings.from_data(host.name, me.data) if is_balancer else None
# Orchestrators advertise the first balancer: gateways reach them, renditions included, through it.
front = f"{balancers[0].address}:{HaproxySettings.from_data(balancers[0].name, balancers[0].data).port}" \
    if balancers and is_orchestrator else None

base = CommonSettings.from_data(host.name, me.data)
common(settings=base)

public_ports = [SERVICE_PORT] if is_orchestrator else []
if balancer_settings:
    public_ports.append(balancer_settings.port)
reward_settings = RewardSettings.from_data(host.name, me.data) if is_reward else None
redeemer_settings = RedeemerSettings.from_data(host.name, me.data) if is_redeemer else None
if redeemer_settings:
    # Orchestrators anywhere reach it; the token keeps everyone else out.
    public_ports.append(redeemer_settings.port)
monitored_ports = [NODE_EXPORTER_PORT] + ([CLI_PORT] if is_orchestrator or is_transcoder else [])
if reward_settings:
    monitored_ports.append(reward_settings.cli_port)
if redeemer_settings:
    monitored_ports.append(redeemer_settings.cli_port)
if is_monitoring:
    monitored_ports += monitoring_tcp_ports()
if balancer_settings:
    monitored_ports.append(balancer_settings.metrics_port)
firewall(
    admin_networks=host.data.get("admin_networks", []),
    monitoring_sources=monitoring_addresses,
    public_tcp_ports=public_ports,
    monitoring_tcp_ports=monitored_ports,
    admin_tcp_ports=admin_tcp_ports(with_grafana) if is_monitoring else [],
    ssh_port=int(host.data.get("ssh_port", 22)),
    roles=sorted(set(host.groups) & {ORCHESTRATORS, TRANSCODERS, GPU, REWARD, REDEEMERS, MONITORING, LOAD_BALANCERS}),
    # Each balancer's health check reads the orchestrator's /ready.
    balancer_sources=[b.address for b in balancers] if is_orchestrator else [],
    balancer_tcp_ports=[CLI_PORT] if is_orchestrator and balancers else [],
)

if balancer_settings:
    haproxy(servers=[(o.name, o.address) for o in map(spec_of, inventory.get_group(ORCHESTRATORS, []))],
            settings=balancer_settings)

node_exporter(settings=NodeExporterSettings.from_data(host.name, me.data))

if is_monitoring:
    # Every host of the inventory, not only those this run is limited to: the scrape
    # configuration and the expected transcoder counts describe the whole fleet.
    prometheus_settings = PrometheusSettings.from_data(host.name, me.data)
    prometheus(address=me.address, hosts=scrape_hosts(spec_of(h) for h in inventory),
               settings=prometheus_settings)
    alertmanager(address=me.address, settings=AlertmanagerSettings.from_data(host.name, me.data))
    if with_grafana:
        grafana(address=me.address, scrape_interval=prometheus_settings.scrape_interval,
                admin_password_source=source_from_data(me.data, "grafana_admin_password",
                                                       "Grafana admin password"),
                settings=GrafanaSettings.from_data(host.name, me.data))

# The orchestrator serves a pair the deploy knows (roles/tls.py); its transcoders pin it.
own_tls = orchestrator_pair(me.name, me.address, me.data) if is_orchestrator else None
orchestrator = spec_of(inventory.get_host(host.data.get("orchestrator"))) \
    if is_transcoder and not is_orchestrator else None
their_tls = orchestrator_pair(orchestrator.name, orchestrator.address, orchestrator.data) \
    if orchestrator else None

secrets_result: SecretsResult | None = None
if is_orchestrator or is_transcoder or holds_keystore:
    payments_secrets = on_chain or is_redeemer
    data = me.data
    node_secrets = is_orchestrator or is_transcoder
    # pyinfra types a @deploy's return value as an operation's; these return their own.
    secrets_result = cast(SecretsResult, secrets(
        orch_secret=source_from_data(data, "orch_secret", "orchSecret") if node_secrets else None,
        admin_token=source_from_data(data, "admin_token", "admin token") if node_secrets else None,
        keystore=SecretSource("keystore", file=data["keystore_path"]) if data.get("keystore_path") else None,
        keystore_password=source_from_data(data, "keystore_password", "keystore password"),
        keystore_allowed=holds_keystore and not is_transcoder,
        service_user=base.service_user,
        tls_cert=own_tls.cert if own_tls else None,
        tls_key=SecretSource("TLS key", file=own_tls.key) if own_tls else None,
        orch_cert=their_tls.cert if their_tls else None,
        eth_url=source_from_data(data, "eth_url", "RPC URL")
        if (holds_keystore and not is_transcoder) or on_chain else None,
        hot_keystore=SecretSource("hot keystore", file=data["hot_keystore_path"])
        if on_chain and data.get("hot_keystore_path") else None,
        hot_keystore_password=source_from_data(data, "hot_keystore_password", "hot keystore password")
        if on_chain else None,
        hot_keystore_allowed=on_chain,
        redeemer_token=source_from_data(data, "redeem_token", "redeemer token")
        if payments_secrets and (is_redeemer or redeemers) else None,
        auth_key=source_from_data(data, "auth_key", "auth-token key") if front else None,
    ))

nvidia_result = cast(NvidiaResult, nvidia(settings=NvidiaSettings.from_data(host.name, me.data))) \
    if is_gpu else None

# lpnode_python applies to a reward-only host's install too.
node_settings = NodeSettings.from_data(host.name, me.data) \
    if is_orchestrator or is_transcoder or is_reward or is_redeemer else None
# Once per host, whichever lpnode services it runs (node, reward).
installed = cast(Installed, install_lpnode(python=node_settings.python)) if node_settings else None

if (is_orchestrator or is_transcoder) and node_settings and installed:
    orch_addr = f"{orchestrator.address}:{SERVICE_PORT}" if orchestrator else None
    if is_gpu and "lpnode_gpus" not in me.data:
        node_settings = replace(node_settings, gpus="all")   # a host with `nvidia = True`
    node(
        # An orchestrator that also transcodes is one process: lpnode -orchestrator -transcoder.
        role="+".join(r for r, member in (("orchestrator", is_orchestrator), ("transcoder", is_transcoder)) if member),
        address=me.address,
        settings=node_settings,
        orch_addr=orch_addr,
        service_user=base.service_user,
        reload=bool(secrets_result and secrets_result.will_change),
        restart=bool(nvidia_result and nvidia_result.restart_node)
        or bool(secrets_result and (secrets_result.tls_changed or (on_chain and secrets_result.payments_changed))),
        installed=installed,
        # The first redeemer, when the fleet has one, gets this orchestrator's winning tickets.
        redeemer_addr=f"{redeemers[0].address}:{RedeemerSettings.from_data(redeemers[0].name, redeemers[0].data).port}"
        if on_chain and redeemers else None,
        hot_password=source_from_data(me.data, "hot_keystore_password", "hot keystore password") is not None,
        balancer=front,
    )

if reward_settings and installed:
    reward(
        installed=installed,
        settings=reward_settings,
        service_user=base.service_user,
        secrets_changed=bool(secrets_result and secrets_result.chain_changed),
        password=source_from_data(me.data, "keystore_password", "keystore password") is not None,
    )

if redeemer_settings and installed:
    redeemer(
        installed=installed,
        settings=redeemer_settings,
        service_user=base.service_user,
        secrets_changed=bool(secrets_result and secrets_result.payments_changed),
        password=source_from_data(me.data, "keystore_password", "keystore password") is not None,
    )
