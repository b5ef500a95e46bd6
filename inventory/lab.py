"""pyinfra inventory for the local lab (`lpfleet lab up`), shaped like inventory/prod.py.

    lpfleet lab up
    pyinfra inventory/lab.py deploys/fleet.py

Groups: orchestrators, transcoders, monitoring, load_balancers (redeemers when the lab has
r1...), and reward (the first orchestrator, exactly one host). The remote transcoders (t1, ...)
work for the first orchestrator; every other orchestrator (o2, ...) is also in `transcoders` and
transcodes itself, so the fleet keeps serving while any one host rolls. Hosts are named by their
lab names (o1, t1, ...) and reached at their bridge addresses (10.77.0.x) as root with the lab's
SSH key; host keys are checked against the known_hosts file `lpfleet lab up` writes.

Lab data on every host:
    lab                 True
    admin_networks      ["10.77.0.1/32"]: the control machine's bridge address, the only admin
                        source (7935 and SSH), narrow enough for firewall tests to mean something
    orch_secret_file    path on the control machine of the lab's orchSecret (0600, random)
    admin_token_file    path on the control machine of the lab's admin token (0600, random)
    tls_dir             where the deploy keeps the orchestrators' TLS pairs: <lab state>/tls
    node_exporter_extra_args   the node exporter's filesystem types without `overlay`, which
                        a lab host's root is
Transcoders also have orchestrator="o1" (the first orchestrator). The reward host (o1) also has
keystore_path, keystore_password_file and eth_url_file (the lab chain's orchestrator account and
URL, lab/chain.py) and reward_* settings for the lab chain (its Controller, 1 s polling). Every
orchestrator is on chain for the same registered account: lpnode_network and lpnode_eth_* for
the lab chain, its own hot key (hot_keystore_path) redeeming the tickets it takes, and a price
and ticket settings under which lab test streams (`lpfleet lab stream`) win tickets. With a
balancer they also have auth_key_file (the lab's shared auth-token key).

Monitoring hosts also have (docs/lab.md, docs/monitoring.md):
    grafana                          False: lab hosts reach only the Debian mirror
    prometheus_runbook_base          file://<this checkout>/docs
    prometheus_scrape_interval,
    prometheus_evaluation_interval   5s, so the lab's tests see a change within seconds
    alertmanager_receivers           page and ticket: webhooks to the control machine,
                                     http://10.77.0.1:9099/page and /ticket, where lab tests
                                     listen, with the lab's receiver token as bearer token
                                     (uploaded as a receiver secret); watchdog: none
    alertmanager_route_timings       seconds instead of minutes before and between notifications
The alert rules keep their production `for:` durations.

Module-level names starting with "_" are not groups (pyinfra ignores them).
"""

from __future__ import annotations

import json as _json
import os as _os
from pathlib import Path as _Path

from lab.chain import stream_flags as _lab_stream_flags
from lab.config import ALERT_RECEIVER_PORT as _RECEIVER_PORT

_STATE_FILE = _Path(_os.environ.get("LPFLEET_LAB_DIR") or "/var/lib/lpfleet-lab") / "state.json"
_REPO = _Path(__file__).resolve().parent.parent
_NODE_EXPORTER_FS_TYPES = (
    "--collector.filesystem.fs-types-exclude=^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|"
    "devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|"
    "squashfs|sysfs|tracefs)$"
)


def _fail(msg: str) -> None:
    try:
        from pyinfra.api.exceptions import InventoryError
    except ImportError:  # read without pyinfra (tests, tools)
        raise RuntimeError(msg) from None
    raise InventoryError(msg) from None


def _load_state() -> dict:
    try:
        return _json.loads(_STATE_FILE.read_text())
    except FileNotFoundError:
        _fail(f"lab is not up: run lpfleet lab up (no {_STATE_FILE})")
        raise


_state = _load_state()
_hosts = _state["hosts"]
_orchestrators = [h for h in _hosts if h["group"] == "orchestrators"]
_first_orch = _orchestrators[0]["name"] if _orchestrators else None
_balancers = [h for h in _hosts if h["group"] == "load_balancers"]


def _chain() -> dict:
    chain = _state.get("chain") or {}
    if not chain:
        _fail("the lab state has no chain: run lpfleet lab up (it starts the lab chain)")
    return chain


