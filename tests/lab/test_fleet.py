"""The fleet deploy on the lab, checked the way an operator would check a new fleet.

    .venv/bin/python -m pytest tests/lab/test_fleet.py -q

The session runs the real deploy (`pyinfra -y inventory/lab.py deploys/fleet.py`) twice; the
tests then look at the hosts over SSH with testinfra, probe the firewall from other lab hosts
and from this machine (10.77.0.1 on the lab bridge), and push a test stream through the fleet.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import chain as lab_chain

from .conftest import PYINFRA, REPO, can_connect, can_connect_from_here, deploy

pytestmark = pytest.mark.lab

NODES = ("o1", "t1", "t2")
ORCH = "o1"
TRANSCODERS = ("t1", "t2")
MONITOR = "mon1"


# --------------------------------------------------------------------------- the deploy itself


def test_first_deploy_succeeds(deployed):
    totals = deployed.first.totals()
    assert totals.errors == 0


def test_second_deploy_reports_no_changes(deployed):
    second = deployed.second
    assert second.returncode == 0, second.output[-6000:]
    totals = second.totals()
    assert totals.changed == 0 and totals.errors == 0, second.output[-6000:]
    assert totals.unchanged == totals.operations
    # The monitoring roles are part of it: every host's node exporter, mon1's Prometheus and
    # Alertmanager with their checked configuration files.
    for op in ("node exporter | node exporter running and enabled at boot",
               "prometheus | Prometheus configuration /etc/prometheus/prometheus.yml",
               "prometheus | Alert rules /etc/prometheus/rules/lpnode.yml",
               "alertmanager | Alertmanager configuration /etc/prometheus/alertmanager.yml",
               "alertmanager | Receiver secret /etc/prometheus/secrets/page-1-webhook"):
        assert op in second.output, op


def test_second_deploy_restarts_and_reloads_nothing(deployed):
    """Same main PIDs, and Prometheus and Alertmanager did not even reload their configuration."""
    assert "mon1/prometheus" in deployed.before_second and "t1/lpnode" in deployed.before_second
    assert all(value.split()[0] not in ("", "0") for value in deployed.before_second.values()), deployed.before_second
    assert deployed.after_second == deployed.before_second


def test_dry_run_shows_nothing_to_do(deployed):
    p = subprocess.run([*PYINFRA, "inventory/lab.py", "deploys/fleet.py", "--dry"], cwd=REPO,
                       capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    output = p.stdout + p.stderr  # pyinfra logs its tables to stderr
    assert p.returncode == 0, output
    table = output.split("Detected changes:", 1)[1].split("Detected changes may not include", 1)[0]
    assert "lpnode running and enabled at boot" in table
    assert "Prometheus running and enabled at boot" in table and "Alertmanager configuration" in table
    # A change is shown as "<hosts> (<names>)", nothing to do as "-". The only conditional
    # changes are the waits for a reload, which run only after a reload (and none is due).
    for line in table.splitlines()[2:]:
        fields = re.split(r"\s{2,}", line.strip())
        if len(fields) < 3:
            continue
        assert fields[1] == "-", line
        assert fields[2] == "-" or "runs the new configuration" in fields[0], line


# --------------------------------------------------------------------------- services and base


@pytest.mark.parametrize("name", NODES)
def test_lpnode_active_and_enabled(hosts, name):
    service = hosts[name].service("lpnode")
    assert service.is_running
    assert service.is_enabled


@pytest.mark.parametrize("name", NODES)
def test_lpnode_runs_hardened_as_lpnode(hosts, name):
    props = dict(
        line.split("=", 1) for line in hosts[name].check_output(
            "systemctl show lpnode -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome "
            "-p PrivateTmp -p PrivateDevices -p StateDirectory -p Restart"
        ).splitlines()
    )
    assert props == {"User": "lpnode", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                     "PrivateTmp": "yes", "PrivateDevices": "yes", "StateDirectory": "lpnode", "Restart": "on-failure"}
    pid = hosts[name].check_output("systemctl show lpnode -p MainPID --value")
    assert hosts[name].check_output(f"ps -o user= -p {pid}") == "lpnode"


def test_base_on_every_host(hosts):
    for host in hosts.values():
        user = host.user("lpnode")
        assert user.exists and user.shell == "/usr/sbin/nologin" and user.uid < 1000
        for package in ("python3", "python3-venv", "ca-certificates", "nftables", "systemd-timesyncd"):
            assert host.package(package).is_installed, (host, package)
        assert host.service("systemd-timesyncd").is_enabled
        assert host.service("nftables").is_enabled
        dropin = host.file("/etc/systemd/journald.conf.d/50-lpfleet.conf")
        assert dropin.contains("^SystemMaxUse=")
        assert host.check_output("systemctl show systemd-journald -p ActiveState --value") == "active"


def test_ports_listening(hosts):
    assert hosts[ORCH].socket("tcp://0.0.0.0:8935").is_listening
    assert hosts[ORCH].socket("tcp://0.0.0.0:7935").is_listening
    for name in TRANSCODERS:
        assert hosts[name].socket("tcp://0.0.0.0:7935").is_listening
        assert not hosts[name].socket("tcp://0.0.0.0:8935").is_listening


# --------------------------------------------------------------------------- firewall


def test_8935_open_to_other_hosts_and_this_machine(hosts, addresses):
    for name in ("t1", MONITOR):
        assert can_connect(hosts[name], addresses[ORCH], 8935), name
    assert can_connect_from_here(addresses[ORCH], 8935)


def test_7935_only_from_the_monitoring_host(hosts, addresses):
    for target in NODES:
        assert can_connect(hosts[MONITOR], addresses[target], 7935), target
    for source in ("t1", "t2"):
        assert not can_connect(hosts[source], addresses[ORCH], 7935), source
    assert not can_connect(hosts[ORCH], addresses["t1"], 7935)
    assert not can_connect_from_here(addresses[ORCH], 7935)


def test_ssh_only_from_admin_networks(hosts, addresses):
    # The lab's admin network is this machine alone (10.77.0.1/32).
    assert can_connect_from_here(addresses[ORCH], 22)
    assert not can_connect(hosts["t1"], addresses[ORCH], 22)
    assert not can_connect(hosts[MONITOR], addresses["t2"], 22)


def test_ruleset_loaded_is_the_deployed_one(hosts):
    for name, host in hosts.items():
        live = host.check_output("nft list table inet lpfleet")
        assert "policy drop" in live, name
        assert host.file("/etc/nftables.conf").contains("table inet lpfleet")
        assert not host.file("/etc/.nftables.conf.lpfleet-new").exists


# --------------------------------------------------------------------------- secrets


def local_secret(path: str) -> bytes:
    return Path(path).read_bytes().strip()


@pytest.mark.parametrize("name", NODES)
def test_secret_files_are_0400_lpnode(hosts, lab, name):
    host = hosts[name]
    directory = host.file("/etc/lpnode")
    assert (directory.user, directory.group, directory.mode) == ("root", "lpnode", 0o750)
    for remote, local in (("/etc/lpnode/orchSecret", lab.orch_secret_file),
                          ("/etc/lpnode/adminToken", lab.admin_token_file)):
        f = host.file(remote)
        assert (f.user, f.group, f.mode) == ("lpnode", "lpnode", 0o400), remote
        # Same content as the operator's file, compared by hash so it is never printed.
        assert f.sha256sum == hashlib.sha256(local_secret(local) + b"\n").hexdigest(), remote


@pytest.mark.parametrize("name", NODES)
def test_secret_not_in_ps_or_journal(hosts, lab, name):
    secret = local_secret(lab.orch_secret_file).decode()
    token = local_secret(lab.admin_token_file).decode()
    host = hosts[name]
    processes = host.check_output("ps -eo args")
    journal = host.check_output("journalctl --no-pager -o cat")
    config = host.check_output("cat /etc/lpnode/lpnode.conf /etc/systemd/system/lpnode.service")
    for text in (processes, journal, config):
        assert secret not in text and token not in text
    assert "-config /etc/lpnode/lpnode.conf" in processes
    assert "orchSecret /etc/lpnode/orchSecret" in config


def test_keystore_lands_on_the_reward_host_and_nowhere_else(hosts, lab):
    """The lab's reward host (o1) has a keystore in its data; every other host is scanned."""
    keystore = Path(lab.state_dir) / "secrets" / "keystore.json"
    marker = json.loads(keystore.read_text())["id"]   # unique to this keystore
    reward = hosts[ORCH]
    landed = reward.file("/etc/lpnode/keystore/keystore.json")
    assert (landed.user, landed.group, landed.mode) == ("lpnode", "lpnode", 0o400)
    assert landed.sha256sum == hashlib.sha256(keystore.read_bytes()).hexdigest()
    password = reward.file("/etc/lpnode/keystore/password")
    assert (password.user, password.mode) == ("lpnode", 0o400)
    for name, host in hosts.items():
        found = host.run(f"grep -rlsF {marker} /etc /root /home /tmp /var/tmp /var/lib /opt")
        expected = ["/etc/lpnode/keystore/keystore.json"] if name == ORCH else []
        assert found.stdout.split() == expected, name


