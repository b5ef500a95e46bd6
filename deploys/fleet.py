"""The whole fleet, each host by its inventory groups:

    pyinfra inventory/prod.py deploys/fleet.py

all hosts        common, firewall
orchestrators    secrets (orchSecret, admin token), lpnode -orchestrator
transcoders      secrets (orchSecret, admin token), [nvidia], lpnode -transcoder
gpu              nvidia (also any host with `nvidia = True`)
reward/redeemers secrets (keystore)
monitoring       monitoring base

The inventory is validated before anything is prepared, so a broken inventory changes no host.
"""

from __future__ import annotations

import inspect
from typing import Any

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
from pyinfra import host, inventory
from roles.common import common
from roles.firewall import firewall
from roles.monitoring import ADMIN_TCP_PORTS, monitoring
from roles.node import CLI_PORT, SERVICE_PORT, node
from roles.nvidia import nvidia
from roles.secrets import SecretSource, secrets, source_from_data

NODE_EXPORTER_PORT = 9100


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
monitoring_addresses = [spec_of(h).address for h in inventory.get_group(MONITORING, [])]

common(**role_kwargs(common))

public_ports = [SERVICE_PORT] if is_orchestrator else []
monitored_ports = [NODE_EXPORTER_PORT] + ([CLI_PORT] if is_orchestrator or is_transcoder else [])
firewall(
    admin_networks=host.data.get("admin_networks", []),
    monitoring_sources=monitoring_addresses,
    public_tcp_ports=public_ports,
    monitoring_tcp_ports=monitored_ports,
    admin_tcp_ports=list(ADMIN_TCP_PORTS) if me.in_group(MONITORING) else [],
    ssh_port=int(host.data.get("ssh_port", 22)),
    roles=sorted(set(host.groups) & {ORCHESTRATORS, TRANSCODERS, GPU, REWARD, REDEEMERS, MONITORING}),
)

if me.in_group(MONITORING):
    monitoring()

secrets_result = None
if is_orchestrator or is_transcoder or holds_keystore:
    data = me.data
    node_secrets = is_orchestrator or is_transcoder
    secrets_result = secrets(
        orch_secret=source_from_data(data, "orch_secret", "orchSecret") if node_secrets else None,
        admin_token=source_from_data(data, "admin_token", "admin token") if node_secrets else None,
        keystore=SecretSource("keystore", file=data["keystore_path"]) if data.get("keystore_path") else None,
        keystore_password=source_from_data(data, "keystore_password", "keystore password"),
        keystore_allowed=holds_keystore and not is_transcoder,
        service_user=host.data.get("service_user", "lpnode"),
    )

nvidia_result = nvidia(**role_kwargs(nvidia, "nvidia_")) if is_gpu else None

if is_orchestrator or is_transcoder:
    orch_addr = None
    if is_transcoder and not is_orchestrator:
        orchestrator = inventory.get_host(host.data.get("orchestrator"))
        orch_addr = f"{spec_of(orchestrator).address}:{SERVICE_PORT}"
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
        restart=bool(nvidia_result and nvidia_result.restart_node),
    ))
