"""The fleet as runbooks and `lpfleet status` reach it: SSH to each host with the inventory's
own connection settings (fabric), lpnode's admin API asked on the host itself, HAProxy's
runtime socket on the balancers, and the fleet deploy run for one host at a time.

Secrets stay where they are: the admin token is read on the host by a script that comes on
stdin, so it is on no command line and in no log; nothing here prints a secret.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from shlex import quote
from typing import Any, TypeVar

from inventory.hosts import LOAD_BALANCERS, MONITORING, ORCHESTRATORS, TRANSCODERS, HostSpec
from lpfleet import haproxy
from lpfleet.runbook import StepFailed
from roles.node import NodeSettings

REPO = Path(__file__).resolve().parent.parent
CONNECT_TIMEOUT_S = 10
T = TypeVar("T")


class RemoteError(StepFailed):
    """A host could not be reached or a command on it failed; the message says which and why."""


# Runs on a fleet host (python3 is on every host the deploy manages): an admin API request to
# lpnode on this host, with the token read here from the file the secrets role put in place.
_ADMIN_SCRIPT = """
import json, sys, urllib.request, urllib.error
method, port, path = sys.argv[1], sys.argv[2], sys.argv[3]
headers = {}
if method == "POST":
    headers["Authorization"] = "Bearer " + open("/etc/lpnode/adminToken").read().strip()
    headers["Content-Type"] = "application/json"
body = sys.stdin.read().encode() if method == "POST" else None
req = urllib.request.Request("http://127.0.0.1:%s%s" % (port, path), data=body, method=method, headers=headers)
try:
    with urllib.request.urlopen(req, timeout=10) as resp:
        sys.stdout.write(json.dumps({"status": resp.status, "body": resp.read().decode()}))
except urllib.error.HTTPError as exc:
    sys.stdout.write(json.dumps({"status": exc.code, "body": exc.read().decode()}))
