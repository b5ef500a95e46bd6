"""The orchestrator: takes segments from gateways, runs them on its transcoders, keeps renditions
until the gateway downloads them."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass

from lpnode.core import capabilities as caps
from lpnode.core.auth import AuthTokens
from lpnode.core.pool import TranscoderPool
from lpnode.core.remote import RemoteTranscoder
from lpnode.core.store import SegmentStore
from lpnode.core.tasks import Task, TaskFailed, TaskResult, TranscoderGone, Worker
from lpnode.monitor import NodeMetrics
from lpnode.net import lp_rpc_pb2 as pb
from lpnode.net.convert import extension, segment_profiles

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
SESSION_IDLE_S = 60.0


@dataclass(frozen=True)
class Price:
    price_per_unit: int = 0
    pixels_per_unit: int = 1


@dataclass
class SegmentOutcome:
    result: TaskResult
    urls: list[str]
    transcoder_s: float   # from handing the task out to its result coming back


def task_timeout(duration_ms: int) -> float:
    """go-livepeer's budget for one segment: four times its length, at least 8 seconds."""
    return max(8.0, 4 * duration_ms / 1000)


class Orchestrator:
    def __init__(self, *, service_uri: str, tokens: AuthTokens, metrics: NodeMetrics,
                 price: Price = Price(), session_limit: int | None = None,
                 session_idle_s: float = SESSION_IDLE_S) -> None:
        self.service_uri = service_uri.rstrip("/")
        self.pool = TranscoderPool(session_limit)
        self.store = SegmentStore()
        self.tokens = tokens
        self.metrics = metrics
        self.price = price
        self._session_idle_s = session_idle_s
        self._last_seen: dict[str, float] = {}
        self._task_ids = itertools.count(1)
        self._remotes: dict[int, RemoteTranscoder] = {}   # task id -> transcoder working on it
        metrics.watch_pool(self.pool.snapshot)

    # -- transcoders -------------------------------------------------------------------------
    def add_worker(self, worker: Worker) -> None:
        self.pool.add(worker)

    def remove_worker(self, worker: Worker) -> None:
        self.pool.remove(worker.id)
        worker.close()

    def close(self) -> None:
        """Let every transcoder go (their streams end; they reconnect to whoever is up)."""
        for snap in self.pool.snapshot():
            worker = self.pool.get(snap.id)
            if worker is not None:
                self.remove_worker(worker)

    def remote_for_task(self, task_id: int) -> RemoteTranscoder | None:
        return self._remotes.get(task_id)

    # -- gateways ----------------------------------------------------------------------------
    def capabilities(self) -> pb.Capabilities:
        offered: set[int] = set()
        for snap in self.pool.snapshot():
            worker = self.pool.get(snap.id)
            if worker is not None:
                offered |= worker.capabilities
        return caps.to_net(offered or caps.TRANSCODER, caps.MANDATORY, self.pool.capacity)

    def info(self, token: pb.AuthToken | None = None) -> pb.OrchestratorInfo:
        return pb.OrchestratorInfo(
            transcoder=self.service_uri,
            price_info=pb.PriceInfo(pricePerUnit=self.price.price_per_unit,
                                    pixelsPerUnit=self.price.pixels_per_unit),
            capabilities=self.capabilities(),
            auth_token=token or self.tokens.issue(),
        )

    def has_room_for(self, session_id: str) -> bool:
        return self.pool.has_room_for(session_id)

    async def transcode(self, seg: pb.SegData, source: bytes) -> SegmentOutcome:
        """Run one segment to completion, moving it to another transcoder if its own is lost."""
        session_id = seg.auth_token.session_id
        self._last_seen[session_id] = time.monotonic()
        profiles = segment_profiles(seg)
        needs = frozenset(caps.from_bitstring(seg.capabilities.bitstring)) & caps.TRANSCODER
        task_id = next(self._task_ids)
        source_name = f"{session_id}/source/{seg.seq}-{task_id}.ts"
        self.store.put(source_name, source)
        task = Task(task_id=task_id, session_id=session_id, seq=seg.seq, source=source,
                    source_url=f"{self.service_uri}/stream/{source_name}", profiles=profiles,
                    segdata=seg, timeout_s=task_timeout(seg.duration))
        self.metrics.segment_source_appeared.inc()
        started = time.monotonic()
        lost: set[str] = set()
        try:
            while True:
                worker = self.pool.assign(session_id, needs, frozenset(lost))
                try:
                    handed_out = time.perf_counter()
                    result = await self._run_on(worker, task)
                    transcoder_s = time.perf_counter() - handed_out
                    break
                except TranscoderGone as exc:
                    lost.add(worker.id)
                    if len(lost) >= MAX_ATTEMPTS:
                        raise
                    self.metrics.retries.inc()
                    log.warning("retrying segment seq=%d of session=%s elsewhere: %s",
                                seg.seq, session_id, exc)
        except Exception as exc:
            self.metrics.failed(type(exc).__name__)
            raise
        finally:
            self.store.delete(source_name)
        elapsed = time.monotonic() - started
        self.metrics.segment_transcoded.inc()
        self.metrics.transcode_time.observe(elapsed)
        urls = []
        for profile, (data, _) in zip(profiles, result.renditions):
            name = f"{session_id}/{profile.name}/{seg.seq}{extension(profile)}"
            self.store.put(name, data)
            urls.append(f"{self.service_uri}/stream/{name}")
        return SegmentOutcome(result, urls, transcoder_s)

    async def _run_on(self, worker: Worker, task: Task) -> TaskResult:
        started = time.monotonic()
        if isinstance(worker, RemoteTranscoder):
            self._remotes[task.task_id] = worker
        try:
            result = await worker.run(task)
        except Exception:
            self.metrics.transcoder_result(worker.address, False, time.monotonic() - started)
            raise
        finally:
            self._remotes.pop(task.task_id, None)
        if len(result.renditions) != len(task.profiles):
            raise TaskFailed(f"transcoder {worker.address} returned {len(result.renditions)} "
                                 f"renditions for {len(task.profiles)} profiles")
        self.metrics.transcoder_result(worker.address, True, time.monotonic() - started)
        return result

    def end_session(self, session_id: str) -> None:
        self._last_seen.pop(session_id, None)
        worker = self.pool.end_session(session_id)
        if worker is not None:
            worker.end_session(session_id)

    async def housekeeping(self, every_s: float = 5.0) -> None:
        """End sessions whose gateway went quiet, so their capacity comes back; drop old files."""
        while True:
            await asyncio.sleep(every_s)
            cutoff = time.monotonic() - self._session_idle_s
            for session_id, seen in list(self._last_seen.items()):
                if seen < cutoff:
                    log.info("session=%s idle for %.0fs, ending it", session_id, self._session_idle_s)
                    self.end_session(session_id)
            self.store.sweep()
