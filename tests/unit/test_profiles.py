"""Transcoding profiles: go-livepeer's enum numbers and presets, and -transcodingOptions parsing."""

from __future__ import annotations

import pytest

from lpnode.net import lp_rpc_pb2 as pb
from lpnode.transcode.profiles import (
    GOP_INTRA_ONLY,
    PRESETS,
    Format,
    H264Profile,
    VideoProfile,
    parse_profiles,
)

# lpms ffmpeg/videoprofile.go VideoProfileLookup: name -> (width, height, kb/s, fps).
LPMS_LOOKUP = {
    "P720p60fps16x9": (1280, 720, 6000, 60),
    "P720p30fps16x9": (1280, 720, 4000, 30),
    "P720p25fps16x9": (1280, 720, 3500, 25),
    "P720p30fps4x3": (960, 720, 3500, 30),
    "P576p30fps16x9": (1024, 576, 1500, 30),
    "P576p25fps16x9": (1024, 576, 1500, 25),
    "P360p30fps16x9": (640, 360, 1200, 30),
    "P360p25fps16x9": (640, 360, 1000, 25),
    "P360p30fps4x3": (480, 360, 1000, 30),
    "P240p30fps16x9": (426, 240, 600, 30),
    "P240p25fps16x9": (426, 240, 600, 25),
    "P240p30fps4x3": (320, 240, 600, 30),
    "P144p30fps16x9": (256, 144, 400, 30),
}


def test_enum_numbers_are_the_wire_numbers():
    assert Format.MPEGTS == pb.VideoProfile.MPEGTS == 0
    assert Format.MP4 == pb.VideoProfile.MP4 == 1
    assert H264Profile.ENCODER_DEFAULT == pb.VideoProfile.ENCODER_DEFAULT
    assert H264Profile.H264_BASELINE == pb.VideoProfile.H264_BASELINE
    assert H264Profile.H264_MAIN == pb.VideoProfile.H264_MAIN
    assert H264Profile.H264_HIGH == pb.VideoProfile.H264_HIGH
    assert H264Profile.H264_CONSTRAINED_HIGH == pb.VideoProfile.H264_CONSTRAINED_HIGH


@pytest.mark.parametrize("name", sorted(LPMS_LOOKUP))
def test_presets_match_lpms(name):
    width, height, kbps, fps = LPMS_LOOKUP[name]
    p = PRESETS[name]
    assert (p.name, p.width, p.height, p.bitrate, p.fps, p.fps_den) == (
        name, width, height, kbps * 1000, fps, 1)
    assert p.gop_ms == 0 and p.profile == H264Profile.ENCODER_DEFAULT
    assert p.format == Format.MPEGTS


def test_p144p25_is_available_too():
    p = PRESETS["P144p25fps16x9"]
    assert (p.width, p.height, p.bitrate, p.fps) == (256, 144, 400_000, 25)


def test_parse_preset_names_keeps_order_and_ignores_blanks():
    got = parse_profiles(" P360p30fps16x9, P144p30fps16x9,,P240p30fps16x9 ")
    assert [p.name for p in got] == ["P360p30fps16x9", "P144p30fps16x9", "P240p30fps16x9"]


def test_parse_custom_entries():
    a, b, c = parse_profiles("854x480@2000k@30,1920x1080@6M,320x180@250000@30000/1001")
    assert (a.width, a.height, a.bitrate, a.fps, a.fps_den) == (854, 480, 2_000_000, 30, 1)
    assert a.name == "custom_854x480_2000000"
    assert (b.width, b.height, b.bitrate, b.fps) == (1920, 1080, 6_000_000, 0)
    assert (c.bitrate, c.fps, c.fps_den) == (250_000, 30000, 1001)


def test_unknown_name_is_named_and_valid_names_listed():
    with pytest.raises(ValueError) as err:
        parse_profiles("P360p30fps16x9,P480p30fps16x9")
    msg = str(err.value)
    assert "'P480p30fps16x9'" in msg
    assert "P720p30fps16x9" in msg and "P144p30fps16x9" in msg


def test_empty_spec_is_an_error():
    with pytest.raises(ValueError, match="no transcoding profiles"):
        parse_profiles(" , ")


def test_custom_with_zero_size_is_rejected():
    with pytest.raises(ValueError, match="0x480"):
        parse_profiles("0x480@1000k")


def test_profile_normalises_protobuf_values():
    p = VideoProfile("x", 640, 360, 1_000_000, fps=30, fps_den=0, profile=2, format=1)
    assert p.fps_den == 1
    assert p.profile is H264Profile.H264_MAIN
    assert p.format is Format.MP4


def test_gop_values():
    assert VideoProfile("x", 640, 360, 1, gop_ms=GOP_INTRA_ONLY).gop_ms == -1
    assert VideoProfile("x", 640, 360, 1, gop_ms=2000).gop_ms == 2000
    with pytest.raises(ValueError, match="gop_ms"):
        VideoProfile("x", 640, 360, 1, gop_ms=-2)


def test_profiles_are_hashable_values():
    assert VideoProfile("x", 640, 360, 1) == VideoProfile("x", 640, 360, 1)
    assert len({PRESETS["P360p30fps16x9"], parse_profiles("P360p30fps16x9")[0]}) == 1
