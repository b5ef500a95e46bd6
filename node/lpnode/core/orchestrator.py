"""The orchestrator: takes segments from gateways, runs them on its transcoders, keeps renditions
until the gateway downloads them."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from fractions import Fraction

from lpnode.core import capabilities as caps
from lpnode.core.auth import AuthTokens
from lpnode.core.credentials import SharedSecret
from lpnode.core.pool import TranscoderPool
from lpnode.core.remote import RemoteTranscoder
from lpnode.core.store import SegmentStore
from lpnode.core.tasks import NoTranscodersAvailable, Task, TaskFailed, TaskResult, TaskTimeout, TranscoderGone, Worker
from lpnode.monitor import NodeMetrics
from lpnode.net import lp_rpc_pb2 as pb
from lpnode.net.convert import extension, segment_profiles
from lpnode.pm.pricing import PriceSpec, Pricing, price_info

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
SESSION_IDLE_S = 60.0
# lpnode transcoders send a heartbeat every second; this much silence means the process is
# stopped or cut off, even when its socket looks open (go-livepeer #576/#847).
HEARTBEAT_TIMEOUT_S = 4.0


@dataclass(frozen=True)
class Price:
    price_per_unit: int = 0
    pixels_per_unit: int = 1

    def per_pixel(self) -> Fraction:
        return Fraction(self.price_per_unit, self.pixels_per_unit)


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
                 secret: SharedSecret | None = None, pricing: Pricing | None = None,
                 session_limit: int | None = None, session_idle_s: float = SESSION_IDLE_S,
                 heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S) -> None:
        self.service_uri = service_uri.rstrip("/")
        self.secret = secret
        self.draining = False   # no new sessions
        self.closing = False    # no new segments either: the process is about to exit
        self.in_flight = 0
        self._heartbeat_timeout_s = heartbeat_timeout_s
        self._worker_added = asyncio.Event()
        self.pool = TranscoderPool(session_limit)
        self.store = SegmentStore()
        self.tokens = tokens
        self.metrics = metrics
        self.pricing = pricing or Pricing(PriceSpec(Fraction(0)))
        self._session_idle_s = session_idle_s
        self._last_seen: dict[str, float] = {}
        self._task_ids = itertools.count(1)
        self._remotes: dict[int, RemoteTranscoder] = {}   # task id -> transcoder working on it
        metrics.watch_pool(self.pool.snapshot, session_limit)

    # -- transcoders -------------------------------------------------------------------------
    def add_worker(self, worker: Worker) -> None:
        self.pool.add(worker)
        self._worker_added.set()
        self._worker_added.clear()

    def remote_by_token(self, token: str) -> RemoteTranscoder | None:
        for worker in self.pool.workers():
            if isinstance(worker, RemoteTranscoder) and worker.token == token:
                return worker
        return None

    def remove_worker(self, worker: Worker) -> None:
        self.pool.remove(worker.id)
        worker.close()

    def close(self) -> None:
        """Let every transcoder go (their streams end; they reconnect to whoever is up)."""
        for worker in self.pool.workers():
            self.remove_worker(worker)

    def remote_for_task(self, task_id: int) -> RemoteTranscoder | None:
        return self._remotes.get(task_id)

    # -- gateways ----------------------------------------------------------------------------
    def capabilities(self) -> pb.Capabilities:
        offered: set[int] = set()
        for worker in self.pool.workers():
            offered |= worker.capabilities
        return caps.to_net(offered or caps.TRANSCODER, caps.MANDATORY, self.pool.capacity)

    def info(self, token: pb.AuthToken | None = None) -> pb.OrchestratorInfo:
        return pb.OrchestratorInfo(
            transcoder=self.service_uri,
            # The default price; on chain the service quotes each gateway its own (and prices
            # in a currency only there, once the feed is read).
            price_info=pb.PriceInfo() if self.pricing.needs_feed else price_info(self.pricing.price(None)),
            capabilities=self.capabilities(),
            auth_token=token or self.tokens.issue(),
        )

    def has_room_for(self, session_id: str) -> bool:
        if self.draining and session_id not in self._last_seen:
            return False   # draining: running sessions finish, new ones go elsewhere
        return self.pool.has_room_for(session_id)

    async def _assign(self, session_id: str, needs: frozenset[int], lost: set[str],
                      budget_s: float) -> Worker:
        """A transcoder for this segment. With none connected at all (just started, or every
        one reconnecting after a secret rotation) the segment waits for one, within its time
        budget, instead of failing at once."""
        deadline = time.monotonic() + budget_s
        while True:
            try:
                return self.pool.assign(session_id, needs, frozenset(lost))
            except NoTranscodersAvailable:
                wait = deadline - time.monotonic()
                if wait <= 0 or len(self.pool):
                    raise
                try:
                    await asyncio.wait_for(self._worker_added.wait(), wait)
                except TimeoutError:
                    raise NoTranscodersAvailable() from None

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
        self.in_flight += 1
        try:
            while True:
                worker = await self._assign(session_id, needs, lost, task.timeout_s / 2)
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
            self.in_flight -= 1
            self.store.delete(source_name)
        elapsed = time.monotonic() - started
        self.metrics.segment_transcoded.inc()
        self.metrics.transcode_time.observe(elapsed)
        self.metrics.segment_done(elapsed, seg.duration / 1000)
        urls = []
        for profile, (data, _) in zip(profiles, result.renditions, strict=True):
            name = f"{session_id}/{profile.name}/{seg.seq}{extension(profile)}"
            self.store.put(name, data, for_pickup=True)
            urls.append(f"{self.service_uri}/stream/{name}")
        return SegmentOutcome(result, urls, transcoder_s)

    async def _run_on(self, worker: Worker, task: Task) -> TaskResult:
        started = time.monotonic()
        if isinstance(worker, RemoteTranscoder):
            self._remotes[task.task_id] = worker
        try:
            result = await worker.run(task)
        except TaskTimeout:
            # go-livepeer drops the whole transcoder here, and every healthy session with it.
            self.pool.penalise(worker.id)
            self.metrics.transcoder_result(worker.name, False, time.monotonic() - started)
            raise
        except Exception:
            self.metrics.transcoder_result(worker.name, False, time.monotonic() - started)
            raise
        finally:
            self._remotes.pop(task.task_id, None)
        elapsed = time.monotonic() - started
        if task.segdata.duration and elapsed > task.segdata.duration / 1000:
            log.warning("transcoder=%s took %.1fs for a %.1fs segment: no new sessions for it "
                        "for a while", worker.address, elapsed, task.segdata.duration / 1000)
            self.pool.penalise(worker.id)
        if len(result.renditions) != len(task.profiles):
            raise TaskFailed(f"transcoder {worker.address} returned {len(result.renditions)} "
                                 f"renditions for {len(task.profiles)} profiles")
        self.metrics.transcoder_result(worker.name, True, time.monotonic() - started,
                                       task.segdata.duration / 1000)
        return result

    def end_session(self, session_id: str) -> None:
        self._last_seen.pop(session_id, None)
        worker = self.pool.end_session(session_id)
        if worker is not None:
            worker.end_session(session_id)

    def _drop_dead_and_stale(self) -> None:
        for worker in self.pool.workers():
            if not isinstance(worker, RemoteTranscoder):
                continue
            if worker.heartbeats and worker.silent_for() > self._heartbeat_timeout_s:
                log.warning("transcoder=%s sent no heartbeat for %.1fs: dropping it, its "
                            "segments go to other transcoders", worker.address, worker.silent_for())
                self.metrics.failed("TranscoderLost")
                self.remove_worker(worker)
            elif self.secret is not None and self.secret.stale(worker.secret_generation):
                log.warning("transcoder=%s still uses the previous orchSecret after the grace "
                            "period: closing its connection", worker.address)
                self.remove_worker(worker)

    async def housekeeping(self, every_s: float = 0.5) -> None:
        """Drop transcoders that went silent or kept an expired secret, end sessions whose
        gateway went quiet (their capacity comes back), drop old files."""
        while True:
            await asyncio.sleep(every_s)
            self._drop_dead_and_stale()
            cutoff = time.monotonic() - self._session_idle_s
            for session_id, seen in list(self._last_seen.items()):
                if seen < cutoff:
                    log.info("session=%s idle for %.0fs, ending it", session_id, self._session_idle_s)
                    self.end_session(session_id)
            self.store.sweep()
