"""Listening sockets, bound by the node itself before anything starts.

Binding here instead of inside Hypercorn means a port already in use stops start-up at once with
a message naming the address and the flag, and port 0 (any free port) works: the node learns the
port it got and advertises that one. Hypercorn then serves the socket it is handed.
"""

from __future__ import annotations

import errno
import socket

from lpnode.net.address import split_host_port


class StartupError(Exception):
    """The node cannot start as configured; the message says what to fix."""


def bind(addr: str, flag: str) -> socket.socket:
    """A TCP socket bound to ``addr`` (host:port from ``flag``), not yet listening."""
    host, port = split_host_port(addr)
    host = host or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {addr} ({flag}): {exc.strerror or exc}; "
                           f"{_fix(exc.errno, port, flag)}") from None
    return sock


def bound_address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _fix(code: int | None, port: int, flag: str) -> str:
    if code == errno.EADDRINUSE:
        return (f"another process holds port {port} (`ss -ltnp 'sport = :{port}'` shows which): "
                f"stop it, or give {flag} another port")
    if code == errno.EADDRNOTAVAIL:
        return f"this host has no such address: give {flag} one of its own addresses, or 0.0.0.0"
    if code == errno.EACCES:
        return (f"ports below 1024 need CAP_NET_BIND_SERVICE: give {flag} a port of 1024 or "
                "more, or grant the capability in the unit")
    return f"check {flag}"