@pytest.mark.parametrize("name", TRANSCODERS)
def test_transcoders_pin_their_orchestrators_certificate(hosts, addresses, name):
    """The certificate o1 serves on 8935 is the one each transcoder was given for -orchCert."""
    served = ssl.get_server_certificate((addresses[ORCH], 8935))
    given = hosts[name].file("/etc/lpnode/orchestrator.crt")
    assert given.content_string.strip() == served.strip()
    assert "orchCert /etc/lpnode/orchestrator.crt" in hosts[name].file("/etc/lpnode/lpnode.conf").content_string
    assert not hosts[name].file("/etc/lpnode/tls.key").exists
    key = hosts[ORCH].file("/etc/lpnode/tls.key")
    assert (key.user, key.mode) == ("lpnode", 0o400)


# --------------------------------------------------------------------------- the fleet works


def test_transcoders_registered_at_the_orchestrator(hosts, addresses):
    status = json.loads(hosts[MONITOR].check_output(f"curl -sf -m 5 http://{addresses[ORCH]}:7935/status"))
    assert status["role"] == "orchestrator"
    registered = sorted(t["address"].rsplit(":", 1)[0] for t in status["transcoders"])
    assert registered == sorted(addresses[name] for name in TRANSCODERS)
    assert status["capacity"] == 16  # two transcoders of 8 (group_data/transcoders.py)


