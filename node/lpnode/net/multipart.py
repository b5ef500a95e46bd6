"""multipart/mixed bodies of /transcodeResults, as go's mime/multipart writes and reads them.

The stdlib email parser handles these too, but costs about 50 ms per MB of video, which lands
directly on every segment's latency; this reader only slices at the boundaries.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass


class MultipartError(ValueError):
    pass


@dataclass
class Part:
    headers: dict[str, str]   # lower-cased names
    body: bytes


def encode(parts: Iterable[tuple[dict[str, str], bytes]]) -> tuple[str, bytes]:
    """Returns (content type, body)."""
    boundary = secrets.token_hex(16)
    chunks: list[bytes] = []
    for headers, body in parts:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        chunks += [b"--", boundary.encode(), b"\r\n", head.encode(), b"\r\n", body, b"\r\n"]
    chunks += [b"--", boundary.encode(), b"--\r\n"]
    return f"multipart/mixed; boundary={boundary}", b"".join(chunks)


def decode(boundary: str, body: bytes) -> list[Part]:
    delimiter = b"--" + boundary.encode()
    start = body.find(delimiter)
    if start < 0:
        raise MultipartError("no multipart boundary in body")
    parts: list[Part] = []
    pos = start + len(delimiter)
    while True:
        if body.startswith(b"--", pos):
            return parts
        if not body.startswith(b"\r\n", pos):
            raise MultipartError("malformed multipart delimiter")
        end = body.find(b"\r\n" + delimiter, pos)
        if end < 0:
            raise MultipartError("multipart body is truncated")
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0 or head_end > end:
            head, content = b"", body[pos + 2:end]   # a part with no headers
        else:
            head, content = body[pos + 2:head_end], body[head_end + 4:end]
        headers = {}
        for line in head.split(b"\r\n"):
            if line:
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
        parts.append(Part(headers, content))
        pos = end + 2 + len(delimiter)
