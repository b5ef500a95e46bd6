"""Payments on the wire (reference 2.4, 2.13): ticket params in protobuf form, the
`Livepeer-Payment` header, and the two messages a gateway signs (its address for
GetOrchestrator, each segment's SegData).

Both sides use these, so an lpnode gateway and an lpnode orchestrator cannot disagree with each
other without disagreeing with go-livepeer too.
"""

from __future__ import annotations

import base64
import binascii
from fractions import Fraction

from eth_utils import keccak, to_checksum_address
from google.protobuf.message import DecodeError

from lpnode.net import lp_rpc_pb2 as pb
from lpnode.pm.pricing import price_info, price_of
from lpnode.pm.recipient import TicketParams
from lpnode.pm.ticket import minimal_bytes
from lpnode.transcode.profiles import VideoProfile

__all__ = ["MalformedPayment", "decode_payment", "encode_payment", "params_from_net", "params_to_net",
           "price_info", "price_of", "request_hash", "segment_hash"]


class MalformedPayment(ValueError):
    """A Livepeer-Payment header that is not base64 protobuf."""


def params_to_net(p: TicketParams) -> pb.TicketParams:
    return pb.TicketParams(
        recipient=p.recipient, face_value=minimal_bytes(p.face_value), win_prob=minimal_bytes(p.win_prob),
        recipient_rand_hash=p.recipient_rand_hash, seed=minimal_bytes(p.seed),
        expiration_block=minimal_bytes(p.expiration_block),
        expiration_params=pb.TicketExpirationParams(creation_round=p.creation_round,
                                                    creation_round_block_hash=p.creation_round_block_hash))


def params_from_net(n: pb.TicketParams, price: Fraction,
                    expiration: pb.TicketExpirationParams | None = None) -> TicketParams:
    """Ticket params as a payment (or an OrchestratorInfo) carries them; ``price`` is the one
    they were quoted at (the payment's expected price), which recipientRand covers.
    ``expiration``: the payment's own expiration params, which win over the params' copy."""
    exp = expiration if expiration is not None and expiration.ByteSize() else n.expiration_params
    return TicketParams(
        recipient=bytes(n.recipient), face_value=int.from_bytes(n.face_value, "big"),
        win_prob=int.from_bytes(n.win_prob, "big"), recipient_rand_hash=bytes(n.recipient_rand_hash),
        seed=int.from_bytes(n.seed, "big"), expiration_block=int.from_bytes(n.expiration_block, "big"),
        creation_round=int(exp.creation_round),
        creation_round_block_hash=bytes(exp.creation_round_block_hash).rjust(32, b"\0"),
        price_num=price.numerator, price_den=price.denominator)


def encode_payment(payment: pb.Payment) -> str:
    return base64.b64encode(payment.SerializeToString()).decode()


def decode_payment(header: str) -> pb.Payment:
    """The Livepeer-Payment header; an empty one is an empty payment (no tickets)."""
    if not header:
        return pb.Payment()
    try:
        return pb.Payment.FromString(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError, DecodeError) as exc:
        raise MalformedPayment(f"malformed Livepeer-Payment header: {exc}") from None


def request_hash(address: bytes) -> bytes:
    """What a gateway signs in its OrchestratorRequest: keccak256 of its EIP-55 address text."""
    return keccak(text=to_checksum_address(address))


def segment_hash(seg: pb.SegData, profiles: list[VideoProfile]) -> bytes:
    """What a gateway signs for a segment (go-livepeer's SegTranscodingMetadata.Flatten):
    manifestId ‖ seq (32 bytes) ‖ the body's hash ‖ the hex of each profile name's keccak256
    prefix (4 bytes), as ASCII."""
    names = "".join(keccak(text=p.name)[:4].hex() for p in profiles)
    return keccak(bytes(seg.manifestId) + seg.seq.to_bytes(32, "big", signed=True) + bytes(seg.hash)
                  + names.encode())
