"""What an operator sees when lpnode is started wrong."""

import subprocess

import pytest

from .conftest import LPNODE, free_port

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
              "-httpAddr", f"127.0.0.1:{free_port()}", "-cliAddr", f"127.0.0.1:{free_port()}", cwd=tmp_path)
    assert out.returncode != 0
    assert "chmod 600" in out.stderr and "s3cr3t-value" not in out.stderr
