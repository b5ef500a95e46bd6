"""Segments the orchestrator hands out by URL: sources for remote transcoders, renditions for
gateways. Kept in memory for a short time, as go-livepeer's local object store does."""

from __future__ import annotations

import time


class SegmentStore:
    def __init__(self, ttl_s: float = 120.0) -> None:
        self._ttl = ttl_s
        self._items: dict[str, tuple[float, bytes]] = {}

    def put(self, name: str, data: bytes) -> None:
        self._items[name] = (time.monotonic() + self._ttl, data)

    def get(self, name: str) -> bytes | None:
        item = self._items.get(name)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def delete(self, name: str) -> None:
        self._items.pop(name, None)

    def sweep(self) -> int:
        now = time.monotonic()
        stale = [k for k, (expiry, _) in self._items.items() if expiry < now]
        for k in stale:
            del self._items[k]
        return len(stale)
