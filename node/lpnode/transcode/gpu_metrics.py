"""Per-GPU metrics for /metrics, read through NVML (nvidia-ml-py) at scrape time.

A transcoder started with ``-nvidia`` registers a :class:`GpuCollector` for the GPUs its
preflight checked (:func:`lpnode.transcode.gpu.preflight`), so the labels and the NVENC
session cap come from the same place as the start-up checks. Every series carries
``gpu`` (the NVML index), ``uuid`` and ``model`` (NVML's board name):

==========================================  ===================================================
``lpnode_gpu_info``                         1, with ``driver_version`` (as at start-up)
``lpnode_gpu_utilization_ratio``            busy fraction of the last sample period, 0-1
``lpnode_gpu_memory_used_bytes``            framebuffer memory in use (all processes)
``lpnode_gpu_memory_total_bytes``           framebuffer memory on the board
``lpnode_gpu_temperature_celsius``          core temperature
``lpnode_gpu_power_watts``                  power draw
``lpnode_gpu_power_limit_watts``            the enforced power limit
``lpnode_gpu_encoder_sessions``             NVENC sessions open on the GPU (all processes)
``lpnode_gpu_encoder_utilization_ratio``    NVENC busy fraction, 0-1
``lpnode_gpu_encoder_session_limit``        the driver's NVENC session cap; absent when the
                                            board has none or the cap has been lifted
``lpnode_gpu_scrape_errors_total``          NVML calls that failed, by ``gpu`` and ``query``
==========================================  ===================================================

Scrapes never fail because of the GPU: an NVML error leaves that one series out for that
scrape and counts in ``lpnode_gpu_scrape_errors_total`` (``gpu=""`` for errors that concern no
single GPU, such as ``query="init"``), which an alert watches. A reading the board does not
support (NVML_ERROR_NOT_SUPPORTED, e.g. power on some boards) is simply not exported: it is
a fact about the board, not a failure.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import ModuleType
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lpnode.transcode.gpu import GpuInfo

log = logging.getLogger(__name__)

_NVML_ERROR_UNINITIALIZED = 1
_NVML_ERROR_NOT_SUPPORTED = 3
_NVML_ERROR_GPU_IS_LOST = 15
_NVML_TEMPERATURE_GPU = 0

_LABELS = ["gpu", "uuid", "model"]

# name -> help text, for describe() and collect() alike.
_GAUGES = {
    "lpnode_gpu_utilization_ratio": "GPU busy fraction over NVML's last sample period (0-1)",
    "lpnode_gpu_memory_used_bytes": "GPU memory in use, all processes",
    "lpnode_gpu_memory_total_bytes": "GPU memory on the board",
    "lpnode_gpu_temperature_celsius": "GPU core temperature",
    "lpnode_gpu_power_watts": "GPU power draw",
    "lpnode_gpu_power_limit_watts": "GPU enforced power limit",
    "lpnode_gpu_encoder_sessions": "NVENC encoder sessions open on the GPU, all processes",
    "lpnode_gpu_encoder_utilization_ratio": "NVENC busy fraction over NVML's last sample period (0-1)",
    "lpnode_gpu_encoder_session_limit": "Concurrent NVENC sessions the driver allows on this board; "
                                        "absent when there is no limit or it has been lifted",
}
_INFO = ("lpnode_gpu_info", "GPUs this node transcodes on (value 1), with the driver version")
_ERRORS = ("lpnode_gpu_scrape_errors", "NVML queries that failed while collecting GPU metrics")


class GpuCollector(Collector):
    """Reads the GPUs in ``gpus`` through NVML each time /metrics is scraped.

    ``nvml`` replaces the pynvml module (tests); by default it is imported on first use.
    """

    def __init__(self, gpus: Sequence[GpuInfo], nvml: ModuleType | Any | None = None) -> None:
        self._gpus = list(gpus)
        self._nvml = nvml
        self._initialised = False
        self._errors: Counter[tuple[str, str]] = Counter()
        # UUIDs seen with more NVENC sessions than their driver's cap: the cap has been lifted
        # (keylase nvidia-patch), which NVML cannot tell us, so the limit is no longer exported.
        self._cap_lifted: set[str] = set()
        self._lock = threading.Lock()

    # -- prometheus_client ---------------------------------------------------------------
    def describe(self) -> Iterable[Metric]:
        # Names only: registering the collector must not touch NVML.
        yield GaugeMetricFamily(_INFO[0], _INFO[1], labels=[*_LABELS, "driver_version"])
        for name, doc in _GAUGES.items():
            yield GaugeMetricFamily(name, doc, labels=_LABELS)
        yield CounterMetricFamily(_ERRORS[0], _ERRORS[1], labels=["gpu", "query"])

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            yield from self._collect()

    # -- reading NVML --------------------------------------------------------------------
    def _collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(_INFO[0], _INFO[1], labels=[*_LABELS, "driver_version"])
        gauges = {name: GaugeMetricFamily(name, doc, labels=_LABELS) for name, doc in _GAUGES.items()}
        if self._init():
            for gpu in self._gpus:
                labels = [str(gpu.index), gpu.uuid, gpu.name]
                info.add_metric([*labels, gpu.driver], 1)
                for name, value in self._read(gpu):
                    gauges[name].add_metric(labels, value)
        errors = CounterMetricFamily(_ERRORS[0], _ERRORS[1], labels=["gpu", "query"])
        for (gpu_label, query), count in sorted(self._errors.items()):
            errors.add_metric([gpu_label, query], count)
        yield info
        yield from gauges.values()
        yield errors

    def _init(self) -> bool:
        if self._initialised:
            return True
        try:
            if self._nvml is None:
                import pynvml
                self._nvml = pynvml
            self._nvml.nvmlInit()
        except Exception as exc:  # ImportError, NVMLError (driver gone), anything else
            self._failed("", "init", exc)
            return False
        self._initialised = True
        return True

    def _read(self, gpu: GpuInfo) -> Iterator[tuple[str, float]]:
        """(metric name, value) for every reading NVML gives for ``gpu`` this time."""
        nvml = self._nvml
        assert nvml is not None   # _init succeeded
        handle = self._query(gpu, "handle", nvml.nvmlDeviceGetHandleByUUID, gpu.uuid)
        if handle is None:
            return
        if (util := self._query(gpu, "utilization", nvml.nvmlDeviceGetUtilizationRates, handle)) is not None:
            yield "lpnode_gpu_utilization_ratio", util.gpu / 100
        if (memory := self._query(gpu, "memory", nvml.nvmlDeviceGetMemoryInfo, handle)) is not None:
            yield "lpnode_gpu_memory_used_bytes", float(memory.used)
            yield "lpnode_gpu_memory_total_bytes", float(memory.total)
        if (temp := self._query(gpu, "temperature", nvml.nvmlDeviceGetTemperature, handle,
                                _NVML_TEMPERATURE_GPU)) is not None:
            yield "lpnode_gpu_temperature_celsius", float(temp)
        if (power := self._query(gpu, "power", nvml.nvmlDeviceGetPowerUsage, handle)) is not None:
            yield "lpnode_gpu_power_watts", power / 1000   # NVML reports milliwatts
        if (limit := self._query(gpu, "power_limit", nvml.nvmlDeviceGetEnforcedPowerLimit, handle)) is not None:
            yield "lpnode_gpu_power_limit_watts", limit / 1000
        stats = self._query(gpu, "encoder_stats", nvml.nvmlDeviceGetEncoderStats, handle)
        sessions = int(stats[0]) if stats is not None else None
        if sessions is not None:
            yield "lpnode_gpu_encoder_sessions", float(sessions)
        if (enc := self._query(gpu, "encoder_utilization", nvml.nvmlDeviceGetEncoderUtilization,
                               handle)) is not None:
            yield "lpnode_gpu_encoder_utilization_ratio", enc[0] / 100
        cap = self._session_cap(gpu, sessions)
        if cap is not None:
            yield "lpnode_gpu_encoder_session_limit", float(cap)

    def _session_cap(self, gpu: GpuInfo, sessions: int | None) -> int | None:
        cap = gpu.max_sessions_hint   # lpnode.transcode.gpu.session_cap, worked out at preflight
        if cap is None or gpu.uuid in self._cap_lifted:
            return None
        if sessions is not None and sessions > cap:
            self._cap_lifted.add(gpu.uuid)
            log.info("GPU %d (%s) has %d NVENC sessions open, more than driver %s's cap of %d: "
                     "the cap has been lifted (nvidia-patch); lpnode_gpu_encoder_session_limit is "
                     "no longer exported for it", gpu.index, gpu.name, sessions, gpu.driver, cap)
            return None
        return cap

    def _query(self, gpu: GpuInfo, query: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            code = getattr(exc, "value", None)
            if code == _NVML_ERROR_NOT_SUPPORTED:
                return None
            self._failed(str(gpu.index), query, exc)
            if code == _NVML_ERROR_UNINITIALIZED:
                self._initialised = False   # initialise again on the next scrape
            return None

    def _failed(self, gpu_label: str, query: str, exc: BaseException) -> None:
        self._errors[(gpu_label, query)] += 1
        # Once per kind of failure at warning level, then debug: a scrape every 15 s must not
        # flood the journal; the counter keeps the rate.
        level = logging.WARNING if self._errors[(gpu_label, query)] == 1 else logging.DEBUG
        where = f"GPU {gpu_label}" if gpu_label else "NVML"
        hint = " (the GPU has fallen off the bus: check `nvidia-smi` and dmesg)" \
            if getattr(exc, "value", None) == _NVML_ERROR_GPU_IS_LOST else ""
        log.log(level, "%s: reading %s for /metrics failed: %s%s", where, query, exc, hint)