"""


@dataclass(frozen=True)
class Answer:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


class Fleet:
    """One inventory's hosts, reached over SSH. ``inventory`` is the file the deploy uses."""

    def __init__(self, inventory: str, hosts: list[HostSpec]) -> None:
        self.inventory = inventory
        self.hosts = {h.name: h for h in hosts}
        self._connections: dict[str, Any] = {}

    @classmethod
    def load(cls, inventory: str) -> Fleet:
        from inventory.validate import load
        return cls(inventory, load(inventory))

    # ---------------------------------------------------------------- the inventory's view

    def group(self, group: str) -> list[HostSpec]:
        return [h for h in self.hosts.values() if h.in_group(group)]

    @property
    def orchestrators(self) -> list[HostSpec]:
        return self.group(ORCHESTRATORS)

    @property
    def remote_transcoders(self) -> list[HostSpec]:
        """Transcoder hosts that are not orchestrators too (those transcode in-process)."""
        return [h for h in self.group(TRANSCODERS) if not h.in_group(ORCHESTRATORS)]

    @property
    def balancers(self) -> list[HostSpec]:
        return self.group(LOAD_BALANCERS)

    def transcoders_of(self, orchestrator: str) -> list[HostSpec]:
        return [h for h in self.remote_transcoders if h.data.get("orchestrator") == orchestrator]

    def settings(self, name: str) -> NodeSettings:
        return NodeSettings.from_data(name, self.hosts[name].data)

    def name_at_orchestrator(self, transcoder: str) -> str:
        """How a transcoder names itself to its orchestrator, the name in its /status: the
        deploy gives it -transcoderName <inventory name>:<admin port> (roles/node.py)."""
        return f"{transcoder}:{self.settings(transcoder).cli_port}"

    def capacity(self, name: str) -> int:
        """What the inventory says a transcoder offers (-maxSessions)."""
        value = self.settings(name).max_sessions
        return int(value) if str(value).isdigit() else 0  # "auto": whatever the GPU allows

    @property
    def lock_host(self) -> HostSpec:
        """Where the fleet-wide lock and the journal's copy live: the first monitoring host,
        else the first orchestrator (every fleet has one)."""
        for candidates in (self.group(MONITORING), self.orchestrators, list(self.hosts.values())):
            if candidates:
                return candidates[0]
        raise RemoteError(f"{self.inventory}: the inventory has no hosts")

    # ---------------------------------------------------------------- SSH

    def connection(self, name: str) -> Any:
        if name not in self._connections:
            from fabric import Connection
            from paramiko import RejectPolicy

            h = self.hosts[name]
            data = h.data
            connect: dict[str, Any] = {"allow_agent": bool(data.get("ssh_allow_agent", True)),
                                       "look_for_keys": bool(data.get("ssh_look_for_keys", True))}
            if data.get("ssh_key"):
                connect["key_filename"] = str(data["ssh_key"])
            c = Connection(h.ssh_address, user=data.get("ssh_user"), port=int(data.get("ssh_port", 22)),
                           connect_timeout=CONNECT_TIMEOUT_S, connect_kwargs=connect)
            # The inventory's known_hosts and no trust on first use: a runbook hands secrets to
            # these hosts.
            known = data.get("ssh_known_hosts_file")
            c.client.load_host_keys(str(Path(str(known)).expanduser())) if known else c.client.load_system_host_keys()
            c.client.set_missing_host_key_policy(RejectPolicy())
            self._connections[name] = c
        return self._connections[name]

    def run(self, name: str, command: str, stdin: str | None = None, check: bool = True) -> Any:
        """``command`` on host ``name`` (as the inventory's SSH user, with sudo when it is not
        root); RemoteError when the host cannot be reached or, with ``check``, the command fails."""
        c = self.connection(name)
        user = self.hosts[name].data.get("ssh_user", "root")
        if user != "root":
            command = f"sudo -n {command}"
        try:
            result = c.run(command, hide=True, warn=True, in_stream=StringIO(stdin) if stdin is not None else False)
        except Exception as exc:  # noqa: BLE001 - paramiko/socket errors come in many types
            self._connections.pop(name, None)
            raise RemoteError(f"{name}: cannot reach it over SSH ({type(exc).__name__}: {exc})") from None
        if check and result.exited != 0:
            raise RemoteError(f"{name}: `{command.split()[0]}` exited {result.exited}: "
                              f"{(result.stderr or result.stdout).strip()[-500:]}")
        return result

    def close(self) -> None:
        for c in self._connections.values():
            c.close()
        self._connections.clear()

    # ---------------------------------------------------------------- lpnode, HAProxy, systemd

    def admin(self, name: str, path: str, params: dict[str, str] | None = None, post: bool = False,
              port: int | None = None) -> Answer:
        """lpnode's admin API on host ``name`` (GET path, or POST an action with ``params``)."""
        cli_port = port or self.settings(name).cli_port
        result = self.run(name, f"python3 -c {quote(_ADMIN_SCRIPT)} {'POST' if post else 'GET'} {cli_port} {path}",
                          stdin=json.dumps(params or {}) if post else "", check=False)
        if result.exited != 0:
            raise RemoteError(f"{name}: lpnode's admin API on port {cli_port} did not answer: "
                              f"{(result.stderr or result.stdout).strip()[-300:]}")
        answer = json.loads(result.stdout)
        return Answer(int(answer["status"]), answer["body"])

    def status(self, name: str) -> dict[str, Any]:
        answer = self.admin(name, "/status")
        if answer.status != 200:
            raise RemoteError(f"{name}: /status answered {answer.status}: {answer.body.strip()}")
        return dict(answer.json())

    def act(self, name: str, action: str, **params: str) -> dict[str, Any]:
        answer = self.admin(name, f"/{action}", params, post=True)
        if answer.status != 200:
            raise RemoteError(f"{name}: POST /{action} answered {answer.status}: {answer.body.strip()}")
        return dict(answer.json())

    def haproxy(self, balancer: str) -> haproxy.Send:
        """Runtime API commands to the HAProxy on ``balancer``."""
        def send(command: str) -> str:
            return str(self.run(balancer, f"python3 -c {quote(haproxy.REMOTE_SCRIPT)} {haproxy.ADMIN_SOCKET}",
                                stdin=command + "\n").stdout)
        return send

    def main_pid(self, name: str, service: str) -> int:
        return int(self.run(name, f"systemctl show {service} -p MainPID --value").stdout.strip() or 0)

    def restart(self, name: str, service: str) -> None:
        self.run(name, f"systemctl restart {service}")

    def pending_changes(self, name: str) -> list[str]:
        """What the fleet deploy would change on host ``name`` (pyinfra --dry)."""
        cmd = [sys.executable, "-m", "pyinfra", self.inventory, "deploys/fleet.py", "--limit", name, "--dry"]
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
        if p.returncode != 0:
            raise RemoteError(f"the dry run for {name} failed (exit {p.returncode}):\n"
                              f"{(p.stdout + p.stderr).strip()[-2000:]}")
        return detected_changes(p.stdout + p.stderr)

    def deploy(self, names: list[str], log: Callable[[str], None]) -> str:
        """The fleet deploy (`pyinfra -y INVENTORY deploys/fleet.py --limit ...`), the same roles
        the operator deploys with; RemoteError with pyinfra's own words when it fails."""
        cmd = [sys.executable, "-m", "pyinfra", "-y", self.inventory, "deploys/fleet.py", "--limit", ",".join(names)]
        started = time.monotonic()
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800)
        if p.returncode != 0:
            raise RemoteError(f"the deploy of {','.join(names)} failed (exit {p.returncode}):\n"
                              f"{(p.stdout + p.stderr).strip()[-2000:]}")
        totals = deploy_totals(p.stdout + p.stderr)
        changed = totals.changed if totals else 0
        log(f"deploy of {','.join(names)}: {changed} change(s) in {time.monotonic() - started:.1f}s")
        return f"{changed} change(s)"


