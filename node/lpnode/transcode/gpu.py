"""Start-up checks for ``-nvidia``: the GPUs exist, have NVENC, and can open an encoder.

go-livepeer finds GPU problems only when the first segment fails, with FFmpeg's
terse errors ("Cannot allocate memory" when the NVENC session limit is reached).
:func:`preflight` finds them at start-up and says what to do.

Facts used (NVIDIA's published NVENC session limits): consumer boards (GeForce,
TITAN) allow 3 concurrent encode sessions with drivers before 530, 5 with 530 up to
the 550 branch, and 8 from 550; data-centre and professional boards have no such
limit. Data-centre compute GPUs such as A100, H100 and H200 have no NVENC at all.
The limit counts encoders, and every rendition of every stream is one encoder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import ModuleType

__all__ = [
    "GpuInfo",
    "GpuPreflightError",
    "preflight",
    "parse_devices",
    "session_cap",
    "is_consumer_board",
    "encoder_error_message",
    "session_budget_warning",
    "NVIDIA_PATCH_URL",
]

NVIDIA_PATCH_URL = "https://github.com/keylase/nvidia-patch"

# NVML brand codes (nvmlBrandType_t) of consumer boards.
_CONSUMER_BRANDS = {5, 6, 15, 16}  # GEFORCE, TITAN, GEFORCE_RTX, TITAN_RTX
_CONSUMER_NAME = re.compile(r"geforce|titan", re.IGNORECASE)
_NVML_ERROR_NOT_SUPPORTED = 3
_NVML_ENCODER_QUERY_H264 = 0


class GpuPreflightError(RuntimeError):
    """A GPU named by -nvidia cannot transcode; the message says what to do."""


@dataclass
class GpuInfo:
    index: int
    name: str
    uuid: str
    driver: str
    encoder_capable: bool
    max_sessions_hint: int | None
    """Concurrent NVENC sessions the driver allows on this board; None = no limit."""
    consumer: bool = False
    active_sessions: int | None = None
    """NVENC sessions already open on the GPU at start-up, when NVML reports it."""


def parse_devices(spec: str, count: int) -> list[int]:
    """GPU indices from a go-livepeer ``-nvidia`` value (``all`` or ``0,1``).

    Raises GpuPreflightError for malformed values and ids that do not exist.
    """
    present = list(range(count))
    text = spec.strip()
    if text.lower() == "all":
        if not present:
            raise GpuPreflightError(
                "-nvidia all: NVML reports no NVIDIA GPUs on this machine; check "
                "`nvidia-smi`, or run without -nvidia to transcode on the CPU")
        return present
    ids: list[int] = []
    for token in text.split(","):
        token = token.strip()
        if not token.isdigit():
            raise GpuPreflightError(
                f"-nvidia {spec!r}: {token!r} is not a GPU id; use `all` or "
                f"comma-separated ids such as 0,1")
        if int(token) not in ids:
            ids.append(int(token))
    missing = [i for i in ids if i >= count]
    if missing:
        have = ", ".join(map(str, present)) if present else "none"
        raise GpuPreflightError(
            f"-nvidia {spec!r}: GPU id {', '.join(map(str, missing))} does not exist; "
            f"this machine has GPU ids: {have} (see `nvidia-smi -L`)")
    return ids


def _driver_major(driver_version: str) -> int | None:
    m = re.match(r"\s*(\d+)", driver_version)
    return int(m.group(1)) if m else None


def session_cap(driver_version: str, board_is_consumer: bool) -> int | None:
    """Concurrent NVENC sessions allowed per GPU, or None for no driver limit."""
    if not board_is_consumer:
        return None
    major = _driver_major(driver_version)
    if major is None or major < 530:
        return 3
    if major < 550:
        return 5
    return 8


def is_consumer_board(brand: int | None, name: str) -> bool:
    """GeForce and TITAN boards carry the NVENC session limit."""
    return brand in _CONSUMER_BRANDS or bool(_CONSUMER_NAME.search(name))


def _session_cap_text(cap: int | None, driver: str) -> str:
    if cap is None:
        return "this board has no driver session limit"
    return f"driver {driver} allows {cap} concurrent NVENC sessions on this board"


def encoder_error_message(
    info: GpuInfo,
    error: str,
    logs: Sequence[str] = (),
) -> str:
    """Turn a failed h264_nvenc open on ``info``'s GPU into an operator message.

    ``error`` is the exception text (FFmpeg's strerror, e.g. "Cannot allocate
    memory"), ``logs`` the FFmpeg error log lines printed while opening.
    """
    text = " ".join([error, *logs])
    low = text.lower()
    gpu = f"GPU {info.index} ({info.name})"
    detail = "; ".join(line.strip() for line in logs if line.strip()) or error

    if "libnvidia-encode" in low or "cannot load libcuda" in low or "libcuda.so" in low:
        return (f"{gpu}: the NVIDIA driver's libraries could not be loaded ({detail}). "
                f"Install the NVIDIA driver including its NVENC library "
                f"(libnvidia-encode), check `nvidia-smi`, and in a container run with "
                f"NVIDIA_DRIVER_CAPABILITIES including `video`.")
    if "required nvenc api version" in low or "minimum required nvidia driver" in low:
        return (f"{gpu}: driver {info.driver} is too old for this FFmpeg's NVENC "
                f"({detail}). Update the NVIDIA driver.")
    if (not info.encoder_capable or "no capable devices" in low
            or "doesn't support required nvenc features" in low
            or "no nvenc capable devices" in low or "unsupported device" in low):
        return (f"{gpu} has no NVENC video encoder, so it cannot transcode. Use a GPU "
                f"with NVENC (GeForce, RTX/Quadro, T4, L4, A10...; not A100/H100/H200), "
                f"leave this id out of -nvidia, or run without -nvidia to transcode on "
                f"the CPU.")
    cap = info.max_sessions_hint
    at_cap = (cap is not None and info.active_sessions is not None
              and info.active_sessions >= cap)
    if (at_cap or "out of memory" in low or "cannot allocate memory" in low
            or "incompatible client key" in low or "openencodesessionex failed" in low):
        in_use = (f" ({info.active_sessions} already in use)"
                  if info.active_sessions is not None else "")
        if cap is None:
            return (f"{gpu}: the GPU refused a new NVENC session{in_use}. This board has "
                    f"no driver session limit, so it is out of GPU memory or encoder "
                    f"capacity: free the GPU or lower -maxSessions. FFmpeg said: {detail}")
        return (f"{gpu}: cannot open an NVENC session - the NVENC session limit is "
                f"reached: {_session_cap_text(cap, info.driver)}{in_use}. Every "
                f"rendition of every stream is one session, so -maxSessions times the "
                f"renditions per stream must not exceed {cap}; stop other encoders on "
                f"this GPU, lower -maxSessions, or lift the consumer driver limit with "
                f"nvidia-patch ({NVIDIA_PATCH_URL}). FFmpeg said: {detail}")
    if "cuda_error_invalid_device" in low or "cudevice" in low:
        return f"{gpu}: CUDA cannot open this device ({detail}). Check `nvidia-smi`."
    if "cuda_error_no_device" in low or "cuinit" in low:
        return (f"{gpu}: CUDA sees no usable GPU ({detail}). Check `nvidia-smi`; in a "
                f"container, pass the GPUs through (--gpus all).")
    return f"{gpu}: test encode with h264_nvenc failed: {detail}"


def session_budget_warning(gpus: Sequence[GpuInfo], max_sessions: int,
                           renditions_per_stream: int = 1) -> str | None:
    """A warning when -maxSessions can open more NVENC sessions than the GPUs allow.

    Sessions are spread over the GPUs, so the busiest GPU holds
    ``ceil(max_sessions / len(gpus)) * renditions_per_stream`` encoders.
    """
    if not gpus:
        return None
    per_gpu = -(-max_sessions // len(gpus)) * renditions_per_stream
    capped = [g for g in gpus if g.max_sessions_hint is not None
              and per_gpu > g.max_sessions_hint]
    if not capped:
        return None
    worst = min(capped, key=lambda g: g.max_sessions_hint or 0)
    return (f"-maxSessions {max_sessions} with {renditions_per_stream} rendition(s) per "
            f"stream needs up to {per_gpu} NVENC sessions per GPU, but "
            f"{_session_cap_text(worst.max_sessions_hint, worst.driver)} "
            f"(GPU {worst.index}, {worst.name}); lower -maxSessions or lift the limit "
            f"with nvidia-patch ({NVIDIA_PATCH_URL})")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvml_module() -> ModuleType:
    try:
        import pynvml
    except ImportError as exc:
        raise GpuPreflightError(
            "-nvidia needs the nvidia-ml-py package (import pynvml); reinstall lpnode"
        ) from exc
    return pynvml


def _encoder_capable(nvml: ModuleType, handle: object) -> bool:
    try:
        nvml.nvmlDeviceGetEncoderCapacity(handle, _NVML_ENCODER_QUERY_H264)
    except nvml.NVMLError as exc:
        # Only "not supported" means no NVENC; anything else leaves it to the test encode.
        return getattr(exc, "value", None) != _NVML_ERROR_NOT_SUPPORTED
    return True


def _active_sessions(nvml: ModuleType, handle: object) -> int | None:
    try:
        return int(nvml.nvmlDeviceGetEncoderStats(handle)[0])
    except (nvml.NVMLError, TypeError, IndexError, ValueError):
        return None


def _brand(nvml: ModuleType, handle: object) -> int | None:
    try:
        return int(nvml.nvmlDeviceGetBrand(handle))
    except nvml.NVMLError:
        return None


def nvenc_test_encode(index: int) -> None:
    """Encode a few small frames with h264_nvenc on GPU ``index``.

    On failure PyAV's exception propagates with FFmpeg's error log lines attached as
    ``exc.lp_logs``.
    """
    import io

    import av
    import av.logging

    # FFmpeg's reason (e.g. "OpenEncodeSessionEx failed: out of memory") is only in
    # its log, so errors are captured for this thread while the encoder opens.
    previous = av.logging.get_level()
    raise_level = previous is None or previous < av.logging.ERROR
    if raise_level:
        av.logging.set_level(av.logging.ERROR)
    errors_before = av.logging.get_last_error()[0]
    try:
        with av.logging.Capture() as logs:
            try:
                with av.open(io.BytesIO(), "w", format="mpegts") as out:
                    stream = out.add_stream("h264_nvenc", rate=30, options={"gpu": str(index)})
                    stream.width, stream.height, stream.pix_fmt = 256, 144, "yuv420p"
                    stream.codec_context.time_base = Fraction(1, 30)
                    for i in range(5):
                        frame = av.VideoFrame(256, 144, "yuv420p")
                        for plane in frame.planes:
                            plane.update(bytes([16 + 40 * i]) * plane.buffer_size)
                        frame.pts = i
                        out.mux(stream.encode(frame))
                    out.mux(stream.encode(None))
            except Exception as exc:
                lines = [message for _, _, message in logs]
                count, last = av.logging.get_last_error()
                if not lines and last is not None and count > errors_before:
                    # PyAV drops a message identical to the previous one from captures.
                    lines = [last[2]]
                exc.lp_logs = lines  # type: ignore[attr-defined]  # FFmpeg's own words, for the message
                raise
    finally:
        if raise_level:
            av.logging.set_level(previous)


def preflight(
    devices: str,
    *,
    nvml: ModuleType | None = None,
    test_encode: Callable[[int], object] | None = None,
) -> list[GpuInfo]:
    """Check the GPUs named by ``-nvidia`` and return what was found.

    Lists the GPUs through NVML, checks each requested one has NVENC, and opens a
    real h264_nvenc encoder on each. Raises GpuPreflightError with an operator
    message on the first problem. ``nvml`` and ``test_encode`` replace pynvml and
    the real encode, for tests without a GPU.
    """
    nvml = nvml or _nvml_module()
    encode = test_encode or nvenc_test_encode
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise GpuPreflightError(
            f"-nvidia {devices}: the NVIDIA driver is not available (NVML: {exc}). "
            f"Install the NVIDIA driver and check that `nvidia-smi` works (in a "
            f"container, run with the NVIDIA container toolkit), or run without -nvidia "
            f"to transcode on the CPU.") from exc
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        ids = parse_devices(devices, int(nvml.nvmlDeviceGetCount()))
        gpus = []
        for index in ids:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = _text(nvml.nvmlDeviceGetName(handle))
            consumer = is_consumer_board(_brand(nvml, handle), name)
            gpus.append(GpuInfo(
                index=index,
                name=name,
                uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                driver=driver,
                encoder_capable=_encoder_capable(nvml, handle),
                max_sessions_hint=session_cap(driver, consumer),
                consumer=consumer,
                active_sessions=_active_sessions(nvml, handle),
            ))
    except nvml.NVMLError as exc:
        raise GpuPreflightError(
            f"-nvidia {devices}: NVML query failed ({exc}); check `nvidia-smi`") from exc
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass

    for info in gpus:
        if not info.encoder_capable:
            raise GpuPreflightError(encoder_error_message(info, "NVENC not supported"))
        try:
            encode(info.index)
        except GpuPreflightError:
            raise
        except Exception as exc:
            error = getattr(exc, "strerror", None) or str(exc)
            logs = getattr(exc, "lp_logs", [])
            raise GpuPreflightError(encoder_error_message(info, error, logs)) from exc
    return gpus
