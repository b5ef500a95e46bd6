"""Every segment survives: a dead or frozen transcoder, a drain, an orchestrator restart and a
secret rotation, each while a live-paced test stream runs. Each test prints what it measured."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import pytest

from .conftest import wait_http, wait_transcoders

pytestmark = pytest.mark.integration
# The test stream's own defaults (-maxAttempts 3, as go-livepeer's gateway): the orchestrator
# must absorb these faults, not the gateway's retries.
STREAM = ("-profiles", "P240p30fps16x9,P144p30fps16x9", "-resolution", "426x240", "-realtime",
          "-quiet")


def retries(orch) -> float:
    match = re.search(r'^lpnode_segment_retries_total\{node_type="orch"\} (\S+)', orch.metrics(), re.M)
    return float(match.group(1)) if match else 0.0


def until(condition, timeout: float, what: str) -> float:
    """Seconds until condition() held; fails after timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def busy_transcoder(orch) -> dict:
    """A transcoder with a segment in hand right now."""
    found: list[dict] = []
    until(lambda: found.extend(t for t in orch.status()["transcoders"] if t["inFlight"]) or found,
          20, "a segment in flight")
    return found[0]


def proc_for(fleet, address: str):
    """The transcoder process behind an address in the orchestrator's status (its local port)."""
    port = int(address.rsplit(":", 1)[1])
    for proc in fleet.procs:
        if proc.name.startswith("t") and any(f":{port} " in line or line.endswith(f":{port}")
                                             for line in _sockets(proc.popen.pid)):
            return proc
    raise AssertionError(f"no transcoder process owns {address}")


def _sockets(pid: int) -> list[str]:
    out = os.popen(f"ss -tnpH 2>/dev/null | grep 'pid={pid},'").read()
    return [" ".join(line.split()[3:5]) + " " for line in out.splitlines()] + \
           [line.split()[3] for line in out.splitlines()]


def two_transcoders(fleet, *extra: str):
    orch = fleet.orchestrator(*extra)
    t1 = fleet.transcoder("t1", 4, None, "-adminTokenFile", str(fleet.admin_token()))
    t2 = fleet.transcoder("t2", 4, None, "-adminTokenFile", str(fleet.admin_token()))
    wait_transcoders(orch, 2)
    return orch, t1, t2


def test_kill_9_a_transcoder_mid_segment(fleet):
    orch, _, _ = two_transcoders(fleet)
    stream = fleet.start_stream("-segments", "8", "-streams", "2", *STREAM)
    victim = proc_for(fleet, busy_transcoder(orch)["address"])
    victim.popen.kill()
    gone = until(lambda: len(orch.status()["transcoders"]) == 1, 10, "the dead transcoder dropped")
    rc, summary, output = fleet.finish_stream(stream)
    print(f"kill -9: dropped after {gone:.2f}s, retries {retries(orch):.0f}, "
          f"stream {summary.get('succeeded')}/{summary.get('segments')}, p99 {summary['latency_ms']['p99']} ms")
    assert rc == 0 and summary["failed"] == 0 and summary["retries"] == 0, output
    assert retries(orch) >= 1


def test_frozen_transcoder_is_noticed_and_its_segment_moves(fleet):
    orch, _, _ = two_transcoders(fleet)
    stream = fleet.start_stream("-segments", "8", "-streams", "2", *STREAM)
    victim = proc_for(fleet, busy_transcoder(orch)["address"])
    victim.popen.send_signal(signal.SIGSTOP)   # socket stays open; the process answers nothing
    try:
        detected = until(lambda: len(orch.status()["transcoders"]) == 1, 15, "the frozen transcoder dropped")
        rc, summary, output = fleet.finish_stream(stream)
    finally:
        victim.popen.send_signal(signal.SIGCONT)
    print(f"SIGSTOP: detected after {detected:.2f}s, retries {retries(orch):.0f}, "
          f"stream {summary.get('succeeded')}/{summary.get('segments')}, max {summary['latency_ms']['max']} ms")
    assert detected < 10
    assert rc == 0 and summary["failed"] == 0 and summary["retries"] == 0, output
    # once it runs again it comes back by itself
    until(lambda: len(orch.status()["transcoders"]) == 2, 15, "the thawed transcoder reconnecting")