def _paid_orchestrator_data(name: str) -> dict:
    # On the lab chain: its own hot key redeems the tickets gateways pay the registered (cold)
    # account with; the reward host calls reward for that account.
    chain = _chain()
    return {
        "lpnode_network": chain["network"],
        "lpnode_eth_controller": chain["controller"],
        "lpnode_eth_orch_addr": chain["orchestrator"],
        "hot_keystore_path": chain["hot_keys"][name]["keystore"],
        "hot_keystore_password_file": chain["keystore_password_file"],
        "eth_url_file": chain["eth_url_file"],
        # A 2 s segment of the lab stream's three renditions is about 22 million pixels: at this
        # price about one ticket's EV, and a third of the tickets win (face value 3 x the EV).
        "lpnode_price_per_unit": 45_000_000,
        "lpnode_ticket_ev": 10**15,
        "lpnode_max_face_value": 3 * 10**15,
        "lpnode_extra_flags": {"blockPollingInterval": 1},
    }


def _stream_flags() -> list[str]:
    chain = _state.get("chain") or {}
    return _lab_stream_flags(chain) if chain else []


def _host_data(h: dict) -> dict:
    data = {
        # pyinfra's @ssh connector
        "ssh_hostname": h["address"],
        "ssh_user": _state["ssh_user"],
        "ssh_key": _state["ssh_key"],
        "ssh_known_hosts_file": _state["known_hosts"],
        "ssh_strict_host_key_checking": "yes",
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
        # lab facts for the deploys
        "lab": True,
        "address": h["address"],
        "admin_networks": [f"{_state['gateway']}/32"],
        "orch_secret_file": _state["orch_secret_file"],
        "admin_token_file": _state["admin_token_file"],
        # Orchestrators' TLS pairs, made by the first deploy (roles/tls.py), kept with the lab.
        "tls_dir": str(_Path(_state["state_dir"]) / "tls"),
        # A lab host's root filesystem is an overlay, which the node exporter leaves out by
        # default (its list of types to skip, minus overlay): without it no disk metrics.
        "node_exporter_extra_args": [_NODE_EXPORTER_FS_TYPES],
        # The runbooks' check stream pays as the lab's gateway (its keystore stays here).
        "runbook_stream_flags": _stream_flags(),
    }
    if h["group"] == "transcoders" and _first_orch:
        data["orchestrator"] = _first_orch
    if h["group"] == "orchestrators":
        data.update(_paid_orchestrator_data(h["name"]))
        if _balancers:
            data["auth_key_file"] = str(_Path(_state["state_dir"]) / "secrets" / "auth_key")
    if h["group"] == "monitoring":
        data.update(_monitoring_data())
    return data


def _monitoring_data() -> dict:
    receiver = f"http://{_state['gateway']}:{_RECEIVER_PORT}"
    token = _state.get("alert_receiver_token_file") or str(
        _Path(_state["state_dir"]) / "secrets" / "alert_receiver_token")

    def webhook(path: str) -> dict:
        # The bearer token comes from a file on this machine and goes to the monitoring host as
        # a receiver secret, exactly as a production PagerDuty or Slack key does.
        return {"type": "webhook", "url": f"{receiver}/{path}",
                "http_config": {"authorization": {"credentials_file": {"file": token}}}}

    return {
        "grafana": False,
        "prometheus_runbook_base": f"file://{_REPO}/docs",
        "prometheus_scrape_interval": "5s",
        "prometheus_evaluation_interval": "5s",
        "alertmanager_receivers": {"page": [webhook("page")], "ticket": [webhook("ticket")], "watchdog": []},
        "alertmanager_route_timings": {
            "default": {"group_wait": "5s", "group_interval": "10s"},
            "page": {"group_wait": "5s", "group_interval": "10s"},
            "ticket": {"group_wait": "5s", "group_interval": "10s"},
        },
    }


def _group(name: str) -> list[tuple[str, dict]]:
    return [(h["name"], _host_data(h)) for h in _hosts if h["group"] == name]


orchestrators = _group("orchestrators")
# The orchestrators after the first transcode themselves (lpnode -orchestrator -transcoder).
transcoders = _group("transcoders") + [(h["name"], _host_data(h)) for h in _orchestrators[1:]]
monitoring = _group("monitoring")
if _balancers:
    load_balancers = _group("load_balancers")
def _reward_data(h: dict) -> dict:
    # The lab chain (lab/chain.py) and the orchestrator's keystore on it: the keystore, its
    # password and the RPC URL must land here and on no other host.
    chain = _chain()
    return {
        **_host_data(h),
        "keystore_path": chain["keystore_path"],
        "keystore_password_file": chain["keystore_password_file"],
        "eth_url_file": chain["eth_url_file"],
        "reward_network": chain["network"],
        "reward_controller": chain["controller"],
        # Rounds of 20 one-second blocks: look every second, initialize within 2 s.
        "reward_block_polling_interval": 1,
        "reward_extra_flags": {"initializeRoundMaxDelay": "2s"},
    }


reward = [(_first_orch, _reward_data(_orchestrators[0]))] if _orchestrators else []
if any(h["group"] == "redeemers" for h in _hosts):
    redeemers = _group("redeemers")
