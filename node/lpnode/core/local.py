"""Transcoding inside the orchestrator process (`-orchestrator -transcoder`)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from lpnode.core.capabilities import TRANSCODER
from lpnode.core.tasks import Task, TaskFailed, TaskResult
from lpnode.transcode.engine import TranscodeError
from lpnode.transcode.runner import SegmentRunner


class LocalTranscoder:
    def __init__(self, capacity: int, *, gpus: Sequence[int] = ()) -> None:
        self.id = "local"
        self.address = "local"
        self.name = "local"
        self.capacity = capacity
        self.capabilities = TRANSCODER
        self.connected_at = time.time()
        self.draining = False
        self.in_flight = 0
        self._runner = SegmentRunner(capacity, gpus)

    async def run(self, task: Task) -> TaskResult:
        self.in_flight += 1
        try:
            out = await self._runner.transcode(task.source, task.profiles)
        except TranscodeError as exc:
            raise TaskFailed(str(exc)) from exc
        finally:
            self.in_flight -= 1
        return TaskResult(out.decoded_pixels, [(r.data, r.pixels) for r in out.renditions])

    def end_session(self, session_id: str) -> None:
        pass

    def close(self) -> None:
        self._runner.close()
