"""The orchSecret transcoders present, compared in constant time."""

from __future__ import annotations

import hmac


class SharedSecret:
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def matches(self, candidate: str) -> bool:
        return hmac.compare_digest(self._secret, candidate.encode())

    def __repr__(self) -> str:   # never the value, whatever ends up logging this object
        return "SharedSecret(<hidden>)"
