"""The orchestrator's segment loop on stand-in transcoders: retries, penalties, waiting for a
transcoder. The stand-ins play the faults a real transcoder process causes (gone mid-task,
timing out, slow, answering short) without the processes; tests/integration covers those."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

import pytest

from lpnode.core import capabilities as caps
from lpnode.core.auth import AuthTokens
from lpnode.core.orchestrator import MAX_ATTEMPTS, Orchestrator
from lpnode.core.tasks import Task, TaskFailed, TaskResult, TaskTimeout, TranscoderGone
from lpnode.monitor import NodeMetrics
from lpnode.net import lp_rpc_pb2 as pb
from lpnode.net.convert import set_segment_profiles
from lpnode.transcode.profiles import parse_profiles

_ids = itertools.count(1)


@dataclass
class Stub:
    """A transcoder that answers each task with the next of ``answers``: a TaskResult, an
    exception to raise, or a (seconds, answer) pair to wait first."""
    answers: list
    capacity: int = 4
    name: str = ""
    capabilities: frozenset[int] = caps.TRANSCODER
    draining: bool = False
    in_flight: int = 0
    connected_at: float = field(default_factory=time.time)
    seen: list[Task] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.id = f"stub-{next(_ids)}"
        self.address = self.name = self.name or self.id

    async def run(self, task: Task) -> TaskResult:
        self.seen.append(task)
        answer = self.answers.pop(0)
        if isinstance(answer, tuple):
            await asyncio.sleep(answer[0])
            answer = answer[1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def end_session(self, session_id: str) -> None:
        pass

    def close(self) -> None:
        pass


def ok(renditions: int = 1) -> TaskResult:
    return TaskResult(1000, [(b"\x47" * 188, 500)] * renditions)


def segment(session: str = "s1", duration_ms: int = 2000) -> pb.SegData:
    seg = pb.SegData(seq=0, duration=duration_ms, auth_token=pb.AuthToken(session_id=session))
    set_segment_profiles(seg, parse_profiles("P144p30fps16x9"))
    return seg


def orchestrator(**kwargs) -> Orchestrator:
    return Orchestrator(service_uri="https://o.example:8935", tokens=AuthTokens(b"k" * 32),
                        metrics=NodeMetrics("orch"), **kwargs)


def counter(orch: Orchestrator, name: str, labels: dict | None = None) -> float:
    value = orch.metrics.registry.get_sample_value(name, {"node_type": "orch", **(labels or {})})
    return value or 0.0


def test_a_segment_whose_transcoder_is_lost_moves_to_another():
    async def scenario():
        orch = orchestrator()
        lost, healthy = Stub([TranscoderGone("gone")]), Stub([ok()])
        orch.add_worker(lost)
        orch.add_worker(healthy)
        # both empty: the pool picks either first; make sure the lost one is tried first
        orch.pool.assign("s1", caps.TRANSCODER, frozenset({healthy.id}))
        outcome = await orch.transcode(segment(), b"src")
        return orch, lost, healthy, outcome

    orch, lost, healthy, outcome = asyncio.run(scenario())
    assert len(lost.seen) == 1 and len(healthy.seen) == 1
    assert len(outcome.urls) == 1
    assert counter(orch, "lpnode_segment_retries_total") == 1
    assert orch.in_flight == 0


def test_retries_stop_after_max_attempts_transcoders():
    async def scenario():
        orch = orchestrator()
        stubs = [Stub([TranscoderGone(f"gone {i}")]) for i in range(MAX_ATTEMPTS + 1)]
        for stub in stubs:
            orch.add_worker(stub)
        with pytest.raises(TranscoderGone):
            await orch.transcode(segment(), b"src")
        return orch, stubs

    orch, stubs = asyncio.run(scenario())
    assert sum(len(s.seen) for s in stubs) == MAX_ATTEMPTS
    assert counter(orch, "livepeer_segment_transcode_failed_total", {"error_code": "TranscoderGone"}) == 1


def test_a_timeout_is_not_retried_and_penalises_only_new_sessions():
    async def scenario():
        orch = orchestrator()
        slow = Stub([TaskTimeout("took too long")])
        orch.add_worker(slow)
        with pytest.raises(TaskTimeout):
            await orch.transcode(segment(), b"src")
        return orch, slow

    orch, slow = asyncio.run(scenario())
    [snapshot] = orch.pool.snapshot()
    assert snapshot.penalised and len(slow.seen) == 1
    assert len(orch.pool) == 1      # go-livepeer drops the whole transcoder here


def test_slower_than_real_time_is_penalised_but_answered():
    async def scenario():
        orch = orchestrator()
        orch.add_worker(Stub([(0.15, ok())]))
        return orch, await orch.transcode(segment(duration_ms=100), b"src")

    orch, outcome = asyncio.run(scenario())
    assert len(outcome.urls) == 1
    assert orch.pool.snapshot()[0].penalised


def test_too_few_renditions_fail_the_segment():
    async def scenario():
        orch = orchestrator()
        orch.add_worker(Stub([TaskResult(1000, [])]))
        await orch.transcode(segment(), b"src")

    with pytest.raises(TaskFailed, match="returned 0 renditions for 1 profiles"):
        asyncio.run(scenario())


def test_with_no_transcoder_a_segment_waits_for_one_within_its_budget():
    async def scenario():
        orch = orchestrator()
        later = Stub([ok()])
        asyncio.get_running_loop().call_later(0.2, orch.add_worker, later)
        started = time.monotonic()
        outcome = await orch.transcode(segment(), b"src")
        return time.monotonic() - started, outcome

    waited, outcome = asyncio.run(scenario())
    assert 0.15 < waited < 2 and len(outcome.urls) == 1


def test_a_draining_orchestrator_keeps_running_sessions_and_refuses_new_ones():
    async def scenario():
        orch = orchestrator()
        orch.add_worker(Stub([ok(), ok()]))
        await orch.transcode(segment("running"), b"src")
        orch.draining = True
        return orch.has_room_for("running"), orch.has_room_for("new")

    assert asyncio.run(scenario()) == (True, False)
