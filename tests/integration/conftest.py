"""Integration tests: real lpnode processes on loopback (tests/support/fleet.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fleet import ANY_PORT, LPNODE, Fleet, Proc, wait_http, wait_transcoders

__all__ = ["ANY_PORT", "LPNODE", "Fleet", "Proc", "wait_http", "wait_transcoders"]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    yield f
    f.stop()
