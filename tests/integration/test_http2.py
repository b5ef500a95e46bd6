"""The orchestrator's HTTP/2 receive windows (server/h2window.py), as a gateway sees them on 8935.

A gateway uploads every segment in one POST; with HTTP/2's default 64 KiB windows and 16 KiB
frames it stalls on WINDOW_UPDATEs. These tests read what the orchestrator advertises, and
send bodies around and far beyond every window and frame limit (alone and many at once on
one connection) with the two kinds of clients gateways use: a Python h2 stack and libcurl.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from io import BytesIO

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pycurl
import pytest

from lpnode.server import h2window

from .conftest import Fleet

pytestmark = pytest.mark.integration

DEFAULT_WINDOW = 65_535


def server_preface(addr: str) -> tuple[dict, int]:
    """The orchestrator's SETTINGS and its connection-level window increment, read with a bare
    h2 client over TLS with ALPN h2, as any gateway connects."""
    host, port = addr.rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    settings: dict = {}
    increment = 0
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        assert tls.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        tls.sendall(conn.data_to_send())
        while not (settings and increment):
            data = tls.recv(65_536)
            assert data, "orchestrator closed the connection during the preface"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    settings.update({k: v.new_value for k, v in event.changed_settings.items()})
                elif isinstance(event, h2.events.WindowUpdated) and event.stream_id == 0:
                    increment += event.delta
            tls.sendall(conn.data_to_send())
    return settings, increment


def test_orchestrator_advertises_wide_windows_and_frames(fleet: Fleet):
    fleet.orchestrator()
    settings, increment = server_preface(fleet.orch_addr)
    assert settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] == h2window.STREAM_WINDOW
    assert settings[h2.settings.SettingCodes.MAX_FRAME_SIZE] == h2window.MAX_FRAME
    assert DEFAULT_WINDOW + increment == h2window.CONNECTION_WINDOW


# Around the old 64 KiB window and 16 KiB frame, the new 1 MiB frame, and beyond the 16 MiB
# stream window (which then needs WINDOW_UPDATEs from the orchestrator).
SIZES = [1, 16_385, 65_536, 65_537, 1_048_577, 20_000_000]


def test_uploads_of_every_size_complete_over_httpx(fleet: Fleet):
    """No segment header: the orchestrator reads the whole body, then answers 403."""
    fleet.orchestrator()

    async def upload_all() -> list[int]:
        async with httpx.AsyncClient(http2=True, verify=False, timeout=30) as http:
            statuses = []
            for size in SIZES:
                resp = await http.post(f"https://{fleet.orch_addr}/segment", content=bytes(size))
                assert resp.http_version == "HTTP/2"
                statuses.append(resp.status_code)
            # Many uploads at once on the one connection: 96 MB, more than its 64 MiB window.
            many = await asyncio.gather(*(
                http.post(f"https://{fleet.orch_addr}/segment", content=bytes(3_000_000))
                for _ in range(32)))
            return statuses + [r.status_code for r in many]

    statuses = asyncio.run(asyncio.wait_for(upload_all(), 120))
    assert statuses == [403] * (len(SIZES) + 32)


def test_uploads_of_every_size_complete_over_libcurl(fleet: Fleet):
    fleet.orchestrator()
    curl = pycurl.Curl()
    curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS)
    curl.setopt(pycurl.SSL_VERIFYPEER, 0)
    curl.setopt(pycurl.SSL_VERIFYHOST, 0)
    curl.setopt(pycurl.TIMEOUT, 30)
    curl.setopt(pycurl.URL, f"https://{fleet.orch_addr}/segment")
    curl.setopt(pycurl.HTTPHEADER, ["Expect:"])
    try:
        for size in SIZES:
            body = BytesIO()
            curl.setopt(pycurl.WRITEDATA, body)
            curl.setopt(pycurl.POSTFIELDSIZE, size)
            curl.setopt(pycurl.POSTFIELDS, bytes(size))
            curl.perform()
            assert curl.getinfo(pycurl.INFO_HTTP_VERSION) == pycurl.CURL_HTTP_VERSION_2_0
            assert curl.getinfo(pycurl.RESPONSE_CODE) == 403, (size, body.getvalue())
    finally:
        curl.close()
