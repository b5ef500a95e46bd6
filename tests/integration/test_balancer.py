"""Two orchestrators behind a real HAProxy configured from the fleet's template: a drained
orchestrator leaves rotation by its own health check, and its gateways' streams move to the
other one when it hands them off, with no failed segment and no gateway retry."""

from __future__ import annotations

import os
import re
import urllib.error

import pytest

from roles.haproxy import Server
from tests.support.balancer import Balancer

from .conftest import wait_http
from .test_failover import until

pytestmark = pytest.mark.integration
STREAM = ("-profiles", "P240p30fps16x9,P144p30fps16x9", "-resolution", "426x240", "-realtime", "-quiet")


def segments(orch) -> float:
    match = re.search(r"^livepeer_segment_source_appeared_total\{[^}]*\} (\S+)", orch.metrics(), re.M)
    return float(match.group(1)) if match else 0.0


@pytest.fixture
def balanced(fleet, tmp_path):
    """o1 and o2 (each transcoding itself) behind HAProxy; both advertise the balancer and
    share one auth-token key, as the fleet deploy sets them up."""
    key = tmp_path / "authTokenKey"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    lb = Balancer(tmp_path)
    orchs = {}
    for name in ("o1", "o2"):
        proc = fleet.start(name, "-orchestrator", "-transcoder", "-maxSessions", "4",
                           "-orchSecret", str(fleet.secret_file), "-httpAddr", "127.0.0.1:0",
                           "-serviceAddr", lb.address, "-authTokenKeyFile", str(key),
                           "-adminTokenFile", str(fleet.admin_token()),
                           "-datadir", str(tmp_path / f"{name}-data"), "-monitor")
        wait_http(proc)
        orchs[name] = proc
    lb.start([Server(name, "127.0.0.1", int(p.logged(r"listening on \S+:(\d+),").group(1)),
                     int(p.admin_addr.rsplit(":", 1)[1])) for name, p in orchs.items()])
    try:
        lb.wait(lambda s: len(s) == 2 and all(v.status == "UP" for v in s.values()), "both orchestrators up")
        yield lb, orchs
    finally:
        lb.stop()


def test_a_drained_orchestrator_leaves_rotation_and_hands_its_streams_over(fleet, balanced):
    lb, orchs = balanced
    stream = fleet.start_stream("-segments", "10", "-streams", "2", *STREAM, orch_addr=lb.address)
    # The balancer hashes the gateway's address: both streams are on one orchestrator. Found by
    # its segment count, which only grows: a gateway's connection count drops to 0 between its
    # GetOrchestrator (a connection of its own) and its first segment.
    until(lambda: any(segments(p) >= 2 for p in orchs.values()), 30, "segments on the first orchestrator")
    first = next(n for n, p in orchs.items() if segments(p) >= 2)
    other = next(n for n in orchs if n != first)

    token = fleet.admin_token()
    assert orchs[first].admin("drain", token)["draining"] is True
    left = until(lambda: not lb.servers()[first].in_rotation, 10, "HAProxy taking it out")
    assert lb.servers()[other].in_rotation
    orchs[first].admin("handoff", token)
    moved = until(lambda: orchs[first].status()["gatewayConnections"] == 0
                  and orchs[other].status()["gatewayConnections"] > 0, 20, "the gateways moving")
    before = segments(orchs[other])
    until(lambda: segments(orchs[other]) > before, 10, "segments on the other orchestrator")

    rc, summary, output = fleet.finish_stream(stream)
    print(f"balancer: out of rotation {left:.2f}s after the drain, gateways moved {moved:.2f}s after the "
          f"handoff; {first} took {segments(orchs[first]):.0f} segments, {other} {segments(orchs[other]):.0f}; "
          f"stream {summary.get('succeeded')}/{summary.get('segments')}, retries {summary.get('retries')}")
    assert rc == 0 and summary["failed"] == 0 and summary["retries"] == 0, output
    assert orchs[first].status()["inFlight"] == 0

    # Back in rotation once it takes sessions again.
    orchs[first].admin("undrain", token)
    lb.wait(lambda s: s[first].in_rotation, "the undrained orchestrator back in rotation", timeout=10)


def test_handoff_is_refused_before_a_drain(fleet, balanced):
    lb, orchs = balanced
    with pytest.raises(urllib.error.HTTPError) as refused:
        orchs["o1"].admin("handoff", fleet.admin_token())
    assert refused.value.code == 400
    assert "POST /drain first" in refused.value.read().decode()
    assert lb.servers()["o1"].in_rotation
