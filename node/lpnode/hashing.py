"""keccak256, which go-livepeer uses for segment hashes (Ethereum's hash, not NIST SHA3-256)."""

from Crypto.Hash import keccak


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()
