"""GPU preflight: the operator messages for -nvidia problems.

The pure helpers are tested directly. This machine has no GPU and no NVIDIA driver:
the real preflight is tested for the "no driver" case, and the real h264_nvenc test
encode for the "driver libraries missing" case. Everything that needs a GPU to be
present (listing boards, NVENC capability, the session limit) runs preflight against
FakeNvml, a test double for pynvml.
"""

from __future__ import annotations

import ctypes.util

import pytest

from lpnode.transcode.gpu import (
    GpuInfo,
    GpuPreflightError,
    encoder_error_message,
    is_consumer_board,
    nvenc_test_encode,
    parse_devices,
    preflight,
    session_budget_warning,
    session_cap,
)

NO_NVML = ctypes.util.find_library("nvidia-ml") is None


@pytest.mark.parametrize("driver,consumer,cap", [
    ("470.199.02", True, 3),
    ("525.147.05", True, 3),
    ("530.41.03", True, 5),
    ("545.29.06", True, 5),
    ("550.54.14", True, 8),
    ("570.86.10", True, 8),
    ("570.86.10", False, None),
    ("470.199.02", False, None),
    ("garbage", True, 3),
])
def test_session_cap(driver, consumer, cap):
    assert session_cap(driver, consumer) == cap


def test_consumer_boards():
    assert is_consumer_board(5, "NVIDIA GeForce RTX 3090")
    assert is_consumer_board(None, "NVIDIA TITAN RTX")
    assert not is_consumer_board(2, "Tesla T4")
    assert not is_consumer_board(14, "NVIDIA L4")
    assert not is_consumer_board(13, "NVIDIA RTX A4000")


def test_parse_devices():
    assert parse_devices("all", 3) == [0, 1, 2]
    assert parse_devices(" 1, 0,1 ", 2) == [1, 0]
    with pytest.raises(GpuPreflightError, match=r"GPU id 3 does not exist.*GPU ids: 0, 1"):
        parse_devices("0,3", 2)
    with pytest.raises(GpuPreflightError, match="'x' is not a GPU id"):
        parse_devices("0,x", 2)
    with pytest.raises(GpuPreflightError, match="no NVIDIA GPUs"):
        parse_devices("all", 0)


def gpu(**kw) -> GpuInfo:
    base = dict(index=0, name="NVIDIA GeForce RTX 3080", uuid="GPU-1", driver="525.147.05",
                encoder_capable=True, max_sessions_hint=3, consumer=True, active_sessions=3)
    base.update(kw)
    return GpuInfo(**base)


def test_session_limit_message_replaces_cannot_allocate_memory():
    msg = encoder_error_message(
        gpu(), "Cannot allocate memory",
        ["OpenEncodeSessionEx failed: out of memory (10): (no details)"])
    assert "NVENC session limit" in msg
    assert "allows 3 concurrent NVENC sessions" in msg
    assert "-maxSessions" in msg
    assert "nvidia-patch" in msg
    assert "GPU 0 (NVIDIA GeForce RTX 3080)" in msg


def test_no_nvenc_message():
    msg = encoder_error_message(gpu(name="NVIDIA H100 80GB HBM3", encoder_capable=False,
                                    consumer=False, max_sessions_hint=None),
                                "NVENC not supported")
    assert "NVIDIA H100 80GB HBM3" in msg
    assert "has no NVENC" in msg
    assert "without -nvidia" in msg


def test_missing_driver_library_message():
    msg = encoder_error_message(gpu(), "Operation not permitted", ["Cannot load libcuda.so.1\n"])
    assert "Install the NVIDIA driver" in msg and "nvidia-smi" in msg


def test_old_driver_message():
    msg = encoder_error_message(gpu(driver="470.1"), "Function not implemented", [
        "Driver does not support the required nvenc API version. Required: 12.1 Found: 11.1",
        "The minimum required Nvidia driver for nvenc is 530.41.03 or newer"])
    assert "too old" in msg and "Update the NVIDIA driver" in msg


def test_session_budget_warning():
    consumer = gpu(max_sessions_hint=5)
    warning = session_budget_warning([consumer], max_sessions=2, renditions_per_stream=3)
    assert warning is not None
    assert "6 NVENC sessions" in warning and "allows 5" in warning and "nvidia-patch" in warning
    assert session_budget_warning([consumer], max_sessions=1, renditions_per_stream=3) is None
    assert session_budget_warning([gpu(max_sessions_hint=None)], 100, 4) is None


