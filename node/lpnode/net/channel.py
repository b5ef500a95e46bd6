"""Client connections to an orchestrator's port 8935.

go-livepeer's nodes present self-signed certificates and its clients skip verification. grpcio
cannot skip it, so a self-signed certificate is fetched and pinned for the connection (the same
trust go-livepeer gives it); a CA-issued one is verified normally.
"""

from __future__ import annotations

import asyncio
import ssl

import grpc
from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

# Keepalive pings notice a dead peer without waiting for work to fail (go-livepeer #576/#847).
KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def split_host_port(addr: str, default_port: int = 8935) -> tuple[str, int]:
    addr = addr.removeprefix("https://").rstrip("/")
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    host, sep, port = addr.rpartition(":")
    if not sep:
        return addr, default_port
    return host, int(port)


def _name_in(cert: x509.Certificate) -> str:
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        dns = san.get_values_for_type(x509.DNSName)
        if dns:
            return dns[0]
        ips = san.get_values_for_type(x509.IPAddress)
        if ips:
            return str(ips[0])
    except x509.ExtensionNotFound:
        pass
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn[0].value) if cn else "localhost"


async def secure_channel(addr: str) -> grpc.aio.Channel:
    host, port = split_host_port(addr)
    pem = await asyncio.to_thread(ssl.get_server_certificate, (host, port), timeout=10)
    cert = x509.load_pem_x509_certificate(pem.encode())
    options = list(KEEPALIVE_OPTIONS)
    if cert.issuer == cert.subject:
        creds = grpc.ssl_channel_credentials(root_certificates=pem.encode())
        options.append(("grpc.ssl_target_name_override", _name_in(cert)))
    else:
        creds = grpc.ssl_channel_credentials()
    return grpc.aio.secure_channel(f"{host}:{port}", creds, options=options)
