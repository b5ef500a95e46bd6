"""Which transcoder gets a session: go-livepeer's rules (core/orchestrator.go), and what its
operators asked for on top.

Least-loaded compatible transcoder first, load counted in concurrent sessions against the
transcoder's -maxSessions, and a session stays on its transcoder while both live. Unlike
go-livepeer, a transcoder that was slow is not thrown out with all its sessions: it is only
passed over for new sessions for a while. A draining transcoder gets no work at all; its
sessions move on their next segment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lpnode.core.tasks import NoTranscodersAvailable, OrchestratorCapped, Worker

SLOW_PENALTY_S = 120.0


@dataclass(frozen=True)
class WorkerSnapshot:
    id: str
    address: str
    name: str
    capacity: int
    load: int
    connected_at: float
    in_flight: int
    draining: bool
    penalised: bool


class TranscoderPool:
    def __init__(self, session_limit: int | None = None) -> None:
        # The orchestrator's own -maxSessions, on top of each transcoder's.
        self._limit = session_limit
        self._workers: dict[str, Worker] = {}
        self._sessions: dict[str, set[str]] = {}   # worker id -> session ids
        self._owner: dict[str, str] = {}           # session id -> worker id
        self._penalty_until: dict[str, float] = {}

    def add(self, worker: Worker) -> None:
        self._workers[worker.id] = worker
        self._sessions[worker.id] = set()

    def remove(self, worker_id: str) -> set[str]:
        """Forget a worker; returns its sessions, which move elsewhere on their next segment."""
        self._workers.pop(worker_id, None)
        self._penalty_until.pop(worker_id, None)
        orphans = self._sessions.pop(worker_id, set())
        for session_id in orphans:
            self._owner.pop(session_id, None)
        return orphans

    def __len__(self) -> int:
        return len(self._workers)

    def get(self, worker_id: str) -> Worker | None:
        return self._workers.get(worker_id)

    def workers(self) -> list[Worker]:
        return list(self._workers.values())

    def penalise(self, worker_id: str, seconds: float = SLOW_PENALTY_S) -> None:
        if worker_id in self._workers:
            self._penalty_until[worker_id] = time.monotonic() + seconds

    def _penalised(self, worker_id: str) -> bool:
        return self._penalty_until.get(worker_id, 0.0) > time.monotonic()

    def _free(self, w: Worker) -> bool:
        return not w.draining and len(self._sessions[w.id]) < w.capacity

    def has_room_for(self, session_id: str) -> bool:
        if session_id in self._owner or not self._workers:
            # With no transcoders at all the segment fails with "no transcoders available",
            # which tells the operator more than "capped" would.
            return True
        if self._limit is not None and len(self._owner) >= self._limit:
            return False
        return any(self._free(w) for w in self._workers.values())

    def assign(self, session_id: str, needs: frozenset[int] = frozenset(),
               exclude: frozenset[str] = frozenset()) -> Worker:
        owner = self._owner.get(session_id)
        if owner is not None and owner not in exclude and not self._workers[owner].draining:
            return self._workers[owner]
        if owner is not None:
            self._release(session_id)
        if not self._workers:
            raise NoTranscodersAvailable()
        able = [w for w in self._workers.values() if needs <= w.capabilities and w.id not in exclude]
        if not able:
            raise NoTranscodersAvailable("no transcoders can provide requested capabilities")
        free = [w for w in able if self._free(w)]
        if not free or (self._limit is not None and len(self._owner) >= self._limit):
            raise OrchestratorCapped()
        best = min(free, key=lambda w: (self._penalised(w.id),
                                        len(self._sessions[w.id]) / w.capacity,
                                        -(w.capacity - len(self._sessions[w.id]))))
        self._sessions[best.id].add(session_id)
        self._owner[session_id] = best.id
        return best

    def _release(self, session_id: str) -> str | None:
        owner = self._owner.pop(session_id, None)
        if owner is not None:
            self._sessions[owner].discard(session_id)
        return owner

    def end_session(self, session_id: str) -> Worker | None:
        owner = self._release(session_id)
        return self._workers.get(owner) if owner else None

    def snapshot(self) -> list[WorkerSnapshot]:
        return [WorkerSnapshot(w.id, w.address, w.name, w.capacity, len(self._sessions[w.id]),
                               w.connected_at, w.in_flight, w.draining, self._penalised(w.id))
                for w in self._workers.values()]

    @property
    def capacity(self) -> int:
        return sum(w.capacity for w in self._workers.values())

    @property
    def load(self) -> int:
        return len(self._owner)
