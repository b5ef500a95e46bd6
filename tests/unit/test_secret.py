"""-orchSecret loading: files must exist, be private, regular and non-empty; the secret is never shown."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lpnode.secret import SecretError, load_orch_secret, load_rpc_url, looks_like_path, read_secret_file

SECRET = "s3cr3t-Value-42"
LOG = logging.getLogger("lpnode.test.secret")


@pytest.fixture
def caplog_all(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    yield caplog
    # Whatever a test did, the secret must not have reached a log record.
    for record in caplog.records:
        assert SECRET not in record.getMessage()


def secret_file(tmp_path: Path, content: str = SECRET + "\n", mode: int = 0o600) -> Path:
    path = tmp_path / "orch.secret"
    path.write_text(content)
    path.chmod(mode)
    return path


def load_error(value: str) -> str:
    with pytest.raises(SecretError) as exc:
        load_orch_secret(value, log=LOG)
    message = str(exc.value)
    assert SECRET not in message
    return message


@pytest.mark.parametrize(
    ("value", "expected"),
    [("/etc/lpnode/secret", True), ("./secret", True), ("~/secret", True), ("dir/secret", True), ("abc123", False)],
)
def test_looks_like_path(value: str, expected: bool) -> None:
    assert looks_like_path(value) is expected


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_reads_private_file_and_strips_newline(
    tmp_path: Path, mode: int, caplog_all: pytest.LogCaptureFixture
) -> None:
    path = secret_file(tmp_path, f"  {SECRET}\n\n", mode)
    assert load_orch_secret(str(path), log=LOG) == SECRET
    assert not [r for r in caplog_all.records if r.levelno >= logging.WARNING]


def test_tilde_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog_all: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    secret_file(tmp_path)
    assert load_orch_secret("~/orch.secret", log=LOG) == SECRET


def test_missing_file_is_an_error_with_the_fix(tmp_path: Path, caplog_all: pytest.LogCaptureFixture) -> None:
    missing = str(tmp_path / "nope")
    message = load_error(missing)
    assert repr(missing) in message and "does not exist" in message
    assert "0600" in message and "0400" in message and "owned by the user lpnode runs as" in message


def test_relative_missing_path_is_not_echoed(caplog_all: pytest.LogCaptureFixture) -> None:
    # A base64 secret containing "/" looks like a relative path; it must not be repeated.
    value = "QmFzZTY0/c2VjcmV0"
    message = load_error(value)
    assert value not in message and "does not exist" in message


def test_empty_file_is_an_error(tmp_path: Path, caplog_all: pytest.LogCaptureFixture) -> None:
    path = secret_file(tmp_path, " \n\n")
    message = load_error(str(path))
    assert str(path) in message and "is empty" in message


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o610, 0o601])
def test_file_open_to_group_or_others_is_an_error(
    tmp_path: Path, mode: int, caplog_all: pytest.LogCaptureFixture
) -> None:
    path = secret_file(tmp_path, mode=mode)
    message = load_error(str(path))
    assert f"mode {mode:04o}" in message and f"chmod 600 {path}" in message


def test_directory_is_an_error(tmp_path: Path, caplog_all: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "secrets"
    directory.mkdir(mode=0o700)
    assert "is not a regular file" in load_error(str(directory))


def test_fifo_is_an_error_not_a_hang(tmp_path: Path, caplog_all: pytest.LogCaptureFixture) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    assert "is not a regular file" in load_error(str(fifo))


def test_symlink_to_private_file_is_followed(tmp_path: Path, caplog_all: pytest.LogCaptureFixture) -> None:
    link = tmp_path / "link"
    link.symlink_to(secret_file(tmp_path))
    assert load_orch_secret(str(link), log=LOG) == SECRET


def test_oversized_file_is_an_error(tmp_path: Path, caplog_all: pytest.LogCaptureFixture) -> None:
    path = secret_file(tmp_path, SECRET + "x" * 70_000)
    assert "too big for a secret" in load_error(str(path))


def test_unreadable_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog_all: pytest.LogCaptureFixture
) -> None:
    path = secret_file(tmp_path)

    # Simulated: the tests may run as root, who can read any file.
    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    message = load_error(str(path))
    assert "permission denied" in message and "chown" in message


def test_literal_secret_is_used_with_a_warning(caplog_all: pytest.LogCaptureFixture) -> None:
    assert load_orch_secret(SECRET, log=LOG) == SECRET
    warnings = [r.getMessage() for r in caplog_all.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "`ps`" in warnings[0] and "file" in warnings[0] and "0600" in warnings[0]


def test_bare_name_of_an_existing_file_is_read_as_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog_all: pytest.LogCaptureFixture
) -> None:
    # go-livepeer reads it as a file too; using the name as the secret would fail only at auth.
    monkeypatch.chdir(tmp_path)
    secret_file(tmp_path)
    assert load_orch_secret("orch.secret", log=LOG) == SECRET


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_value_is_an_error(value: str, caplog_all: pytest.LogCaptureFixture) -> None:
    assert "-orchSecret is empty" in load_error(value)


def test_read_secret_file_applies_the_same_checks(tmp_path: Path) -> None:
    path = secret_file(tmp_path)
    assert read_secret_file(str(path)) == SECRET
    path.chmod(0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        read_secret_file(str(path))


def test_secret_never_in_errors_even_when_file_is_bad(tmp_path: Path, caplog_all: pytest.LogCaptureFixture) -> None:
    # Each failure with the secret inside the file: none may leak it.
    for mode in (0o644, 0o660):
        load_error(str(secret_file(tmp_path, mode=mode)))
    load_error(str(secret_file(tmp_path, SECRET + "x" * 70_000)))


KEYED_URL = "https://arb-mainnet.g.example.com/v2/Ab3dEf6hIj9kLm2nOp5q"


def test_eth_url_from_a_file_is_read_with_the_secret_checks(tmp_path: Path, caplog_all: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ethUrl"
    path.write_text(KEYED_URL + "\n")
    path.chmod(0o600)
    assert load_rpc_url(str(path), log=LOG) == KEYED_URL
    path.chmod(0o640)
    with pytest.raises(SecretError, match="chmod 600"):
        load_rpc_url(str(path), log=LOG)
    assert KEYED_URL not in caplog_all.text and "Ab3dEf6hIj9kLm2nOp5q" not in caplog_all.text


def test_eth_url_inline_works_and_a_keyed_one_is_warned_about(caplog_all: pytest.LogCaptureFixture) -> None:
    assert load_rpc_url("http://127.0.0.1:8545", log=LOG) == "http://127.0.0.1:8545"
    assert not [r for r in caplog_all.records if r.levelno == logging.WARNING]
    assert load_rpc_url(KEYED_URL, log=LOG) == KEYED_URL
    warnings = [r.getMessage() for r in caplog_all.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "`ps`" in warnings[0] and "Ab3dEf6hIj9kLm2nOp5q" not in warnings[0]


def test_eth_url_file_without_a_url_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "ethUrl"
    path.write_text("arb1.arbitrum.io/rpc\n")
    path.chmod(0o600)
    with pytest.raises(SecretError, match=r"not an http\(s\) or ws\(s\) URL .*e\.g\. https://"):
        load_rpc_url(str(path), log=LOG)
