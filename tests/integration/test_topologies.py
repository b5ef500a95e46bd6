"""Shapes go-livepeer cannot do: one transcoder for several orchestrators (#1657), local and
remote transcoding in one orchestrator (#2579), two orchestrators sharing sessions, and an
orchestrator drain."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from lpnode.gateway.client import GatewayClient, SegmentRejected
from lpnode.transcode.profiles import parse_profiles
from lpnode.transcode.testsrc import cut_segments, make_source

from .conftest import ANY_PORT, wait_http, wait_transcoders

pytestmark = pytest.mark.integration
SMALL = ("-resolution", "320x180", "-profiles", "P144p30fps16x9", "-quiet")


def second_orchestrator(fleet, datadir=None, *extra: str):
    proc = fleet.start("orchestrator2", "-orchestrator", "-orchSecret", str(fleet.secret_file),
                       "-httpAddr", ANY_PORT,
                       "-datadir", str(datadir or fleet.tmp / "orch2-data"), "-monitor", *extra)
    wait_http(proc)
    return proc, proc.logged(r"listening on (\S+),").group(1)


def test_one_transcoder_serves_two_orchestrators_with_full_capacity_each(fleet):
    orch_a = fleet.orchestrator()
    orch_b, addr_b = second_orchestrator(fleet)
    fleet.start("shared", "-transcoder", "-orchAddr", f"{fleet.orch_addr},{addr_b}",
                "-orchSecret", str(fleet.secret_file), "-maxSessions", "3")
    for orch in (orch_a, orch_b):
        assert [t["capacity"] for t in wait_transcoders(orch, 1)["transcoders"]] == [3]
    rc_a, summary_a, out_a = fleet.test_stream("-segments", "3", *SMALL)
    rc_b, summary_b, out_b = fleet.test_stream("-segments", "3", *SMALL, orch_addr=addr_b)
    assert rc_a == 0 and summary_a["succeeded"] == 3, out_a
    assert rc_b == 0 and summary_b["succeeded"] == 3, out_b


def test_local_and_remote_transcoding_in_one_orchestrator(fleet):
    orch = fleet.orchestrator("-transcoder", "-maxSessions", "1")
    fleet.transcoder("remote", 1)
    status = wait_transcoders(orch, 2)
    assert sorted(t["address"] == "local" for t in status["transcoders"]) == [False, True]
    rc, summary, output = fleet.test_stream("-segments", "3", "-streams", "2", *SMALL)
    assert rc == 0 and summary["succeeded"] == 6, output
    metrics = orch.metrics()
    assert 'lpnode_transcoder_segments_total{result="ok",transcoder="local"} 3.0' in metrics
    assert metrics.count('lpnode_transcoder_segments_total{result="ok"') == 2


def test_two_orchestrators_with_the_same_key_accept_each_others_sessions(fleet):
    orch_a = fleet.orchestrator()
    fleet.transcoder("t1", 2)
    wait_transcoders(orch_a, 1)
    shared = fleet.tmp / "orch2-data"
    shared.mkdir()
    shutil.copy(fleet.tmp / "orchestrator-data" / "authtoken.key", shared / "authtoken.key")
    orch_b, addr_b = second_orchestrator(fleet, shared)
    fleet.start("t2", "-transcoder", "-orchAddr", addr_b, "-orchSecret", str(fleet.secret_file),
                "-maxSessions", "2")
    wait_transcoders(orch_b, 1)
    profiles = parse_profiles("P144p30fps16x9")
    seg = cut_segments(make_source(2.0, 320, 180, 30), 2.0)[0]

    async def session_moves() -> int:
        async with GatewayClient(fleet.orch_addr) as a, GatewayClient(addr_b) as b:
            info = await a.get_orchestrator()          # issued by A
            await a.submit(info, "moving", 0, seg, profiles, 2000)
            info.transcoder = f"https://{addr_b}"      # the load balancer sends it to B
            result = await b.submit(info, "moving", 1, seg, profiles, 2000)
            return len(result.data.segments)

    assert asyncio.run(session_moves()) == 1


def test_orchestrator_drain_refuses_new_sessions_and_keeps_running_ones(fleet):
    orch = fleet.orchestrator("-adminTokenFile", str(fleet.admin_token()))
    fleet.transcoder("t1", 4)
    wait_transcoders(orch, 1)
    profiles = parse_profiles("P144p30fps16x9")
    seg = cut_segments(make_source(2.0, 320, 180, 30), 2.0)[0]

    def ready() -> int:
        import urllib.error
        try:
            return orch_get_status(f"http://{orch.admin_addr}/ready")
        except urllib.error.HTTPError as exc:
            return exc.code

    async def around_drain() -> tuple[int, str]:
        async with GatewayClient(fleet.orch_addr) as old, GatewayClient(fleet.orch_addr) as new:
            running = await old.get_orchestrator()
            await old.submit(running, "running", 0, seg, profiles, 2000)
            assert ready() == 200  # in rotation
            assert orch.admin("drain", fleet.admin_token())["draining"] is True
            assert ready() == 404  # a load balancer's health check now takes it out of rotation
            kept = await old.submit(running, "running", 1, seg, profiles, 2000)
            with pytest.raises(SegmentRejected) as refused:
                await new.submit(await new.get_orchestrator(), "new", 0, seg, profiles, 2000)
            return len(kept.data.segments), str(refused.value)

    kept, refused = asyncio.run(around_drain())
    assert kept == 1 and "OrchestratorCapped" in refused
    assert orch.status()["draining"] is True


def orch_get_status(url: str) -> int:
    import urllib.request
    with urllib.request.urlopen(url, timeout=5) as resp:
        return int(resp.status)


def test_admin_actions_need_the_token(fleet, tmp_path):
    import urllib.error
    orch = fleet.orchestrator("-adminTokenFile", str(fleet.admin_token()))
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    with pytest.raises(urllib.error.HTTPError) as refused:
        orch.admin("drain", wrong)
    assert refused.value.code == 401
    assert orch.status()["draining"] is False
