"""Lab operations: up, down, status and the fault helpers (stop/start, cut/restore)."""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import aptcache, config, host, net, rootfs, ssh
from . import chain as lab_chain
from . import state as state_mod
from .config import HostSpec, LabError
from .secrets import admin_token_path, alert_receiver_token_path, ensure_secrets, orch_secret_path
from .state import Host, LabState
from .util import Log, locked, quiet_log, require_root_and_tools

SERVICE_PORT = 8935  # lpnode's, where the lab orchestrator is registered

TOOLS = ("debootstrap", "systemd-nspawn", "ip", "nft", "mount", "ssh", "ssh-keygen", "setsid")


def _to_host(spec: HostSpec) -> Host:
    return Host(
        name=spec.name,
        address=spec.address,
        group=spec.group,
        netns=spec.netns,
        veth=spec.veth,
        machine=spec.machine,
        root=str(host.root_dir(spec.name)),
    )


def _make_state(specs: list[HostSpec], dns: list[str], chain: dict) -> LabState:
    return LabState(
        state_dir=str(config.state_dir()),
        ssh_key=str(ssh.key_path()),
        ssh_config=str(ssh.config_path()),
        known_hosts=str(ssh.known_hosts_path()),
        orch_secret_file=str(orch_secret_path()),
        admin_token_file=str(admin_token_path()),
        alert_receiver_token_file=str(alert_receiver_token_path()),
        chain=chain,
        hosts=[_to_host(s) for s in specs],
        dns=dns,
    )


def _existing_names() -> list[str]:
    try:
        return load_names()
    except LabError:
        return []


def load_names() -> list[str]:
    return state_mod.load().names


def wait_ready(name: str, st: LabState, timeout: float = 120) -> str:
    """Waits until the host's sshd answers and its boot is finished; returns the state that
    `systemctl is-system-running` printed (running or degraded)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not host.is_running(name):
            raise LabError(f"{name} stopped while booting; see {host.console_log(name)}")
        left = max(2.0, deadline - time.monotonic())
        p = ssh.ssh_run(name, "systemctl is-system-running --wait", state=st,
                        timeout=min(left, 90), connect_timeout=2)
        out = p.stdout.strip()
        if p.returncode != 255 and out in ("running", "degraded"):
            return out
        last = (out + " " + p.stderr.strip()).strip()
        time.sleep(0.3)
    raise LabError(f"{name} not ready after {timeout:.0f}s ({last or 'no answer'}); "
                   f"see {host.console_log(name)}")


@dataclass
class UpReport:
    state: LabState
    booted: list[str]
    already_running: list[str]
    removed: list[str]
    seconds: float
    system_states: dict[str, str]


def up(
    hosts: list[str] | None = None,
    extra: int | None = None,
    *,
    timeout: float = 180,
    log: Log = quiet_log,
) -> UpReport:
    """Brings the lab up, idempotently.

    hosts/extra given: the lab becomes exactly those hosts (default hosts plus `extra` more
    transcoders when only extra is given); hosts not named are powered off and removed.
    Neither given: the hosts of the running lab, or the default o1,o2,t1,t2,mon1,lb1 if none.
    Missing hosts are built and booted, powered-off ones booted, cut links restored; running
    hosts are left alone. Returns when every host answers SSH and has finished booting."""
    require_root_and_tools(TOOLS)
    t0 = time.monotonic()
    with locked():
        if hosts is None and extra is None:
            names = _existing_names() or list(config.DEFAULT_HOSTS)
        else:
            names = config.plan_hosts(hosts, extra or 0)
        specs = [config.host_spec(n) for n in names]

        # The bridge and the apt cache on it come first: the rootfs is built through the cache.
        net.ensure_bridge()
        aptcache.ensure(log)
        rootfs.build(log, in_use=bool(_known_host_names()))
        key = ssh.ensure_key()
        pubkey = key.with_suffix(".pub").read_text()
        ensure_secrets()
        # The chain stands for the operator's RPC provider; the orchestrator is registered on it
        # at the balancer's address (gateways reach every orchestrator through it), else o1's.
        orchestrators = [s for s in specs if s.group == "orchestrators"]
        front = next((s for s in specs if s.group == "load_balancers"), orchestrators[0] if orchestrators else None)
        chain = lab_chain.ensure(f"https://{front.address}:{SERVICE_PORT}", [s.name for s in orchestrators],
                                 log) if orchestrators and front else {}

        # Hosts no longer wanted.
        removed = []
        for name in _known_host_names():
            if name not in names:
                log(f"{name}: removing (not in {','.join(names)})")
                _destroy_host(name)
                removed.append(name)

        dns = net.nameservers()
        if not dns:
            log("warning: no usable DNS server in /etc/resolv.conf; apt inside hosts will fail")
        net.ensure_forwarding(log)
        net.ensure_nat(dns)

        def prepare(spec: HostSpec) -> bool:
            net.ensure_host_link(spec)  # also restores a cut link
            if host.ensure_disk(spec, pubkey, dns, log):  # new hosts: SSH host keys take ~1s
                log(f"{spec.name}: new host {spec.address} ({spec.group})")
            host.ensure_authorized_key(spec.name, pubkey)
            host.ensure_apt_proxy(spec.name)
            host.write_etc_hosts(spec.name, specs)
            return host.is_running(spec.name)

        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            is_up = list(pool.map(prepare, specs))
        to_boot = [s for s, r in zip(specs, is_up, strict=True) if not r]
        running = [s.name for s, r in zip(specs, is_up, strict=True) if r]

        st = _make_state(specs, dns, chain)
        ssh.write_client_files([(s.name, s.address, host.host_pubkeys(s.name)) for s in specs])
        state_mod.save(st)

        for spec in to_boot:
            log(f"{spec.name}: booting")
            host.boot(spec, log)
        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            results = dict(zip(names, pool.map(lambda n: wait_ready(n, st, timeout), names), strict=True))
        for name, sys_state in results.items():
            if sys_state != "running":
                failed = ssh.ssh_run(name, "systemctl --failed --no-legend --plain", state=st)
                log(f"{name}: {sys_state}: {failed.stdout.strip()}")
        took = time.monotonic() - t0
        log(f"up: {len(specs)} hosts ready in {took:.1f}s "
            f"({len(to_boot)} booted, {len(running)} already running)")
        return UpReport(st, [s.name for s in to_boot], running, removed, took, results)


def _known_host_names() -> list[str]:
    names = set(_existing_names())
    if host.hosts_dir().is_dir():
        names.update(p.name for p in host.hosts_dir().iterdir() if p.is_dir())
    names.update(n[len(config.NETNS_PREFIX):] for n in net.leftover_netns())
    names.update(n[len(config.VETH_PREFIX):] for n in net.leftover_veths())
    return sorted(names)


def _destroy_host(name: str) -> None:
    host.power_off(name, hard=True)
    host.remove_disk(name)
    net.remove_host_link(config.NETNS_PREFIX + name, config.VETH_PREFIX + name)


def down(purge: bool = False, *, log: Log = quiet_log) -> list[str]:
    """Removes every trace of the lab: host processes, mounts, disks, namespaces, veths, the
    apt cache's process, the bridge, the nftables table and ip_forward (if `up` changed it).
    Keeps the cached rootfs, the apt cache's packages, the SSH key and the lab secrets unless
    purge=True (then the whole state dir goes)."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root")
    removed = []
    with locked():
        for name in _known_host_names():
            log(f"{name}: removing")
            _destroy_host(name)
            removed.append(name)
        if host.hosts_dir().is_dir():
            shutil.rmtree(host.hosts_dir())
        aptcache.stop(log)
        lab_chain.down()
        net.remove_nat()
        net.remove_bridge()
        net.restore_forwarding(log)
        state_mod.remove()
        for p in (ssh.config_path(), ssh.known_hosts_path()):
            p.unlink(missing_ok=True)
        shutil.rmtree(config.state_dir() / "rootfs.build", ignore_errors=True)
    if purge and config.state_dir().exists():
        log(f"purging {config.state_dir()}")
        shutil.rmtree(config.state_dir())
    return removed


