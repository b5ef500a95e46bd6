"""A real HAProxy (Debian's) on loopback in front of test orchestrators, configured from the
fleet's own template (templates/haproxy.cfg.j2): the integration tests' load balancer."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from lpfleet import haproxy as runtime
from roles._ops import render
from roles.haproxy import HaproxySettings, Server, config_context

from .fleet import child_setup


class Balancer:
    """HAProxy listening on a socket this process bound (``fd@N``: no port picked by a test,
    none lost to a race), its runtime socket and state file in ``tmp``."""

    def __init__(self, tmp: Path) -> None:
        """Binds the sockets (so the address is known before the orchestrators start, which
        advertise it); ``start`` runs HAProxy on them."""
        self.tmp = tmp
        self.popen: subprocess.Popen | None = None
        self.front = socket.socket()
        self.front.bind(("127.0.0.1", 0))
        self.front.listen(64)
        self.metrics = socket.socket()
        self.metrics.bind(("127.0.0.1", 0))
        self.metrics.listen(16)
        self.address = "127.0.0.1:%d" % self.front.getsockname()[1]
        self.admin_socket = str(tmp / "haproxy.sock")
        self.send = runtime.unix_socket(self.admin_socket)

    def start(self, servers: list[Server], check_interval: str = "500ms") -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise AssertionError("haproxy is not installed: run scripts/setup (Debian package haproxy)")
        tmp = self.tmp
        settings = HaproxySettings(check_interval=check_interval)
        text = render("haproxy.cfg.j2", **config_context(
            servers, settings, bind=f"fd@{self.front.fileno()}", metrics_bind=f"fd@{self.metrics.fileno()}",
            admin_socket=self.admin_socket, state_file=str(tmp / "haproxy.state"), daemon=False))
        # No syslog socket in a test: the log lines go nowhere.
        config = tmp / "haproxy.cfg"
        config.write_text(text.replace("    log /dev/log local0\n", ""))
        self.log_path = tmp / "haproxy.log"
        with self.log_path.open("w") as log:
            self.popen = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                          pass_fds=(self.front.fileno(), self.metrics.fileno()),
                                          preexec_fn=child_setup(0))

    def servers(self) -> dict[str, runtime.ServerStat]:
        return runtime.servers(self.send)

    def wait(self, condition, what: str, timeout: float = 20) -> dict[str, runtime.ServerStat]:
        deadline = time.monotonic() + timeout
        last: dict[str, runtime.ServerStat] = {}
        while time.monotonic() < deadline:
            if self.popen is None or self.popen.poll() is not None:
                raise AssertionError(f"haproxy exited {self.popen.returncode}:\n{self.log_path.read_text()}")
            try:
                last = self.servers()
                if condition(last):
                    return last
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"haproxy: no {what} after {timeout:.0f}s: {last}")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(10)
        self.front.close()
        self.metrics.close()
