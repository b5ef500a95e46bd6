"""The lab network on the control machine: bridge, one network namespace + veth per host, and
the NAT/egress rules (nftables table `ip lpfleet_lab`).

    control machine (root netns)                      host o1 (netns lpfleet-o1)
    lpfleet0 bridge 10.77.0.1/24 ── lpv-o1 ═══ veth ═══ host0 10.77.0.11/24, gw 10.77.0.1
                                 ── lpv-t1 ═══ ...      (configured by systemd-networkd inside)

Lab hosts reach each other over the bridge and the control machine at 10.77.0.1, where the
lab's apt cache serves their packages (lab/aptcache.py). The only traffic forwarded out of the
lab is DNS to the control machine's resolvers, masqueraded; nothing from outside can open a
connection in.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

from . import config
from .config import HostSpec
from .util import Log, run, write_file

FORWARD_SYSCTL = Path("/proc/sys/net/ipv4/ip_forward")


def _net_record() -> Path:
    return config.state_dir() / "net.json"


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def link_is_up(name: str) -> bool:
    try:
        flags = int(Path("/sys/class/net", name, "flags").read_text(), 16)
    except OSError:
        return False
    return bool(flags & 1)


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def nameservers() -> list[str]:
    """The control machine's DNS servers, as lab hosts can reach them (not loopback)."""
    for f in ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"):
        try:
            lines = Path(f).read_text().splitlines()
        except OSError:
            continue
        found = []
        for line in lines:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                try:
                    ip = ipaddress.ip_address(parts[1])
                except ValueError:
                    continue
                if ip.version == 4 and not ip.is_loopback:
                    found.append(str(ip))
        if found:
            return found
    return []


def ensure_bridge() -> None:
    if not link_exists(config.BRIDGE):
        run(["ip", "link", "add", config.BRIDGE, "type", "bridge"])
    addr = f"{config.GATEWAY}/{config.PREFIXLEN}"
    have = run(["ip", "-o", "-4", "addr", "show", "dev", config.BRIDGE]).stdout
    if f" {addr} " not in have:
        run(["ip", "addr", "replace", addr, "dev", config.BRIDGE])
    run(["ip", "link", "set", config.BRIDGE, "up"])


def ensure_forwarding(log: Log) -> None:
    current = FORWARD_SYSCTL.read_text().strip()
    rec = _net_record()
    if current != "1":
        if not rec.exists():
            write_file(rec, json.dumps({"ip_forward_was": current}) + "\n")
        FORWARD_SYSCTL.write_text("1\n")
        log("net.ipv4.ip_forward=1 (lpfleet lab down puts it back)")


def restore_forwarding(log: Log) -> None:
    rec = _net_record()
    try:
        was = json.loads(rec.read_text()).get("ip_forward_was")
    except (OSError, ValueError):
        return
    if was is not None and FORWARD_SYSCTL.read_text().strip() != was:
        FORWARD_SYSCTL.write_text(f"{was}\n")
        log(f"net.ipv4.ip_forward={was} again")
    rec.unlink(missing_ok=True)


def ruleset(dns: list[str]) -> str:
    """The nftables table for the lab, replaced atomically on every `up`. Lab hosts talk to each
    other and to the control machine (its apt cache included: input, not forwarded); the only
    traffic forwarded out of the lab is DNS to this machine's resolvers."""
    br = config.BRIDGE
    lines = [
        f"table ip {config.NFT_TABLE}",
        f"delete table ip {config.NFT_TABLE}",
        f"table ip {config.NFT_TABLE} {{",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        f'    ip saddr {config.SUBNET} oifname != "{br}" masquerade',
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter; policy accept;",
        f'    iifname "{br}" oifname "{br}" accept',
    ]
    if dns:
        lines.append(
            f'    iifname "{br}" ip daddr {{ {", ".join(dns)} }} meta l4proto {{ tcp, udp }} th dport 53 accept'
        )
    lines += [
        f'    iifname "{br}" counter drop',
        f'    oifname "{br}" ct state established,related accept',
        f'    oifname "{br}" counter drop',
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def ensure_nat(dns: list[str]) -> None:
    run(["nft", "-f", "-"], input=ruleset(dns), stdin=None)


def remove_nat() -> None:
    run(["nft", "delete", "table", "ip", config.NFT_TABLE], check=False)


def ensure_host_link(spec: HostSpec) -> None:
    """The host's namespace and its veth pair: host0 inside, lpv-NAME on the bridge, up."""
    if not netns_exists(spec.netns):
        run(["ip", "netns", "add", spec.netns])
    if not link_exists(spec.veth):
        run(["ip", "link", "add", spec.veth, "type", "veth", "peer", "name", "host0",
             "netns", spec.netns])
    run(["ip", "link", "set", spec.veth, "master", config.BRIDGE, "up"])
    run(["ip", "netns", "exec", spec.netns, "ip", "link", "set", "lo", "up"])


def remove_host_link(netns: str, veth: str) -> None:
    if link_exists(veth):
        run(["ip", "link", "del", veth], check=False)
    if netns_exists(netns):
        run(["ip", "netns", "del", netns], check=False)


def set_link(veth: str, up: bool) -> None:
    if not link_exists(veth):
        raise config.LabError(f"no link {veth}: is the lab up?")
    run(["ip", "link", "set", veth, "up" if up else "down"])


def leftover_netns() -> list[str]:
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(config.NETNS_PREFIX))
    except FileNotFoundError:
        return []


def leftover_veths() -> list[str]:
    return sorted(n for n in os.listdir("/sys/class/net") if n.startswith(config.VETH_PREFIX))


def remove_bridge() -> None:
    if link_exists(config.BRIDGE):
        run(["ip", "link", "del", config.BRIDGE], check=False)
