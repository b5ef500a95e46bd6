"""Every long-running task a node starts, watched: the first one that fails, or ends while the
node should still be running, stops the node with a non-zero exit so systemd restarts it.

Without this a listener that cannot bind, or a loop that raised, leaves a process that looks
healthy to systemd while serving nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("lpnode")


def describe(exc: BaseException) -> str:
    """One line for an exception, naming every failure inside an exception group."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Supervisor:
    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task[Any], str] = {}

    def start(self, name: str, job: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``job`` as the part of the node called ``name`` (it shows in the failure)."""
        task = asyncio.ensure_future(job)
        self._tasks[task] = name
        return task

    async def run_until(self, stop: asyncio.Event) -> str | None:
        """Wait for ``stop`` or for any task to end; the failure, or None when asked to stop."""
        stopped = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait({stopped, *self._tasks},
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        ended = [t for t in self._tasks if t in done]
        if not ended:
            return None
        task = ended[0]
        name = self._tasks[task]
        if task.cancelled():
            return f"{name} was cancelled"
        exc = task.exception()
        if exc is None:
            return f"{name} ended on its own"
        log.error("%s failed", name, exc_info=exc)
        return f"{name} failed: {describe(exc)}"

    async def cancel_all(self, timeout: float) -> None:
        """Cancel what still runs and wait (bounded) for it to unwind."""
        running = [t for t in self._tasks if not t.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=timeout)
        for task in self._tasks:   # retrieved, so asyncio logs no "never retrieved" noise
            if task.done() and not task.cancelled():
                task.exception()
