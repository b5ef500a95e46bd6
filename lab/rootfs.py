"""The cached Debian root filesystem every lab host boots from (read-only lower layer)."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import time
from pathlib import Path

from . import aptcache, config
from .util import Log, run, write_file


def path() -> Path:
    return config.state_dir() / "rootfs"


def stamp_path() -> Path:
    return config.state_dir() / "rootfs.json"


def _sources_entries() -> list[tuple[str, list[str]]]:
    """(uri, suites) from this machine's apt sources, deb822 and one-line styles."""
    out: list[tuple[str, list[str]]] = []
    for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            text = Path(f).read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                continue
            for uri in fields.get("uris", "").split():
                out.append((uri, fields.get("suites", "").split()))
    for f in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            lines = Path(f).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(parts) >= 3 and parts[0] == "deb":
                out.append((parts[1], [parts[2]]))
    return out


def mirrors() -> tuple[str, str]:
    """The Debian mirror and security mirror this machine's apt uses (LPFLEET_LAB_MIRROR and
    LPFLEET_LAB_SECURITY_MIRROR override). An http:// mirror: the lab's apt cache proxies
    plain HTTP (Debian's packages are signed; apt checks them)."""
    main = os.environ.get("LPFLEET_LAB_MIRROR")
    sec = os.environ.get("LPFLEET_LAB_SECURITY_MIRROR")
    for uri, suites in _sources_entries():
        if not uri.startswith("http://"):
            continue
        if main is None and any(s == config.SUITE for s in suites):
            main = uri.rstrip("/")
        if sec is None and any(s == f"{config.SUITE}-security" for s in suites):
            sec = uri.rstrip("/")
    if main is None:
        raise config.LabError(
            f"this machine's apt sources name no http:// Debian mirror for {config.SUITE}, which "
            "the lab's hosts would use through its apt cache: set LPFLEET_LAB_MIRROR (e.g. "
            "http://<your mirror>/debian) and LPFLEET_LAB_SECURITY_MIRROR")
    return main, sec or main.rsplit("/", 1)[0] + "/debian-security"


def wanted_stamp() -> dict:
    return {"suite": config.SUITE, "variant": "minbase", "include": sorted(config.ROOTFS_INCLUDE)}


def is_current() -> bool:
    try:
        stamp = json.loads(stamp_path().read_text())
    except (OSError, ValueError):
        return False
    return (path() / "usr/lib/systemd/systemd").exists() and all(
        stamp.get(k) == v for k, v in wanted_stamp().items()
    )


def sources_list(main: str, sec: str) -> str:
    s = config.SUITE
    return (
        "# written by lpfleet lab (the control machine's Debian mirror)\n"
        f"deb {main} {s} main\n"
        f"deb {main} {s}-updates main\n"
        f"deb {sec} {s}-security main\n"
    )


def build(log: Log, in_use: bool = False, force: bool = False) -> Path:
    """Builds the root filesystem once with debootstrap (about 1.5 minutes) and customizes it.
    A rootfs built with another package list is rebuilt, unless host disks (in_use) still sit
    on it."""
    target = path()
    if not force and is_current():
        return target
    if target.exists():
        if in_use and (target / "usr/lib/systemd/systemd").exists():
            raise config.LabError(
                f"{target} was built with another package list and host disks use it: run "
                "lpfleet lab down, then lpfleet lab up (rebuilds it)"
            )
        log(f"removing the outdated rootfs {target}")
        shutil.rmtree(target)
    main, sec = mirrors()
    work = target.with_name("rootfs.build")
    if work.exists():
        shutil.rmtree(work)
    log(f"building the Debian {config.SUITE} rootfs with debootstrap from {main} (once; about 1-2 minutes)")
    t0 = time.monotonic()
    # Through the lab's apt cache (lab/aptcache.py): a rebuild downloads nothing again.
    run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=" + ",".join(config.ROOTFS_INCLUDE),
            config.SUITE,
            str(work),
            main,
        ],
        timeout=1800,
        env={**os.environ, "http_proxy": aptcache.proxy_url("127.0.0.1")},
    )
    _customize(work, main, sec)
    os.replace(work, target)
    took = time.monotonic() - t0
    stamp = dict(wanted_stamp(), mirror=main, built_at=time.time(), build_seconds=round(took, 1))
    write_file(stamp_path(), json.dumps(stamp, indent=2) + "\n")
    log(f"rootfs built in {took:.0f}s: {target}")
    return target


def _link(root: Path, link: str, target: str) -> None:
    p = root / link.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_symlink() or p.exists():
        p.unlink()
    p.symlink_to(target)


def _customize(root: Path, main: str, sec: str) -> None:
    """Changes shared by every host; per-host files (hostname, address, keys) are written into
    each host's own upper layer."""
    # Each host gets its own SSH host keys and machine id.
    for key in root.glob("etc/ssh/ssh_host_*"):
        key.unlink()
    write_file(root / "etc/machine-id", "")
    write_file(root / "etc/hostname", "localhost\n")
    write_file(root / "etc/apt/sources.list", sources_list(main, sec))
    # No background apt runs fighting the deploy's apt for the dpkg lock.
    for unit in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        _link(root, f"etc/systemd/system/{unit}", "/dev/null")
    # Network configuration by systemd-networkd (the .network file is per host).
    _link(root, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
          "/lib/systemd/system/systemd-networkd.service")
    _link(root, "etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
          "/lib/systemd/system/systemd-networkd.socket")
    _link(root, "etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service",
          "/lib/systemd/system/systemd-networkd-wait-online.service")
    _link(root, "etc/systemd/system/dbus-org.freedesktop.network1.service",
          "/lib/systemd/system/systemd-networkd.service")
    # Smaller lower layer; deploys run apt-get update first anyway.
    run(["chroot", str(root), "apt-get", "clean"], check=False)
    for f in (root / "var/lib/apt/lists").glob("*_*"):
        f.unlink()
