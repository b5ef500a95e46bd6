"""Prometheus metrics for /metrics on the admin port.

Names follow go-livepeer's monitor/census.go where it has them (the `livepeer_` namespace and the
`node_type` label operators already chart); per-transcoder series, which go-livepeer lacks, are
`lpnode_transcoder_*` with a `transcoder` label. One registry per node: no process-wide state.

Besides the segment and pool series the registry carries what the alerts in monitoring/rules
need: the process collector (`process_start_time_seconds` for restart loops), the expiry of
the certificate 8935 serves, how a segment's processing time compares with its duration (slower
than real time), and, on a transcoder with -nvidia, per-GPU readings
(lpnode.transcode.gpu_metrics). docs/alerts.md lists the alerts built on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lpnode import __version__
from lpnode.core.pool import WorkerSnapshot
from lpnode.server.tls import certificate_expiry
from lpnode.transcode.gpu import GpuInfo
from lpnode.transcode.gpu_metrics import GpuCollector

_TIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12, 20, 30)
# Processing time / segment duration: above 1 a live stream falls behind. Dense around 1.
_REALTIME_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 1, 1.25, 1.5, 2, 3, 4)
# Failure reasons each node type reports (exception names, plus the orchestrator's
# TranscoderLost), exported at 0 from the start: increase() cannot see the first failure of a
# counter that appears only when it happens, and a dashboard shows 0 instead of "no data".
_KNOWN_ERROR_CODES = {
    "orch": ("NoTranscodersAvailable", "OrchestratorCapped", "TaskFailed", "TaskTimeout",
             "TranscoderGone", "TranscoderLost"),
    "trcr": ("TranscodeError",),
}

# Refusals exported at 0 from the start, for the same reason.
_KNOWN_REFUSALS = {
    "orch": (("segment", "malformed_header"), ("segment", "bad_auth_token"),
             ("segment", "hash_mismatch"), ("segment", "capability_mismatch"),
             ("segment", "capped"), ("segment", "shutting_down"),
             ("transcoder", "invalid_secret"), ("results", "invalid_secret")),
}


class NodeMetrics:
    def __init__(self, node_type: str) -> None:
        self.node_type = node_type
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["node_type"]
        Gauge("livepeer_versions", "lpnode version", ["node_type", "livepeer_version"],
              registry=self.registry).labels(node_type, __version__).set(1)
        self.segment_source_appeared = Counter(
            "livepeer_segment_source_appeared_total", "Segments received from gateways", labels,
            registry=self.registry).labels(node_type)
        self.segment_transcoded = Counter(
            "livepeer_segment_transcoded_total", "Segments transcoded successfully", labels,
            registry=self.registry).labels(node_type)
        self._failed = Counter(
            "livepeer_segment_transcode_failed_total", "Segments that failed, by reason",
            ["node_type", "error_code"], registry=self.registry)
        for code in _KNOWN_ERROR_CODES.get(node_type, ()):
            self._failed.labels(node_type, code)
        self.transcode_time = Histogram(
            "livepeer_transcode_time_seconds", "Time from segment in to renditions ready", labels,
            buckets=_TIME_BUCKETS, registry=self.registry).labels(node_type)
        self.overhead = Histogram(
            "lpnode_orchestrator_overhead_seconds",
            "Time a segment spends in the orchestrator itself: its whole request less the time "
            "its transcoder had it", labels,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
            registry=self.registry).labels(node_type)
        self._refusals = Counter(
            "lpnode_refusals_total",
            "Requests refused: what was refused (segment, transcoder, results, admin) and why",
            ["node_type", "what", "reason"], registry=self.registry)
        for what, reason in _KNOWN_REFUSALS.get(node_type, ()):
            self._refusals.labels(node_type, what, reason)
        self.retries = Counter(
            "lpnode_segment_retries_total", "Segments sent to another transcoder after one was lost",
            labels, registry=self.registry).labels(node_type)
        self._per_transcoder_segments = Counter(
            "lpnode_transcoder_segments_total", "Segments each transcoder finished, by result",
            ["transcoder", "result"], registry=self.registry)
        self._per_transcoder_time = Histogram(
            "lpnode_transcoder_transcode_time_seconds", "Round trip per segment, per transcoder",
            ["transcoder"], buckets=_TIME_BUCKETS, registry=self.registry)
        # lpnode_transcoder_transcode_time_seconds_sum divided by this is a transcoder's
        # real-time ratio (above 1: slower than real time), for alerts and dashboards.
        self._per_transcoder_media = Counter(
            "lpnode_transcoder_media_seconds_total",
            "Seconds of video each transcoder transcoded successfully (source segment durations)",
            ["transcoder"], registry=self.registry)
        self.realtime_ratio = Histogram(
            "lpnode_segment_realtime_ratio",
            "Per segment: time from segment in to renditions ready, divided by the segment's "
            "duration; above 1 is slower than real time", labels,
            buckets=_REALTIME_BUCKETS, registry=self.registry).labels(node_type)
        # Made by set_certificate: a node that serves no certificate (a transcoder) must not
        # export an expiry of 0, which would read as "expired in 1970".
        self._tls_expiry: Gauge | None = None
        # process_start_time_seconds (restart loops), CPU, memory, file descriptors.
        ProcessCollector(registry=self.registry)

    def refused(self, what: str, reason: str) -> None:
        self._refusals.labels(self.node_type, what, reason).inc()

    def failed(self, error_code: str) -> None:
        self._failed.labels(self.node_type, error_code).inc()

    def transcoder_result(self, address: str, ok: bool, seconds: float,
                          media_seconds: float = 0.0) -> None:
        """A segment came back from a transcoder after ``seconds``; ``media_seconds`` is the
        segment's duration (0 when the gateway did not say)."""
        self._per_transcoder_segments.labels(address, "ok" if ok else "error").inc()
        if ok:
            self._per_transcoder_time.labels(address).observe(seconds)
            if media_seconds > 0:
                self._per_transcoder_media.labels(address).inc(media_seconds)

    def segment_done(self, seconds: float, media_seconds: float) -> None:
        """A segment of ``media_seconds`` was ready ``seconds`` after it came in."""
        if media_seconds > 0:
            self.realtime_ratio.observe(seconds / media_seconds)

    def set_certificate(self, cert_path: Path) -> None:
        """Export the expiry of the certificate the service listener loaded from ``cert_path``.

        Read once: the listener keeps the certificate it started with, so after the file is
        replaced the gauge (like the alert on it) keeps showing the old one until a restart."""
        if self._tls_expiry is None:
            self._tls_expiry = Gauge(
                "lpnode_tls_certificate_expiry_timestamp_seconds",
                "When the TLS certificate this process serves on 8935 expires (unix time), as "
                "loaded at start-up", registry=self.registry)
        self._tls_expiry.set(certificate_expiry(cert_path).timestamp())

    def watch_gpus(self, gpus: Sequence[GpuInfo], nvml: object | None = None) -> None:
        """Export per-GPU readings for ``gpus`` (from the -nvidia preflight), read at scrape time."""
        self.registry.register(GpuCollector(gpus, nvml=nvml))

    def watch_pool(self, snapshot: Callable[[], list[WorkerSnapshot]],
                   session_limit: int | None = None) -> None:
        """Export the pool's transcoders, read at scrape time; ``session_limit`` is the
        orchestrator's own -maxSessions, which caps the session capacity it reports."""
        self.registry.register(_PoolCollector(self.node_type, snapshot, session_limit))


