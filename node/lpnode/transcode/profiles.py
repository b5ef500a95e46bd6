"""Transcoding profiles, wire-compatible with go-livepeer's ``net.VideoProfile``.

The enum values are the protobuf enum numbers of ``VideoProfile.Format`` and
``VideoProfile.Profile`` in go-livepeer ``net/lp_rpc.proto``. The named presets and their
numbers come from ``VideoProfileLookup`` in lpms ``ffmpeg/videoprofile.go``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "Format",
    "H264Profile",
    "VideoProfile",
    "PRESETS",
    "parse_profiles",
    "GOP_DEFAULT",
    "GOP_INTRA_ONLY",
]

GOP_DEFAULT = 0
GOP_INTRA_ONLY = -1


class Format(enum.IntEnum):
    MPEGTS = 0
    MP4 = 1


class H264Profile(enum.IntEnum):
    ENCODER_DEFAULT = 0
    H264_BASELINE = 1
    H264_MAIN = 2
    H264_HIGH = 3
    H264_CONSTRAINED_HIGH = 4


@dataclass(frozen=True)
class VideoProfile:
    """One requested rendition.

    ``bitrate`` is in bits per second and is used as the encoder's target, minimum and
    maximum rate and VBV buffer size, as lpms does. ``fps == 0`` keeps the source
    frame timing; otherwise frames are resampled to ``fps / fps_den`` (an ``fps_den``
    of 0, as an unset protobuf field arrives, is read as 1).

    ``gop_ms`` is the protobuf ``gop`` int32 as go-livepeer sends it
    (``common/util.go`` ``FFmpegProfiletoNetProfile`` writes ``GOP.Milliseconds()``, or
    the negative sentinel unchanged; ``server/segment_rpc.go``
    ``makeFfmpegVideoProfiles`` reads it back the same way):
    0 = encoder default, -1 = intra only (``ffmpeg.GOPIntraOnly``), ``n > 0`` = a
    keyframe every ``n`` milliseconds. Values below -1 are invalid (lpms rejects them).
    """

    name: str
    width: int
    height: int
    bitrate: int
    fps: int = 0
    fps_den: int = 1
    gop_ms: int = GOP_DEFAULT
    profile: H264Profile = H264Profile.ENCODER_DEFAULT
    format: Format = Format.MPEGTS

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"profile {self.name!r}: width and height must be positive")
        if self.bitrate < 0:
            raise ValueError(f"profile {self.name!r}: bitrate must not be negative")
        if self.fps < 0 or self.fps_den < 0:
            raise ValueError(f"profile {self.name!r}: fps and fps_den must not be negative")
        if self.gop_ms < GOP_INTRA_ONLY:
            raise ValueError(f"profile {self.name!r}: gop_ms must be -1, 0 or positive")
        if self.fps_den == 0:
            object.__setattr__(self, "fps_den", 1)
        # Accept plain ints, e.g. straight from a decoded protobuf message.
        object.__setattr__(self, "profile", H264Profile(self.profile))
        object.__setattr__(self, "format", Format(self.format))

    @property
    def frame_rate(self) -> Fraction | None:
        """Output frame rate, or None when the source timing is kept."""
        return Fraction(self.fps, self.fps_den) if self.fps > 0 else None


def _preset(name: str, width: int, height: int, kbps: int, fps: int) -> VideoProfile:
    return VideoProfile(name=name, width=width, height=height, bitrate=kbps * 1000, fps=fps)


# lpms ffmpeg/videoprofile.go. P144p25fps16x9 is defined there but missing from its
# VideoProfileLookup (so go-livepeer's -transcodingOptions rejects it); it is kept here
# because broadcasters may still send it by value.
PRESETS: dict[str, VideoProfile] = {
    p.name: p
    for p in (
        _preset("P720p60fps16x9", 1280, 720, 6000, 60),
        _preset("P720p30fps16x9", 1280, 720, 4000, 30),
        _preset("P720p25fps16x9", 1280, 720, 3500, 25),
        _preset("P720p30fps4x3", 960, 720, 3500, 30),
        _preset("P576p30fps16x9", 1024, 576, 1500, 30),
        _preset("P576p25fps16x9", 1024, 576, 1500, 25),
        _preset("P360p30fps16x9", 640, 360, 1200, 30),
        _preset("P360p25fps16x9", 640, 360, 1000, 25),
        _preset("P360p30fps4x3", 480, 360, 1000, 30),
        _preset("P240p30fps16x9", 426, 240, 600, 30),
        _preset("P240p25fps16x9", 426, 240, 600, 25),
        _preset("P240p30fps4x3", 320, 240, 600, 30),
        _preset("P144p30fps16x9", 256, 144, 400, 30),
        _preset("P144p25fps16x9", 256, 144, 400, 25),
    )
}

_CUSTOM = re.compile(
    r"""^(?P<w>\d+)x(?P<h>\d+)
        @(?P<br>\d+(?:\.\d+)?)(?P<unit>[kKmM]?)
        (?:@(?P<fps>\d+)(?:/(?P<den>\d+))?)?$""",
    re.VERBOSE,
)


def _parse_custom(entry: str) -> VideoProfile | None:
    m = _CUSTOM.match(entry)
    if m is None:
        return None
    scale = {"": 1, "k": 1000, "m": 1_000_000}[m["unit"].lower()]
    bitrate = round(float(m["br"]) * scale)
    width, height = int(m["w"]), int(m["h"])
    fps = int(m["fps"]) if m["fps"] else 0
    den = int(m["den"]) if m["den"] else 1
    # Same default naming as lpms DefaultProfileName for unnamed JSON profiles.
    return VideoProfile(
        name=f"custom_{width}x{height}_{bitrate}",
        width=width,
        height=height,
        bitrate=bitrate,
        fps=fps,
        fps_den=den,
    )


def parse_profiles(spec: str) -> list[VideoProfile]:
    """Parse a comma-separated list of preset names and custom profiles.

    Entries are preset names from :data:`PRESETS` (exact spelling) or custom
    ``WIDTHxHEIGHT@BITRATE[k|M][@FPS[/DEN]]`` entries such as ``854x480@2000k@30``;
    a bitrate without a unit is in bits per second. Blank entries are ignored.
    Raises ValueError naming the bad entry and the valid names.
    """
    profiles: list[VideoProfile] = []
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        profile = PRESETS.get(entry)
        if profile is None:
            try:
                profile = _parse_custom(entry)
            except ValueError as exc:
                raise ValueError(f"invalid transcoding profile {entry!r}: {exc}") from None
        if profile is None:
            raise ValueError(
                f"unknown transcoding profile {entry!r}; valid names are "
                f"{', '.join(sorted(PRESETS))}, or a custom WIDTHxHEIGHT@BITRATEk[@FPS] "
                f"such as 854x480@2000k@30"
            )
        profiles.append(profile)
    if not profiles:
        raise ValueError("no transcoding profiles given")
    return profiles
