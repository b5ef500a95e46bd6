"""One lab host: its disk (an overlay over the cached rootfs), its boot and power-off.

A host is a `systemd-nspawn --boot` process, detached from whoever started it (its own session,
reparented to PID 1), with its pid in hosts/NAME/nspawn.pid and its console in
hosts/NAME/console.log. No systemd is needed on the control machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from pathlib import Path

from . import aptcache, config, rootfs
from .config import HostSpec
from .util import Log, run, write_file

HOSTS_BEGIN = "# BEGIN lpfleet lab hosts"
HOSTS_END = "# END lpfleet lab hosts"


def hosts_dir() -> Path:
    return config.state_dir() / "hosts"


def host_dir(name: str) -> Path:
    return hosts_dir() / name


def root_dir(name: str) -> Path:
    return host_dir(name) / "root"


def pid_file(name: str) -> Path:
    return host_dir(name) / "nspawn.pid"


def console_log(name: str) -> Path:
    return host_dir(name) / "console.log"


def is_mounted(path: Path) -> bool:
    return os.path.ismount(path)


def ensure_disk(spec: HostSpec, ssh_pubkey: str, dns: list[str], log: Log) -> bool:
    """Mounts the host's overlay disk; on first use writes its identity. True if new."""
    d = host_dir(spec.name)
    upper, work, root = d / "upper", d / "work", d / "root"
    new = not upper.exists()
    for p in (upper, work, root):
        p.mkdir(parents=True, exist_ok=True)
    if not is_mounted(root):
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={rootfs.path()},upperdir={upper},workdir={work}", str(root)])
    marker = upper / ".lpfleet-initialized"
    if new or not marker.exists():
        _init_identity(spec, root, ssh_pubkey, dns)
        marker.write_text("")
    return new


def _init_identity(spec: HostSpec, root: Path, ssh_pubkey: str, dns: list[str]) -> None:
    write_file(root / "etc/hostname", spec.name + "\n")
    write_file(root / "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    write_file(
        root / "etc/systemd/network/10-lab.network",
        "# written by lpfleet lab: the host's static address on the lab bridge\n"
        "[Match]\nName=host0\n\n"
        "[Network]\n"
        f"Address={spec.address}/{config.PREFIXLEN}\n"
        f"Gateway={config.GATEWAY}\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
        # A cut link (lpfleet lab cut) must come back as it was when restored.
        "IgnoreCarrierLoss=yes\nConfigureWithoutCarrier=yes\n",
    )
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    write_file(resolv, "".join(f"nameserver {ip}\n" for ip in dns) or "# no DNS\n")
    ssh_d = root / "root/.ssh"
    ssh_d.mkdir(parents=True, exist_ok=True)
    ssh_d.chmod(0o700)
    write_file(ssh_d / "authorized_keys", ssh_pubkey.strip() + "\n", 0o600)
    run(["ssh-keygen", "-A", "-f", str(root)])


def ensure_apt_proxy(name: str) -> None:
    """The host's apt goes through the control machine's apt cache, and its `apt-get update`
    is bounded and retried (lab/aptcache.py)."""
    for path, want, mode in (
        (root_dir(name) / "etc/apt/apt.conf.d/01lpfleet-lab-proxy", aptcache.apt_proxy_conf(), 0o644),
        (root_dir(name) / "usr/local/sbin/apt-get", aptcache.apt_get_wrapper(), 0o755),
    ):
        if not path.exists() or path.read_text() != want:
            write_file(path, want, mode)


def ensure_authorized_key(name: str, ssh_pubkey: str) -> None:
    ak = root_dir(name) / "root/.ssh/authorized_keys"
    try:
        have = ak.read_text()
    except OSError:
        have = ""
    if ssh_pubkey.strip() not in have:
        write_file(ak, have + ("" if have.endswith("\n") or not have else "\n") + ssh_pubkey.strip() + "\n", 0o600)


def host_pubkeys(name: str) -> list[str]:
    """The host's SSH host public keys ("ssh-ed25519 AAAA...") for known_hosts."""
    out = []
    for f in sorted((root_dir(name) / "etc/ssh").glob("ssh_host_*_key.pub")):
        parts = f.read_text().split()
        if len(parts) >= 2:
            out.append(f"{parts[0]} {parts[1]}")
    return out


def write_etc_hosts(name: str, hosts: list[HostSpec]) -> None:
    """Keeps a marked block in the host's /etc/hosts naming every lab host (and the control
    machine as `lab-control`); lines outside the block belong to the host."""
    path = root_dir(name) / "etc/hosts"
    try:
        text = path.read_text()
    except OSError:
        text = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
    block = [HOSTS_BEGIN, f"{config.GATEWAY}\tlab-control"]
    block += [f"{h.address}\t{h.name}" for h in hosts]
    block.append(HOSTS_END)
    lines = text.splitlines()
    if HOSTS_BEGIN in lines and HOSTS_END in lines:
        a, b = lines.index(HOSTS_BEGIN), lines.index(HOSTS_END)
        lines = lines[:a] + block + lines[b + 1:]
    else:
        lines = [ln for ln in lines if not ln.startswith("127.0.1.1")] + block
    new = "\n".join(lines) + "\n"
    if new != text:
        write_file(path, new)


# -- the nspawn process ---------------------------------------------------------------------

