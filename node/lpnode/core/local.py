"""Transcoding inside the orchestrator process (`-orchestrator -transcoder`)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from lpnode.core.capabilities import TRANSCODER
from lpnode.core.tasks import Task, TaskFailed, TaskResult
from lpnode.transcode.engine import TranscodeError, transcode_segment


class LocalTranscoder:
    def __init__(self, capacity: int, *, nvidia: bool = False, gpu: int | None = None) -> None:
        self.id = "local"
        self.address = "local"
        self.name = "local"
        self.capacity = capacity
        self.capabilities = TRANSCODER
        self.connected_at = time.time()
        self.draining = False
        self.in_flight = 0
        self._nvidia = nvidia
        self._gpu = gpu
        self._executor = ThreadPoolExecutor(max_workers=capacity, thread_name_prefix="transcode")

    async def run(self, task: Task) -> TaskResult:
        loop = asyncio.get_running_loop()
        self.in_flight += 1
        try:
            out = await loop.run_in_executor(self._executor, lambda: transcode_segment(
                task.source, task.profiles, nvidia=self._nvidia, gpu=self._gpu))
        except TranscodeError as exc:
            raise TaskFailed(str(exc)) from exc
        finally:
            self.in_flight -= 1
        return TaskResult(out.decoded_pixels, [(r.data, r.pixels) for r in out.renditions])

    def end_session(self, session_id: str) -> None:
        pass

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