def test_metrics_scrapeable_from_monitoring(hosts, addresses):
    metrics = hosts[MONITOR].check_output(f"curl -sf -m 5 http://{addresses[ORCH]}:7935/metrics")
    assert "livepeer_transcoders_number" in metrics


def test_stream_through_the_fleet(lab, addresses):
    # Through the balancer, as gateways reach the fleet (its address is the one on chain). The
    # orchestrators are on the lab chain: the stream pays with tickets, as the lab's gateway.
    p = subprocess.run(
        [str(Path(sys.executable).with_name("lpnode")), "test-stream", "-orchAddr", f"{addresses['lb1']}:8935",
         "-segments", "5", "-resolution", "640x360", "-quiet", *lab_chain.stream_flags(lab.chain)],
        capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["succeeded"] == 5 and summary["failed"] == 0
    assert summary["payments"]["tickets"] >= 5


def test_an_unpaid_stream_is_refused_by_the_on_chain_orchestrator(addresses):
    p = subprocess.run(
        [str(Path(sys.executable).with_name("lpnode")), "test-stream", "-orchAddr", f"{addresses[ORCH]}:8935",
         "-segments", "1", "-resolution", "640x360", "-quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 1
    # Refused before any segment: a gateway must sign its GetOrchestrator request on chain.
    errors = json.loads(p.stdout.strip().splitlines()[-1])["errors"]
    assert any("orchestrator req sig check failed" in reason for reason in errors), errors


# --------------------------------------------------------------------------- later runs


def test_deploy_refuses_a_firewall_that_would_lock_out_ssh(hosts):
    before = hosts[ORCH].file("/etc/nftables.conf").sha256sum
    run = deploy("--limit", ORCH, "--data", "admin_networks=192.0.2.0/24")
    assert run.returncode != 0
    assert "would refuse SSH (port 22) from 10.77.0.1" in run.output
    assert "add 10.77.0.1 (or its network) to admin_networks" in run.output
    assert hosts[ORCH].file("/etc/nftables.conf").sha256sum == before


def test_a_misspelt_setting_stops_the_deploy_before_any_host_is_touched(hosts):
    before = hosts["t1"].file("/etc/lpnode/lpnode.conf").sha256sum
    run = deploy("--limit", "t1", "--data", "lpnode_max_sesions=4")
    assert run.returncode != 0
    assert "t1: lpnode_max_sesions is not a setting of the lpnode role; did you mean " \
           "lpnode_max_sessions?" in run.output
    assert "--> Preparing" not in run.output or "Beginning operation run" not in run.output
    assert hosts["t1"].file("/etc/lpnode/lpnode.conf").sha256sum == before


def test_config_lpnode_rejects_never_goes_live(hosts):
    host = hosts["t1"]
    before = host.file("/etc/lpnode/lpnode.conf").sha256sum
    pid_before = host.check_output("systemctl show lpnode -p MainPID --value")
    # A value the settings model accepts (it is valid for an orchestrator) and lpnode itself
    # refuses on a transcoder: only lpnode's own check of the candidate file can catch it.
    run = deploy("--limit", "t1", "--data", "lpnode_max_sessions=auto")
    assert run.returncode != 0
    assert "lpfleet: /etc/lpnode/lpnode.conf not updated: the new version failed" in run.output
    assert "-maxSessions auto is only for an orchestrator" in run.output  # lpnode's own words
    assert host.file("/etc/lpnode/lpnode.conf").sha256sum == before
    assert not host.file("/etc/lpnode/.lpnode.conf.lpfleet-new").exists
    assert host.check_output("systemctl show lpnode -p MainPID --value") == pid_before
    assert deploy("--limit", "t1").totals().changed == 0


def test_new_lpnode_build_is_installed_and_restarts_the_service(hosts):
    """What a changed node/ does on the next deploy: the recorded build differs, so the wheelhouse
    is installed again and lpnode restarts; the run after that is quiet again."""
    host = hosts["t2"]
    pid_before = host.check_output("systemctl show lpnode -p MainPID --value")
    host.check_output("echo some-older-build > /opt/lpnode/venv/.lpfleet-build")
    run = deploy("--limit", "t2")
    assert run.returncode == 0, run.output[-4000:]
    assert re.search(r"Install lpnode build \S+ from the wheelhouse.*\n\s+\[t2\]\s+Success", run.output)
    assert host.service("lpnode").is_running
    assert host.check_output("systemctl show lpnode -p MainPID --value") != pid_before
    again = deploy("--limit", "t2")
    assert again.totals().changed == 0, again.output[-4000:]


SUDO_USER = "deployer"


def test_secrets_never_pass_through_a_readable_file_with_sudo(hosts, lab, tmp_path):
    """The deploy reaching a host as an unprivileged user with sudo (`_sudo = True`, as the docs
    offer): pyinfra would upload a file to /tmp over SFTP and copy it with sudo. sftp-server
    logs every file it opens; changing a secret must open none, and the secret must land."""
    host = hosts["t2"]
    pubkey = Path(lab.ssh_key + ".pub").read_text().strip()
    host.check_output(
        f"id {SUDO_USER} >/dev/null 2>&1 || useradd -m -s /bin/bash {SUDO_USER}; "
        f"install -d -m 700 -o {SUDO_USER} -g {SUDO_USER} /home/{SUDO_USER}/.ssh; "
        f"echo {shlex.quote(pubkey)} > /home/{SUDO_USER}/.ssh/authorized_keys; "
        f"chown {SUDO_USER}: /home/{SUDO_USER}/.ssh/authorized_keys; "
        f"echo '{SUDO_USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{SUDO_USER}; "
        "chmod 440 /etc/sudoers.d/" + SUDO_USER + "; "
        # sftp-server logs each open and close with its path
        "grep -q 'sftp-server -l INFO' /etc/ssh/sshd_config || { "
        "sed -i 's|^Subsystem.*sftp.*|Subsystem sftp /usr/lib/openssh/sftp-server -l INFO|' "
        "/etc/ssh/sshd_config && systemctl reload ssh; }")
    # sshd re-executes on reload and refuses connections for a moment; testinfra raises
    # RuntimeError for a refused connection (ssh's 255) instead of returning its status.
    def answers() -> bool:
        try:
            return host.run("true").rc == 0
        except RuntimeError:
            return False

    deadline = time.monotonic() + 20
    while not answers():
        assert time.monotonic() < deadline, "sshd did not come back after its reload"
        time.sleep(0.2)
    token = tmp_path / "adminToken"
    token.write_text("sudo-rotated-admin-token-0c41\n")
    token.chmod(0o600)
    since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    try:
        run = deploy("--limit", "t2", "--data", f"ssh_user={SUDO_USER}", "--data", "_sudo=True",
                     "--data", f"admin_token_file={token}")
        assert run.returncode == 0, run.output[-4000:]
        assert run.totals().changed >= 1
        landed = host.file("/etc/lpnode/adminToken")
        assert (landed.user, landed.mode) == ("lpnode", 0o400)
        assert landed.sha256sum == hashlib.sha256(token.read_bytes()).hexdigest()
        # A harmless upload of our own, to show the log would have caught one.
        probe = tmp_path / "probe"
        probe.write_text("not a secret\n")
        subprocess.run(["sftp", "-F", lab.ssh_config, "-b", "-", f"{SUDO_USER}@t2"],
                       input=f"put {probe} /tmp/lpfleet-sftp-probe\n", text=True, check=True,
                       capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        while "lpfleet-sftp-probe" not in (sftp := host.check_output(
                f"journalctl --no-pager -o cat -t sftp-server --since '{since}'")):
            assert time.monotonic() < deadline, f"the probe upload was not logged:\n{sftp}"
            time.sleep(0.2)
        writes = [line for line in sftp.splitlines() if line.startswith("open ") and "WRITE" in line]
        assert writes == ['open "/tmp/lpfleet-sftp-probe" flags WRITE,CREATE,TRUNCATE mode 0644'], sftp
        assert "sudo-rotated-admin-token" not in host.check_output("journalctl --no-pager -o cat")
    finally:
        restored = deploy("--limit", "t2")
        assert restored.returncode == 0, restored.output[-4000:]
