"""Every refusal (a segment, a transcoder, a results post, an admin request) is logged with who
and why, and counted by reason.

A gateway or transcoder that is misconfigured retries in a loop, so the log line for one peer
and reason comes at most once a minute, saying how many were refused since the last line; the
counter (lpnode_refusals_total) counts every one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

LOG_EVERY_S = 60.0
# Forget quiet peers past this many entries, so a scan from many addresses cannot grow memory.
_MAX_TRACKED = 4096


class Refusals:
    def __init__(self, count: Callable[[str, str], None], log: logging.Logger, *,
                 every_s: float = LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._count = count
        self._log = log
        self._every_s = every_s
        self._clock = clock
        # (what, peer, reason) -> (when last logged, refusals not logged since)
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}

    def refuse(self, what: str, peer: str, reason: str, detail: str = "") -> None:
        """Record that ``what`` (segment, transcoder, results, admin) from ``peer`` was refused
        for ``reason`` (a short label, the metric's); ``detail`` adds what to fix."""
        self._count(what, reason)
        now = self._clock()
        key = (what, peer, reason)
        last, quiet = self._seen.get(key, (None, 0))
        if last is not None and now - last < self._every_s:
            self._seen[key] = (last, quiet + 1)
            return
        if len(self._seen) >= _MAX_TRACKED:
            self._forget_before(now - self._every_s)
        self._seen[key] = (now, 0)
        more = f" ({quiet} more since the last line)" if quiet else ""
        self._log.warning("refused %s from %s: %s%s%s", what, peer, reason.replace("_", " "),
                          f": {detail}" if detail else "", more)

    def _forget_before(self, cutoff: float) -> None:
        for key, (last, _) in list(self._seen.items()):
            if last < cutoff:
                del self._seen[key]
