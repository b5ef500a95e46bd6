"""Data for every host. Each setting is a documented default; override it in a group's file or
in the host's own data in the inventory."""

# How pyinfra connects. Connect as root, or as a user with sudo and set `_sudo = True`.
ssh_user = "root"

# Who may SSH in: the addresses/CIDRs operators and the deploy machine connect from. Everything
# else is dropped. The deploy refuses a ruleset that would not admit the address it is running
# from, so a mistake here cannot lock you out. (These are documentation ranges: replace them.)
admin_networks = ["198.51.100.0/24", "2001:db8:100::/48"]

# Secrets come from the machine you deploy from, never from this repository: `<name>_env` names
# an environment variable holding the value, `<name>_file` a file (mode 0600) holding it; a file
# wins if both are set. One orchSecret is shared by an orchestrator and its transcoders; give a
# group or host its own variable to use several.
#   export LPFLEET_ORCH_SECRET="$(openssl rand -base64 32)"   # keep it in your password manager
orch_secret_env = "LPFLEET_ORCH_SECRET"
# The token for lpnode's admin API (drain, reload) on 7935.
admin_token_env = "LPFLEET_ADMIN_TOKEN"

# The system user lpnode runs as (no shell, no login) and its home, which is lpnode's -datadir.
service_user = "lpnode"
service_home = "/var/lib/lpnode"

# Time sync: `systemd-timesyncd` or `chrony`. Tickets, TLS and round timing need a true clock.
time_sync = "systemd-timesyncd"

# journald limits (journald.conf(5)): a chatty node must not fill the disk it works on.
journald_system_max_use = "2G"
journald_system_keep_free = "4G"
journald_system_max_file_size = "128M"
journald_max_retention = "30day"

# The port sshd listens on, for the firewall.
ssh_port = 22
