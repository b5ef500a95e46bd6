"""Per-GPU metrics (lpnode.transcode.gpu_metrics) read through NVML at scrape time.

This machine has no GPU and no NVIDIA driver, so every test here runs the collector against
FakeNvml, a test double for the parts of pynvml it uses; the values and errors are the ones
NVML documents (memory in bytes, power in milliwatts, utilisation in percent, error codes from
nvml.h). What a real GPU reports is checked on a GPU host, not here.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lpnode.monitor import NodeMetrics
from lpnode.transcode.gpu import GpuInfo
from lpnode.transcode.gpu_metrics import GpuCollector

NOT_SUPPORTED, UNINITIALIZED, GPU_IS_LOST, DRIVER_NOT_LOADED = 3, 1, 15, 9


class FakeNvml:
    """Test double for pynvml: boards by UUID, each a dict of readings; a reading may be an
    NVML error code to raise instead (``{"power": FakeNvml.fail(NOT_SUPPORTED)}``)."""

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(f"NVML error {value}")
            self.value = value

    @staticmethod
    def fail(code: int) -> dict:
        return {"error": code}

    def __init__(self, boards: dict[str, dict], init_error: int | None = None) -> None:
        self.boards = boards
        self.init_error = init_error
        self.inits = 0

    def _get(self, handle: dict, key: str):
        value = handle[key]
        if isinstance(value, dict) and "error" in value:
            raise self.NVMLError(value["error"])
        return value

    def nvmlInit(self):
        self.inits += 1
        if self.init_error is not None:
            raise self.NVMLError(self.init_error)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        if uuid not in self.boards:
            raise self.NVMLError(GPU_IS_LOST)
        return self.boards[uuid]

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=self._get(h, "util"), memory=0)

    def nvmlDeviceGetMemoryInfo(self, h):
        used, total = self._get(h, "memory")
        return SimpleNamespace(used=used, total=total, free=total - used)

    def nvmlDeviceGetTemperature(self, h, sensor):
        assert sensor == 0  # NVML_TEMPERATURE_GPU
        return self._get(h, "temp")

    def nvmlDeviceGetPowerUsage(self, h):
        return self._get(h, "power_mw")

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return self._get(h, "power_limit_mw")

    def nvmlDeviceGetEncoderStats(self, h):
        return (self._get(h, "sessions"), 240, 1500)

    def nvmlDeviceGetEncoderUtilization(self, h):
        return [self._get(h, "enc_util"), 167000]


def board(**kw) -> dict:
    base = dict(util=63, memory=(3 * 2**30, 8 * 2**30), temp=71, power_mw=182_500,
                power_limit_mw=320_000, sessions=4, enc_util=48)
    base.update(kw)
    return base


def gpu(index=0, uuid="GPU-aaaa", name="NVIDIA GeForce RTX 3080", driver="550.54.14", cap=8):
    return GpuInfo(index=index, name=name, uuid=uuid, driver=driver, encoder_capable=True,
                   max_sessions_hint=cap, consumer=cap is not None)


def scrape(collector: GpuCollector) -> dict[tuple[str, tuple], float]:
    """Scrape through a real registry and the text format, as Prometheus would."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def names(samples) -> set[str]:
    return {name for name, _ in samples}


GPU0 = dict(gpu="0", uuid="GPU-aaaa", model="NVIDIA GeForce RTX 3080")


def test_every_reading_with_units_and_labels():
    samples = scrape(GpuCollector([gpu()], nvml=FakeNvml({"GPU-aaaa": board()})))
    assert value(samples, "lpnode_gpu_utilization_ratio", **GPU0) == pytest.approx(0.63)
    assert value(samples, "lpnode_gpu_memory_used_bytes", **GPU0) == 3 * 2**30
    assert value(samples, "lpnode_gpu_memory_total_bytes", **GPU0) == 8 * 2**30
    assert value(samples, "lpnode_gpu_temperature_celsius", **GPU0) == 71
    assert value(samples, "lpnode_gpu_power_watts", **GPU0) == pytest.approx(182.5)
    assert value(samples, "lpnode_gpu_power_limit_watts", **GPU0) == pytest.approx(320)
    assert value(samples, "lpnode_gpu_encoder_sessions", **GPU0) == 4
    assert value(samples, "lpnode_gpu_encoder_utilization_ratio", **GPU0) == pytest.approx(0.48)
    # The cap comes from the preflight's GpuInfo (gpu.session_cap), not worked out again here.
    assert value(samples, "lpnode_gpu_encoder_session_limit", **GPU0) == 8
    assert value(samples, "lpnode_gpu_info", **GPU0, driver_version="550.54.14") == 1
    assert "lpnode_gpu_scrape_errors_total" not in names(samples)