def test_drain_a_transcoder_then_stop_it(fleet):
    orch, t1, t2 = two_transcoders(fleet)
    stream = fleet.start_stream("-segments", "8", "-streams", "2", *STREAM)
    victim = proc_for(fleet, busy_transcoder(orch)["address"])
    assert victim.admin("drain", fleet.admin_token())["draining"] is True
    drained = until(lambda: victim.status()["inFlight"] == 0 and
                    len(orch.status()["transcoders"]) == 1, 30, "the drain finishing")
    victim.stop()
    assert victim.popen.returncode == 0
    rc, summary, output = fleet.finish_stream(stream)
    print(f"drain: finished and deregistered after {drained:.2f}s, retries {retries(orch):.0f}, "
          f"stream {summary.get('succeeded')}/{summary.get('segments')}")
    assert rc == 0 and summary["failed"] == 0 and summary["retries"] == 0, output
    assert retries(orch) == 0          # nothing had to be rescued: the drain handed it over


def test_orchestrator_restart_loses_no_segment(fleet):
    orch, _, _ = two_transcoders(fleet)
    stream = fleet.start_stream("-segments", "10", "-streams", "2", *STREAM)
    busy_transcoder(orch)
    stopped_at = time.monotonic()
    orch.stop()
    assert orch.popen.returncode == 0
    stopped_log = orch.log()
    fleet.procs.remove(orch)
    orch = fleet.orchestrator()          # same ports, same data directory (auth-token key)
    down = time.monotonic() - stopped_at
    back = until(lambda: len(orch.status()["transcoders"]) == 2, 5, "both transcoders back")
    rc, summary, output = fleet.finish_stream(stream)
    print(f"restart: orchestrator down {down:.2f}s, transcoders back {back:.2f}s after it, "
          f"stream retries {summary.get('retries')}, max latency {summary['latency_ms']['max']} ms")
    # The gateway sees the restart (its segments are refused while the process is away) but
    # its own 3 attempts cover it: at most one segment per stream needs both of its retries.
    assert rc == 0 and summary["failed"] == 0, output
    assert summary["retries"] <= 2 * 2, output
    assert "Traceback" not in stopped_log, stopped_log


def test_secret_rotation_with_no_downtime(fleet, tmp_path):
    orch, _, _ = two_transcoders(fleet, "-orchSecretGrace", "4s", "-adminTokenFile",
                                 str(fleet.admin_token()))
    old_secret = fleet.secret_file.read_text()
    stream = fleet.start_stream("-segments", "8", "-streams", "2", *STREAM)
    busy_transcoder(orch)
    fleet.secret_file.write_text("rotated-secret-5e02\n")
    orch.popen.send_signal(signal.SIGHUP)
    orch.wait_log("orchSecret rotated")
    rotated = time.monotonic()
    # after the grace period the old-secret connections close and come back on the new secret
    orch.wait_log("still uses the previous orchSecret", timeout=15)
    closed = time.monotonic() - rotated
    moved = until(lambda: len(orch.status()["transcoders"]) == 2, 10, "transcoders back on the new secret")
    rc, summary, output = fleet.finish_stream(stream)
    print(f"rotation: old-secret connections closed {closed:.2f}s after SIGHUP (grace 4s), "
          f"transcoders back {moved:.2f}s later, stream {summary.get('succeeded')}/{summary.get('segments')}")
    assert rc == 0 and summary["failed"] == 0 and summary["retries"] == 0, output
    old = tmp_path / "oldSecret"
    old.write_text(old_secret)
    old.chmod(0o600)
    late = fleet.transcoder("late", 1, old)
    late.wait_log("invalid secret")
    assert len(orch.status()["transcoders"]) == 2
    # the admin API reloads too, and says nothing changed when the file did not
    assert orch.admin("reload", fleet.admin_token())["rotated"] is False


def test_stopping_orchestrator_waits_for_the_gateway_to_fetch_renditions(fleet):
    """SIGTERM right after a segment's TranscodeResult: the renditions are still served when
    the gateway comes for them, and only then does the orchestrator exit (0)."""
    from lpnode.gateway.client import GatewayClient
    from lpnode.transcode.profiles import parse_profiles
    from lpnode.transcode.testsrc import cut_segments, make_source

    orch = fleet.orchestrator()
    fleet.transcoder("t1", 2)
    wait_transcoders(orch, 1)
    segment = cut_segments(make_source(2.0, 256, 144, 10), 2.0)[0]

    async def submit_stop_then_fetch() -> list[bytes]:
        async with GatewayClient(fleet.orch_addr) as client:
            info = await client.get_orchestrator()
            result = await client.submit(info, "drain-pickup", 0, segment,
                                         parse_profiles("P144p30fps16x9"), 2000)
            orch.popen.send_signal(signal.SIGTERM)
            await asyncio.sleep(1.0)
            return [await client.download(s.url) for s in result.data.segments]

    renditions = asyncio.run(submit_stop_then_fetch())
    assert renditions and all(r[:1] == b"\x47" for r in renditions)
    assert orch.popen.wait(45) == 0
