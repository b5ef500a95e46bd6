"""host:port, the one parser: flags, dialing and binding all read addresses through it."""

from __future__ import annotations

import re

DEFAULT_SERVICE_PORT = 8935
_SCHEME = re.compile(r"https?://", re.IGNORECASE)


def split(addr: str) -> tuple[str, str | None]:
    """Host and port text of ``host[:port]``; an IPv6 host needs brackets, which are dropped.
    Raises ValueError saying what is wrong."""
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ValueError("unclosed '[' in IPv6 address")
        host, rest = addr[1:end], addr[end + 1:]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError("expected host:port")
        return host, rest[1:]
    if addr.count(":") > 1:
        raise ValueError("an IPv6 address needs brackets, e.g. [::1]:8935")
    host, sep, port = addr.partition(":")
    return host, (port if sep else None)


def join(host: str, port: int | str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def strip_scheme(addr: str) -> str:
    """go-livepeer accepts orchestrator addresses as URLs and keeps only host:port."""
    return _SCHEME.sub("", addr.strip(), count=1).rstrip("/")


def has_scheme(addr: str) -> bool:
    return _SCHEME.match(addr) is not None


def split_host_port(addr: str, default_port: int = DEFAULT_SERVICE_PORT) -> tuple[str, int]:
    """For dialing and binding: host and numeric port, a URL's scheme dropped."""
    host, port = split(strip_scheme(addr))
    return host, int(port) if port else default_port
