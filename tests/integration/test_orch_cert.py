"""-orchCert: a transcoder hands its orchSecret only to a server presenting the orchestrator's
certificate, and checks every HTTPS request against it too."""

from __future__ import annotations

import asyncio
import time

import pytest

from lpnode.gateway.client import GatewayClient, SegmentRejected
from lpnode.server.tls import ensure_self_signed
from lpnode.transcode.profiles import parse_profiles
from lpnode.transcode.testsrc import cut_segments, make_source

from .conftest import ANY_PORT, wait_http, wait_transcoders

pytestmark = pytest.mark.integration
SMALL = ("-resolution", "320x180", "-profiles", "P144p30fps16x9", "-quiet")


def orch_cert(fleet) -> str:
    return str(fleet.tmp / "orchestrator-data" / "cert.pem")


def test_pinned_transcoder_works_end_to_end(fleet):
    orch = fleet.orchestrator()
    t1 = fleet.transcoder("t1", 2, None, "-orchCert", orch_cert(fleet))
    wait_transcoders(orch, 1)
    rc, summary, output = fleet.test_stream("-segments", "3", *SMALL)
    assert rc == 0 and summary["failed"] == 0, output
    assert "only servers presenting one get the orchSecret" in t1.log()
    assert "no -orchCert" not in t1.log()


def test_an_impostor_gets_no_secret(fleet):
    """The transcoder dials an orchestrator whose certificate is not the pinned one: it says so,
    sends nothing, and keeps retrying; the impostor never sees a registration."""
    impostor = fleet.orchestrator()
    other = ensure_self_signed(fleet.tmp / "real-orchestrator", "127.0.0.1")[0]
    t1 = fleet.transcoder("t1", 2, None, "-orchCert", str(other))
    t1.logged(rf"orchestrator={fleet.orch_addr} presented a certificate that -orchCert "
              rf"{other} does not hold .*the orchSecret was not sent")
    deadline = time.monotonic() + 10
    while t1.status()["orchestrators"][0]["attempts"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert t1.status()["orchestrators"][0]["attempts"] >= 2     # retried, with backoff
    assert "RegisterTranscoder" not in impostor.log()
    assert "invalid secret" not in impostor.log()
    assert impostor.status()["transcoders"] == []


def test_sources_are_fetched_from_the_pinned_orchestrator_not_the_advertised_address(fleet):
    """The orchestrator advertises another server (a load balancer, here a second lpnode with
    its own certificate): the pinned transcoder fetches each source from the orchestrator it
    dialed and verified, never from the advertised address, so the segment is transcoded."""
    other = fleet.start("other", "-orchestrator", "-orchSecret", str(fleet.secret_file),
                        "-httpAddr", ANY_PORT, "-datadir", str(fleet.tmp / "other-data"))
    wait_http(other)
    elsewhere = other.logged(r"listening on (\S+),").group(1)
    orch = fleet.orchestrator("-serviceAddr", elsewhere)
    t1 = fleet.transcoder("t1", 2, None, "-orchCert", orch_cert(fleet))
    wait_transcoders(orch, 1)
    segment = cut_segments(make_source(2.0, 320, 180, 30), 2.0)[0]

    async def submit() -> int:
        async with GatewayClient(fleet.orch_addr) as client:
            info = await client.get_orchestrator()
            assert info.transcoder == f"https://{elsewhere}"
            info.transcoder = f"https://{fleet.orch_addr}"   # segments to the real one
            result = await client.submit(info, "pinned", 0, segment, parse_profiles("P144p30fps16x9"), 2000)
            return len(result.data.segments)

    assert asyncio.run(submit()) == 1
    assert "CERTIFICATE_VERIFY_FAILED" not in t1.log() and "failed" not in t1.log()


def test_without_orch_cert_the_transcoder_warns(fleet):
    orch = fleet.orchestrator()
    t1 = fleet.transcoder("t1", 1)
    wait_transcoders(orch, 1)
    assert "no -orchCert: this transcoder sends the orchSecret to whichever server answers" in t1.log()
