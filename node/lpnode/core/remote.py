"""A transcoder process connected over RegisterTranscoder, seen from the orchestrator."""

from __future__ import annotations

import asyncio
import re
import secrets
import time

from lpnode.core.tasks import Task, TaskResult, TaskTimeout, TranscoderGone
from lpnode.net import headers
from lpnode.net import lp_rpc_pb2 as pb
from lpnode.net.convert import set_segment_profiles

_NAME = re.compile(headers.TRANSCODER_NAME_PATTERN)


def transcoder_name(claimed: str | None) -> str | None:
    """The name a transcoder sent, if it is one fit for labels; None means use its address."""
    return claimed if claimed and _NAME.fullmatch(claimed) else None


class RemoteTranscoder:
    def __init__(self, address: str, capacity: int, capabilities: frozenset[int], *,
                 secret_generation: int = 1, heartbeats: bool = False,
                 name: str | None = None) -> None:
        # Unguessable: an lpnode transcoder names its own registration with it in heartbeats
        # and drain requests, so it doubles as their credential.
        self.token = secrets.token_hex(16)
        self.id = f"{address}#{self.token[:8]}"
        self.address = address
        self.name = name or address
        self.capacity = capacity
        self.capabilities = capabilities
        self.connected_at = time.time()
        self.secret_generation = secret_generation
        # go-livepeer transcoders send no heartbeats; only lpnode's are held to them.
        self.heartbeats = heartbeats
        self.last_heartbeat = time.monotonic()
        self.draining = False
        # Messages for the RegisterTranscoder stream; None tells the stream to end.
        self.outbox: asyncio.Queue[pb.NotifySegment | None] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[TaskResult]] = {}
        self._closed = False

    async def run(self, task: Task) -> TaskResult:
        if self._closed:
            raise TranscoderGone(f"transcoder {self.address} disconnected")
        seg = pb.SegData()
        seg.CopyFrom(task.segdata)
        set_segment_profiles(seg, task.profiles)
        done: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
        self._pending[task.task_id] = done
        self.outbox.put_nowait(pb.NotifySegment(url=task.source_url, segData=seg, taskId=task.task_id))
        try:
            return await asyncio.wait_for(done, task.timeout_s)
        except TimeoutError:
            raise TaskTimeout(f"transcoder {self.address} took longer than {task.timeout_s:.0f}s") from None
        finally:
            self._pending.pop(task.task_id, None)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def beat(self) -> None:
        self.last_heartbeat = time.monotonic()

    def silent_for(self) -> float:
        return time.monotonic() - self.last_heartbeat

    def deliver(self, task_id: int, result: TaskResult | Exception) -> bool:
        """Hand a posted result to the waiting task; False if nobody waits for it any more."""
        done = self._pending.get(task_id)
        if done is None or done.done():
            return False
        if isinstance(result, Exception):
            done.set_exception(result)
        else:
            done.set_result(result)
        return True

    def end_session(self, session_id: str) -> None:
        # go-livepeer's teardown signal: no url, only the session id.
        self.outbox.put_nowait(pb.NotifySegment(segData=pb.SegData(
            auth_token=pb.AuthToken(session_id=session_id))))

    def close(self) -> None:
        self._closed = True
        for done in self._pending.values():
            if not done.done():
                done.set_exception(TranscoderGone(f"transcoder {self.address} disconnected"))
        self.outbox.put_nowait(None)
