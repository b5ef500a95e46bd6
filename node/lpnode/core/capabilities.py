"""Capability numbers and the bitstring encoding go-livepeer negotiates with (core/capabilities.go)."""

from __future__ import annotations

from collections.abc import Iterable

from lpnode import __version__
from lpnode.net import lp_rpc_pb2 as pb

H264 = 0
MPEGTS = 1
MP4 = 2
FRACTIONAL_FRAMERATES = 3
STORAGE_DIRECT = 4
PROFILE_H264_BASELINE = 7
PROFILE_H264_MAIN = 8
PROFILE_H264_HIGH = 9
PROFILE_H264_CONSTRAINED_HIGH = 10
GOP = 11
AUTH_TOKEN = 12

# What lpnode's transcoder can do, whether PyAV runs it on NVENC or x264.
TRANSCODER = frozenset({
    H264, MPEGTS, MP4, FRACTIONAL_FRAMERATES, STORAGE_DIRECT, PROFILE_H264_BASELINE,
    PROFILE_H264_MAIN, PROFILE_H264_HIGH, PROFILE_H264_CONSTRAINED_HIGH, GOP, AUTH_TOKEN,
})
# A gateway that cannot send auth tokens is refused, as by go-livepeer.
MANDATORY = frozenset({AUTH_TOKEN})


def to_bitstring(caps: Iterable[int]) -> list[int]:
    words: list[int] = []
    for cap in caps:
        word, bit = divmod(cap, 64)
        while len(words) <= word:
            words.append(0)
        words[word] |= 1 << bit
    return words


def from_bitstring(words: Iterable[int]) -> set[int]:
    return {i * 64 + bit for i, word in enumerate(words) for bit in range(64) if word >> bit & 1}


def to_net(caps: Iterable[int], mandatories: Iterable[int] = (), capacity: int = 0) -> pb.Capabilities:
    caps = set(caps)
    net = pb.Capabilities(bitstring=to_bitstring(caps), mandatories=to_bitstring(mandatories),
                          version=__version__)
    if capacity:
        for cap in caps:
            net.capacities[cap] = capacity
    return net


def compatible(requested: pb.Capabilities, offered: pb.Capabilities) -> bool:
    """The requester's needs are all offered, and it has what the offerer makes mandatory."""
    wanted = from_bitstring(requested.bitstring)
    return (from_bitstring(offered.mandatories) <= wanted
            and wanted <= from_bitstring(offered.bitstring))
