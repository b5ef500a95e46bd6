"""HAProxy's runtime API as the runbooks and `lpfleet status` use it: what a server's state
says about rotation, read from `show stat`; the socket reached locally or through a command
run on the balancer (over SSH, see lpfleet/remote.py)."""

from __future__ import annotations

import csv
import io
import socket
from collections.abc import Callable
from dataclasses import dataclass

from roles.haproxy import ADMIN_SOCKET, BACKEND

# `show stat` status values that take no new connections: NOLB is what `http-check
# disable-on-404` reports for a draining lpnode, DRAIN an operator's `set server ... state drain`.
OUT_OF_ROTATION = ("NOLB", "DRAIN", "MAINT", "DOWN")

Send = Callable[[str], str]  # one runtime API command in, its answer out


@dataclass(frozen=True)
class ServerStat:
    backend: str
    name: str
    status: str        # UP, DOWN, NOLB, DRAIN, MAINT, "UP 1/2" while a check is changing it
    sessions: int      # current connections (scur)
    total: int         # connections since HAProxy started (stot)

    @property
    def in_rotation(self) -> bool:
        return self.status.split(" ")[0] not in OUT_OF_ROTATION


def parse_stat(text: str, backend: str = BACKEND) -> dict[str, ServerStat]:
    """`show stat` (CSV) -> the backend's servers by name."""
    lines = text.lstrip("# ").splitlines()
    servers = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        servers[row["svname"]] = ServerStat(backend, row["svname"], row.get("status", ""),
                                            int(row.get("scur") or 0), int(row.get("stot") or 0))
    return servers


def unix_socket(path: str = ADMIN_SOCKET, timeout_s: float = 5.0) -> Send:
    """Commands to a runtime socket on this machine."""
    def send(command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(path)
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()
    return send


def servers(send: Send, backend: str = BACKEND) -> dict[str, ServerStat]:
    return parse_stat(send("show stat"), backend)


# What runs on the balancer for `send` over SSH: the command comes on stdin, so nothing but
# the script is on the command line; python3 is on every host the fleet deploy manages.
REMOTE_SCRIPT = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_UNIX);s.settimeout(5);s.connect(sys.argv[1])\n"
    "s.sendall(sys.stdin.buffer.read())\n"
    "out=b''\n"
    "while True:\n"
    "    c=s.recv(65536)\n"
    "    if not c: break\n"
    "    out+=c\n"
    "sys.stdout.write(out.decode())\n"
)