@dataclass
class HostStatus:
    name: str
    address: str
    group: str
    running: bool
    link_up: bool
    ssh: bool

    @property
    def state(self) -> str:
        if not self.running:
            return "stopped"
        if not self.link_up:
            return "cut"
        return "running"


def status(*, probe_ssh: bool = True) -> list[HostStatus]:
    """Each host's power (running/stopped), link (up/cut) and whether its sshd answers."""
    st = state_mod.load()

    def one(h: Host) -> HostStatus:
        running = host.is_running(h.name)
        link = net.link_is_up(h.veth)
        ok = bool(probe_ssh and running and link and ssh.reachable(h.name, state=st, timeout=2))
        return HostStatus(h.name, h.address, h.group, running, link, ok)

    with ThreadPoolExecutor(max_workers=max(1, len(st.hosts))) as pool:
        return list(pool.map(one, st.hosts))


def stop(name: str, *, hard: bool = False, log: Log = quiet_log) -> bool:
    """Powers a host off (clean shutdown; hard=True: a power cut). Its disk is kept.
    False if it was already off."""
    st = state_mod.load()
    h = st.host(name)
    with locked():
        was = host.power_off(h.name, hard=hard)
    log(f"{h.name}: {'powered off' if was else 'was not running'}")
    return was


def start(name: str, *, timeout: float = 120, log: Log = quiet_log) -> str:
    """Boots a powered-off host with its disk as it was and waits for sshd and the end of boot.
    Returns `systemctl is-system-running` (running/degraded)."""
    require_root_and_tools(TOOLS)
    st = state_mod.load()
    h = st.host(name)
    spec = config.host_spec(h.name)
    with locked():
        if not host.is_running(h.name):
            net.ensure_bridge()
            net.ensure_host_link(spec)
            key = ssh.ensure_key()
            host.ensure_disk(spec, key.with_suffix(".pub").read_text(), st.dns, log)
            log(f"{h.name}: booting")
            host.boot(spec, log)
    result = wait_ready(h.name, st, timeout)
    log(f"{h.name}: {result}")
    return result


def cut(name: str, *, log: Log = quiet_log) -> None:
    """Cuts the host's network link (its veth on the bridge goes down): nothing reaches it and
    it reaches nothing, while it keeps running."""
    h = state_mod.load().host(name)
    net.set_link(h.veth, up=False)
    log(f"{h.name}: link cut")


def restore(name: str, *, log: Log = quiet_log) -> None:
    """Restores a cut link; the host keeps its address (it is configured to ignore carrier loss)."""
    h = state_mod.load().host(name)
    net.set_link(h.veth, up=True)
    log(f"{h.name}: link restored")
