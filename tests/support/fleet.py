"""Real lpnode processes on loopback, for the integration tests and the benchmarks: an
orchestrator and its transcoders, each its own process, and test streams through them."""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LPNODE = [sys.executable, "-m", "lpnode.cli"]
# Every node listens on port 0 (any free port) and the tests read the port it got from its
# start-up line: no port is picked by the tests, so none can be lost to a race.
ANY_PORT = "127.0.0.1:0"


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path
    args: list[str] = field(default_factory=list)
    admin_addr: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://{self.admin_addr}{path}", timeout=5) as resp:
            return resp.read().decode()

    def wait_for(self, ready: Callable[[], object], what: str, timeout: float = 30) -> None:
        """Poll ``ready()`` until it is true; fail with the log if the node dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.popen.returncode}):\n{self.log()[-3000:]}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name}: no {what} after {timeout:.0f}s:\n{self.log()[-3000:]}")

    def logged(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        """The first match of ``pattern`` in the log; fails at once, with the log, if the
        process exits first (a node that cannot start says why and exits 1)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"{self.name} never logged /{pattern}/; log:\n{self.log()[-3000:]}")

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://{self.admin_addr}/status", timeout=5) as resp:
            return json.load(resp)

    def admin(self, action: str, token: Path) -> dict:
        request = urllib.request.Request(
            f"http://{self.admin_addr}/{action}", method="POST", data=b"",
            headers={"Authorization": f"Bearer {token.read_text().strip()}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.load(resp)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{self.admin_addr}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def wait_log(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name} never logged {text!r}; log:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                # SIGTERM drains first (up to 30 s, node.py), then gives open connections 5 s;
                # on a loaded machine that passes 10 s. systemd waits 60 s (TimeoutStopSec).
                self.popen.wait(45)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class Fleet:
    """Starts lpnode processes for one test and stops them all afterwards."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[Proc] = []
        self.secret_file = tmp / "orchSecret"
        self.secret_file.write_text("integration-test-secret-3f9a\n")
        self.secret_file.chmod(0o600)
        # Set by the first orchestrator from the port it got; a restarted one reuses it.
        self.orch_addr = ""

    def start(self, name: str, *args: str, admin: str = ANY_PORT, niceness: int = 0) -> Proc:
        """Start a node; returns once its admin listener is up (so its address is known)."""
        proc = self.spawn(name, *args, "-cliAddr", admin, niceness=niceness)
        proc.args = list(args)
        proc.admin_addr = proc.logged(r"admin on (\S+)").group(1)
        return proc

    def spawn(self, name: str, *args: str, niceness: int = 0) -> Proc:
        log_path = self.tmp / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log_path.open("w") as log:
            popen = subprocess.Popen([*LPNODE, *args], stdout=log, stderr=subprocess.STDOUT,
                                     env=env, cwd=self.tmp, preexec_fn=child_setup(niceness))
        proc = Proc(name, popen, log_path, list(args))
        self.procs.append(proc)
        return proc

    def orchestrator(self, *extra: str, name: str = "orchestrator", listen: str = "") -> Proc:
        """An orchestrator on ``listen``; by default the fleet's own address (a restart keeps
        its port), or any free port for the first one."""
        proc = self.start(name, "-orchestrator", "-orchSecret", str(self.secret_file),
                          "-httpAddr", listen or self.orch_addr or ANY_PORT,
                          "-datadir", str(self.tmp / f"{name}-data"), "-monitor", *extra)
        if not self.orch_addr and name == "orchestrator":
            self.orch_addr = proc.logged(r"listening on (\S+),").group(1)
        wait_http(proc)
        return proc

    def admin_token(self) -> Path:
        token = self.tmp / "adminToken"
        if not token.exists():
            token.write_text("integration-admin-token-91be\n")
            token.chmod(0o600)
        return token

    def transcoder(self, name: str, capacity: int = 4, secret_file: Path | None = None,
                   *extra: str, niceness: int = 0) -> Proc:
        return self.start(name, "-transcoder", "-orchAddr", self.orch_addr,
                          "-orchSecret", str(secret_file or self.secret_file),
                          "-maxSessions", str(capacity), "-monitor", *extra, niceness=niceness)

    def test_stream(self, *args: str, timeout: float = 240,
                    orch_addr: str | None = None) -> tuple[int, dict, str]:
        run = subprocess.run([*LPNODE, "test-stream", "-orchAddr", orch_addr or self.orch_addr, *args],
                             capture_output=True, text=True, timeout=timeout, cwd=self.tmp)
        lines = run.stdout.strip().splitlines()
        summary = json.loads(lines[-1]) if lines else {}
        return run.returncode, summary, run.stdout + run.stderr

    def start_stream(self, *args: str, orch_addr: str | None = None) -> subprocess.Popen:
        """A test stream running in the background while a test breaks things."""
        return subprocess.Popen([*LPNODE, "test-stream", "-orchAddr", orch_addr or self.orch_addr, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=self.tmp)

    @staticmethod
    def finish_stream(popen: subprocess.Popen, timeout: float = 240) -> tuple[int, dict, str]:
        output, _ = popen.communicate(timeout=timeout)
        lines = output.strip().splitlines()
        return popen.returncode, json.loads(lines[-1]) if lines else {}, output

    def stop(self) -> None:
        # SIGTERM all first so they shut down in parallel, then wait; kill what hangs.
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            proc.stop()


def wait_http(proc: Proc, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            proc.status()
            return
        except OSError:
            if proc.popen.poll() is not None:
                raise AssertionError(f"{proc.name} exited:\n{proc.log()}")
            time.sleep(0.1)
    raise AssertionError(f"{proc.name} admin never came up:\n{proc.log()}")


def wait_transcoders(orch: Proc, count: int, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = orch.status()
        if len(status["transcoders"]) == count:
            return status
        time.sleep(0.1)
    raise AssertionError(f"expected {count} transcoders, status: {orch.status()}\n{orch.log()[-3000:]}")




def child_setup(niceness: int) -> Callable[[], None]:
    """What runs in a child before exec: the kernel sends it SIGTERM if the parent dies, even by
    SIGKILL, so no node outlives its test or benchmark; optionally lower its CPU priority."""
    def setup() -> None:
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if niceness:
            os.nice(niceness)
    return setup
