"""What moves between the orchestrator and its transcoders, local or remote."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from lpnode.net import lp_rpc_pb2 as pb
from lpnode.transcode.profiles import VideoProfile


class NoTranscodersAvailable(Exception):
    def __init__(self, message: str = "no transcoders available") -> None:
        super().__init__(message)


class OrchestratorCapped(Exception):
    """Every compatible transcoder is at its -maxSessions; go-livepeer's gateways match this text."""

    def __init__(self) -> None:
        super().__init__("OrchestratorCapped")


class TranscoderGone(Exception):
    """The transcoder went away with the task in hand: the task may be retried elsewhere."""


class TaskTimeout(Exception):
    pass


class TaskFailed(Exception):
    """The transcoder tried and reported an error (a corrupt segment, say): not retried."""


@dataclass
class Task:
    task_id: int
    session_id: str
    seq: int
    source: bytes
    source_url: str
    profiles: list[VideoProfile]
    segdata: pb.SegData
    timeout_s: float


@dataclass
class TaskResult:
    decoded_pixels: int
    renditions: list[tuple[bytes, int]] = field(default_factory=list)  # (data, pixels) per profile


class Worker(Protocol):
    """A transcoder the pool can schedule on: a remote process, or this process itself."""

    id: str
    address: str
    # Label for metrics and /status: the same across reconnects where the transcoder names
    # itself (lpnode), else its address (go-livepeer transcoders).
    name: str
    capacity: int
    capabilities: frozenset[int]
    connected_at: float
    draining: bool      # takes no new work; its sessions move elsewhere

    @property
    def in_flight(self) -> int: ...

    async def run(self, task: Task) -> TaskResult: ...

    def end_session(self, session_id: str) -> None: ...

    def close(self) -> None: ...
