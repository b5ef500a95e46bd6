"""Probabilistic micropayment tickets as the protocol's TicketBroker and go-livepeer define them
(reference: onchain.md 1.6, 2.1): the hash, the sender's EIP-191 signature and its checks, the
win check, the expected value, and recipientRand.

Pure functions and values: no chain, no I/O except RecipientRandKey, which keeps its secret in
the datadir so that ticket params issued before a restart still validate after it (go-livepeer's
secret is per process, so a restart invalidates every outstanding ticket).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

MAX_WIN_PROB = 2**256 - 1
# secp256k1's order: a signature's s must be at most half of it (EIP-2; OpenZeppelin's ECDSA).
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2


def _u256(value: int) -> bytes:
    return value.to_bytes(32, "big")


def minimal_bytes(value: int) -> bytes:
    """Go's big.Int.Bytes(): minimal big-endian, 0 as no bytes (the wire form of amounts)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""


@dataclass(frozen=True)
class Ticket:
    recipient: bytes  # 20 bytes
    sender: bytes  # 20 bytes
    face_value: int
    win_prob: int
    sender_nonce: int
    recipient_rand_hash: bytes  # 32 bytes
    creation_round: int = 0
    creation_round_block_hash: bytes = b"\0" * 32

    def aux_data(self) -> bytes:
        """creationRound ‖ its block hash (64 bytes); empty without expiration params, as
        go-livepeer's AuxData (the contract would reject such a ticket)."""
        if self.creation_round == 0 and not any(self.creation_round_block_hash):
            return b""
        return _u256(self.creation_round) + self.creation_round_block_hash

    def hash(self) -> bytes:
        """TicketBroker.getTicketHash: keccak256 of the fields packed in the struct's order."""
        return keccak(self.recipient + self.sender + _u256(self.face_value) + _u256(self.win_prob)
                      + _u256(self.sender_nonce) + self.recipient_rand_hash + self.aux_data())

    def ev(self) -> Fraction:
        """Expected value in wei: faceValue × winProb / (2^256 − 1)."""
        return Fraction(self.face_value * self.win_prob, MAX_WIN_PROB)

    def as_contract_tuple(self) -> tuple[str, str, int, int, int, bytes, bytes]:
        """The Ticket struct as web3 passes it to redeemWinningTicket."""
        return (_address(self.recipient), _address(self.sender), self.face_value, self.win_prob,
                self.sender_nonce, self.recipient_rand_hash, self.aux_data())


def _address(raw: bytes) -> str:
    from eth_utils import to_checksum_address
    return to_checksum_address(raw)


def sign(ticket_hash: bytes, private_key: bytes | str) -> bytes:
    """The sender's signature over a ticket hash: EIP-191 personal message, R ‖ S ‖ V with V
    27 or 28 (go-livepeer's accountmanager.Sign)."""
    signed = Account.sign_message(encode_defunct(primitive=ticket_hash), private_key)
    return bytes(signed.signature)


def signer(ticket_hash: bytes, sig: bytes) -> bytes | None:
    """The address (20 bytes) that made ``sig`` over ``ticket_hash``, or None for a signature
    the contract would refuse: not 65 bytes, a high s, v not 27/28 (crypto/verify.go)."""
    if len(sig) != 65:
        return None
    s, v = int.from_bytes(sig[32:64], "big"), sig[64]
    if s > SECP256K1_HALF_N or v not in (27, 28):
        return None
    try:
        address = Account.recover_message(encode_defunct(primitive=ticket_hash), signature=sig)
    except Exception:  # noqa: BLE001 - any malformed signature is simply not the sender's
        return None
    return bytes.fromhex(address[2:])


def is_winning(sig: bytes, recipient_rand: int, win_prob: int) -> bool:
    """keccak256(sig ‖ recipientRand) < winProb, as the contract's and go-livepeer's check."""
    return int.from_bytes(keccak(sig + _u256(recipient_rand)), "big") < win_prob


def recipient_rand_hash(recipient_rand: int) -> bytes:
    return keccak(_u256(recipient_rand))


class RecipientRandKey:
    """The secret recipientRand is derived from (HMAC-SHA256, as go-livepeer's), kept in
    ``<datadir>/recipient-rand.key`` (0600): made once, read at every start."""

    def __init__(self, datadir: str | Path) -> None:
        path = Path(datadir) / "recipient-rand.key"
        try:
            self._key = path.read_bytes()
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            key = secrets.token_bytes(32)
            tmp = path.with_suffix(".new")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            self._key = key
        if len(self._key) != 32:
            raise ValueError(f"{path} is not a 32-byte key: remove it to make a new one "
                             "(tickets issued with the old one can no longer be redeemed)")

    def rand(self, seed: int, sender: bytes, face_value: int, win_prob: int, expiration_block: int,
             price_num: int, price_den: int, aux_data: bytes) -> int:
        """recipientRand for one set of ticket params and one sender (go-livepeer's pm/recipient.go
        rand: the same fields, in the same order, big ints in their minimal bytes)."""
        message = (minimal_bytes(seed) + sender + minimal_bytes(face_value) + minimal_bytes(win_prob)
                   + minimal_bytes(expiration_block) + minimal_bytes(price_num) + minimal_bytes(price_den)
                   + aux_data)
        return int.from_bytes(hmac.new(self._key, message, hashlib.sha256).digest(), "big")