def transcoder_labels(workers: list[WorkerSnapshot]) -> list[tuple[str, WorkerSnapshot]]:
    """Each transcoder's ``transcoder`` label: its name, or for a second registration under a
    name already taken (a transcoder reconnecting before its old stream is noticed gone, or two
    processes misconfigured alike) the name plus its address, so no two series collide."""
    seen: set[str] = set()
    labelled = []
    for w in sorted(workers, key=lambda w: w.connected_at):
        label = w.name if w.name not in seen else f"{w.name}@{w.address}"
        seen.add(label)
        labelled.append((label, w))
    return labelled

class _PoolCollector(Collector):
    """Read at scrape time from the pool, so a gone transcoder's series disappear with it."""

    def __init__(self, node_type: str, snapshot: Callable[[], list[WorkerSnapshot]],
                 session_limit: int | None = None) -> None:
        self._node_type = node_type
        self._snapshot = snapshot
        self._limit = session_limit

    def collect(self) -> Iterator[GaugeMetricFamily]:
        workers = self._snapshot()
        offered = sum(w.capacity for w in workers)
        # What the orchestrator will actually accept: the 85%-of-capacity alert divides by it.
        accepted = offered if self._limit is None else min(offered, self._limit)
        sessions = sum(w.load for w in workers)
        total = {
            "livepeer_transcoders_number": ("Transcoders connected", len(workers)),
            "livepeer_transcoders_capacity": ("Sum of the transcoders' -maxSessions", offered),
            "livepeer_transcoders_load": ("Sessions on transcoders", sessions),
            "livepeer_current_sessions_total": ("Live sessions", sessions),
            "livepeer_max_sessions_total": ("Sessions the orchestrator accepts: its "
                                            "transcoders' capacity, capped by its own "
                                            "-maxSessions", accepted),
        }
        for name, (doc, value) in total.items():
            family = GaugeMetricFamily(name, doc, labels=["node_type"])
            family.add_metric([self._node_type], value)
            yield family
        capacity = GaugeMetricFamily("lpnode_transcoder_capacity", "A transcoder's -maxSessions",
                                     labels=["transcoder"])
        load = GaugeMetricFamily("lpnode_transcoder_load", "Sessions on a transcoder",
                                 labels=["transcoder"])
        connected = GaugeMetricFamily("lpnode_transcoder_connected_since_seconds",
                                      "When the transcoder registered (unix time)",
                                      labels=["transcoder"])
        for label, w in transcoder_labels(workers):
            capacity.add_metric([label], w.capacity)
            load.add_metric([label], w.load)
            connected.add_metric([label], w.connected_at)
        yield from (capacity, load, connected)
