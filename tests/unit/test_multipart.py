"""multipart/mixed (/transcodeResults) read by lpnode's fast reader and by an independent one,
the stdlib email parser, on the same bytes: ours, Go-style (mime/multipart's writer, which
go-livepeer transcoders use) and bodies with a preamble and an epilogue."""

from __future__ import annotations

import email
import email.policy
import os

import pytest

from lpnode.net import multipart


def independent(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body,
                                       policy=email.policy.HTTP)
    assert message.is_multipart(), message.defects
    return [({k.lower(): str(v) for k, v in part.items()}, part.get_payload(decode=True))
            for part in message.iter_parts()]


def ours(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    boundary = content_type.split("boundary=", 1)[1].strip('"')
    return [(p.headers, p.body) for p in multipart.decode(boundary, body)]


def go_style(parts: list[tuple[dict[str, str], bytes]], boundary: str, preamble: bytes = b"",
             epilogue: bytes = b"") -> tuple[str, bytes]:
    """What Go's mime/multipart Writer produces: the first boundary without a leading CRLF,
    headers sorted by name, CRLF before every later boundary, the closing one ending in CRLF."""
    out = [preamble]
    for i, (headers, data) in enumerate(parts):
        out.append((b"\r\n" if i else b"") + f"--{boundary}\r\n".encode())
        out.append("".join(f"{k}: {v}\r\n" for k, v in sorted(headers.items())).encode() + b"\r\n")
        out.append(data)
    out.append(f"\r\n--{boundary}--\r\n".encode() + epilogue)
    return f"multipart/mixed; boundary={boundary}", b"".join(out)


# Video-like payloads: TS packets, and bytes that look like line ends and boundary dashes.
PAYLOADS = [
    b"\x47" + os.urandom(187) * 3,
    b"line one\r\nline two\r\n--not-the-boundary\r\n",
    b"\r\n",
    b"x",
]
HEADERS = [{"Content-Type": "video/mp2t", "Pixels": str(1000 * (i + 1))} for i in range(len(PAYLOADS))]


def test_our_encoding_reads_the_same_both_ways():
    content_type, body = multipart.encode(zip(HEADERS, PAYLOADS))
    assert ours(content_type, body) == independent(content_type, body)
    assert [data for _, data in ours(content_type, body)] == PAYLOADS


@pytest.mark.parametrize("preamble, epilogue", [
    (b"", b""),
    (b"This is a preamble, which readers ignore.\r\n", b""),
    (b"", b"trailing epilogue\r\n"),
])
def test_go_style_bodies_read_the_same_both_ways(preamble, epilogue):
    content_type, body = go_style(list(zip(HEADERS, PAYLOADS)), "9051914041544843365972754266",
                                  preamble, epilogue)
    mine = ours(content_type, body)
    assert mine == independent(content_type, body)
    assert [h["pixels"] for h, _ in mine] == ["1000", "2000", "3000", "4000"]
    assert [data for _, data in mine] == PAYLOADS


def test_a_truncated_body_is_an_error_not_fewer_parts():
    content_type, body = go_style(list(zip(HEADERS, PAYLOADS)), "b0undary")
    with pytest.raises(multipart.MultipartError, match="truncated"):
        ours(content_type, body[: len(body) // 2])


def test_a_body_without_the_boundary_is_an_error():
    with pytest.raises(multipart.MultipartError, match="no multipart boundary"):
        multipart.decode("abc", b"just some bytes")
