"""Segment transcoding with PyAV, following lpms (go-livepeer's media library) semantics.

One call decodes a segment once and feeds every decoded frame to one pipeline per
requested profile: FFmpeg's ``scale`` filter (its default bicubic scaler, as lpms and
the ffmpeg CLI use), an ``fps`` filter when the profile sets a frame rate, an H.264
encoder (libx264, or h264_nvenc on a GPU) and a muxer. The first audio stream is
copied unchanged into every rendition.

Pixel accounting is lpms's: the decoded total adds ``width * height`` of every
decoded video frame (lpms ``ffmpeg/transcoder.c``), a rendition's total adds the
encoder's ``width * height`` for every frame sent to that encoder (lpms
``ffmpeg/encoder.c``).

MP4 renditions are written with ``movflags=+faststart`` like lpms, so the index comes
first and the bytes play progressively; the muxer needs a real file for that second
pass, so MP4 renditions go through a temporary file.

Corrupt input policy: a segment is rejected with :class:`TranscodeError` when it
cannot be demuxed, has no video, yields no frame, when the demuxer flags a damaged
packet, when the decoder reports an error (decoding runs with
``err_detect=+explode``), when a frame is flagged corrupt, or when a video packet
after the first decoded frame produced no frame (how a truncated last frame shows
up under frame-threaded decoding). Frames dropped before the first decodable one
(a segment that does not start on a keyframe) are tolerated, as in lpms.
Field-coded (interlaced) sources, which carry two packets per frame, skip the
packet/frame comparison. A segment cut exactly between two frames is a valid,
shorter segment and cannot be told from one.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import av.filter
from av.codec.hwaccel import HWAccel
from av.video.frame import PictureType

from .profiles import GOP_INTRA_ONLY, Format, H264Profile, VideoProfile

__all__ = [
    "Rendition",
    "TranscodeOutput",
    "TranscodeError",
    "transcode_segment",
    "probe_rendition",
    "output_size",
]

log = logging.getLogger(__name__)

# lpms nvidiaCodecSizeLimts for H.264 (7th gen NVENC), applied to software encodes too.
_MIN_W, _MIN_H, _MAX_W, _MAX_H = 146, 50, 4096, 4096
# lpms aborts an encode that emits more than 25 frames per decoded frame (fps filter
# fed timestamps far apart); without it a crafted segment could encode for hours.
_RUNAWAY_FACTOR = 25
# FFmpeg's own AVCodecContext bit_rate_tolerance default; PyAV's add_stream lowers
# it to 128k, which changes libx264's rate control compared to lpms and the CLI.
_FFMPEG_DEFAULT_BT = "4000000"
_FALLBACK_RATE = Fraction(30)

_X264_PROFILE = {
    H264Profile.H264_BASELINE: "baseline",
    H264Profile.H264_MAIN: "main",
    H264Profile.H264_HIGH: "high",
    H264Profile.H264_CONSTRAINED_HIGH: "high",
}

_ERRORS = (av.FFmpegError, ValueError, OSError, RuntimeError, NotImplementedError)


def _describe(exc: BaseException) -> str:
    """FFmpeg's own error text, without PyAV's file name and call details."""
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return exc.strerror
    return str(exc)


@dataclass
class Rendition:
    profile: VideoProfile
    data: bytes
    pixels: int
    frames: int


@dataclass
class TranscodeOutput:
    decoded_pixels: int
    decoded_frames: int
    renditions: list[Rendition]


class TranscodeError(Exception):
    """The segment could not be transcoded; the message says why."""


def output_size(src_width: int, src_height: int, profile: VideoProfile) -> tuple[int, int]:
    """Rendition size for a source size, as lpms sizes it.

    The profile's larger dimension (clamped to the H.264 limits) becomes the source's
    longer side and the other side follows the source aspect ratio, rounded to an even
    number; a side that would fall below the minimum is pinned to it. So a 4:3 source
    with a 16:9 profile keeps 4:3, and a portrait source stays portrait.
    """
    if src_width <= 0 or src_height <= 0:
        raise ValueError("source dimensions must be positive")
    w = min(max(profile.width, _MIN_W), _MAX_W)
    h = min(max(profile.height, _MIN_H), _MAX_H)
    longest = max(w, h)
    iw, ih = src_width, src_height
    if iw >= ih:
        out_w = longest if longest * ih / iw >= _MIN_H else -2
        out_h = _MIN_H if _MIN_H >= longest * ih / iw else -2
    else:
        out_w = _MIN_W if _MIN_W >= longest * iw / ih else -2
        out_h = longest if longest * iw / ih >= _MIN_W else -2
    out_w = _even(out_w)
    out_h = _even(out_h)
    # FFmpeg's scale filter resolves -2 with av_rescale (round half away from zero).
    if out_w < 0 and out_h < 0:
        return iw, ih
    if out_w < 0:
        out_w = _round_half_up(out_h * iw, ih * 2) * 2
    if out_h < 0:
        out_h = _round_half_up(out_w * ih, iw * 2) * 2
    return out_w, out_h


def _even(value: int) -> int:
    return value if value < 0 else value // 2 * 2


def _round_half_up(num: int, den: int) -> int:
    return (2 * num + den) // (2 * den)


def _encoder_options(profile: VideoProfile, nvidia: bool, gpu: int | None,
                     rate: Fraction) -> dict[str, str]:
    """Encoder options lpms sets for a profile (ffmpeg.go createCOutputParams)."""
    opts = {"preset": "medium", "forced-idr": "1"}
    if profile.profile in (H264Profile.H264_BASELINE, H264Profile.H264_CONSTRAINED_HIGH):
        opts["profile"] = _X264_PROFILE[profile.profile]
        opts["bf"] = "0"
    elif profile.profile in (H264Profile.H264_MAIN, H264Profile.H264_HIGH):
        opts["profile"] = _X264_PROFILE[profile.profile]
        opts["bf"] = "3"
    else:
        opts["bf"] = "0" if nvidia else "3"
    if nvidia and profile.fps == 0:
        # NVENC miscomputes DTS with B-frames when source timestamps pass through.
        opts["bf"] = "0"
    if profile.bitrate:
        br = str(profile.bitrate)
        opts.update(b=br, minrate=br, maxrate=br, bufsize=br, bt=_FFMPEG_DEFAULT_BT)
    if profile.gop_ms == GOP_INTRA_ONLY:
        opts["g"] = "0"
    elif profile.gop_ms > 0 and profile.fps > 0:
        opts["g"] = str(max(1, int(profile.gop_ms / 1000 * rate)))
    if nvidia and gpu is not None:
        opts["gpu"] = str(gpu)
    return opts


class _Pipeline:
    """scale[,fps] -> encoder -> muxer for one profile."""

    def __init__(self, profile: VideoProfile, first: av.VideoFrame, in_time_base: Fraction,
                 in_rate: Fraction, audio: av.audio.stream.AudioStream | None,
                 nvidia: bool, gpu: int | None, tmpdir: str | None) -> None:
        self.profile = profile
        self.width, self.height = output_size(first.width, first.height, profile)
        self.frames = 0
        self.decoded = 0
        self.path: str | None = None
        rate = profile.frame_rate or in_rate
        time_base = 1 / profile.frame_rate if profile.frame_rate else in_time_base
        self.graph = self._build_graph(first, in_time_base)
        # Without an fps filter, lpms forces keyframes by timestamp every gop_ms.
        self.kf_interval = 0
        if profile.gop_ms > 0 and profile.fps == 0:
            self.kf_interval = max(1, round(Fraction(profile.gop_ms, 1000) / in_time_base))
        self.next_kf = -math.inf

        if profile.format == Format.MP4:
            fd, self.path = tempfile.mkstemp(suffix=".mp4", dir=tmpdir)
            os.close(fd)
            self.buffer = None
            self.container = av.open(self.path, "w", format="mp4",
                                     container_options={"movflags": "+faststart"})
        else:
            self.buffer = io.BytesIO()
            self.container = av.open(self.buffer, "w", format="mpegts")
        encoder = "h264_nvenc" if nvidia else "libx264"
        # PyAV types add_stream by the codec name's literal; ours is chosen at run time.
        self.video = cast(av.VideoStream, self.container.add_stream(
            encoder, rate=rate, options=_encoder_options(profile, nvidia, gpu, rate)))
        self.video.width = self.width
        self.video.height = self.height
        self.video.pix_fmt = "yuv420p"
        self.video.codec_context.time_base = time_base
        # PyAV defaults to slice threads, which libx264 honours (worse and slower than the
        # frame threads lpms and the ffmpeg CLI get).
        self.video.codec_context.thread_type = "AUTO"
        self.video.codec_context.thread_count = 0
        self.audio = None
        if audio is not None:
            try:
                self.audio = self.container.add_stream_from_template(audio)
            except ValueError as exc:
                log.warning("dropping audio from %s rendition: %s", profile.name, exc)
        try:
            self.container.start_encoding()
        except _ERRORS as exc:
            self.discard()
            raise TranscodeError(_encoder_open_message(encoder, gpu, exc)) from exc

    def _build_graph(self, first: av.VideoFrame, in_time_base: Fraction) -> av.filter.Graph:
        graph = av.filter.Graph()
        chain = [
            graph.add_buffer(width=first.width, height=first.height, format=first.format,
                             time_base=in_time_base),
            graph.add("scale", f"{self.width}:{self.height}"),
        ]
        if self.profile.frame_rate:
            # After scale, as in lpms: the fps filter may duplicate frames.
            chain.append(graph.add("fps", f"{self.profile.fps}/{self.profile.fps_den}"))
        chain.append(graph.add("format", "yuv420p"))
        chain.append(graph.add("buffersink"))
        for a, b in itertools.pairwise(chain):
            a.link_to(b)
        graph.configure()
        return graph

    def push(self, frame: av.VideoFrame | None) -> None:
        if frame is not None:
            self.decoded += 1
        self.graph.push(frame)
        while True:
            try:
                out = self.graph.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            if self.frames + 1 > _RUNAWAY_FACTOR * self.decoded:
                raise TranscodeError(
                    f"{self.profile.name}: frame rate conversion produced over "
                    f"{_RUNAWAY_FACTOR}x the decoded frame count; source timestamps "
                    f"are probably broken")
            self._encode(cast(av.VideoFrame, out))   # the graph carries video only
        if frame is None:
            self._encode(None)

    def _encode(self, frame: av.VideoFrame | None) -> None:
        if frame is not None:
            force = self.frames == 0
            if self.kf_interval and frame.pts is not None and frame.pts >= self.next_kf:
                force = True
                self.next_kf = frame.pts + self.kf_interval
            # Decoded frames keep the source's picture types; the encoder must choose.
            frame.pict_type = PictureType.I if force else PictureType.NONE
            self.frames += 1
        self.container.mux(self.video.encode(frame))

    def mux_audio(self, packet: av.Packet) -> None:
        if self.audio is not None:
            packet.stream = self.audio
            self.container.mux(packet)

    def finish(self) -> Rendition:
        self.push(None)
        self.container.close()
        if self.path is not None:
            with open(self.path, "rb") as fh:
                data = fh.read()
        else:
            assert self.buffer is not None   # MPEG-TS renditions are written to memory
            data = self.buffer.getvalue()
        return Rendition(profile=self.profile, data=data, frames=self.frames,
                         pixels=self.frames * self.width * self.height)

    def discard(self) -> None:
        try:
            self.container.close()
        except _ERRORS:
            pass


def _encoder_open_message(encoder: str, gpu: int | None, exc: BaseException) -> str:
    if encoder == "h264_nvenc":
        where = f"GPU {gpu}" if gpu is not None else "the default GPU"
        return (f"cannot open the h264_nvenc encoder on {where}: {_describe(exc)}. "
                f"Check that the NVIDIA driver is installed (nvidia-smi), that the GPU has "
                f"NVENC and that the driver's NVENC session limit is not reached")
    return f"cannot open the {encoder} encoder: {_describe(exc)}"


def _open_input(source: bytes, nvidia: bool, gpu: int | None) -> av.container.InputContainer:
    if nvidia:
        # NVDEC through PyAV's hwaccel; frames come back to system memory for the
        # software scale filter, and unsupported streams fall back to software decode.
        try:
            accel = HWAccel("cuda", device=str(gpu) if gpu is not None else None,
                            allow_software_fallback=True)
            return av.open(io.BytesIO(source), "r", hwaccel=accel)
        except _ERRORS as exc:
            log.warning("NVDEC unavailable (%s); decoding in software", _describe(exc))
    return av.open(io.BytesIO(source), "r")


class _AudioFixer:
    """Keeps copied audio DTS strictly increasing, like lpms mux(), so a source glitch
    cannot make the muxer reject the rendition."""

    def __init__(self) -> None:
        self.last: int | None = None

    def fix(self, packet: av.Packet) -> None:
        if packet.dts is None:
            return
        if self.last is not None and packet.dts <= self.last:
            packet.dts = self.last + 1
            if packet.pts is not None and packet.pts < packet.dts:
                packet.pts = packet.dts
        self.last = packet.dts


def _frame_time(frame: av.VideoFrame, last: int | None, step: int) -> int:
    pts = frame.pts if frame.pts is not None else frame.dts
    if pts is None:
        pts = 0 if last is None else last + step
    if last is not None and pts <= last:
        pts = last + 1
    return pts


def transcode_segment(
    source: bytes,
    profiles: Sequence[VideoProfile],
    *,
    nvidia: bool = False,
    gpu: int | None = None,
) -> TranscodeOutput:
    """Transcode one segment into every profile; renditions come back in profile order.

    Raises TranscodeError for input that cannot be decoded (see the module docstring
    for what counts as corrupt) or an encoder that cannot be opened.
    """
    if not profiles:
        raise ValueError("at least one profile is required")
    try:
        return _transcode(source, list(profiles), nvidia, gpu)
    except TranscodeError:
        raise
    except _ERRORS as exc:
        raise TranscodeError(f"transcode failed: {_describe(exc)}") from exc


def _transcode(source: bytes, profiles: list[VideoProfile], nvidia: bool,
               gpu: int | None) -> TranscodeOutput:
    try:
        container = _open_input(source, nvidia, gpu)
    except _ERRORS as exc:
        raise TranscodeError(
            f"cannot read segment ({len(source)} bytes): {_describe(exc)}") from exc
    tmpdir = None
    pipelines: list[_Pipeline] = []
    try:
        if not container.streams.video:
            raise TranscodeError("segment has no video stream")
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if container.streams.audio else None
        decoder = vstream.codec_context
        decoder.thread_type = "AUTO"
        decoder.thread_count = 0
        decoder.options = {"err_detect": "+explode"}
        in_tb = vstream.time_base or Fraction(1, 90_000)
        in_rate = vstream.average_rate or vstream.guessed_rate or _FALLBACK_RATE
        step = max(1, round(1 / (in_rate * in_tb)))
        if any(p.format == Format.MP4 for p in profiles):
            tmpdir = tempfile.TemporaryDirectory(prefix="lpnode-mp4-")

        decoded_frames = decoded_pixels = 0
        packet_pts: list[int] = []
        frame_pts: set[int] = set()
        first_pts: int | None = None
        interlaced = False
        last_pts: int | None = None
        held_audio: list[av.Packet] = []
        audio_fix = _AudioFixer()

        def on_frames(frames: Iterable[av.VideoFrame]) -> None:
            nonlocal decoded_frames, decoded_pixels, first_pts, interlaced, last_pts
            for frame in frames:
                if frame.is_corrupt:
                    raise TranscodeError(
                        f"segment is corrupt or truncated: video frame {decoded_frames + 1} "
                        f"did not decode cleanly")
                if frame.pts is not None:
                    frame_pts.add(frame.pts)
                    if first_pts is None:
                        first_pts = frame.pts
                interlaced = interlaced or frame.interlaced_frame
                decoded_frames += 1
                decoded_pixels += frame.width * frame.height
                last_pts = frame.pts = _frame_time(frame, last_pts, step)
                if not pipelines:
                    for p in profiles:
                        pipelines.append(_Pipeline(
                            p, frame, in_tb, in_rate, astream, nvidia, gpu,
                            tmpdir.name if tmpdir else None))
                    for held in held_audio:
                        mux_audio(held)
                    held_audio.clear()
                for pipe in pipelines:
                    pipe.push(frame)

        def mux_audio(packet: av.Packet) -> None:
            # Muxing rescales the packet in place; restore it for every rendition.
            pts, dts, tb = packet.pts, packet.dts, packet.time_base
            for pipe in pipelines:
                packet.pts, packet.dts, packet.time_base = pts, dts, tb
                pipe.mux_audio(packet)

        streams = [vstream] + ([astream] if astream is not None else [])
        for packet in container.demux(streams):
            if packet.size == 0:
                continue
            if packet.is_corrupt:
                raise TranscodeError(
                    f"segment is corrupt or truncated: the demuxer flagged a damaged "
                    f"{packet.stream.type} packet")
            if packet.stream_index == vstream.index:
                if packet.pts is not None:
                    packet_pts.append(packet.pts)
                on_frames(decoder.decode(packet))
            else:
                audio_fix.fix(packet)
                if pipelines:
                    mux_audio(packet)
                else:
                    held_audio.append(packet)
        on_frames(decoder.decode(None))

        if decoded_frames == 0:
            raise TranscodeError("segment has no decodable video frames")
        if not interlaced and first_pts is not None:
            lost = sum(1 for pts in packet_pts if pts > first_pts and pts not in frame_pts)
            if lost:
                raise TranscodeError(
                    f"segment is corrupt or truncated: {lost} of {len(packet_pts)} video "
                    f"frames could not be decoded")
        renditions = [pipe.finish() for pipe in pipelines]
        pipelines.clear()
        return TranscodeOutput(decoded_pixels=decoded_pixels, decoded_frames=decoded_frames,
                               renditions=renditions)
    except av.InvalidDataError as exc:
        raise TranscodeError(f"segment is corrupt or truncated: {_describe(exc)}") from exc
    finally:
        for pipe in pipelines:
            pipe.discard()
        container.close()
        if tmpdir is not None:
            tmpdir.cleanup()


def probe_rendition(data: bytes) -> tuple[int, int, int]:
    """Decode a rendition fully and return (width, height, decoded frame count)."""
    try:
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.video:
                raise TranscodeError("rendition has no video stream")
            stream = container.streams.video[0]
            stream.codec_context.thread_type = "AUTO"
            width = height = frames = 0
            for frame in container.decode(stream):
                width, height = frame.width, frame.height
                frames += 1
    except _ERRORS as exc:
        raise TranscodeError(f"cannot decode rendition: {_describe(exc)}") from exc
    return width, height, frames
