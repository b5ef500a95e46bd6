import pytest

from lpnode.core.capabilities import TRANSCODER
from lpnode.core.pool import TranscoderPool
from lpnode.core.tasks import NoTranscodersAvailable, OrchestratorCapped


class FakeWorker:
    """Scheduling only reads these attributes; no transcoding happens in these tests."""

    def __init__(self, wid: str, capacity: int, capabilities=TRANSCODER) -> None:
        self.id = self.address = self.name = wid
        self.capacity = capacity
        self.capabilities = frozenset(capabilities)
        self.connected_at = 0.0
        self.draining = False
        self.in_flight = 0


def pool_of(*workers, limit=None) -> TranscoderPool:
    pool = TranscoderPool(limit)
    for w in workers:
        pool.add(w)
    return pool


def test_least_loaded_first_and_sessions_stick():
    pool = pool_of(FakeWorker("a", 2), FakeWorker("b", 2))
    first = pool.assign("s1").id
    second = pool.assign("s2").id
    assert {first, second} == {"a", "b"}
    assert pool.assign("s1").id == first          # the same session stays put
    assert pool.load == 2


def test_load_is_relative_to_capacity():
    pool = pool_of(FakeWorker("small", 1), FakeWorker("big", 10))
    # an idle tie goes to the one with more room; a full transcoder gets nothing more
    assert [pool.assign(f"s{i}").id for i in range(4)] == ["big", "small", "big", "big"]


def test_capped_when_every_transcoder_is_full():
    pool = pool_of(FakeWorker("a", 1))
    pool.assign("s1")
    assert not pool.has_room_for("s2")
    assert pool.has_room_for("s1")
    with pytest.raises(OrchestratorCapped, match="OrchestratorCapped"):
        pool.assign("s2")


def test_orchestrator_limit_caps_below_transcoder_capacity():
    pool = pool_of(FakeWorker("a", 10), limit=1)
    pool.assign("s1")
    with pytest.raises(OrchestratorCapped):
        pool.assign("s2")


def test_no_transcoders_is_a_clear_error():
    with pytest.raises(NoTranscodersAvailable, match="no transcoders available"):
        TranscoderPool().assign("s1")


def test_incompatible_transcoders_are_skipped():
    pool = pool_of(FakeWorker("mpegts-only", 5, {0, 1}), FakeWorker("full", 1))
    assert pool.assign("s1", frozenset({2})).id == "full"
    with pytest.raises(NoTranscodersAvailable, match="capabilities"):
        pool_of(FakeWorker("x", 5, {0})).assign("s1", frozenset({2}))


def test_removed_transcoder_frees_its_sessions_for_others():
    pool = pool_of(FakeWorker("a", 1), FakeWorker("b", 1))
    owner = pool.assign("s1").id
    assert pool.remove(owner) == {"s1"}
    assert pool.assign("s1").id != owner


def test_end_session_gives_capacity_back():
    pool = pool_of(FakeWorker("a", 1))
    pool.assign("s1")
    assert pool.end_session("s1").id == "a"
    assert pool.assign("s2").id == "a"


def test_exclude_moves_a_session_off_a_lost_transcoder():
    pool = pool_of(FakeWorker("a", 2), FakeWorker("b", 2))
    owner = pool.assign("s1").id
    moved = pool.assign("s1", exclude=frozenset({owner}))
    assert moved.id != owner
    assert [s.load for s in pool.snapshot() if s.id == owner] == [0]


def test_slow_transcoder_is_passed_over_for_new_sessions_but_keeps_its_own():
    pool = pool_of(FakeWorker("a", 4), FakeWorker("b", 4))
    first = pool.assign("s1").id
    other = ({"a", "b"} - {first}).pop()
    pool.penalise(first)
    assert [pool.assign(f"new{i}").id for i in range(3)] == [other] * 3
    assert pool.assign("s1").id == first            # its healthy session stays
    # when the others are full, the penalised one still takes work rather than refusing it
    pool.assign("new3")
    assert pool.assign("new4").id == first


def test_draining_transcoder_gets_no_work_and_its_sessions_move():
    a, b = FakeWorker("a", 4), FakeWorker("b", 4)
    pool = pool_of(a, b)
    owner = pool.assign("s1")
    owner.draining = True
    moved = pool.assign("s1")
    assert moved.id != owner.id
    assert all(pool.assign(f"n{i}").id == moved.id for i in range(3))
    moved.draining = True
    with pytest.raises(OrchestratorCapped):
        pool.assign("n9")


def test_store_counts_renditions_no_one_has_fetched_yet():
    from lpnode.core.store import SegmentStore

    store = SegmentStore()
    store.put("source.ts", b"src")                        # sources are not waited for
    store.put("s/P144p/0.ts", b"a", for_pickup=True)
    store.put("s/P240p/0.ts", b"b", for_pickup=True)
    assert store.awaiting_pickup(5.0) == 2
    assert store.get("s/P144p/0.ts") == b"a"
    assert store.awaiting_pickup(5.0) == 1
    assert store.awaiting_pickup(0.0) == 0                # older than the window: given up
    store.delete("s/P240p/0.ts")
    assert store.awaiting_pickup(5.0) == 0
