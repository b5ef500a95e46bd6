"""Real transcodes with PyAV: what a gateway gets back, checked by decoding it.

Small resolutions are used wherever size does not matter, to keep the suite fast on
two cores; the main test uses a real 720p segment.
"""

from __future__ import annotations

import io
import os
import threading
from fractions import Fraction

import av
import pytest

from lpnode.transcode.engine import (
    TranscodeError,
    output_size,
    probe_rendition,
    transcode_segment,
)
from lpnode.transcode.profiles import PRESETS, Format, H264Profile, VideoProfile
from lpnode.transcode.testsrc import cut_segments, make_source

SMALL = VideoProfile("small", 256, 144, 300_000)


@pytest.fixture(scope="module")
def seg720() -> bytes:
    return make_source(2.0, 1280, 720, 30)


@pytest.fixture(scope="module")
def clip_small() -> bytes:
    """Six seconds of 320x180 with audio: three 2-second segments."""
    return make_source(6.0, 320, 180, 30)


@pytest.fixture(scope="module")
def seg_small(clip_small) -> bytes:
    return cut_segments(clip_small, 2.0)[1]


def packets(data: bytes, kind: str) -> list[av.Packet]:
    with av.open(io.BytesIO(data)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [p for p in c.demux(streams) if p.size]


def keyframe_positions(data: bytes) -> list[int]:
    with av.open(io.BytesIO(data)) as c:
        return [i for i, f in enumerate(c.decode(video=0)) if f.key_frame]


def test_720p_segment_into_three_profiles(seg720):
    profiles = [PRESETS["P360p30fps16x9"], PRESETS["P240p30fps16x9"], PRESETS["P144p30fps16x9"]]
    out = transcode_segment(seg720, profiles)

    assert out.decoded_frames == 60
    assert out.decoded_pixels == 1280 * 720 * 60
    assert [r.profile for r in out.renditions] == profiles
    for r in out.renditions:
        width, height, frames = probe_rendition(r.data)
        assert (width, height) == (r.profile.width, r.profile.height)
        assert frames == r.frames == 60
        assert r.pixels == width * height * frames
        assert r.data[0] == 0x47  # MPEG-TS sync byte


def test_bitrate_is_respected(seg720):
    low, high = VideoProfile("low", 640, 360, 300_000), VideoProfile("high", 640, 360, 1_500_000)
    out = transcode_segment(seg720, [low, high])
    sizes = [sum(p.size for p in packets(r.data, "video")) * 8 / 2.0 for r in out.renditions]
    assert sizes[0] < 0.5 * sizes[1]
    assert sizes[1] < 1.5 * 1_500_000


def test_mp4_output_is_faststart_and_decodes(seg_small):
    p = VideoProfile("mp4", 256, 144, 300_000, format=Format.MP4)
    r = transcode_segment(seg_small, [p]).renditions[0]
    assert r.data[4:8] == b"ftyp"
    assert 0 <= r.data.find(b"moov") < r.data.find(b"mdat")
    assert probe_rendition(r.data) == (256, 144, 60)
    with av.open(io.BytesIO(r.data)) as c:
        assert c.format.name.startswith("mov,mp4")
        assert [s.type for s in c.streams] == ["video", "audio"]


def test_fps_change(seg_small):
    half = VideoProfile("15fps", 256, 144, 300_000, fps=15)
    double = VideoProfile("60fps", 256, 144, 300_000, fps=60)
    out = transcode_segment(seg_small, [half, double])
    assert [probe_rendition(r.data)[2] for r in out.renditions] == [30, 120]
    assert [r.frames for r in out.renditions] == [30, 120]
    assert out.renditions[0].pixels == 256 * 144 * 30
    with av.open(io.BytesIO(out.renditions[0].data)) as c:
        times = [f.time for f in c.decode(video=0)]
    steps = {round(b - a, 4) for a, b in zip(times, times[1:])}
    assert steps == {round(1 / 15, 4)}


def test_audio_is_copied_unchanged(seg_small):
    out = transcode_segment(seg_small, [SMALL, VideoProfile("m", 256, 144, 300_000,
                                                            format=Format.MP4)])
    source_audio = [bytes(p) for p in packets(seg_small, "audio")]
    assert len(source_audio) > 80  # ~94 AAC frames in 2 s at 48 kHz
    ts_audio = [bytes(p) for p in packets(out.renditions[0].data, "audio")]
    assert ts_audio == source_audio
    mp4_audio = [bytes(p) for p in packets(out.renditions[1].data, "audio")]
    # MP4 stores raw AAC: the same frames without their 7-byte ADTS headers.
    assert mp4_audio == [a[7:] for a in source_audio]


def test_timestamps_monotonic_and_aligned_with_source(seg_small):
    r = transcode_segment(seg_small, [SMALL]).renditions[0]
    video = packets(r.data, "video")
    dts = [p.dts for p in video]
    assert all(b > a for a, b in zip(dts, dts[1:]))
    src_start = min(p.pts * p.time_base for p in packets(seg_small, "video"))
    out_start = min(p.pts * p.time_base for p in video)
    assert abs(out_start - src_start) < Fraction(1, 1000)


def test_gop_settings(seg_small):
    intra = VideoProfile("intra", 256, 144, 300_000, gop_ms=-1)
    every_half_second = VideoProfile("gop500", 256, 144, 300_000, gop_ms=500)
    with_fps = VideoProfile("gop1s", 256, 144, 300_000, fps=30, gop_ms=1000)
    out = transcode_segment(seg_small, [intra, every_half_second, with_fps])
    assert keyframe_positions(out.renditions[0].data) == list(range(60))
    assert keyframe_positions(out.renditions[1].data) == [0, 15, 30, 45]
    assert keyframe_positions(out.renditions[2].data)[:2] == [0, 30]


def test_h264_profile_baseline_has_no_b_frames(seg_small):
    base = VideoProfile("base", 256, 144, 300_000, profile=H264Profile.H264_BASELINE)
    high = VideoProfile("high", 256, 144, 300_000, profile=H264Profile.H264_HIGH)
    out = transcode_segment(seg_small, [base, high])
    for r, expect in zip(out.renditions, ["Constrained Baseline", "High"]):
        with av.open(io.BytesIO(r.data)) as c:
            assert c.streams.video[0].codec_context.profile == expect
    # Without B-frames every packet is decoded in presentation order.
    video = packets(out.renditions[0].data, "video")
    assert all(p.pts == p.dts for p in video)


def test_aspect_ratio_follows_lpms():
    assert output_size(1280, 720, PRESETS["P360p30fps16x9"]) == (640, 360)
    assert output_size(1280, 720, VideoProfile("x", 854, 480, 1)) == (854, 480)
    # A 4:3 source keeps 4:3; a portrait source stays portrait.
    assert output_size(640, 480, PRESETS["P360p30fps16x9"]) == (640, 480)
    assert output_size(720, 1280, PRESETS["P360p30fps16x9"]) == (360, 640)
    # Sizes below lpms's H.264 minimum (146x50) are raised to it.
    assert output_size(1280, 720, VideoProfile("x", 64, 36, 1)) == (146, 82)
    assert output_size(180, 320, SMALL) == (146, 260)


def test_portrait_source_transcodes_to_portrait():
    seg = make_source(0.5, 360, 640, 30, audio=False)
    r = transcode_segment(seg, [VideoProfile("p", 320, 180, 300_000)]).renditions[0]
    assert probe_rendition(r.data) == (180, 320, 15)
    assert r.pixels == 180 * 320 * 15


def test_random_bytes_raise(seg_small):
    with pytest.raises(TranscodeError, match="cannot read segment"):
        transcode_segment(os.urandom(200_000), [SMALL])
    with pytest.raises(TranscodeError):
        transcode_segment(b"", [SMALL])


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_truncated_segment_raises(seg720, fraction):
    cut = int(len(seg720) * fraction)
    for data in (seg720[:cut], seg720[:cut // 188 * 188]):
        with pytest.raises(TranscodeError, match="corrupt or truncated"):
            transcode_segment(data, [SMALL])


def test_zeroed_segment_raises(seg_small):
    data = bytearray(seg_small)
    data[188 * 5:] = bytes(len(data) - 188 * 5)
    with pytest.raises(TranscodeError):
        transcode_segment(bytes(data), [SMALL])


def test_segment_without_video_raises(seg_small):
    out = io.BytesIO()
    with av.open(io.BytesIO(seg_small)) as src, av.open(out, "w", format="mpegts") as dst:
        stream = dst.add_stream_from_template(src.streams.audio[0])
        for p in src.demux(src.streams.audio[0]):
            if p.size:
                p.stream = stream
                dst.mux(p)
    with pytest.raises(TranscodeError, match="no video stream"):
        transcode_segment(out.getvalue(), [SMALL])


def test_no_profiles_is_a_value_error(seg_small):
    with pytest.raises(ValueError):
        transcode_segment(seg_small, [])


def test_nvenc_without_gpu_is_a_clear_error(seg_small):
    # This machine has no NVIDIA driver, so opening h264_nvenc must fail cleanly.
    with pytest.raises(TranscodeError, match="h264_nvenc.*nvidia-smi"):
        transcode_segment(seg_small, [SMALL], nvidia=True, gpu=0)


def test_concurrent_transcodes(clip_small):
    segments = cut_segments(clip_small, 2.0)
    profiles = [SMALL, VideoProfile("tiny", 160, 90, 150_000)]
    expected = transcode_segment(segments[0], profiles)
    results: dict[int, object] = {}

    def work(i: int) -> None:
        try:
            results[i] = transcode_segment(segments[i % len(segments)], profiles)
        except Exception as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    for i in range(4):
        out = results[i]
        assert not isinstance(out, Exception), out
        assert out.decoded_frames == 60
        assert [r.pixels for r in out.renditions] == [r.pixels for r in expected.renditions]
        for r in out.renditions:
            assert probe_rendition(r.data)[2] == 60


def test_probe_rendition_rejects_garbage():
    with pytest.raises(TranscodeError):
        probe_rendition(b"\x47" + os.urandom(5000))


def test_cut_segments_are_independent_two_second_segments(clip_small):
    segments = cut_segments(clip_small, 2.0)
    assert len(segments) == 3
    for i, seg in enumerate(segments):
        with av.open(io.BytesIO(seg)) as c:
            assert [s.type for s in c.streams] == ["video", "audio"]
            frames = list(c.decode(video=0))
        assert len(frames) == 60
        assert frames[0].key_frame
        assert abs((frames[-1].time - frames[0].time) - 59 / 30) < 1e-3
        assert abs(frames[0].time - segments_start(clip_small) - 2 * i) < 1e-3


def segments_start(clip: bytes) -> float:
    with av.open(io.BytesIO(clip)) as c:
        return next(c.decode(video=0)).time


def test_make_source_keyframes_exactly_every_segment(clip_small):
    assert keyframe_positions(clip_small) == [0, 60, 120]
    silent = make_source(1.0, 160, 90, 30, segment_seconds=0.5, audio=False)
    assert keyframe_positions(silent) == [0, 15]
    with av.open(io.BytesIO(silent)) as c:
        assert [s.type for s in c.streams] == ["video"]


def test_cut_segments_from_mp4(clip_small):
    # An operator's MP4: B-frames make it start at a negative DTS, which MPEG-TS
    # segments cannot carry; keyframes every 2 s come from the rendition's GOP.
    as_mp4 = VideoProfile("mp4", 320, 180, 400_000, gop_ms=2000, format=Format.MP4)
    mp4 = transcode_segment(clip_small, [as_mp4]).renditions[0].data
    assert min(p.dts for p in packets(mp4, "video")) < 0
    segments = cut_segments(mp4, 2.0)
    assert len(segments) == 3
    for i, seg in enumerate(segments):
        assert seg[0] == 0x47
        assert min(p.dts * p.time_base for p in packets(seg, "video")) == 2 * i
        out = transcode_segment(seg, [SMALL])
        assert out.decoded_frames == 60
