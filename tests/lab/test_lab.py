"""The lab itself: real systemd hosts with sshd on a private bridge, their fault helpers, the
inventory that describes them, and apt reaching the Debian mirror from inside, through the lab's apt cache.

    .venv/bin/python -m pytest tests/lab -q
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lab as lablib
from lab import config as lab_config

from .conftest import lpfleet

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


def boot_id(name: str) -> str:
    p = lablib.ssh_run(name, "cat /proc/sys/kernel/random/boot_id", check=True)
    return p.stdout.strip()


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# -- without a lab ----------------------------------------------------------------------------

def test_host_names_and_addresses_are_fixed():
    assert lab_config.plan_hosts(None, 0) == ["o1", "o2", "t1", "t2", "mon1", "lb1"]
    assert lab_config.plan_hosts(None, 4) == ["o1", "o2", "t1", "t2", "t3", "t4", "t5", "t6", "mon1", "lb1"]
    addrs = {n: lab_config.host_spec(n).address for n in lab_config.plan_hosts(None, 4)}
    assert addrs["o1"] == "10.77.0.11" and addrs["o2"] == "10.77.0.12" and addrs["t1"] == "10.77.0.21"
    assert addrs["t6"] == "10.77.0.26" and addrs["mon1"] == "10.77.0.31" and addrs["lb1"] == "10.77.0.51"
    with pytest.raises(lablib.LabError, match="at most 10"):
        lab_config.plan_hosts(None, 5)
    with pytest.raises(lablib.LabError, match="bad lab host name"):
        lab_config.host_spec("web1")


def test_inventory_says_lab_is_not_up(tmp_path):
    code = "import runpy; runpy.run_path('inventory/lab.py')"
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "LPFLEET_LAB_DIR": str(tmp_path)})
    assert p.returncode != 0
    assert "lab is not up: run lpfleet lab up" in p.stderr


# -- the running lab --------------------------------------------------------------------------

def test_every_host_runs_systemd_and_sshd(lab):
    assert {"o1", "t1", "t2", "mon1"} <= set(lab.names)
    for h in lab.hosts:
        p = lablib.ssh_run(h.name, "hostname; systemctl is-system-running; systemctl is-active ssh")
        assert p.returncode in (0, 1), p.stderr  # is-system-running exits 1 when degraded
        hostname, system, sshd = p.stdout.split()
        assert hostname == h.name
        assert system in ("running", "degraded")
        assert sshd == "active"
        # A real Debian 12 with systemd as PID 1.
        p = lablib.ssh_run(h.name, "cat /proc/1/comm; . /etc/os-release; echo $VERSION_CODENAME", check=True)
        assert p.stdout.split() == ["systemd", "bookworm"]


def test_each_host_has_its_own_address(lab):
    seen = {}
    for h in lab.hosts:
        p = lablib.ssh_run(h.name, "ip -4 -o addr show dev host0", check=True)
        assert f"inet {h.address}/24" in p.stdout
        seen[h.name] = h.address
        assert h.address == lab_config.host_spec(h.name).address
    assert len(set(seen.values())) == len(seen)
    ids = {lablib.ssh_run(h.name, "cat /etc/machine-id", check=True).stdout.strip() for h in lab.hosts}
    assert len(ids) == len(lab.hosts)


def test_hosts_reach_each_other_over_the_bridge(lab):
    names = lab.names
    for h in lab.hosts:
        others = [n for n in names if n != h.name]
        # By name (the lab's /etc/hosts block) over ICMP: a deployed fleet's firewall admits
        # SSH only from the admin network (the control machine), so host-to-host TCP is not
        # something the lab itself can promise once the fleet is deployed.
        script = " && ".join(f"ping -c1 -W2 {o} >/dev/null" for o in others)
        p = lablib.ssh_run(h.name, script + " && ping -c1 -W2 lab-control >/dev/null")
        assert p.returncode == 0, f"{h.name}: {p.stdout}{p.stderr}"


def test_hosts_are_separate_systemd_instances(lab):
    """Each host's systemd has its own cgroup tree: stopping a unit on one host leaves the
    same-named unit on another running."""
    unit = "lab-isolation-probe"
    try:
        for n in ("o1", "t1"):
            lablib.ssh_run(n, f"systemctl stop {unit} 2>/dev/null; systemd-run --quiet --unit={unit} sleep 300",
                           check=True)
        lablib.ssh_run("t1", f"systemctl stop {unit}", check=True)
        assert lablib.ssh_run("o1", f"systemctl is-active {unit}").stdout.strip() == "active"
        assert lablib.ssh_run("t1", f"systemctl is-active {unit}").stdout.strip() != "active"
    finally:
        for n in ("o1", "t1"):
            lablib.ssh_run(n, f"systemctl stop {unit}")


def test_status_lists_hosts(lab):
    out = json.loads(lpfleet("lab", "status", "--json").stdout)
    assert out["up"] is True
    by_name = {h["name"]: h for h in out["hosts"]}
    for h in lab.hosts:
        row = by_name[h.name]
        assert (row["address"], row["group"], row["state"], row["link"], row["ssh"]) == (
            h.address, h.group, "running", "up", True)
    text = lpfleet("lab", "status").stdout
    for h in lab.hosts:
        assert any(line.split()[:3] == [h.name, h.group, h.address] and line.split()[3:] == ["running", "up", "ok"]
                   for line in text.splitlines()), text


def test_ssh_subcommand_runs_commands_and_passes_exit_status(lab):
    p = lpfleet("lab", "ssh", "t1", "hostname")
    assert p.stdout.strip() == "t1"
    p = lpfleet("lab", "ssh", "o1", "echo", "out;", "exit", "7", check=False)
    assert p.returncode == 7 and p.stdout.strip() == "out"


def test_state_file_and_secrets(lab):
    raw = json.loads(lablib.state.path().read_text())
    assert raw["version"] == 1 and raw["ssh_user"] == "root" and raw["gateway"] == "10.77.0.1"
    assert [h["name"] for h in raw["hosts"]] == lab.names
    assert raw["alert_receiver_token_file"] == lab.alert_receiver_token_file
    for path in (lab.ssh_key, lab.orch_secret_file, lab.admin_token_file, lab.alert_receiver_token_file):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == 0o600, f"{path}: {oct(mode)}"
        assert Path(path).read_text().strip()


INVENTORY_DUMP = """
import json, sys
from pyinfra.api import Config, State
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory
with ctx_state.use(State(config=Config())):
    inv = make_inventory(sys.argv[1], cwd=sys.argv[2])
