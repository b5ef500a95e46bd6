"""Synthetic test media and keyframe-aligned segmenting.

``make_source`` renders FFmpeg's ``testsrc2`` pattern with light temporal noise (so an
encoder has real motion and texture to work on) plus a sine tone, encodes H.264 + AAC
and muxes MPEG-TS, with an IDR frame exactly every ``segment_seconds``.

``cut_segments`` splits any container PyAV can read into MPEG-TS segments at video
keyframes by remuxing, the way a broadcaster's segmenter does before it sends
segments to an orchestrator.
"""

from __future__ import annotations

import heapq
import io
import itertools
import math
from collections.abc import Iterator
from fractions import Fraction

import av
import av.filter
from av.video.frame import PictureType

__all__ = ["make_source", "cut_segments"]

_AUDIO_RATE = 48_000
_AAC_FRAME = 1024


def _pull(graph: av.filter.Graph, sink) -> Iterator:
    # Frames are made one at a time: a 10 s 720p clip would be ~400 MB as a list.
    # ``graph`` is an argument so it stays alive as long as the generator does.
    while True:
        try:
            yield sink.pull()
        except (av.EOFError, av.BlockingIOError):
            return


def _video_frames(seconds: float, width: int, height: int, fps: int) -> Iterator:
    graph = av.filter.Graph()
    nframes = max(1, round(seconds * fps))
    src = graph.add("testsrc2", f"size={width}x{height}:rate={fps}:duration={nframes / fps}")
    noise = graph.add("noise", "alls=6:allf=t:all_seed=42")
    fmt = graph.add("format", "yuv420p")
    sink = graph.add("buffersink")
    src.link_to(noise)
    noise.link_to(fmt)
    fmt.link_to(sink)
    graph.configure()
    return itertools.islice(_pull(graph, sink), nframes)


def _audio_frames(seconds: float) -> Iterator:
    graph = av.filter.Graph()
    src = graph.add("sine", f"frequency=440:sample_rate={_AUDIO_RATE}:duration={seconds}")
    fmt = graph.add("aformat", "sample_fmts=fltp:channel_layouts=stereo")
    sink = graph.add("abuffersink")
    src.link_to(fmt)
    fmt.link_to(sink)
    graph.configure()
    # The AAC encoder only accepts full 1024-sample frames.
    graph.set_audio_frame_size(_AAC_FRAME)
    return _pull(graph, sink)


def make_source(
    seconds: float,
    width: int = 1280,
    height: int = 720,
    fps: int = 30,
    *,
    segment_seconds: float = 2.0,
    audio: bool = True,
) -> bytes:
    """Return an MPEG-TS clip (H.264 video, AAC stereo 48 kHz audio if ``audio``).

    The video bitrate is about 4 Mb/s at 720p30, scaled by pixel rate.

    Every ``segment_seconds`` starts with an IDR frame and no other frame is a
    keyframe, so :func:`cut_segments` reproduces segments of exactly that length.
    """
    if seconds <= 0 or width <= 0 or height <= 0 or fps <= 0 or segment_seconds <= 0:
        raise ValueError("seconds, width, height, fps and segment_seconds must be positive")
    keyint = max(1, round(segment_seconds * fps))
    # About what a broadcaster sends: 4 Mb/s at 720p30, scaled by pixel rate.
    kbps = max(200, round(4000 * width * height * fps / (1280 * 720 * 30)))
    out = io.BytesIO()
    with av.open(out, "w", format="mpegts") as container:
        vstream = container.add_stream(
            "libx264",
            rate=fps,
            options={
                "preset": "superfast",
                "b": f"{kbps}k",
                "maxrate": f"{kbps}k",
                "bufsize": f"{2 * kbps}k",
                "forced-idr": "1",
                # Keyframes only where we force them: no scene-cut or periodic IDRs.
                "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0",
            },
        )
        vstream.width = width
        vstream.height = height
        vstream.pix_fmt = "yuv420p"
        vstream.codec_context.time_base = Fraction(1, fps)
        # One encoder thread keeps the output byte-identical run to run (threaded x264
        # rate control is not) and is no slower for this small job.
        vstream.codec_context.thread_count = 1
        astream = None
        if audio:
            astream = container.add_stream("aac", rate=_AUDIO_RATE, options={"b": "128k"})
            astream.codec_context.layout = "stereo"

        video = ((f.pts / fps, 0, f) for f in _video_frames(seconds, width, height, fps))
        sound = ((f.pts / _AUDIO_RATE, 1, f) for f in
                 (_audio_frames(seconds) if astream is not None else ()))
        # Interleave by time so the muxer does not have to buffer a whole stream.
        for _, kind, frame in heapq.merge(video, sound, key=lambda e: (e[0], e[1])):
            if kind == 0:
                frame.time_base = Fraction(1, fps)
                frame.pict_type = PictureType.I if frame.pts % keyint == 0 else PictureType.NONE
                container.mux(vstream.encode(frame))
            else:
                assert astream is not None   # only made with sound
                container.mux(astream.encode(frame))
        container.mux(vstream.encode(None))
        if astream is not None:
            container.mux(astream.encode(None))
    return out.getvalue()


