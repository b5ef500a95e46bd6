"""Client connections to an orchestrator's port 8935, and whom they trust.

go-livepeer's nodes present self-signed certificates and its transcoders skip verification, so
anyone on the path can pose as the orchestrator and collect the orchSecret. With -orchCert an
lpnode transcoder trusts only the certificates in that file: the TLS handshake is checked before
any request is made, and the gRPC channel and every HTTPS request verify against the same
certificates, so the secret is never sent to a server that cannot present one of them.

Without -orchCert the behaviour stays go-livepeer's: grpcio cannot skip verification, so the
certificate the server presents is fetched and pinned for that connection, and HTTPS requests
are not verified.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from lpnode.net.address import split_host_port

# Keepalive pings notice a dead peer without waiting for work to fail (go-livepeer #576/#847).
KEEPALIVE_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]
HANDSHAKE_TIMEOUT_S = 10.0


class CertificateError(Exception):
    """The orchestrator's certificate is not one -orchCert trusts; nothing was sent to it."""


@dataclass(frozen=True)
class Trust:
    """Which orchestrator certificates a transcoder accepts: those in ``pem`` (from -orchCert),
    or, when None, whatever each server presents (go-livepeer's behaviour)."""
    pem: bytes | None = None
    source: str = ""

    @classmethod
    def from_file(cls, path: str) -> Trust:
        """Raises ValueError saying what is wrong with the file."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"-orchCert {path}: {exc.strerror or exc}; give the orchestrator's "
                             "certificate file (its -datadir/cert.pem, or -tlsCertFile)") from None
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise ValueError(f"-orchCert {path} holds no PEM certificate; give the "
                             "orchestrator's certificate (-----BEGIN CERTIFICATE-----), "
                             "not its key") from None
        if b"PRIVATE KEY" in data:
            raise ValueError(f"-orchCert {path} holds a private key: give only the "
                             "orchestrator's certificate, and keep its key on the orchestrator")
        return cls(b"".join(c.public_bytes(Encoding.PEM) for c in certs), path)

    def http_verify(self) -> ssl.SSLContext | bool:
        """For httpx: the pinned certificates, or no verification (go-livepeer's behaviour)."""
        return self._context() if self.pem is not None else False

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        # The certificate is the identity: the address a transcoder dials (an internal IP, a
        # load balancer) need not be a name in it.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        if self.pem is not None:
            ctx.load_verify_locations(cadata=self.pem.decode())
        return ctx


async def presented_certificate(host: str, port: int, ctx: ssl.SSLContext) -> x509.Certificate:
    """The certificate the server presents in a TLS handshake made with ``ctx``.
    Cancellable (a thread doing the same would hold up shutdown until its timeout)."""
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx, server_hostname=host or None),
        HANDSHAKE_TIMEOUT_S)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der)


def _unverified() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.PEM)).hexdigest()[:16]


async def secure_channel(addr: str, trust: Trust = Trust()) -> grpc.aio.Channel:
    """A gRPC channel to ``addr`` whose TLS is checked per ``trust``. Raises CertificateError
    when -orchCert does not vouch for the server, before anything is sent."""
    host, port = split_host_port(addr)
    options = list(KEEPALIVE_OPTIONS)
    if trust.pem is not None:
        try:
            cert = await presented_certificate(host, port, trust._context())
        except ssl.SSLCertVerificationError as exc:
            seen = await presented_certificate(host, port, _unverified())
            raise CertificateError(
                f"orchestrator={addr} presented a certificate that -orchCert {trust.source} does "
                f"not hold (subject {seen.subject.rfc4514_string()}, sha256 {fingerprint(seen)}…;"
                f" {exc.verify_message}); the orchSecret was not sent. Fix: put that "
                f"orchestrator's current certificate (its -datadir/cert.pem) in {trust.source}, "
                "or check that the address is right") from None
        creds = grpc.ssl_channel_credentials(root_certificates=trust.pem)
        options.append(("grpc.ssl_target_name_override", _name_in(cert)))
        return grpc.aio.secure_channel(f"{host}:{port}", creds, options=options)
    cert = await presented_certificate(host, port, _unverified())
    if cert.issuer == cert.subject:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.public_bytes(Encoding.PEM))
        options.append(("grpc.ssl_target_name_override", _name_in(cert)))
    else:
        creds = grpc.ssl_channel_credentials()
    return grpc.aio.secure_channel(f"{host}:{port}", creds, options=options)


def _name_in(cert: x509.Certificate) -> str:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
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