out = {"groups": {g: sorted(h.name for h in inv.get_group(g))
                  for g in ("orchestrators", "transcoders", "monitoring", "reward", "load_balancers")},
       "data": {h.name: h.data.dict() for h in inv}}
print(json.dumps(out, default=str))
"""


def test_inventory_describes_the_lab(lab):
    # In a child process: pyinfra's CLI package monkey-patches the interpreter with gevent.
    p = subprocess.run([sys.executable, "-c", INVENTORY_DUMP, str(REPO / "inventory/lab.py"), str(REPO)],
                       cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    inv = json.loads(p.stdout.strip().splitlines()[-1])
    groups = inv["groups"]
    assert groups["orchestrators"] == ["o1", "o2"]
    assert groups["reward"] == ["o1"]
    # o2 transcodes itself; the remote transcoders work for o1.
    assert {"t1", "t2", "o2"} <= set(groups["transcoders"])
    assert groups["monitoring"] == ["mon1"]
    assert groups["load_balancers"] == ["lb1"]
    for h in lab.hosts:
        d = inv["data"][h.name]
        assert (d["ssh_hostname"], d["ssh_user"], d["ssh_key"]) == (h.address, "root", lab.ssh_key)
        assert d["ssh_known_hosts_file"] == lab.known_hosts and d["ssh_strict_host_key_checking"] == "yes"
        assert d["admin_networks"] == ["10.77.0.1/32"]
        assert d["orch_secret_file"] == lab.orch_secret_file and d["admin_token_file"] == lab.admin_token_file
        assert d["address"] == h.address and d["lab"] is True
        if h.group == "transcoders":
            assert d["orchestrator"] == "o1"
        if h.group == "orchestrators":
            # Behind lb1: one session key for both, on the control machine (0600).
            assert d["auth_key_file"] == f"{lab.state_dir}/secrets/auth_key"
        if h.group == "monitoring":
            # Short timings and a local receiver; the alert rules keep their own durations.
            assert d["grafana"] is False and d["prometheus_scrape_interval"] == "5s"
            assert d["prometheus_runbook_base"] == f"file://{REPO}/docs"
            [page] = d["alertmanager_receivers"]["page"]
            assert page["url"] == f"http://10.77.0.1:{lab_config.ALERT_RECEIVER_PORT}/page"
            assert page["http_config"]["authorization"]["credentials_file"] == {"file": lab.alert_receiver_token_file}


def test_pyinfra_connects_to_every_host(lab):
    """pyinfra's own SSH connector (paramiko), with the inventory's key and strict host keys."""
    p = subprocess.run(
        [str(Path(sys.executable).with_name("pyinfra")), "-y", "inventory/lab.py", "exec", "--", "hostname"],
        cwd=REPO, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    for h in lab.hosts:
        assert f"[{h.name}]" in out and "Success" in out


def test_testinfra_reaches_hosts(lab):
    host = lablib.testinfra_host("o1")
    assert host.service("ssh").is_running
    assert host.file("/etc/hostname").content_string.strip() == "o1"
    assert host.package("openssh-server").is_installed


def test_apt_inside_hosts_goes_through_the_labs_apt_cache(lab):
    """Hosts reach the Debian mirror this machine's apt uses, through apt-cacher-ng on the
    control machine: a package two hosts download is fetched from the mirror once."""
    from lab import aptcache

    for name in ("t1", "t2"):
        p = lablib.ssh_run(name, "apt-get update -q", timeout=240)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "Err:" not in p.stdout and "W: Failed" not in p.stderr, p.stdout + p.stderr
    log = aptcache.transfer_log()
    before = len(log.read_text().splitlines()) if log.exists() else 0
    for name in ("t1", "t2"):
        p = lablib.ssh_run(name, "cd /tmp && apt-get download -q jq && rm -f jq_*.deb", timeout=240)
        assert p.returncode == 0, p.stdout + p.stderr

    def jq_lines() -> list[list[str]]:
        lines = log.read_text().splitlines()[before:]
        return [line.split("|") for line in lines if "/j/jq/jq_" in line]
    wait_for(lambda: sum(1 for f in jq_lines() if f[1] == "O") == 2, 10, "both downloads logged")
    fetched = [f for f in jq_lines() if f[1] == "I"]
    assert len(fetched) <= 1, jq_lines()   # the second host got it from the cache


def test_hosts_have_no_way_out_of_the_lab_but_dns(lab):
    """Without the apt cache there is no route to the mirror (or anywhere else) from a host."""
    mirror = lablib.ssh_run("t1", "awk '/^deb /{print $2; exit}' /etc/apt/sources.list",
                            check=True).stdout.strip()
    p = lablib.ssh_run("t1", f"curl -sS -m 5 --noproxy '*' -o /dev/null {mirror}/")
    assert p.returncode != 0, "a lab host reached the mirror directly"
    p = lablib.ssh_run("t1", f"curl -sS -m 10 -o /dev/null -x http://10.77.0.1:3142 {mirror}/dists/bookworm/Release")
    assert p.returncode == 0, p.stderr


def test_stop_and_start_a_host(lab):
    name = "t2"
    lablib.ssh_run(name, "echo kept > /var/lib/lab-disk-marker", check=True)
    before = boot_id(name)
    try:
        lpfleet("lab", "stop", name)
        rows = {r.name: r for r in lablib.status()}
        assert rows[name].state == "stopped" and not rows[name].ssh
        assert not lablib.reachable(name, timeout=2)
        assert rows["o1"].ssh  # the others carry on
        lpfleet("lab", "start", name, timeout=180)
        assert lablib.reachable(name)
        assert boot_id(name) != before
        assert lablib.ssh_run(name, "cat /var/lib/lab-disk-marker").stdout.strip() == "kept"
        # A power cut (no clean shutdown) and back.
        lablib.stop(name, hard=True)
        assert not lablib.reachable(name, timeout=2)
        assert lablib.start(name) in ("running", "degraded")
        assert lablib.ssh_run(name, "systemctl is-active ssh").stdout.strip() == "active"
    finally:
        if not lablib.reachable(name, timeout=2):
            lablib.start(name)
        lablib.ssh_run(name, "rm -f /var/lib/lab-disk-marker")


def test_cut_and_restore_a_link(lab):
    name = "t1"
    before = boot_id(name)
    try:
        lpfleet("lab", "cut", name)
        assert not lablib.reachable(name, timeout=2)
        p = lablib.ssh_run("o1", f"ping -c1 -W2 {name}")
        assert p.returncode != 0  # unreachable from the other hosts too
        rows = {r.name: r for r in lablib.status()}
        assert rows[name].state == "cut" and rows[name].running and not rows[name].ssh
        lpfleet("lab", "restore", name)
        wait_for(lambda: lablib.reachable(name, timeout=2), 30, f"{name} reachable after restore")
        # o1's neighbour entry for t1 may still be resolving from the ping sent while the link was
        # cut; when that resolution gives up (3 probes, 1 s apart) it drops what it queued, the
        # first ping after the restore included. The kernel recovers on the next packet.
        wait_for(lambda: lablib.ssh_run("o1", f"ping -c1 -W2 {name}").returncode == 0, 10,
                 f"o1 reaching {name} after restore")
        assert boot_id(name) == before  # it kept running all along
    finally:
        lablib.restore(name)


def test_up_again_is_a_fast_no_op(lab):
    ids = {h.name: boot_id(h.name) for h in lab.hosts}
    t0 = time.monotonic()
    p = lpfleet("lab", "up")
    took = time.monotonic() - t0
    assert took < 15, f"warm up took {took:.1f}s"
    assert f"0 booted, {len(lab.hosts)} already running" in p.stderr
    assert {h.name: boot_id(h.name) for h in lab.hosts} == ids
    assert lablib.load().names == lab.names
