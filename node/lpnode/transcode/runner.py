"""Runs segment transcodes off the event loop, on the CPU or spread over the -nvidia GPUs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from lpnode.transcode.engine import TranscodeOutput, transcode_segment
from lpnode.transcode.profiles import VideoProfile


class SegmentRunner:
    """``capacity`` segments at a time, each in its own thread (PyAV releases the GIL while
    it decodes and encodes). With GPUs (``-nvidia 0,1``), each segment goes to the GPU with
    the fewest segments running, so a multi-GPU host uses all of them; go-livepeer spreads
    sessions the same way. Every segment opens its own encoder, so nothing ties a stream's
    segments to one GPU."""

    def __init__(self, capacity: int, gpus: Sequence[int] = ()) -> None:
        self._executor = ThreadPoolExecutor(max_workers=capacity, thread_name_prefix="transcode")
        self._running = dict.fromkeys(gpus, 0)

    def running(self) -> dict[int, int]:
        """Segments running now, per GPU index."""
        return dict(self._running)

    def _pick_gpu(self) -> int | None:
        # Ties go to the lowest index: dicts keep the -nvidia order.
        return min(self._running, key=self._running.__getitem__) if self._running else None

    async def transcode(self, source: bytes, profiles: Sequence[VideoProfile]) -> TranscodeOutput:
        gpu = self._pick_gpu()
        if gpu is not None:
            self._running[gpu] += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor,
                lambda: transcode_segment(source, profiles, nvidia=gpu is not None, gpu=gpu))
        finally:
            if gpu is not None:
                self._running[gpu] -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
