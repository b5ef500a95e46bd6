"""A node never runs dead: when a part of it fails, it says which and exits 1 (systemd restarts
it). These faults cannot be caused from outside the process, so the failing part is replaced
in-process; everything else is the real node on real sockets."""

from __future__ import annotations

import logging
import time

import pytest

from lpnode import cli
from lpnode.core.orchestrator import Orchestrator
from lpnode.transcoder.worker import TranscoderNode

from .conftest import ANY_PORT, wait_transcoders

pytestmark = pytest.mark.integration


def run_main(*argv: str) -> tuple[int, float]:
    started = time.monotonic()
    rc = cli.main(list(argv))
    return rc, time.monotonic() - started


def test_orchestrator_exits_when_housekeeping_raises(fleet, monkeypatch, caplog):
    async def broken(self, every_s: float = 0.5) -> None:
        raise RuntimeError("housekeeping bug")
    monkeypatch.setattr(Orchestrator, "housekeeping", broken)
    caplog.set_level(logging.INFO)
    rc, took = run_main("-orchestrator", "-orchSecret", str(fleet.secret_file),
                        "-httpAddr", ANY_PORT, "-cliAddr", ANY_PORT,
                        "-datadir", str(fleet.tmp / "d"))
    assert rc == 1 and took < 5
    assert "housekeeping failed: RuntimeError: housekeeping bug; stopping so that systemd " \
           "restarts lpnode" in caplog.text


def test_transcoder_exits_when_a_link_dies_unexpectedly(fleet, monkeypatch, caplog):
    async def broken(self, link) -> None:
        raise KeyError("link bug")
    monkeypatch.setattr(TranscoderNode, "_serve_once", broken)
    caplog.set_level(logging.INFO)
    rc, took = run_main("-transcoder", "-orchAddr", "127.0.0.1:1", "-orchSecret",
                        str(fleet.secret_file), "-cliAddr", ANY_PORT)
    assert rc == 1 and took < 5
    assert "orchestrator links failed: KeyError: 'link bug'" in caplog.text


def test_transcoder_exits_when_its_heartbeat_loop_breaks(fleet, monkeypatch, caplog):
    """Registered with a real orchestrator; then the heartbeat loop raises."""
    orch = fleet.orchestrator()

    async def broken(self, link, channel, stream) -> None:
        raise RuntimeError("heartbeat bug")
    monkeypatch.setattr(TranscoderNode, "_heartbeat", broken)
    caplog.set_level(logging.INFO)
    rc, took = run_main("-transcoder", "-orchAddr", fleet.orch_addr, "-orchSecret",
                        str(fleet.secret_file), "-cliAddr", ANY_PORT)
    assert rc == 1 and took < 5
    assert "registered with orchestrator" in caplog.text
    assert "orchestrator links failed: RuntimeError: heartbeat bug" in caplog.text
    wait_transcoders(orch, 0)