def test_several_gpus_each_labelled_and_no_limit_on_datacentre_boards():
    nvml = FakeNvml({"GPU-aaaa": board(), "GPU-bbbb": board(temp=55, sessions=11)})
    samples = scrape(GpuCollector([gpu(), gpu(1, "GPU-bbbb", "Tesla T4", cap=None)], nvml=nvml))
    t4 = dict(gpu="1", uuid="GPU-bbbb", model="Tesla T4")
    assert value(samples, "lpnode_gpu_temperature_celsius", **t4) == 55
    assert value(samples, "lpnode_gpu_encoder_sessions", **t4) == 11
    assert ("lpnode_gpu_encoder_session_limit", tuple(sorted(t4.items()))) not in samples
    assert value(samples, "lpnode_gpu_encoder_session_limit", **GPU0) == 8


def test_nvml_error_drops_that_reading_counts_it_and_keeps_the_rest():
    nvml = FakeNvml({"GPU-aaaa": board(temp=FakeNvml.fail(DRIVER_NOT_LOADED))})
    collector = GpuCollector([gpu()], nvml=nvml)
    samples = scrape(collector)
    assert ("lpnode_gpu_temperature_celsius", tuple(sorted(GPU0.items()))) not in samples
    assert value(samples, "lpnode_gpu_utilization_ratio", **GPU0) == pytest.approx(0.63)
    assert value(samples, "lpnode_gpu_scrape_errors_total", gpu="0", query="temperature") == 1
    # A counter: it keeps counting, scrape after scrape.
    samples = scrape(collector)
    assert value(samples, "lpnode_gpu_scrape_errors_total", gpu="0", query="temperature") == 2


def test_not_supported_is_a_property_of_the_board_not_an_error():
    nvml = FakeNvml({"GPU-aaaa": board(power_mw=FakeNvml.fail(NOT_SUPPORTED),
                                       power_limit_mw=FakeNvml.fail(NOT_SUPPORTED))})
    samples = scrape(GpuCollector([gpu()], nvml=nvml))
    assert "lpnode_gpu_power_watts" not in names(samples)
    assert "lpnode_gpu_scrape_errors_total" not in names(samples)
    assert value(samples, "lpnode_gpu_temperature_celsius", **GPU0) == 71


def test_lost_gpu_is_counted_and_the_other_gpus_still_report():
    nvml = FakeNvml({"GPU-bbbb": board(temp=60)})   # GPU-aaaa has fallen off the bus
    samples = scrape(GpuCollector([gpu(), gpu(1, "GPU-bbbb")], nvml=nvml))
    assert value(samples, "lpnode_gpu_scrape_errors_total", gpu="0", query="handle") == 1
    assert value(samples, "lpnode_gpu_temperature_celsius", gpu="1", uuid="GPU-bbbb",
                 model="NVIDIA GeForce RTX 3080") == 60
    assert not any(dict(labels).get("gpu") == "0" and name != "lpnode_gpu_scrape_errors_total"
                   and name != "lpnode_gpu_info" for name, labels in samples)


def test_driver_unavailable_at_scrape_time_still_serves_metrics_and_retries():
    nvml = FakeNvml({"GPU-aaaa": board()}, init_error=DRIVER_NOT_LOADED)
    collector = GpuCollector([gpu()], nvml=nvml)
    samples = scrape(collector)
    assert value(samples, "lpnode_gpu_scrape_errors_total", gpu="", query="init") == 1
    assert "lpnode_gpu_temperature_celsius" not in names(samples)
    nvml.init_error = None   # the driver is back
    samples = scrape(collector)
    assert value(samples, "lpnode_gpu_temperature_celsius", **GPU0) == 71
    assert value(samples, "lpnode_gpu_scrape_errors_total", gpu="", query="init") == 1
    scrape(collector)
    assert nvml.inits == 2   # initialised once it worked, not per scrape


def test_uninitialized_error_makes_the_next_scrape_initialise_again():
    nvml = FakeNvml({"GPU-aaaa": board(util=FakeNvml.fail(UNINITIALIZED))})
    collector = GpuCollector([gpu()], nvml=nvml)
    scrape(collector)
    nvml.boards["GPU-aaaa"]["util"] = 10
    samples = scrape(collector)
    assert nvml.inits == 2
    assert value(samples, "lpnode_gpu_utilization_ratio", **GPU0) == pytest.approx(0.10)


def test_unexpected_exception_from_nvml_binding_does_not_break_the_scrape():
    class OldBinding(FakeNvml):
        def nvmlDeviceGetEncoderUtilization(self, h):
            raise AttributeError("function not found in libnvidia-ml")
    samples = scrape(GpuCollector([gpu()], nvml=OldBinding({"GPU-aaaa": board()})))
    assert value(samples, "lpnode_gpu_scrape_errors_total", gpu="0", query="encoder_utilization") == 1
    assert value(samples, "lpnode_gpu_encoder_sessions", **GPU0) == 4


