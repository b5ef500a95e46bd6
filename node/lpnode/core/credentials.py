"""The orchSecret transcoders present, compared in constant time, with rotation.

go-livepeer has one secret for the life of the process. Here a reload makes a new secret
current while the previous one stays valid for a grace period, so transcoders can move over
one by one and nothing restarts; after the grace period, connections made with the old secret
are closed (see Orchestrator.housekeeping).
"""

from __future__ import annotations

import hmac
import time


class SharedSecret:
    def __init__(self, secret: str, grace_s: float = 600.0) -> None:
        self._current = secret.encode()
        self._previous: bytes | None = None
        self._previous_until = 0.0
        self._grace_s = grace_s
        self.generation = 1   # bumps on every rotation

    def matches(self, candidate: str) -> int | None:
        """The generation the candidate belongs to (current or, within grace, previous)."""
        value = candidate.encode()
        # Both comparisons always run, so timing says nothing about which one matched.
        current = hmac.compare_digest(self._current, value)
        previous = self._previous is not None and hmac.compare_digest(self._previous, value)
        if current:
            return self.generation
        if previous and time.monotonic() < self._previous_until:
            return self.generation - 1
        return None

    def rotate(self, secret: str) -> bool:
        """Make `secret` current; False (and nothing changes) if it already is."""
        new = secret.encode()
        if hmac.compare_digest(self._current, new):
            return False
        self._previous, self._current = self._current, new
        self._previous_until = time.monotonic() + self._grace_s
        self.generation += 1
        return True

    def drop_previous(self) -> bool:
        """End the grace period now (the last phase of a rotation): only the current secret is
        accepted, and connections made with the previous one are closed. False if none was left."""
        had = self._previous is not None and time.monotonic() < self._previous_until
        self._previous, self._previous_until = None, 0.0
        return had

    def previous_accepted_s(self) -> float:
        """How much longer the previous secret is accepted (0: it is not)."""
        return max(0.0, self._previous_until - time.monotonic()) if self._previous is not None else 0.0

    def stale(self, generation: int) -> bool:
        """A connection made with `generation` must now be closed."""
        if generation == self.generation:
            return False
        return generation < self.generation - 1 or time.monotonic() >= self._previous_until

    def __repr__(self) -> str:   # never the value, whatever ends up logging this object
        return f"SharedSecret(generation={self.generation})"
