"""Fixed layout of the lab: where its files live, how hosts are named and addressed.

Everything the lab creates on the control machine is named from here, so that `down` can find
and remove all of it even when the state file is gone.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

#: Everything the lab keeps on the control machine (rootfs cache, keys, secrets, host disks).
#: Override with LPFLEET_LAB_DIR (tests of the lab itself never need to).
DEFAULT_STATE_DIR = "/var/lib/lpfleet-lab"


def state_dir() -> Path:
    return Path(os.environ.get("LPFLEET_LAB_DIR") or DEFAULT_STATE_DIR)


SUBNET = "10.77.0.0/24"
PREFIXLEN = 24
GATEWAY = "10.77.0.1"  # the control machine's address on the lab bridge
#: Where lab tests listen on the control machine for Alertmanager's notifications: the lab's
#: monitoring host sends its page and ticket webhooks to http://GATEWAY:ALERT_RECEIVER_PORT/.
ALERT_RECEIVER_PORT = 9099
BRIDGE = "lpfleet0"
NFT_TABLE = "lpfleet_lab"  # `table ip lpfleet_lab`: NAT and the egress filter for the bridge
NETNS_PREFIX = "lpfleet-"  # /run/netns/lpfleet-o1
VETH_PREFIX = "lpv-"  # control-side end of a host's link, on the bridge: lpv-o1
MACHINE_PREFIX = "lpfleet-"  # systemd-nspawn --machine name (not registered anywhere)
SSH_USER = "root"

SUITE = "bookworm"

#: Packages in the cached root filesystem, on top of debootstrap's minbase. Changing this list
#: makes the next `up` (after a `down`) rebuild the rootfs.
ROOTFS_INCLUDE = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-venv",
    "iproute2",
    "iputils-ping",
    "nftables",
    "ca-certificates",
    "netbase",
    "procps",
    "less",
    "curl",
    "rsync",
    "sudo",
)

#: Two orchestrators behind a load balancer: the runbooks (runbooks/) roll one while the other
#: serves. t1 and t2 work for o1; o2 transcodes itself (inventory/lab.py).
DEFAULT_HOSTS = ("o1", "o2", "t1", "t2", "mon1", "lb1")
MAX_HOSTS = 10

# name prefix -> (inventory group, first address octet - 1): o1=.11, t1=.21, mon1=.31, r1=.41,
# lb1=.51
KINDS = {
    "o": ("orchestrators", 10),
    "t": ("transcoders", 20),
    "mon": ("monitoring", 30),
    "r": ("redeemers", 40),
    "lb": ("load_balancers", 50),
}
_NAME_RE = re.compile(r"^(o|t|mon|r|lb)([1-9])$")


class LabError(Exception):
    """Something the operator can fix; the CLI prints the message without a traceback."""


@dataclass(frozen=True)
class HostSpec:
    name: str
    group: str
    address: str

    @property
    def netns(self) -> str:
        return NETNS_PREFIX + self.name

    @property
    def veth(self) -> str:
        return VETH_PREFIX + self.name

    @property
    def machine(self) -> str:
        return MACHINE_PREFIX + self.name


def host_spec(name: str) -> HostSpec:
    m = _NAME_RE.match(name)
    if not m:
        raise LabError(
            f"bad lab host name {name!r}: use o1-o9 (orchestrators), t1-t9 (transcoders), "
            "mon1-mon9 (monitoring), r1-r9 (redeemers) or lb1-lb9 (load balancers)"
        )
    group, base = KINDS[m.group(1)]
    return HostSpec(name=name, group=group, address=f"10.77.0.{base + int(m.group(2))}")


def sort_key(name: str) -> tuple[int, int]:
    m = _NAME_RE.match(name)
    assert m
    return (KINDS[m.group(1)][1], int(m.group(2)))


def plan_hosts(hosts: list[str] | None, extra: int) -> list[str]:
    """The host names for `up --hosts ... --extra N`: the given (or default) hosts plus N more
    transcoders numbered after the highest one."""
    names = list(hosts) if hosts else list(DEFAULT_HOSTS)
    seen: list[str] = []
    for name in names:
        host_spec(name)
        if name not in seen:
            seen.append(name)
    if extra < 0:
        raise LabError("--extra must be 0 or more")
    n = max((int(x[1:]) for x in seen if x.startswith("t")), default=0)
    for _ in range(extra):
        n += 1
        seen.append(f"t{n}")
        host_spec(seen[-1])
    if len(seen) > MAX_HOSTS:
        raise LabError(f"the lab holds at most {MAX_HOSTS} hosts ({len(seen)} asked: {','.join(seen)})")
    return sorted(seen, key=sort_key)
