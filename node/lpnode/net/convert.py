"""Between wire messages and the transcoder's own types."""

from __future__ import annotations

from collections.abc import Sequence

from lpnode.net import lp_rpc_pb2 as pb
from lpnode.transcode.profiles import Format, H264Profile, VideoProfile


class ProfileError(ValueError):
    pass


def profile_from_net(p: pb.VideoProfile) -> VideoProfile:
    if p.encoder != pb.VideoProfile.H264:
        raise ProfileError(f"profile {p.name!r}: only H.264 output is supported")
    if p.width <= 0 or p.height <= 0:
        raise ProfileError(f"profile {p.name!r}: bad size {p.width}x{p.height}")
    name = p.name or f"net_{p.width}x{p.height}_{p.bitrate}"
    return VideoProfile(name=name, width=p.width, height=p.height, bitrate=p.bitrate, fps=p.fps,
                        fps_den=p.fpsDen or 1, gop_ms=p.gop, profile=H264Profile(p.profile),
                        format=Format(p.format))


def profile_to_net(p: VideoProfile) -> pb.VideoProfile:
    return pb.VideoProfile(name=p.name, width=p.width, height=p.height, bitrate=p.bitrate,
                           fps=p.fps, fpsDen=p.fps_den, gop=p.gop_ms, profile=int(p.profile),  # type: ignore[arg-type]  # an enum value
                           format=int(p.format),  # type: ignore[arg-type]  # an enum value
                           encoder=pb.VideoProfile.H264)


def segment_profiles(seg: pb.SegData) -> list[VideoProfile]:
    """go-livepeer gateways put profiles in whichever fullProfiles field old peers understand."""
    for field in (seg.fullProfiles3, seg.fullProfiles2, seg.fullProfiles):
        if field:
            return [profile_from_net(p) for p in field]
    raise ProfileError("segment names no output profiles")


def set_segment_profiles(seg: pb.SegData, profiles: Sequence[VideoProfile]) -> None:
    # fullProfiles3 carries every field; go-livepeer peers of the last several years read it.
    del seg.fullProfiles3[:]
    seg.fullProfiles3.extend(profile_to_net(p) for p in profiles)


def extension(p: VideoProfile) -> str:
    return ".mp4" if p.format == Format.MP4 else ".ts"


def mime_type(p: VideoProfile) -> str:
    return "video/mp4" if p.format == Format.MP4 else "video/mp2t"