def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def nspawn_pid(name: str) -> int | None:
    """The pid of the host's running systemd-nspawn, or None when it is powered off."""
    try:
        pid = int(pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    state = _proc_state(pid)
    if state is None or state in ("Z", "X"):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if not cmdline or not cmdline[0].endswith(b"systemd-nspawn"):
        return None
    if str(root_dir(name)).encode() not in cmdline:
        return None
    return pid


def is_running(name: str) -> bool:
    return nspawn_pid(name) is not None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


# -- cgroups ---------------------------------------------------------------------------------
# systemd-nspawn puts the container's systemd in a "payload" cgroup under its own cgroup. Started
# side by side from the same cgroup (no systemd on the control machine to give each its own
# scope), every host would share one payload cgroup and their systemds would manage each other's
# units (seen: a host's systemd-remount-fs failing "Failed to attach to cgroup"; worse, stopping
# ssh.service on one host may kill another's sshd). So each host's nspawn is moved into its own
# cgroup, CGROUP_PARENT/NAME, in the cgroup2 hierarchy and in the named "systemd" v1 hierarchy.
CGROUP_PARENT = "lpfleet-lab"


def cgroup_mounts() -> list[Path]:
    """Mount points of the hierarchies systemd uses: cgroup2 (unified) and name=systemd (v1)."""
    out: list[Path] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3 or fields[3] != "/":
            continue
        fstype, opts = rfields[0], rfields[2].split(",")
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in opts):
            out.append(Path(fields[4]))
    return out


def host_cgroups(name: str) -> list[Path]:
    return [m / CGROUP_PARENT / name for m in cgroup_mounts()]


def _rmdir_tree(path: Path) -> None:
    """Removes a cgroup and its (empty) children, deepest first."""
    if not path.is_dir():
        return
    for d in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            pass
    try:
        path.rmdir()
    except OSError:
        pass


def remove_cgroups(name: str) -> None:
    for cg in host_cgroups(name):
        _rmdir_tree(cg)
        try:
            cg.parent.rmdir()  # CGROUP_PARENT, once no host is left
        except OSError:
            pass


def nspawn_argv(spec: HostSpec) -> list[str]:
    return [
        "systemd-nspawn",
        "--directory", str(root_dir(spec.name)),
        f"--machine={spec.machine}",
        "--boot",
        # There is no system bus / machined on the control machine to register with.
        "--register=no",
        "--keep-unit",
        f"--network-namespace-path=/run/netns/{spec.netns}",
        # nftables (and ping) inside the host.
        "--capability=CAP_NET_ADMIN,CAP_NET_RAW",
        "--console=read-only",
        "--link-journal=no",
        "--resolv-conf=off",
        "--timezone=off",
    ]


def boot(spec: HostSpec, log: Log) -> int:
    """Starts the host's systemd-nspawn detached (own session, reparented to PID 1)."""
    pidf = pid_file(spec.name)
    pidf.unlink(missing_ok=True)
    logf = console_log(spec.name)
    remove_cgroups(spec.name)  # leftovers of a host killed earlier
    procs = []
    for cg in host_cgroups(spec.name):
        cg.mkdir(parents=True, exist_ok=True)
        procs.append(str(cg / "cgroup.procs"))
    with open(logf, "ab") as out:
        out.write(f"\n==== lpfleet lab: boot {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode())
        out.flush()
        # setsid -f: the nspawn process belongs to no terminal or test session and outlives the
        # command that started it. The shell moves itself into the host's cgroups, writes its
        # pid and execs nspawn (same pid).
        script = (
            'pidf=$1; n=$2; shift 2; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 1; '
            'shift; n=$((n-1)); done; echo $$ > "$pidf"; exec "$@"'
        )
        run(
            ["setsid", "-f", "sh", "-c", script, "sh", str(pidf), str(len(procs)), *procs,
             *nspawn_argv(spec)],
            capture=False,
            stdout=out,
            stderr=out,
            timeout=30,
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pid = nspawn_pid(spec.name)
        if pid:
            return pid
        time.sleep(0.05)
    raise config.LabError(f"{spec.name}: systemd-nspawn did not start; see {logf}")


def power_off(name: str, hard: bool = False, timeout: float = 30) -> bool:
    """Powers the host off: a clean shutdown (SIGTERM to nspawn halts the container), or with
    hard=True a power cut (SIGKILL to the host's init, so nothing inside runs a stop action).
    False if it was not running."""
    pid = nspawn_pid(name)
    if pid is None:
        pid_file(name).unlink(missing_ok=True)
        return False
    if hard:
        for child in _children(pid):
            _kill(child, signal.SIGKILL)
    else:
        _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    killed = False
    while nspawn_pid(name) is not None:
        if time.monotonic() > deadline:
            if killed:
                raise config.LabError(f"{name}: systemd-nspawn (pid {pid}) does not exit")
            for child in _children(pid):
                _kill(child, signal.SIGKILL)
            _kill(pid, signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + 10
        time.sleep(0.05)
    pid_file(name).unlink(missing_ok=True)
    remove_cgroups(name)
    return True


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def remove_disk(name: str) -> None:
    d = host_dir(name)
    root = d / "root"
    if is_mounted(root):
        if run(["umount", str(root)], check=False).returncode != 0:
            run(["umount", "-l", str(root)], check=False)
    if is_mounted(root):
        raise config.LabError(f"cannot unmount {root}; not removing {d}")
    if d.exists():
        shutil.rmtree(d)
    remove_cgroups(name)
    prop = Path("/run/systemd/nspawn/propagate") / (config.MACHINE_PREFIX + name)
    if prop.is_dir() and not os.path.ismount(prop):
        shutil.rmtree(prop, ignore_errors=True)
