"""An orchestrator and two transcoders as real processes, and streams through them."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest

from lpnode.gateway.client import GatewayClient, SegmentRejected
from lpnode.gateway.teststream import check_rendition, describe
from lpnode.transcode.profiles import parse_profiles
from lpnode.transcode.testsrc import cut_segments, make_source

from .conftest import wait_transcoders

pytestmark = pytest.mark.integration
PROFILES = "P360p30fps16x9,P240p30fps16x9,P144p30fps16x9"


def test_thirty_segments_in_three_renditions_all_succeed(fleet):
    orch = fleet.orchestrator()
    t1 = fleet.transcoder("t1", 2)
    t2 = fleet.transcoder("t2", 2)
    status = wait_transcoders(orch, 2)
    assert sorted(t["capacity"] for t in status["transcoders"]) == [2, 2]
    registered = re.findall(r"Got a RegisterTranscoder request from transcoder=(\S+) capacity=(\d+)",
                            orch.log())
    assert registered == [("127.0.0.1", "2"), ("127.0.0.1", "2")]

    # two streams of 15: one session lands on each transcoder, 30 segments in all
    rc, summary, output = fleet.test_stream("-segments", "15", "-streams", "2", "-profiles", PROFILES,
                                            "-resolution", "640x360")
    assert rc == 0, output
    assert summary["segments"] == 30 and summary["succeeded"] == 30 and summary["failed"] == 0
    assert summary["latency_ms"]["p50"] > 0

    metrics = orch.metrics()
    assert 'livepeer_segment_transcoded_total{node_type="orch"} 30.0' in metrics
    assert 'livepeer_transcoders_number{node_type="orch"} 2.0' in metrics
    per_transcoder = re.findall(r'lpnode_transcoder_segments_total\{result="ok",transcoder="([^"]+)"\} (\d+)',
                                metrics)
    assert len(per_transcoder) == 2 and sum(int(n) for _, n in per_transcoder) == 30, metrics
    # Labelled by the transcoders' own names (host:admin port), as /status shows them.
    names = {f"{socket.gethostname()}:{t.admin_addr.rsplit(':', 1)[1]}" for t in (t1, t2)}
    assert {label for label, _ in per_transcoder} == names
    assert {t["name"] for t in orch.status()["transcoders"]} == names
    for t in (t1, t2):
        assert 'livepeer_segment_transcoded_total{node_type="trcr"} 15.0' in t.metrics()


def test_wrong_secret_is_refused_and_gets_no_work(fleet, tmp_path):
    orch = fleet.orchestrator()
    wrong = tmp_path / "wrongSecret"
    wrong.write_text("not-the-secret-7c1d\n")
    wrong.chmod(0o600)
    intruder = fleet.transcoder("intruder", 4, wrong)
    orch.wait_log("invalid secret")
    intruder.wait_log("invalid secret")
    assert orch.status()["transcoders"] == []
    refusal = [line for line in orch.log().splitlines() if "invalid secret" in line][0]
    assert "127.0.0.1" in refusal
    assert "not-the-secret" not in orch.log() and "integration-test-secret" not in orch.log()

    # with only the refused transcoder around, a gateway gets a clear error at once, not a hang
    rc, summary, output = fleet.test_stream("-segments", "1", "-resolution", "320x180",
                                            "-profiles", "P144p30fps16x9", timeout=60)
    assert rc != 0
    assert summary["failed"] == 1 and "no transcoders available" in output


def test_corrupt_segment_fails_alone(fleet):
    orch = fleet.orchestrator()
    fleet.transcoder("t1", 2)
    wait_transcoders(orch, 1)
    profiles = parse_profiles("P240p30fps16x9,P144p30fps16x9")
    good = [describe(s) for s in cut_segments(make_source(6.0, 426, 240, 30), 2.0)]
    corrupt = bytearray(good[0].data)
    corrupt[188 * 5:] = bytes(len(corrupt) - 188 * 5)        # keep the first packets, zero the rest

    async def stream() -> list[str]:
        outcomes = []
        async with GatewayClient(fleet.orch_addr) as client:
            info = await client.get_orchestrator()
            for seq, data in enumerate([good[0].data, bytes(corrupt), good[1].data, b"\x47" * 1000,
                                        good[2].data]):
                try:
                    result = await client.submit(info, "corrupt-test", seq, data, profiles, 2000)
                except SegmentRejected as exc:
                    outcomes.append(f"error: {exc}")
                    continue
                src = good[[0, None, 1, None, 2][seq]]
                problems = [check_rendition(await client.download(r.url), p, src)
                            for p, r in zip(profiles, result.data.segments)]
                outcomes.append("ok" if problems == [None, None] else f"bad: {problems}")
        return outcomes

    outcomes = asyncio.run(stream())
    assert outcomes[0] == outcomes[2] == outcomes[4] == "ok", outcomes
    assert outcomes[1].startswith("error") and outcomes[3].startswith("error"), outcomes
    assert len(orch.status()["transcoders"]) == 1      # the transcoder kept serving


def test_capped_orchestrator_answers_orchestrator_capped(fleet):
    orch = fleet.orchestrator()
    fleet.transcoder("t1", 1)
    wait_transcoders(orch, 1)
    profiles = parse_profiles("P144p30fps16x9")
    seg = cut_segments(make_source(2.0, 320, 180, 30), 2.0)[0]

    async def two_sessions() -> str:
        async with GatewayClient(fleet.orch_addr) as first, GatewayClient(fleet.orch_addr) as second:
            await first.submit(await first.get_orchestrator(), "a", 0, seg, profiles, 2000)
            with pytest.raises(SegmentRejected) as refused:
                await second.submit(await second.get_orchestrator(), "b", 0, seg, profiles, 2000)
            return str(refused.value)

    assert "OrchestratorCapped" in asyncio.run(two_sessions())
    # the operator sees who was refused and why, and the refusal is counted
    orch.logged(r"refused segment from 127\.0\.0\.1: capped: every transcoder is full")
    assert ('lpnode_refusals_total{node_type="orch",reason="capped",what="segment"} 1.0'
            in orch.metrics())


def test_a_restarted_transcoder_keeps_its_metric_label(fleet):
    """Its series go on where they left off, not as a new one per connection."""
    orch = fleet.orchestrator()
    first = fleet.transcoder("t1", 2)
    name = wait_transcoders(orch, 1)["transcoders"][0]["name"]
    address = orch.status()["transcoders"][0]["address"]
    first.stop()
    wait_transcoders(orch, 0)
    fleet.start("t1-again", *first.args, admin=first.admin_addr)
    again = wait_transcoders(orch, 1)["transcoders"][0]
    assert again["name"] == name and again["address"] != address
    assert f'lpnode_transcoder_capacity{{transcoder="{name}"}} 2.0' in orch.metrics()
