"""Lab test fixtures: `lab` brings the lab up once per session (idempotent) and returns its state.

The lab stays up after the session (other lab tests, e.g. the deploy tests, and the next session
reuse it; a warm `up` takes under a second). To tear it down at the end of the session:

    LPFLEET_LAB_DOWN=1 .venv/bin/python -m pytest tests/lab -q
    .venv/bin/python -m pytest tests/lab -q --lab-down      # when tests/lab is on the command line
    .venv/bin/lpfleet lab down                              # any time

Lab tests need root and the lab's tools (scripts/setup installs them); without them they fail.

`deployed` runs the fleet deploy (`pyinfra -y inventory/lab.py deploys/fleet.py`) twice per
session, for every test that needs the deployed fleet (test_fleet.py, test_monitoring.py,
test_dashboard_queries.py), and records which services restarted or reloaded in between.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import testinfra

import lab as lab_pkg
from lab import config as lab_config
from lpfleet.remote import DeployTotals, deploy_totals

#: Seconds a lab test may take, including a cold `up` (debootstrap) in the first test's setup.
LAB_TEST_TIMEOUT = 900

REPO = Path(__file__).resolve().parents[2]
PYINFRA = [sys.executable, "-m", "pyinfra"]


def pytest_addoption(parser):
    parser.addoption(
        "--lab-down",
        action="store_true",
        default=False,
        help="tear the lab down (lpfleet lab down) at the end of the session; "
        "same as LPFLEET_LAB_DOWN=1",
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("lab") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(LAB_TEST_TIMEOUT))


def lpfleet(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Runs the lpfleet CLI of this checkout (same interpreter as the tests)."""
    p = subprocess.run(
        [sys.executable, "-m", "lpfleet.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and p.returncode != 0:
        raise AssertionError(
            f"lpfleet {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        )
    return p


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root"
    missing = [t for t in ("debootstrap", "systemd-nspawn", "nft", "ip", "ssh") if not shutil.which(t)]
    if missing:
        return f"lab tools missing ({', '.join(missing)}): run scripts/setup"
    return None


def _want_down(config) -> bool:
    return bool(config.getoption("--lab-down", default=False)) or os.environ.get(
        "LPFLEET_LAB_DOWN", ""
    ) not in ("", "0", "no", "false")


@pytest.fixture(scope="session")
def lab(request) -> lab_pkg.LabState:
    """The running lab (at least o1, t1, t2, mon1; hosts added by hand, e.g. --extra, are kept)."""
    # Not a skip: a missing tool would hide the tier CI exists to run.
    reason = _missing_prerequisite()
    if reason:
        pytest.fail(reason)
    names = list(lab_config.DEFAULT_HOSTS)
    if lab_pkg.state.exists():
        try:
            names = lab_config.plan_hosts(lab_pkg.load().names + names, 0)
        except lab_pkg.LabError:
            pass
    if _want_down(request.config):
        request.addfinalizer(lambda: lpfleet("lab", "down", check=False))
    p = lpfleet("lab", "up", "--hosts", ",".join(names), timeout=LAB_TEST_TIMEOUT - 30)
    sys.stderr.write(p.stderr)
    return lab_pkg.load()


# --------------------------------------------------------------------------- the fleet deploy


@dataclass
class DeployRun:
    returncode: int
    output: str
    seconds: float

    def totals(self) -> DeployTotals:
        """The 'Grand total' row of pyinfra's results table."""
        found = deploy_totals(self.output)
        assert found, f"no results table in the deploy output:\n{self.output[-3000:]}"
        return found


def deploy(*args: str, timeout: float = 900) -> DeployRun:
    """`pyinfra -y inventory/lab.py deploys/fleet.py ARGS`, as an operator runs it."""
    started = time.monotonic()
    p = subprocess.run(
        [*PYINFRA, "-y", "inventory/lab.py", "deploys/fleet.py", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    return DeployRun(p.returncode, p.stdout + p.stderr, time.monotonic() - started)


# Per host group: the services whose process must survive a deploy that changes nothing.
SERVICES = {
    "orchestrators": ("lpnode", "prometheus-node-exporter"),
    "transcoders": ("lpnode", "prometheus-node-exporter"),
    "monitoring": ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter"),
    "load_balancers": ("haproxy", "prometheus-node-exporter"),
}
# Reload metrics: a reload keeps the process, so the PID alone would not show one.
RELOAD_METRICS = {
    "prometheus": "http://127.0.0.1:9090/metrics prometheus_config_last_reload_success_timestamp_seconds",
    "prometheus-alertmanager": "http://127.0.0.1:9093/metrics alertmanager_config_last_reload_success_timestamp_seconds",
}


def service_generations(state: lab_pkg.LabState) -> dict[str, str]:
    """``host/service`` -> "MainPID reload-time": what changes when a service restarts or reloads."""
    out = {}
    for h in state.hosts:
        services = SERVICES.get(h.group, ())
        commands = []
        for service in services:
            metric = RELOAD_METRICS.get(service)
            reload = (f"$(curl -sf -m 5 {metric.split()[0]} | awk '$1 == \"{metric.split()[1]}\" {{print $2}}')"
                      if metric else "-")
            commands.append(f"echo {service} $(systemctl show {service} -p MainPID --value) {reload}")
        p = lab_pkg.ssh_run(h.name, "; ".join(commands), check=True)
        for line in p.stdout.splitlines():
            service, rest = line.split(" ", 1)
            out[f"{h.name}/{service}"] = rest
    return out


@dataclass
class Deployed:
    first: DeployRun
    second: DeployRun
    before_second: dict[str, str]  # service_generations() between the runs
    after_second: dict[str, str]


@pytest.fixture(scope="session")
def deployed(lab) -> Deployed:
    """The first deploy and the no-change re-run, on the running lab."""
    first = deploy()
    assert first.returncode == 0, first.output[-6000:]
    before = service_generations(lab)
    second = deploy()
    return Deployed(first, second, before, service_generations(lab))


@pytest.fixture(scope="session")
def hosts(lab, deployed):
    return {h.name: testinfra.get_host(f"ssh://root@{h.address}", ssh_config=lab.ssh_config) for h in lab.hosts}


@pytest.fixture(scope="session")
def addresses(lab):
    return {h.name: h.address for h in lab.hosts}


def can_connect(host, address: str, port: int, timeout: float = 3) -> bool:
    """Whether ``host`` (a testinfra host) completes a TCP handshake with address:port. A
    firewall drops rather than refuses, so a "no" takes ``timeout`` seconds."""
    probe = (
        "import socket,sys\n"
        "try:\n"
        f"    socket.create_connection(({address!r}, {port}), timeout={timeout}).close()\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    result = host.run(f"python3 -c {shlex.quote(probe)}")
    assert result.rc in (0, 1), result.stderr  # anything else is a broken probe, not an answer
    return result.rc == 0


def can_connect_from_here(address: str, port: int, timeout: float = 3) -> bool:
    try:
        socket.create_connection((address, port), timeout=timeout).close()
        return True
    except OSError:
        return False