def detected_changes(output: str) -> list[str]:
    """The operations pyinfra --dry would change ("Detected changes", one host: the Change
    column is not "-"); conditional changes (waits after a reload) do not count."""
    if "Detected changes:" not in output:
        return []
    table = output.split("Detected changes:", 1)[1].split("Detected changes may not include", 1)[0]
    found = []
    for line in table.splitlines()[2:]:
        fields = re.split(r"\s{2,}", line.strip())
        if len(fields) >= 3 and fields[1] != "-":
            found.append(fields[0])
    return found


@dataclass(frozen=True)
class DeployTotals:
    """The "Grand total" row of pyinfra's results table ("-" reads as 0)."""
    operations: int
    changed: int
    errors: int
    unchanged: int


def deploy_totals(output: str) -> DeployTotals | None:
    """The totals of a pyinfra run from its output (stdout and stderr together: pyinfra writes
    its tables to stderr); None when the run printed no results table."""
    match = re.search(r"Grand total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", output)
    if not match:
        return None
    return DeployTotals(*(0 if v == "-" else int(v) for v in match.groups()))


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.5) -> T:
    """Poll ``check`` until it returns something true (returned), or fail naming ``what``. A
    host that cannot be reached for a moment is polled again; the last problem is reported."""
    deadline = time.monotonic() + timeout_s
    problem = ""
    while True:
        try:
            value = check()
            if value:
                return value
        except RemoteError as exc:
            problem = f" (last: {exc})"
        if time.monotonic() >= deadline:
            raise RemoteError(f"{what}: not seen within {timeout_s:.0f}s{problem}")
        time.sleep(every_s)


@contextmanager
def opened(inventory: str) -> Iterator[Fleet]:
    fleet = Fleet.load(inventory)
    try:
        yield fleet
    finally:
        fleet.close()
