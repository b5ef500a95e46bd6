"""The certificate for port 8935: the operator's own, or a self-signed one made on first start
and kept in the data directory (cert.pem, key.pem), as go-livepeer does."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

_VALIDITY = datetime.timedelta(days=3650)


def ensure_self_signed(datadir: Path, host: str) -> tuple[Path, Path]:
    cert_path, key_path = datadir / "cert.pem", datadir / "key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    datadir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        if host and host != "localhost":
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host or "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(key, hashes.SHA256()))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("made a self-signed certificate for %s in %s", host or "localhost", cert_path)
    return cert_path, key_path


def certificate_expiry(cert_path: Path) -> datetime.datetime:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.not_valid_after_utc


def check_pair(cert_path: Path, key_path: Path) -> None:
    """Load the pair as the listener will, so a bad one stops start-up with a message instead
    of failing inside the server. Raises ValueError saying what to fix."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot serve TLS with certificate {cert_path} and key {key_path}: "
                         f"{getattr(exc, 'strerror', None) or exc}; give a PEM certificate and "
                         "its own private key, readable by the service user") from None