def test_missing_pynvml_counts_as_init_error(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_pynvml(name, *args, **kwargs):
        if name == "pynvml":
            raise ImportError("No module named 'pynvml'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    samples = scrape(GpuCollector([gpu()]))
    assert value(samples, "lpnode_gpu_scrape_errors_total", gpu="", query="init") == 1


def test_session_limit_stops_once_sessions_exceed_it_patched_driver():
    nvml = FakeNvml({"GPU-aaaa": board(sessions=8)})
    collector = GpuCollector([gpu(cap=8)], nvml=nvml)
    assert value(scrape(collector), "lpnode_gpu_encoder_session_limit", **GPU0) == 8
    nvml.boards["GPU-aaaa"]["sessions"] = 12   # impossible under the cap: nvidia-patch lifted it
    samples = scrape(collector)
    assert "lpnode_gpu_encoder_session_limit" not in names(samples)
    nvml.boards["GPU-aaaa"]["sessions"] = 2
    assert "lpnode_gpu_encoder_session_limit" not in names(scrape(collector))


def test_registering_does_not_touch_nvml():
    nvml = FakeNvml({"GPU-aaaa": board()})
    CollectorRegistry(auto_describe=True).register(GpuCollector([gpu()], nvml=nvml))
    assert nvml.inits == 0


def test_node_metrics_serves_gpu_series_next_to_the_node_series():
    metrics = NodeMetrics("trcr")
    metrics.watch_gpus([gpu()], nvml=FakeNvml({"GPU-aaaa": board()}))
    text = generate_latest(metrics.registry).decode()
    assert 'lpnode_gpu_encoder_sessions{gpu="0",model="NVIDIA GeForce RTX 3080",uuid="GPU-aaaa"} 4.0' in text
    assert "livepeer_segment_transcoded_total" in text
    assert "process_start_time_seconds" in text


# -- The other series the alerts need, next to the GPU ones (lpnode.monitor) -----------------

def test_certificate_expiry_gauge_only_where_a_certificate_is_served(tmp_path):
    from lpnode.server.tls import certificate_expiry, ensure_self_signed
    cert, _ = ensure_self_signed(tmp_path, "127.0.0.1")
    orch = NodeMetrics("orch")
    orch.set_certificate(cert)
    text = generate_latest(orch.registry).decode()
    expected = certificate_expiry(cert).timestamp()
    line = next(l for l in text.splitlines()
                if l.startswith("lpnode_tls_certificate_expiry_timestamp_seconds "))
    assert float(line.split()[1]) == pytest.approx(expected)
    # A transcoder serves no certificate: no series, rather than a 0 that reads as expired.
    assert "lpnode_tls_certificate_expiry" not in generate_latest(NodeMetrics("trcr").registry).decode()


def test_realtime_ratio_and_media_seconds():
    metrics = NodeMetrics("orch")
    metrics.segment_done(1.0, 2.0)      # twice as fast as real time
    metrics.segment_done(3.0, 2.0)      # slower than real time
    metrics.segment_done(0.5, 0.0)      # no duration from the gateway: nothing to compare
    metrics.transcoder_result("10.0.0.5:4000", True, 0.8, 2.0)
    metrics.transcoder_result("10.0.0.5:4000", False, 0.1, 2.0)   # failures carry no media
    text = generate_latest(metrics.registry).decode()
    assert 'lpnode_segment_realtime_ratio_bucket{le="1.0",node_type="orch"} 1.0' in text
    assert 'lpnode_segment_realtime_ratio_count{node_type="orch"} 2.0' in text
    assert 'lpnode_transcoder_media_seconds_total{transcoder="10.0.0.5:4000"} 2.0' in text
    assert 'lpnode_transcoder_transcode_time_seconds_sum{transcoder="10.0.0.5:4000"} 0.8' in text


def test_known_failure_reasons_start_at_zero():
    # increase() cannot see the first failure of a series that appears only when it happens.
    orch = generate_latest(NodeMetrics("orch").registry).decode()
    for code in ("NoTranscodersAvailable", "TaskFailed", "TaskTimeout", "TranscoderLost"):
        assert f'livepeer_segment_transcode_failed_total{{error_code="{code}",node_type="orch"}} 0.0' in orch
    trcr = generate_latest(NodeMetrics("trcr").registry).decode()
    assert 'livepeer_segment_transcode_failed_total{error_code="TranscodeError",node_type="trcr"} 0.0' in trcr
