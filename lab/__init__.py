"""The local lab: real Debian 12 hosts (systemd, sshd) booted with systemd-nspawn on this machine,
each in its own network namespace on a private bridge, for proving deploys (see docs/lab.md).

    import lab
    st = lab.up()                         # idempotent; lab.up().state is the LabState
    st = lab.state.load()                 # LabState of the running lab (LabNotUp if none)
    lab.ssh_run("t1", "systemctl is-active lpnode").stdout
    lab.stop("t1"); lab.start("t1")       # power off / boot again (disk kept)
    lab.cut("t1"); lab.restore("t1")      # pull / plug the network cable
"""

from . import config, state
from .config import DEFAULT_HOSTS, LabError
from .core import (
    HostStatus,
    UpReport,
    cut,
    down,
    restore,
    start,
    status,
    stop,
    up,
    wait_ready,
)
from .ssh import reachable, ssh_argv, ssh_run
from .state import Host, LabNotUp, LabState, load


def testinfra_host(name: str, backend: str = "ssh"):
    """A testinfra Host for a lab host (backend "ssh" or "paramiko"), through the lab's
    generated ssh_config (key, known_hosts, user root)."""
    import testinfra

    st = load()
    h = st.host(name)
    return testinfra.get_host(f"{backend}://{h.name}", ssh_config=st.ssh_config)


__all__ = [
    "DEFAULT_HOSTS",
    "Host",
    "HostStatus",
    "LabError",
    "LabNotUp",
    "LabState",
    "UpReport",
    "config",
    "cut",
    "down",
    "load",
    "reachable",
    "restore",
    "ssh_argv",
    "ssh_run",
    "start",
    "state",
    "status",
    "stop",
    "testinfra_host",
    "up",
    "wait_ready",
]
