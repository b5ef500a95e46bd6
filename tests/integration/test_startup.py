"""What an operator sees when lpnode is started wrong, fails, or is stopped."""

import signal
import socket
import subprocess
import time

import pytest

from .conftest import ANY_PORT, LPNODE, wait_http, wait_transcoders

pytestmark = pytest.mark.integration


def run(*args, cwd):
    return subprocess.run([*LPNODE, *args], capture_output=True, text=True, timeout=30, cwd=cwd)


def test_unknown_flag_is_named(tmp_path):
    out = run("-orchestrator", "-orchSecrte", "x", cwd=tmp_path)
    assert out.returncode != 0
    assert "-orchSecrte" in out.stderr and "orchSecret" in out.stderr


def test_missing_secret_file_stops_startup(tmp_path):
    out = run("-transcoder", "-orchAddr", "127.0.0.1:1", "-orchSecret", str(tmp_path / "nope"),
              cwd=tmp_path)
    assert out.returncode != 0
    assert "does not exist" in out.stderr and str(tmp_path / "nope") in out.stderr


def test_group_readable_secret_file_stops_startup(tmp_path):
    secret = tmp_path / "orchSecret"
    secret.write_text("s3cr3t-value\n")
    secret.chmod(0o640)
    out = run("-orchestrator", "-orchSecret", str(secret), "-datadir", str(tmp_path / "d"),
              "-httpAddr", ANY_PORT, "-cliAddr", ANY_PORT, cwd=tmp_path)
    assert out.returncode != 0
    assert "chmod 600" in out.stderr and "s3cr3t-value" not in out.stderr


@pytest.fixture
def taken() -> socket.socket:
    """A port some other process holds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


@pytest.mark.parametrize("flag", ["-httpAddr", "-cliAddr"])
def test_port_in_use_exits_at_once_naming_the_address(fleet, taken, flag):
    busy = "127.0.0.1:%d" % taken.getsockname()[1]
    addrs = {"-httpAddr": ANY_PORT, "-cliAddr": ANY_PORT, flag: busy}
    started = time.monotonic()
    out = run("-orchestrator", "-orchSecret", str(fleet.secret_file), "-datadir",
              str(fleet.tmp / "d"), *[x for kv in addrs.items() for x in kv], cwd=fleet.tmp)
    took = time.monotonic() - started
    assert out.returncode == 1, out.stderr
    assert f"cannot listen on {busy} ({flag})" in out.stderr and "in use" in out.stderr
    assert "Traceback" not in out.stderr
    assert took < 5


def test_bad_certificate_exits_naming_the_files(fleet):
    cert, key = fleet.tmp / "cert.pem", fleet.tmp / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    out = run("-orchestrator", "-orchSecret", str(fleet.secret_file), "-httpAddr", ANY_PORT,
              "-cliAddr", ANY_PORT, "-tlsCertFile", str(cert), "-tlsKeyFile", str(key),
              cwd=fleet.tmp)
    assert out.returncode == 1
    assert f"cannot serve TLS with certificate {cert} and key {key}" in out.stderr
    assert "Traceback" not in out.stderr


def stop_timed(proc) -> float:
    started = time.monotonic()
    proc.popen.send_signal(signal.SIGTERM)
    proc.popen.wait(30)
    return time.monotonic() - started


def test_sigterm_when_idle_exits_0_at_once_without_tracebacks(fleet):
    orch = fleet.orchestrator()
    t1 = fleet.transcoder("t1", 2)
    wait_transcoders(orch, 1)
    rc, summary, output = fleet.test_stream("-segments", "2", "-resolution", "320x180",
                                            "-profiles", "P144p30fps16x9", "-quiet")
    assert rc == 0 and summary["failed"] == 0, output
    for proc in (t1, orch):
        took = stop_timed(proc)
        print(f"{proc.name}: exited {proc.popen.returncode} {took:.2f}s after SIGTERM")
        assert proc.popen.returncode == 0, proc.log()
        assert took < 2, proc.log()
        assert "Traceback" not in proc.log() and "Error" not in proc.log(), proc.log()


def test_sigterm_while_the_orchestrator_hangs_the_handshake(fleet, taken):
    """A transcoder mid-connect (its orchestrator accepts TCP but never answers TLS) stops at
    once too: nothing waits out a connect timeout."""
    t1 = fleet.start("t1", "-transcoder", "-orchAddr", "127.0.0.1:%d" % taken.getsockname()[1],
                     "-orchSecret", str(fleet.secret_file))
    wait_http(t1)  # "admin on" is logged before the listener accepts
    deadline = time.monotonic() + 10
    while t1.status()["orchestrators"][0]["attempts"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    took = stop_timed(t1)
    assert t1.popen.returncode == 0 and took < 2, (took, t1.log())
    assert "Traceback" not in t1.log()
