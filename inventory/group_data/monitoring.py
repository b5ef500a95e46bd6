"""Data for monitoring hosts: Prometheus, Alertmanager and (in production) Grafana; every setting
is documented in docs/monitoring.md. Other hosts admit the monitoring hosts on 7935 (lpnode
admin/metrics) and 9100 (node exporter) by address, so a monitoring host's address must be an
IP address (set `address` if ssh_hostname is a name).

`alertmanager_receivers` (where alerts go) has no default: set it in the inventory, as
inventory/prod.py does. A secret in a receiver is never written here but named:
{"env": "VARIABLE"} or {"file": "~/path/on/the/deploy/machine"}."""

# Install Grafana from Grafana's apt repository (apt.grafana.com), with the local Prometheus as
# its data source and the dashboards of monitoring/dashboards/. Needs HTTPS to apt.grafana.com.
grafana = True

# Where your copy of the repository's docs/ can be read, without a trailing slash: every alert
# links to <prometheus_runbook_base>/alerts.md#<alert>. Replace with your fork or wiki mirror.
prometheus_runbook_base = "https://github.com/example-org/lpfleet/blob/main/docs"

# How often Prometheus scrapes every target and evaluates the rules. The dashboards' rates
# assume 15s.
prometheus_scrape_interval = "15s"
prometheus_evaluation_interval = "15s"

# How long Prometheus keeps samples, and optionally a cap on the database size ("50GB"; ""
# for none). Whichever is reached first removes the oldest data.
prometheus_retention_time = "30d"
prometheus_retention_size = ""

# Labels added to every alert and series leaving this Prometheus, e.g. {"fleet": "eu"} when
# several fleets share one Alertmanager or Grafana.
prometheus_external_labels: dict[str, str] = {}

# Your own alert rule files (paths on the machine you deploy from), installed and checked with
# lpfleet's; [[ runbook_base ]] in them is filled in the same way.
prometheus_extra_rule_files: list[str] = []

# SMTP for email channels: {"smarthost": "smtp.example.com:587", "from": "alerts@example.com",
# "auth_username": "alerts", "auth_password_file": {"env": "LPFLEET_SMTP_PASSWORD"}}.
alertmanager_smtp: dict[str, object] = {}

# When Alertmanager considers an alert resolved that Prometheus stopped sending.
alertmanager_resolve_timeout = "5m"

# Overrides of a route's group_wait / group_interval / repeat_interval (routes: default, page,
# ticket, watchdog), e.g. {"page": {"group_wait": "10s"}}. The defaults are in
# monitoring/alertmanager/README.md; the lab shortens them so its delivery test is quick.
alertmanager_route_timings: dict[str, dict[str, str]] = {}

# How long Alertmanager keeps silences and its notification log.
alertmanager_data_retention = "120h"

# Grafana's apt key (stored in /etc/apt/keyrings/grafana.asc, trusted for Grafana's repository
# only) and, recommended, its sha256 so a changed key stops the deploy. Pin grafana_version
# ("11.2.2") to upgrade only when you choose to; "" installs the newest.
grafana_apt_key_url = "https://apt.grafana.com/gpg.key"
grafana_apt_key_sha256 = None
grafana_version = ""

# Grafana's first admin password, read on the machine you deploy from (like the orchSecret):
#   grafana_admin_password_env = "LPFLEET_GRAFANA_ADMIN_PASSWORD"
# Without it Grafana starts with admin/admin and asks for a new password at the first login.