@pytest.mark.skipif(not NO_NVML, reason="this machine has an NVIDIA driver")
def test_real_preflight_without_driver_says_install_the_driver():
    with pytest.raises(GpuPreflightError) as err:
        preflight("all")
    assert "Install the NVIDIA driver" in str(err.value)
    assert "nvidia-smi" in str(err.value)


@pytest.mark.skipif(not NO_NVML, reason="this machine has an NVIDIA driver")
def test_real_nvenc_test_encode_fails_with_ffmpeg_reason():
    with pytest.raises(Exception) as err:
        nvenc_test_encode(0)
    assert any("libcuda" in line for line in err.value.lp_logs)


class FakeNvml:
    """Test double for pynvml, standing in for GPUs this machine does not have."""

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(f"NVML error {value}")
            self.value = value

    def __init__(self, boards: list[dict], driver: str = "550.54.14") -> None:
        self.boards = boards
        self.driver = driver
        self.shutdown = False

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shutdown = True

    def nvmlSystemGetDriverVersion(self):
        return self.driver

    def nvmlDeviceGetCount(self):
        return len(self.boards)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.boards[i]

    def nvmlDeviceGetName(self, h):
        return h["name"]

    def nvmlDeviceGetUUID(self, h):
        return f"GPU-{h['name']}"

    def nvmlDeviceGetBrand(self, h):
        return h["brand"]

    def nvmlDeviceGetEncoderCapacity(self, h, query):
        if not h.get("nvenc", True):
            raise self.NVMLError(3)  # NVML_ERROR_NOT_SUPPORTED
        return 100

    def nvmlDeviceGetEncoderStats(self, h):
        return (h.get("sessions", 0), 0, 0)


GEFORCE = {"name": "NVIDIA GeForce RTX 4090", "brand": 5}
T4 = {"name": "Tesla T4", "brand": 2}
H100 = {"name": "NVIDIA H100 80GB HBM3", "brand": 14, "nvenc": False}


def test_preflight_lists_gpus_and_test_encodes_each():
    nvml = FakeNvml([GEFORCE, T4])
    encoded = []
    gpus = preflight("all", nvml=nvml, test_encode=encoded.append)
    assert encoded == [0, 1]
    assert [(g.index, g.name, g.max_sessions_hint, g.consumer) for g in gpus] == [
        (0, "NVIDIA GeForce RTX 4090", 8, True), (1, "Tesla T4", None, False)]
    assert gpus[0].driver == "550.54.14" and gpus[0].encoder_capable
    assert nvml.shutdown


def test_preflight_unknown_id_lists_present_ones():
    with pytest.raises(GpuPreflightError, match=r"GPU id 2 does not exist.*GPU ids: 0, 1"):
        preflight("0,2", nvml=FakeNvml([GEFORCE, T4]), test_encode=lambda i: None)


def test_preflight_gpu_without_nvenc():
    with pytest.raises(GpuPreflightError) as err:
        preflight("1", nvml=FakeNvml([T4, H100]), test_encode=lambda i: None)
    assert "GPU 1 (NVIDIA H100 80GB HBM3) has no NVENC" in str(err.value)


def test_preflight_session_limit_reached():
    busy = dict(GEFORCE, sessions=5)

    def refuse(index):
        exc = MemoryError("Cannot allocate memory")
        exc.lp_logs = ["OpenEncodeSessionEx failed: out of memory (10): (no details)"]
        raise exc

    with pytest.raises(GpuPreflightError) as err:
        preflight("0", nvml=FakeNvml([busy], driver="535.183.01"), test_encode=refuse)
    msg = str(err.value)
    assert "allows 5 concurrent NVENC sessions" in msg
    assert "(5 already in use)" in msg
    assert "-maxSessions" in msg and "nvidia-patch" in msg


def test_preflight_real_encode_on_fake_gpu_reports_missing_driver_libraries():
    # NVML is faked, the h264_nvenc encode is real and fails: no libcuda here.
    if not NO_NVML:
        pytest.skip("this machine has an NVIDIA driver")
    with pytest.raises(GpuPreflightError) as err:
        preflight("0", nvml=FakeNvml([GEFORCE]))
    assert "libcuda" in str(err.value)
    assert "Install the NVIDIA driver" in str(err.value)


def test_out_of_memory_on_unlimited_board_is_not_called_a_session_limit():
    msg = encoder_error_message(gpu(name="Tesla T4", consumer=False, max_sessions_hint=None,
                                    active_sessions=40), "Cannot allocate memory",
                                ["OpenEncodeSessionEx failed: out of memory (10)"])
    assert "no driver session limit" in msg and "(40 already in use)" in msg
    assert "out of GPU memory" in msg
