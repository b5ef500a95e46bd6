"""RemoteTranscoder: a task goes out as a NotifySegment and comes back through deliver();
closing it fails what it had in hand (so those segments move elsewhere)."""

from __future__ import annotations

import asyncio

import pytest

from lpnode.core import capabilities as caps
from lpnode.core.remote import RemoteTranscoder
from lpnode.core.tasks import Task, TaskFailed, TaskResult, TaskTimeout, TranscoderGone
from lpnode.net import lp_rpc_pb2 as pb
from lpnode.transcode.profiles import parse_profiles


def task(task_id: int = 7, timeout_s: float = 5.0) -> Task:
    return Task(task_id=task_id, session_id="s1", seq=3, source=b"src",
                source_url=f"https://o:8935/stream/s1/source/3-{task_id}.ts",
                profiles=parse_profiles("P144p30fps16x9"), segdata=pb.SegData(seq=3),
                timeout_s=timeout_s)


def remote() -> RemoteTranscoder:
    return RemoteTranscoder("10.0.0.5:41000", 2, caps.TRANSCODER, name="gpu-1:7935")


def test_task_is_sent_and_its_result_delivered():
    async def scenario():
        r = remote()
        running = asyncio.create_task(r.run(task()))
        notify = await asyncio.wait_for(r.outbox.get(), 1)
        assert r.in_flight == 1
        assert r.deliver(7, TaskResult(99, [(b"x", 1)]))
        result = await running
        return r, notify, result

    r, notify, result = asyncio.run(scenario())
    assert notify.taskId == 7 and notify.url.endswith("/3-7.ts") and notify.segData.seq == 3
    assert notify.segData.fullProfiles3[0].name == "P144p30fps16x9"
    assert result.decoded_pixels == 99 and r.in_flight == 0


def test_a_late_or_unknown_result_is_not_taken():
    async def scenario():
        r = remote()
        running = asyncio.create_task(r.run(task()))
        await r.outbox.get()
        r.deliver(7, TaskResult(1))
        await running
        return r.deliver(7, TaskResult(2)), r.deliver(8, TaskResult(3))

    assert asyncio.run(scenario()) == (False, False)


def test_an_error_report_fails_the_task():
    async def scenario():
        r = remote()
        running = asyncio.create_task(r.run(task()))
        await r.outbox.get()
        r.deliver(7, TaskFailed("corrupt segment"))
        await running

    with pytest.raises(TaskFailed, match="corrupt segment"):
        asyncio.run(scenario())


def test_close_fails_tasks_in_hand_and_ends_the_stream():
    async def scenario():
        r = remote()
        running = asyncio.create_task(r.run(task()))
        await r.outbox.get()
        r.close()
        with pytest.raises(TranscoderGone):
            await running
        with pytest.raises(TranscoderGone):
            await r.run(task(8))
        return await r.outbox.get()

    assert asyncio.run(scenario()) is None   # the stream's end marker


def test_a_task_not_answered_in_time_times_out():
    async def scenario():
        r = remote()
        await r.run(task(timeout_s=0.05))

    with pytest.raises(TaskTimeout, match="took longer than"):
        asyncio.run(scenario())


def test_ending_a_session_sends_go_livepeers_teardown():
    r = remote()
    r.end_session("s9")
    message = r.outbox.get_nowait()
    assert message.url == "" and message.segData.auth_token.session_id == "s9"


def test_a_transcoder_fetches_sources_where_it_dialed_not_at_the_advertised_balancer():
    from lpnode.transcoder.worker import source_url

    # The orchestrator advertises its balancer (10.0.0.50); the transcoder dialed it directly.
    assert source_url("https://10.0.0.50:8935/stream/s1/source/3-7.ts", "10.0.0.11:8935") == \
        "https://10.0.0.11:8935/stream/s1/source/3-7.ts"
    # A source somewhere else (an object store) is fetched where it is.
    assert source_url("https://bucket.example/seg/3.ts", "10.0.0.11:8935") == "https://bucket.example/seg/3.ts"
