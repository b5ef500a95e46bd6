"""The reward service's pure parts: go-livepeer's pool hints, the RPC URL never shown whole,
keystore errors that name the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from lpnode.eth.client import ZERO_ADDRESS, redact
from lpnode.eth.keystore import KeystoreError, find_key_file, unlock
from lpnode.eth.reward import reward_hints

A, B, C, ME = ("0x" + c * 40 for c in "abce")


def test_hints_around_the_new_position() -> None:
    pool = [(A, 300), (ME, 150), (B, 200), (C, 100)]
    assert reward_hints(sorted(pool, key=lambda p: -p[1]), ME, 250) == (A, B)
    assert reward_hints(pool, ME, 400) == (ZERO_ADDRESS, A)
    assert reward_hints([(A, 300), (B, 200), (C, 100), (ME, 50)], ME, 60) == (C, ZERO_ADDRESS)
    assert reward_hints([(ME, 10)], ME, 11) == (ZERO_ADDRESS, ZERO_ADDRESS)
    # Equal stake goes after the one already there, as in the protocol's sorted list.
    assert reward_hints([(A, 300), (B, 200), (ME, 100)], ME, 200) == (B, ZERO_ADDRESS)


@pytest.mark.parametrize("url,shown", [
    ("https://arb-mainnet.g.alchemy.com/v2/SECRETKEY", "https://arb-mainnet.g.alchemy.com/…"),
    ("https://user:pass@rpc.example:8443/", "https://rpc.example:8443/…"),
    ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
    ("https://rpc.example/?apikey=SECRET", "https://rpc.example/…"),
])
def test_the_rpc_url_is_shown_without_its_secrets(url: str, shown: str) -> None:
    assert redact(url) == shown


def key_file(directory: Path, password: str = "pw") -> tuple[str, Path]:
    account = Account.create()
    data = Account.encrypt(account.key, password, kdf="pbkdf2", iterations=16)
    path = directory / f"UTC--x--{account.address[2:].lower()}"
    path.write_text(json.dumps(data))
    return account.address, path


def test_missing_keystore_is_not_silently_created(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="does not exist.*does not create accounts"):
        find_key_file(str(tmp_path / "keystore"), None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(KeystoreError, match="holds no key file"):
        find_key_file(str(tmp_path / "empty"), None)
    assert list(tmp_path.rglob("UTC--*")) == []


def test_account_not_in_keystore_names_the_ones_there(tmp_path: Path) -> None:
    address, _ = key_file(tmp_path)
    with pytest.raises(KeystoreError, match=f"not in the keystore.*{address}"):
        find_key_file(str(tmp_path), "0x" + "1" * 40)


def test_a_key_file_path_picks_its_account(tmp_path: Path) -> None:
    address, path = key_file(tmp_path)
    key_file(tmp_path)
    assert find_key_file(str(path), None) == (address, path)
    with pytest.raises(KeystoreError, match="does not match the key file"):
        find_key_file(str(path), "0x" + "1" * 40)


def test_wrong_password_names_the_account_never_the_password(tmp_path: Path) -> None:
    address, _ = key_file(tmp_path, "right")
    password = tmp_path / "pw"
    password.write_text("wrong-horse\n")
    password.chmod(0o600)
    with pytest.raises(KeystoreError) as err:
        unlock(str(tmp_path), None, str(password))
    assert f"wrong password for {address}" in str(err.value) and "wrong-horse" not in str(err.value)


def test_password_file_open_to_others_is_refused(tmp_path: Path) -> None:
    key_file(tmp_path, "right")
    password = tmp_path / "pw"
    password.write_text("right\n")
    password.chmod(0o644)
    with pytest.raises(KeystoreError, match="-ethPassword file.*chmod 600"):
        unlock(str(tmp_path), None, str(password))
