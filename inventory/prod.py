"""An example production fleet: copy this file, replace the hosts, keep the shape.

    pyinfra inventory/prod.py deploys/fleet.py --dry   # what would change
    pyinfra inventory/prod.py deploys/fleet.py         # do it

Groups are roles (docs/operators-guide.md); a host may be in several. Data set here wins over
inventory/group_data/<group>.py, which wins over inventory/group_data/all.py. Secrets are never
written here: group_data/all.py names the environment variables (or files) they are read from
on the machine you deploy from.
"""

# Take work from gateways on 8935 and hand it to the transcoders that register with them.
orchestrators = [
    ("orch-fra-1", {"ssh_hostname": "203.0.113.10", "lpnode_max_sessions": 40}),
    ("orch-ams-1", {"ssh_hostname": "203.0.113.20"}),
]

# Each transcoder registers with exactly one orchestrator, named by `orchestrator`.
# `address` is what other hosts use to reach a host when that differs from ssh_hostname.
transcoders = [
    ("gpu-fra-1", {"ssh_hostname": "203.0.113.11", "orchestrator": "orch-fra-1"}),
    ("gpu-fra-2", {"ssh_hostname": "203.0.113.12", "orchestrator": "orch-fra-1", "lpnode_max_sessions": 16}),
    ("gpu-ams-1", {"ssh_hostname": "203.0.113.21", "orchestrator": "orch-ams-1"}),
]

# Hosts with NVIDIA GPUs get the pinned driver (group_data/gpu.py) and `-nvidia all`.
gpu = ["gpu-fra-1", "gpu-fra-2", "gpu-ams-1"]

# Prometheus, Alertmanager and Grafana (group_data/monitoring.py); the only source the other
# hosts admit on 7935 and 9100. Operators reach its 9090, 9093 and 3000 from admin_networks.
monitoring = [
    ("mon-1", {
        "ssh_hostname": "203.0.113.30",
        # Where alerts go (docs/monitoring.md): pages wake someone, tickets wait for working
        # hours, the always-firing Watchdog pings a dead man's switch. Secrets are named, never
        # written here: {"env": VARIABLE} or {"file": path} on the machine you deploy from.
        "alertmanager_receivers": {
            "page": [
                {"type": "pagerduty", "routing_key_file": {"env": "LPFLEET_PAGERDUTY_ROUTING_KEY"}},
            ],
            "ticket": [
                {"type": "email", "to": "ops@example.com"},
                {"type": "slack", "api_url_file": {"env": "LPFLEET_SLACK_WEBHOOK_URL"}, "channel": "#livepeer-ops"},
            ],
            "watchdog": [
                {"type": "webhook", "url": {"env": "LPFLEET_WATCHDOG_URL"}, "send_resolved": False},
            ],
        },
        "alertmanager_smtp": {
            "smarthost": "smtp.example.com:587",
            "from": "alerts@example.com",
            "auth_username": "alerts@example.com",
            "auth_password_file": {"env": "LPFLEET_SMTP_PASSWORD"},
        },
        "grafana_admin_password_env": "LPFLEET_GRAFANA_ADMIN_PASSWORD",
    }),
]

# Exactly one host calls reward() each round (lpnode-reward, its own unit; docs/on-chain.md);
# the cold keystore, its password and the RPC URL live there and nowhere else.
reward = [
    ("reward-1", {
        "ssh_hostname": "203.0.113.40",
        "keystore_path": "~/.lpfleet/keystore/reward.json",
        "keystore_password_env": "LPFLEET_KEYSTORE_PASSWORD",
        # The provider's URL carries its API key: a secret like the others.
        "eth_url_env": "LPFLEET_ETH_URL",
        # "reward_orch_addr": "0x...",   # LIP-118: the keystore holds the orchestrator's reward caller
        # "reward_max_gas_price": 2_000_000_000,
    }),
]
