"""Segments the orchestrator hands out by URL: sources for remote transcoders, renditions for
gateways. Kept in memory for a short time, as go-livepeer's local object store does."""

from __future__ import annotations

import time


class SegmentStore:
    def __init__(self, ttl_s: float = 120.0) -> None:
        self._ttl = ttl_s
        self._items: dict[str, tuple[float, bytes]] = {}
        # Renditions a gateway has not fetched yet, and when they were stored: a draining
        # orchestrator waits for them, or the segment is lost after all.
        self._unfetched: dict[str, float] = {}

    def put(self, name: str, data: bytes, *, for_pickup: bool = False) -> None:
        self._items[name] = (time.monotonic() + self._ttl, data)
        if for_pickup:
            self._unfetched[name] = time.monotonic()

    def get(self, name: str) -> bytes | None:
        item = self._items.get(name)
        if item is None or item[0] < time.monotonic():
            return None
        self._unfetched.pop(name, None)
        return item[1]

    def delete(self, name: str) -> None:
        self._items.pop(name, None)
        self._unfetched.pop(name, None)

    def awaiting_pickup(self, within_s: float) -> int:
        """Renditions stored in the last ``within_s`` seconds that no one has fetched yet
        (older ones: the gateway is not coming for them)."""
        since = time.monotonic() - within_s
        return sum(1 for stored in self._unfetched.values() if stored >= since)

    def sweep(self) -> int:
        now = time.monotonic()
        stale = [k for k, (expiry, _) in self._items.items() if expiry < now]
        for k in stale:
            del self._items[k]
            self._unfetched.pop(k, None)
        return len(stale)