def _packet_seconds(packet: av.Packet) -> float | None:
    ts = packet.pts if packet.pts is not None else packet.dts
    if ts is None or packet.time_base is None:
        return None
    return float(ts * packet.time_base)


class _SegmentWriter:
    """One MPEG-TS output carrying copies of the input's video and audio streams."""

    def __init__(self, templates: list, shift: Fraction) -> None:
        self.shift = shift
        self.buffer = io.BytesIO()
        self.container = av.open(self.buffer, "w", format="mpegts")
        self.streams = {}
        for template in templates:
            self.streams[template.index] = self.container.add_stream_from_template(template)

    def mux(self, packet: av.Packet) -> None:
        if self.shift and packet.time_base:
            delta = round(self.shift / packet.time_base)
            if packet.pts is not None:
                packet.pts += delta
            if packet.dts is not None:
                packet.dts += delta
        packet.stream = self.streams[packet.stream_index]
        self.container.mux(packet)

    def close(self) -> bytes:
        self.container.close()
        return self.buffer.getvalue()


def _negative_start(data: bytes) -> Fraction:
    """How far before zero the earliest timestamp lies (MP4 files with B-frames or
    audio priming start at negative DTS, which MPEG-TS cannot carry)."""
    earliest = Fraction(0)
    with av.open(io.BytesIO(data), "r") as container:
        for packet in container.demux():
            ts = packet.dts if packet.dts is not None else packet.pts
            if ts is not None and packet.time_base:
                earliest = min(earliest, ts * packet.time_base)
    return -earliest


def cut_segments(ts: bytes, seconds: float = 2.0) -> list[bytes]:
    """Split a clip into MPEG-TS segments that each start at a video keyframe.

    A new segment starts at the first keyframe at least ``seconds`` after the start
    of the current one, so segments are ``seconds`` long when the source has a
    keyframe that often and longer otherwise (nothing is re-encoded). Video before
    the first keyframe is dropped because it cannot be decoded on its own; the
    first video and audio stream are kept. Timestamps are kept, except that an input
    starting before zero is shifted as a whole so that it starts at zero.
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    # Half a millisecond of slack absorbs 90 kHz rounding of exact keyframe times.
    slack = 0.0005
    segments: list[bytes] = []
    shift = _negative_start(ts)
    with av.open(io.BytesIO(ts), "r") as container:
        if not container.streams.video:
            raise ValueError("input has no video stream")
        video = container.streams.video[0]
        templates = [video] + list(container.streams.audio[:1])
        keep = {s.index for s in templates}
        writer: _SegmentWriter | None = None
        start = -math.inf
        pending_audio: list[av.Packet] = []
        for packet in container.demux(templates):
            if packet.size == 0 or packet.stream_index not in keep:
                continue
            if packet.stream_index == video.index:
                when = _packet_seconds(packet)
                if packet.is_keyframe and when is not None and when + slack >= start + seconds:
                    if writer is not None:
                        segments.append(writer.close())
                    writer = _SegmentWriter(templates, shift)
                    start = when
                    for held in pending_audio:
                        writer.mux(held)
                    pending_audio.clear()
                if writer is None:
                    continue  # not decodable without an earlier keyframe
                writer.mux(packet)
            elif writer is None:
                pending_audio.append(packet)
            else:
                writer.mux(packet)
        if writer is not None:
            segments.append(writer.close())
    return segments
