"""Orchestrator TLS pairs on the control machine, and where the roles put them."""

from __future__ import annotations

import stat

import pytest
from cryptography import x509
from pyinfra.api.exceptions import DeployError

from roles.node import config_flags
from roles.secrets import SecretSource, secrets
from tests.support.prepare import prepare
from roles.tls import orchestrator_pair


def test_a_self_signed_pair_is_made_once_and_kept(tmp_path):
    data = {"tls_dir": str(tmp_path / "tls")}
    first = orchestrator_pair("o1", "10.77.0.11", data)
    again = orchestrator_pair("o1", "10.77.0.11", data)
    assert first == again
    cert = x509.load_pem_x509_certificate(open(first.cert, "rb").read())
    assert "10.77.0.11" in cert.subject.rfc4514_string()
    assert stat.S_IMODE((tmp_path / "tls" / "o1").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "tls" / "o1" / "key.pem").stat().st_mode) == 0o600
    assert orchestrator_pair("o2", "10.77.0.12", data).cert != first.cert


def test_the_operators_own_pair_wins(tmp_path):
    (tmp_path / "c.pem").write_text("cert")
    (tmp_path / "k.pem").write_text("key")
    pair = orchestrator_pair("o1", "10.0.0.1", {"tls_cert_file": str(tmp_path / "c.pem"),
                                                "tls_key_file": str(tmp_path / "k.pem")})
    assert (pair.cert, pair.key) == (str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))


def test_half_a_pair_is_refused(tmp_path):
    (tmp_path / "c.pem").write_text("cert")
    with pytest.raises(DeployError, match="o1: tls_cert_file and tls_key_file go together"):
        orchestrator_pair("o1", "10.0.0.1", {"tls_cert_file": str(tmp_path / "c.pem")})
    with pytest.raises(DeployError, match="does not exist on this machine"):
        orchestrator_pair("o1", "10.0.0.1", {"tls_cert_file": str(tmp_path / "c.pem"),
                                             "tls_key_file": str(tmp_path / "nope.pem")})


def test_orchestrator_serves_the_pair_and_transcoder_pins_it():
    orch = dict(config_flags("orchestrator", "10.77.0.11"))
    assert orch["tlsCertFile"] == "/etc/lpnode/tls.crt" and orch["tlsKeyFile"] == "/etc/lpnode/tls.key"
    trans = dict(config_flags("transcoder", "10.77.0.21", orch_addr="10.77.0.11:8935"))
    assert trans["orchCert"] == "/etc/lpnode/orchestrator.crt"
    assert "tlsKeyFile" not in trans


def test_key_goes_as_a_secret_and_certificate_as_a_file(tmp_path):
    pair = orchestrator_pair("o1", "10.77.0.11", {"tls_dir": str(tmp_path)})
    ops, result = prepare(secrets, host_name="o1", tls_cert=pair.cert,
                          tls_key=SecretSource("TLS key", file=pair.key))
    key = ops.named("TLS key -> /etc/lpnode/tls.key")
    assert key.uploads == [] and key.secret() == open(pair.key, "rb").read()
    assert "install -m 400 -o lpnode -g lpnode" in key.commands[0]
    cert = ops.named("certificate -> /etc/lpnode/tls.crt")
    assert cert.uploads[0][1] == "/etc/lpnode/tls.crt"
    assert result.tls_changed


def test_transcoder_gets_the_certificate_never_the_key(tmp_path):
    pair = orchestrator_pair("o1", "10.77.0.11", {"tls_dir": str(tmp_path)})
    ops, result = prepare(secrets, host_name="t1", orch_cert=pair.cert)
    assert ops.named("certificate -> /etc/lpnode/orchestrator.crt").uploads[0][0] == pair.cert
    assert not ops.has("TLS key")
    assert result.tls_changed
