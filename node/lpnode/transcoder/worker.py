"""The transcoder process: registers with its orchestrators, transcodes what they send.

Speaks go-livepeer's protocol (server/ot_rpc.go): RegisterTranscoder stream in, GET the source
from the NotifySegment url, POST /transcodeResults with the renditions as multipart/mixed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import grpc
import httpx

from lpnode.core import capabilities as caps
from lpnode.monitor import NodeMetrics
from lpnode.net import headers as names
from lpnode.net import lp_rpc_pb2 as pb
from lpnode.net import lp_rpc_pb2_grpc as rpc
from lpnode.net import multipart
from lpnode.net.channel import CertificateError, Trust, secure_channel
from lpnode.net.convert import mime_type, segment_profiles
from lpnode.transcode.engine import TranscodeError
from lpnode.transcode.runner import SegmentRunner

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.5
# Low cap: after an orchestrator restart its transcoders must be back within seconds; a
# connection attempt to a host that is down costs next to nothing.
BACKOFF_MAX_S = 2.0
HEARTBEAT_EVERY_S = 1.0
# Missed heartbeats in a row before the orchestrator counts as gone (reconnect).
HEARTBEAT_MISSES = 3


def source_url(url: str, orchestrator: str) -> str:
    """Where to fetch a segment's source: a URL on the orchestrator's own segment store
    (/stream/...) is fetched from the address this transcoder dialed, as the results are posted
    there. The URL names the orchestrator's advertised address, which behind a load balancer
    is the balancer's, and it could hand the request to another orchestrator."""
    parts = urlsplit(url)
    return f"https://{orchestrator}{parts.path}" if parts.path.startswith("/stream/") else url


@dataclass
class OrchestratorLink:
    address: str
    connected: bool = False
    connected_since: float | None = None
    last_error: str = ""
    attempts: int = 0
    in_flight: set[int] = field(default_factory=set)
    # Set while registered with an lpnode orchestrator (None with go-livepeer's).
    token: str | None = None
    channel: grpc.aio.Channel | None = None
    stream: grpc.aio.UnaryStreamCall | None = None


