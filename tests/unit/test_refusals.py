"""Refusals: every one counted, the log line at most once a minute per peer and reason."""

from __future__ import annotations

import logging

from lpnode.refusals import Refusals


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(caplog) -> tuple[Refusals, list[tuple[str, str]], Clock]:
    counted: list[tuple[str, str]] = []
    clock = Clock()
    caplog.set_level(logging.WARNING)
    refusals = Refusals(lambda what, reason: counted.append((what, reason)),
                        logging.getLogger("test.refusals"), clock=clock)
    return refusals, counted, clock


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_each_refusal_is_counted_and_the_first_logged_with_peer_and_reason(caplog):
    refusals, counted, _ = make(caplog)
    for _ in range(5):
        refusals.refuse("segment", "10.0.0.9", "hash_mismatch", "the body's keccak256 differs")
    assert counted == [("segment", "hash_mismatch")] * 5
    assert lines(caplog) == ["refused segment from 10.0.0.9: hash mismatch: the body's "
                             "keccak256 differs"]


def test_the_next_line_after_a_minute_says_how_many_were_not_logged(caplog):
    refusals, _, clock = make(caplog)
    for _ in range(4):
        refusals.refuse("transcoder", "10.0.0.7", "invalid_secret")
    clock.now += 59.9
    refusals.refuse("transcoder", "10.0.0.7", "invalid_secret")
    assert len(lines(caplog)) == 1
    clock.now += 0.2
    refusals.refuse("transcoder", "10.0.0.7", "invalid_secret")
    assert lines(caplog)[-1] == ("refused transcoder from 10.0.0.7: invalid secret "
                                 "(4 more since the last line)")


def test_other_peers_and_reasons_are_logged_on_their_own(caplog):
    refusals, _, _ = make(caplog)
    refusals.refuse("segment", "10.0.0.1", "capped")
    refusals.refuse("segment", "10.0.0.2", "capped")
    refusals.refuse("segment", "10.0.0.1", "bad_auth_token")
    refusals.refuse("results", "10.0.0.1", "capped")
    assert len(lines(caplog)) == 4


def test_many_peers_do_not_grow_memory_without_bound(caplog):
    refusals, counted, clock = make(caplog)
    for i in range(10_000):
        refusals.refuse("segment", f"10.{i // 256}.{i % 256}.1", "malformed_header")
        clock.now += 0.1
    assert len(counted) == 10_000
    assert len(refusals._seen) <= 4096 + 1
