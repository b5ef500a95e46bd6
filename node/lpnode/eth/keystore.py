"""The node's Ethereum account: a geth v3 keystore file and its password (reference 2.11).

As go-livepeer: -ethKeystorePath is a keystore directory or one key file; -ethAcctAddr picks
the account (default: the only one, or the first by file name); -ethPassword is a file
holding the password or, with a warning, the password itself. Unlike go-livepeer, lpnode never
creates an account and never prompts on stdin: a missing keystore or account is an error that
says what to do (go-livepeer makes a new, unfunded account and waits for a password on a
terminal a service does not have).

Errors name files and addresses, never the password or the key.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_typing import ChecksumAddress
from eth_utils import is_address, to_checksum_address

from lpnode.secret import SecretError, load_secret

log = logging.getLogger("lpnode.eth")

_MAX_KEY_FILE_BYTES = 64 * 1024


class KeystoreError(SecretError):
    """The keystore, account or password is unusable; the message says how to fix it. A
    SecretError, so that lpnode's start-up reports it without importing this module (and web3)."""


@dataclass(frozen=True)
class NodeAccount:
    address: ChecksumAddress
    key_file: str
    private_key: bytes = field(repr=False)


def parse_address(raw: str, flag: str) -> ChecksumAddress:
    """A checksummed address from a flag's value, or KeystoreError naming the flag."""
    value = raw.strip()
    if not value.startswith("0x"):
        value = "0x" + value
    if not is_address(value):
        raise KeystoreError(f"{flag} {raw!r} is not an Ethereum address (0x followed by 40 hex digits)")
    return to_checksum_address(value)


def _key_files(keystore: Path) -> list[tuple[str, Path]]:
    """(address, file) for every v3 key file in a directory, in file name order."""
    found = []
    for path in sorted(keystore.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        address = _address_of(path)
        if address:
            found.append((address, path))
    return found


def _address_of(path: Path) -> str | None:
    try:
        if path.stat().st_size > _MAX_KEY_FILE_BYTES:
            return None
        data = json.loads(path.read_text())
        raw = data.get("address") if isinstance(data, dict) else None
        return to_checksum_address("0x" + raw.removeprefix("0x")) if isinstance(raw, str) and raw else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def find_key_file(keystore_path: str, account: str | None) -> tuple[str, Path]:
    """The account's address and its key file, from -ethKeystorePath and -ethAcctAddr."""
    if account is not None:
        account = parse_address(account, "-ethAcctAddr")
    path = Path(keystore_path).expanduser()
    if not path.exists():
        raise KeystoreError(
            f"-ethKeystorePath {keystore_path!r} does not exist: point it at the keystore directory or "
            "key file of the orchestrator's account (lpnode does not create accounts; make one with "
            "`geth account new` or `cast wallet new`, fund it, and copy its key file here)")
    if path.is_file():
        address = _address_of(path)
        if address is None:
            raise KeystoreError(f"-ethKeystorePath {keystore_path!r} is not a geth v3 key file (JSON with an "
                                "\"address\" and a \"crypto\" section)")
        if account and account != address:
            raise KeystoreError(f"-ethAcctAddr {account} does not match the key file {keystore_path!r}, "
                                f"which holds {address}: fix one or the other")
        return address, path
    keys = _key_files(path)
    if not keys:
        raise KeystoreError(
            f"the keystore {keystore_path!r} holds no key file: copy the account's geth v3 key file there "
            "(lpnode does not create accounts)")
    if account is None:
        if len(keys) > 1:
            log.warning("keystore %s holds %d accounts; using the first, %s (set -ethAcctAddr to choose)",
                        keystore_path, len(keys), keys[0][0])
        return keys[0]
    for address, key_file in keys:
        if address == account:
            return address, key_file
    raise KeystoreError(
        f"-ethAcctAddr {account} is not in the keystore {keystore_path!r}, which holds "
        f"{', '.join(a for a, _ in keys)}: fix -ethAcctAddr or copy that account's key file there")


def unlock(keystore_path: str, account: str | None, password_value: str | None) -> NodeAccount:
    """Find the key file and decrypt it with the -ethPassword value (a file, or the password)."""
    address, key_file = find_key_file(keystore_path, account)
    if password_value is None:
        raise KeystoreError(
            "-ethPassword is not set: give the path of a file (mode 0600, owned by the service user) "
            "holding the password of " + address)
    try:
        password = load_secret(password_value, "-ethPassword", log=log)
    except SecretError as exc:
        raise KeystoreError(str(exc)) from None
    try:
        data: Any = json.loads(key_file.read_text())
        private_key = bytes(Account.decrypt(data, password))
    except ValueError as exc:
        if "MAC mismatch" in str(exc) or "password" in str(exc).lower():
            raise KeystoreError(f"wrong password for {address} (key file {key_file}): check the "
                                "-ethPassword file") from None
        raise KeystoreError(f"cannot decrypt the key file {key_file}: it is not a valid geth v3 key file") from None
    if Account.from_key(private_key).address != address:
        raise KeystoreError(f"the key file {key_file} says {address} but holds a different key: replace it")
    return NodeAccount(address=to_checksum_address(address), key_file=str(key_file), private_key=private_key)

