"""Session auth tokens handed to gateways in OrchestratorInfo and checked on every segment.

go-livepeer signs them with a key that is random per process, so every restart invalidates every
live session. lpnode keeps the key in a file in the data directory: a restart keeps sessions
valid, and two orchestrators given the same file accept each other's sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from lpnode.net import lp_rpc_pb2 as pb

TOKEN_LIFETIME_S = 30 * 60


class AuthTokenError(Exception):
    pass


def load_or_create_key(path: Path) -> bytes:
    """The signing key in `path`, created (0600, 32 random bytes) on first use."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key


class AuthTokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, session_id: str, expiration: int) -> bytes:
        msg = session_id.encode() + expiration.to_bytes(8, "big")
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def issue(self, now: float | None = None) -> pb.AuthToken:
        expiration = int((now or time.time()) + TOKEN_LIFETIME_S)
        session_id = secrets.token_hex(8)
        return pb.AuthToken(token=self._mac(session_id, expiration), session_id=session_id,
                            expiration=expiration)

    def verify(self, token: pb.AuthToken, now: float | None = None) -> None:
        """Raise AuthTokenError with go-livepeer's wording when the token is not good."""
        if not token.session_id:
            raise AuthTokenError("missing auth token")
        if not hmac.compare_digest(self._mac(token.session_id, token.expiration), token.token):
            raise AuthTokenError("invalid auth token")
        if (now or time.time()) > token.expiration:
            raise AuthTokenError("expired auth token")