class TranscoderNode:
    def __init__(self, orch_addrs: list[str], read_secret: Callable[[], str], capacity: int, *,
                 metrics: NodeMetrics, gpus: Sequence[int] = (), name: str = "",
                 trust: Trust | None = None) -> None:
        self.links = [OrchestratorLink(a) for a in orch_addrs]
        self._trust = trust or Trust()
        self.name = name
        self._read_secret = read_secret
        self.capacity = capacity
        self.metrics = metrics
        self._runner = SegmentRunner(capacity, gpus)
        self.draining = False

    async def run(self) -> None:
        """Serve every orchestrator until cancelled. An unexpected exception in any link ends
        this (and so the process, which systemd restarts) instead of leaving a link that no
        longer reconnects. After a drain the process idles, its admin port still answering."""
        async with asyncio.TaskGroup() as links:
            for link in self.links:
                links.create_task(self._serve_forever(link))
        await asyncio.Event().wait()

    @property
    def in_flight(self) -> int:
        return sum(len(link.in_flight) for link in self.links)

    async def drain(self, deadline_s: float) -> bool:
        """Ask every orchestrator for no new work, finish what is in hand, then deregister.
        True if nothing was left unfinished at the deadline."""
        self.draining = True
        for link in self.links:
            if link.token and link.channel is not None:
                try:
                    await _ping_call(link.channel, names.DRAIN_RPC)(
                        pb.PingPong(value=link.token.encode()), timeout=5)
                except grpc.aio.AioRpcError as exc:
                    log.warning("orchestrator=%s did not take the drain request: %s",
                                link.address, exc.details())
        log.info("draining: waiting for %d segments in flight", self.in_flight)
        end = time.monotonic() + deadline_s
        while self.in_flight and time.monotonic() < end:
            await asyncio.sleep(0.1)
        finished = self.in_flight == 0
        for link in self.links:
            if link.stream is not None:
                link.stream.cancel()
        log.info("drained%s; deregistered from every orchestrator",
                 "" if finished else f" with {self.in_flight} segments unfinished at the deadline")
        return finished

    def status(self) -> dict:
        now = time.time()
        return {
            "capacity": self.capacity,
            "draining": self.draining,
            "inFlight": self.in_flight,
            "orchestrators": [{
                "address": link.address, "connected": link.connected,
                "connectedSeconds": round(now - link.connected_since, 1) if link.connected_since else None,
                "inFlight": len(link.in_flight), "lastError": link.last_error,
                "attempts": link.attempts,
            } for link in self.links],
        }

    async def _serve_forever(self, link: OrchestratorLink) -> None:
        """Reconnect forever, backing off with jitter; the secret is re-read before each try."""
        delay = BACKOFF_START_S
        while not self.draining:
            link.attempts += 1
            started = time.monotonic()
            try:
                await self._serve_once(link)
                link.last_error = "orchestrator closed the stream"
            except grpc.aio.AioRpcError as exc:
                link.last_error = exc.details() or exc.code().name
            except CertificateError as exc:
                link.last_error = str(exc)
                log.error("%s", exc)
            except (OSError, ValueError) as exc:
                link.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                link.connected, link.connected_since = False, None
                link.token = link.channel = link.stream = None
            if self.draining:
                return
            if time.monotonic() - started > BACKOFF_MAX_S:
                delay = BACKOFF_START_S   # it was up for a while: this is a fresh failure
            wait = delay * random.uniform(0.5, 1.0)
            log.warning("orchestrator=%s unavailable (%s); reconnecting in %.1fs",
                        link.address, link.last_error, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _serve_once(self, link: OrchestratorLink) -> None:
        secret = self._read_secret()
        request = pb.RegisterRequest(secret=secret, capacity=self.capacity,
                                     capabilities=caps.to_net(caps.TRANSCODER, (), self.capacity))
        channel = await secure_channel(link.address, self._trust)
        async with channel, httpx.AsyncClient(http2=True, verify=self._trust.http_verify(),
                                              timeout=30) as http:
            stream = rpc.TranscoderStub(channel).RegisterTranscoder(
                request, metadata=((names.HEARTBEAT_MD, str(HEARTBEAT_EVERY_S)),
                                   *(((names.TRANSCODER_NAME_MD, self.name),) if self.name else ())))
            tasks: set[asyncio.Task] = set()
            heartbeat: asyncio.Task | None = None
            try:
                metadata = dict(await stream.initial_metadata() or ())
                link.connected, link.connected_since, link.last_error = True, time.time(), ""
                link.channel, link.stream = channel, stream
                link.token = metadata.get(names.TRANSCODER_ID_MD)
                if link.token:
                    heartbeat = asyncio.create_task(self._heartbeat(link, channel, stream))
                    # A heartbeat loop that broke (not one that noticed a dead orchestrator)
                    # ends the stream, and the stream's end re-raises its error below.
                    heartbeat.add_done_callback(
                        lambda t: t.cancelled() or t.exception() is None or stream.cancel())
                log.info("registered with orchestrator=%s capacity=%d", link.address, self.capacity)
                try:
                    async for notify in stream:
                        if not notify.url:
                            continue   # session teardown: nothing is kept per session here
                        task = asyncio.create_task(self._handle(link, http, secret, notify))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                except asyncio.CancelledError:
                    # grpc reports our own stream.cancel() (heartbeat lost, drain) this way;
                    # only a cancellation of this task itself must travel on.
                    me = asyncio.current_task()
                    if me is not None and me.cancelling():
                        raise
                    if heartbeat is not None and heartbeat.done() and not heartbeat.cancelled() \
                            and (failure := heartbeat.exception()) is not None:
                        raise failure from None
                    raise ConnectionError("stream closed here") from None
            finally:
                if heartbeat is not None and not heartbeat.done():
                    heartbeat.cancel()
                # The orchestrator is gone or closed the stream; finish what is in hand so the
                # results can still be posted if it comes back in time.
                if tasks:
                    await asyncio.gather(*tasks, return_exceptions=True)

    async def _heartbeat(self, link: OrchestratorLink, channel: grpc.aio.Channel,
                         stream: grpc.aio.UnaryStreamCall) -> None:
        """Prove this process alive to the orchestrator, and notice when it is not."""
        beat = _ping_call(channel, names.HEARTBEAT_RPC)
        misses = 0
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY_S)
            try:
                await beat(pb.PingPong(value=(link.token or "").encode()), timeout=HEARTBEAT_EVERY_S * 2)
                misses = 0
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return
                misses += 1
                if exc.code() == grpc.StatusCode.NOT_FOUND or misses >= HEARTBEAT_MISSES:
                    log.warning("orchestrator=%s: heartbeat failed (%s); reconnecting",
                                link.address, exc.details() or exc.code().name)
                    stream.cancel()
                    return

    async def _handle(self, link: OrchestratorLink, http: httpx.AsyncClient, secret: str,
                      notify: pb.NotifySegment) -> None:
        link.in_flight.add(notify.taskId)
        started = time.monotonic()
        headers = {"Authorization": names.TRANSCODER_AUTH, "Credentials": secret,
                   "TaskId": str(notify.taskId)}
        try:
            try:
                profiles = segment_profiles(notify.segData)
                url = source_url(notify.url, link.address)
                source = (await _with_retries(lambda: http.get(url))).raise_for_status().content
                out = await self._runner.transcode(source, profiles)
            except (TranscodeError, ValueError, httpx.HTTPError) as exc:
                log.error("taskId=%d failed: %s", notify.taskId, exc)
                self.metrics.failed(type(exc).__name__)
                headers["Content-Type"] = names.TRANSCODING_ERROR_TYPE
                reason = str(exc).encode()
                await _with_retries(lambda: http.post(f"https://{link.address}/transcodeResults",
                                                      headers=headers, content=reason))
                return
            content_type, body = multipart.encode(
                ({"Content-Type": mime_type(r.profile), "Content-Length": str(len(r.data)),
                  "Pixels": str(r.pixels)}, r.data) for r in out.renditions)
            headers.update({"Content-Type": content_type, "Pixels": str(out.decoded_pixels)})
            resp = await _with_retries(lambda: http.post(
                f"https://{link.address}/transcodeResults", headers=headers, content=body))
            if resp.status_code != 200:
                log.error("orchestrator=%s refused results for taskId=%d: %d %s", link.address,
                          notify.taskId, resp.status_code, resp.text.strip())
                return
            self.metrics.segment_transcoded.inc()
            self.metrics.transcode_time.observe(time.monotonic() - started)
        except httpx.HTTPError as exc:
            log.error("could not post results for taskId=%d to orchestrator=%s: %s",
                      notify.taskId, link.address, exc)
        except Exception:
            # A bug here must not pass silently: the orchestrator would wait out the task's
            # timeout. Logged with its traceback; the orchestrator moves the segment on.
            log.exception("taskId=%d from orchestrator=%s failed unexpectedly", notify.taskId,
                          link.address)
            self.metrics.failed("UnexpectedError")
        finally:
            link.in_flight.discard(notify.taskId)


async def _with_retries(request: Callable[[], Awaitable[httpx.Response]],
                        attempts: int = 3) -> httpx.Response:
    """A request again on a fresh connection when the connection itself failed (the
    orchestrator closed it, say): a segment is not lost to a connection hiccup."""
    for attempt in range(1, attempts + 1):
        try:
            return await request()
        except httpx.TransportError:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


def _ping_call(channel: grpc.aio.Channel, path: str) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(path, request_serializer=pb.PingPong.SerializeToString,
                               response_deserializer=pb.PingPong.FromString)
