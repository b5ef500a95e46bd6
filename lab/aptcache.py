"""The lab's apt cache: Debian's apt-cacher-ng on the control machine, on the bridge address
(and loopback, for debootstrap). The rootfs is built through it and lab hosts fetch every
package through it, from the mirror this machine's own apt uses, so a package is downloaded
once however often the lab is deployed, and lab hosts need no route out of the lab.

Our own instance with a minimal configuration (no remapping of Debian mirrors to a list of
its own: it fetches exactly the URL asked for), its cache and logs in the lab's state
directory; `lpfleet lab down` stops it and `down --purge` removes the cache.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path

from . import config
from .util import Log, run, write_file

PORT = 3142


def directory() -> Path:
    return config.state_dir() / "apt-cache"


def pid_file() -> Path:
    return directory() / "apt-cacher-ng.pid"


def proxy_url(address: str = config.GATEWAY) -> str:
    return f"http://{address}:{PORT}"


def transfer_log() -> Path:
    """apt-cacher-ng's transfer log: time|I or O|bytes|client|path, I for what it fetched
    from the mirror, O for what it served."""
    return directory() / "log" / "apt-cacher.log"


def _pid() -> int | None:
    try:
        pid = int(pid_file().read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _listening(address: str) -> bool:
    try:
        socket.create_connection((address, PORT), timeout=1).close()
        return True
    except OSError:
        return False


def ensure(log: Log) -> None:
    """apt-cacher-ng running on 127.0.0.1 and the bridge address (the bridge must exist)."""
    if _pid() is not None and _listening(config.GATEWAY):
        return
    if not shutil.which("apt-cacher-ng"):
        raise config.LabError("apt-cacher-ng not found: run scripts/setup (Debian's apt-cacher-ng)")
    d = directory()
    for sub in ("cache", "log"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    conf = d / "conf"
    conf.mkdir(exist_ok=True)
    write_file(conf / "acng.conf", "\n".join([
        "# written by lpfleet lab",
        f"CacheDir: {d / 'cache'}",
        f"LogDir: {d / 'log'}",
        f"Port: {PORT}",
        f"BindAddress: 127.0.0.1 {config.GATEWAY}",
        f"PidFile: {pid_file()}",
        f"SocketPath: {d / 'socket'}",
        "ForeGround: 0",
        # Verbose transfer log: the lab tests read which packages came from the mirror.
        "VerboseLog: 1",
        "",
    ]))
    run(["apt-cacher-ng", "-c", str(conf)])
    deadline = time.monotonic() + 10
    while not _listening(config.GATEWAY):
        if time.monotonic() > deadline:
            raise config.LabError(f"apt-cacher-ng did not start; see {d / 'log' / 'apt-cacher.err'}")
        time.sleep(0.1)
    log(f"apt cache: apt-cacher-ng on {proxy_url()} (cache in {d / 'cache'})")


def stop(log: Log) -> None:
    pid = _pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _pid() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    log("apt cache stopped")


def apt_proxy_conf() -> str:
    """A lab host's apt configuration: every download through the cache."""
    # The timeout, retries and no pipelining: apt-cacher-ng can answer a request badly when
    # several hosts ask for the same index in the same second (its log: "Failure to move file
    # ... out of the way ... File exists"). With the timeout apt asks again where it would wait
    # forever; without pipelining a bad answer cannot leave apt waiting on the answers queued
    # behind it (seen: apt-get update hung for minutes with no connection open).
    return ("// written by lpfleet lab: packages come through the control machine's apt cache\n"
            f'Acquire::http::Proxy "{proxy_url()}";\n'
            'Acquire::http::Timeout "20";\n'
            'Acquire::http::Pipeline-Depth "0";\n'
            'Acquire::Retries "3";\n')


def apt_get_wrapper(real: str = "/usr/bin/apt-get", timeout_s: int = 120, tries: int = 3) -> str:
    """A lab host's /usr/local/sbin/apt-get (ahead of /usr/bin in root's PATH): ``update``
    bounded by a timeout and tried again, everything else passed through unchanged.

    Several hosts refreshing their indexes through apt-cacher-ng at the same moment can leave
    one apt-get waiting on its own download methods for ever, with no connection open (seen
    twice on freshly booted labs, once for two hours); apt's own timeouts do not cover that
    state. The cache is lab-only, so the cure is too: the deploy's apt commands are unchanged.
    """
    return f"""#!/bin/sh
# written by lpfleet lab (lab/aptcache.py): apt-get update bounded and retried
case " $* " in
    *" update "*)
        n=0
        while [ "$n" -lt {tries} ]; do
            n=$((n + 1))
            timeout -k 10 {timeout_s} {real} "$@" && exit 0
            echo "apt-get update did not finish (try $n of {tries}); trying again" >&2
        done
        exit 1 ;;
esac
exec {real} "$@"
"""
