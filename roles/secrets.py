"""Secrets from the operator's machine onto the hosts that need them, and nowhere else.

A secret's value is read on the control machine from a file or an environment variable the
inventory names (never from the inventory itself), and is written on the host as a file owned
by the service user, mode 0400, inside a directory other users cannot enter. It never appears in
a command line, an operation's arguments, pyinfra's diff output or a log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import deploy, operation
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.files import File, Sha1File
from pyinfra.operations import files

from roles._ops import put_secret_commands
from roles.common import CommonSettings

CONFIG_DIR = "/etc/lpnode"
ORCH_SECRET_PATH = f"{CONFIG_DIR}/orchSecret"
ADMIN_TOKEN_PATH = f"{CONFIG_DIR}/adminToken"
TLS_CERT_PATH = f"{CONFIG_DIR}/tls.crt"
TLS_KEY_PATH = f"{CONFIG_DIR}/tls.key"
ORCH_CERT_PATH = f"{CONFIG_DIR}/orchestrator.crt"
KEYSTORE_DIR = f"{CONFIG_DIR}/keystore"
KEYSTORE_FILE = f"{KEYSTORE_DIR}/keystore.json"
KEYSTORE_PASSWORD_PATH = f"{KEYSTORE_DIR}/password"
# The JSON-RPC URL: providers put the API key in it (lpnode -ethUrl reads it from this file).
ETH_URL_PATH = f"{CONFIG_DIR}/ethUrl"
# An on-chain orchestrator's own hot key: it signs ticket redemptions (paying their gas) for the
# orchestrator's address (-ethOrchAddr), whose key stays with the reward host or offline.
HOT_KEYSTORE_DIR = f"{CONFIG_DIR}/hot-keystore"
HOT_KEYSTORE_FILE = f"{HOT_KEYSTORE_DIR}/keystore.json"
HOT_KEYSTORE_PASSWORD_PATH = f"{HOT_KEYSTORE_DIR}/password"
# Shared by the orchestrators and their separate redeemer (-redeemerTokenFile).
REDEEMER_TOKEN_PATH = f"{CONFIG_DIR}/redeemerToken"
# Signs gateways' session tokens; orchestrators behind one load balancer share it.
AUTH_KEY_PATH = f"{CONFIG_DIR}/authTokenKey"


@dataclass(frozen=True)
class SecretSource:
    """Where a secret comes from on the control machine: a file, or an environment variable."""

    what: str  # "orchSecret", "admin token", ... for messages
    file: str | None = None
    env: str | None = None

    def describe(self) -> str:
        if self.file:
            return f"file {self.file}"
        if self.env:
            return f"environment variable {self.env}"
        return "nowhere (neither a file nor an environment variable is set)"

    def read(self, environ=os.environ) -> bytes:
        """The secret's bytes; raises DeployError naming the fix, never the value."""
        if self.file:
            path = Path(self.file).expanduser()
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise DeployError(f"{self.what}: cannot read {path}: {exc.strerror}") from None
        elif self.env:
            value = environ.get(self.env, "")
            if not value:
                raise DeployError(f"{self.what}: environment variable {self.env} is not set on this machine")
            data = value.encode()
        else:
            raise DeployError(f"{self.what}: the inventory names no file and no environment variable")
        if not data.strip():
            raise DeployError(f"{self.what}: {self.describe()} is empty")
        return data


def source_from_data(data: Mapping[str, Any], key: str, what: str) -> SecretSource | None:
    """The source named by inventory data ``<key>_file`` / ``<key>_env`` (a file wins)."""
    file, env = data.get(f"{key}_file"), data.get(f"{key}_env")
    if not file and not env:
        return None
    return SecretSource(what=what, file=file or None, env=None if file else env)


def normalise_token(data: bytes, newline: bool = True) -> bytes:
    # lpnode strips surrounding whitespace when it reads the file; writing the stripped value
    # with one newline keeps the remote file stable whatever the source's trailing newlines.
    # Readers that may not strip (an SMTP password file) get the value alone.
    return data.strip() + (b"\n" if newline else b"")


@operation()
def secret_file(
    source: SecretSource,
    dest: str,
    user: str,
    group: str,
    mode: str = "400",
    text: bool = True,
    newline: bool = True,
):
    """Upload a secret to ``dest`` only if its content differs, then fix owner and mode.

    + text: strip surrounding whitespace (and end with one newline if ``newline``); a keystore
      is written as it is

    Unlike files.put this never prints the content (pyinfra's --diff shows files.put's), and
    the operation's arguments shown in pyinfra's output are only the source's description.
    """
    data = source.read()
    if text:
        data = normalise_token(data, newline)
    remote = host.get_fact(File, path=dest)
    have = (host.get_fact(Sha1File, path=dest), remote["mode"], remote["user"], remote["group"]) if remote else None
    yield from put_secret_commands(data, dest, have, user, group, mode)


@dataclass
class SecretsResult:
    """What the secrets role changes, for the node role to reload on."""

    will_change: bool
    # The TLS pair or the auth-token key (orchestrator) or the pinned certificate (transcoder)
    # changed: lpnode reads them at start only, so it must restart.
    tls_changed: bool = False
    # The keystore, its password or the RPC URL changed: the reward service restarts.
    chain_changed: bool = False
    # The hot keystore, its password, the RPC URL or the redeemer token changed: the on-chain
    # orchestrator (or the redeemer) restarts.
    payments_changed: bool = False


def _keystore(what: str, directory: str, path: str, password_path: str, keystore: SecretSource,
              password: SecretSource | None, service_user: str) -> list[Any]:
    """A keystore (written as it is) and its password in their own 0700 directory."""
    files.directory(name=f"{directory} ({service_user} 0700)", path=directory, user=service_user,
                    group=service_user, mode="700")
    ops = [secret_file(name=f"{what} -> {path} (from {keystore.describe()})", source=keystore, dest=path,
                       user=service_user, group=service_user, text=False)]
    if password:
        ops.append(secret_file(name=f"{what} password -> {password_path} (from {password.describe()})",
                               source=password, dest=password_path, user=service_user, group=service_user))
    return ops


@deploy("secrets")
def secrets(
    orch_secret: SecretSource | None = None,
    admin_token: SecretSource | None = None,
    keystore: SecretSource | None = None,
    keystore_password: SecretSource | None = None,
    keystore_allowed: bool = False,
    service_user: str = CommonSettings.service_user,
    tls_cert: str | None = None,
    tls_key: SecretSource | None = None,
    orch_cert: str | None = None,
    eth_url: SecretSource | None = None,
    hot_keystore: SecretSource | None = None,
    hot_keystore_password: SecretSource | None = None,
    hot_keystore_allowed: bool = False,
    redeemer_token: SecretSource | None = None,
    auth_key: SecretSource | None = None,
) -> SecretsResult:
    """Put this host's secrets in /etc/lpnode.

    + orch_secret: the orchestrator/transcoder shared secret -> /etc/lpnode/orchSecret
    + admin_token: the token for lpnode's admin API -> /etc/lpnode/adminToken
    + keystore, keystore_password: an Ethereum keystore and its password -> /etc/lpnode/keystore/
    + keystore_allowed: true only on reward and redeemer hosts; a keystore anywhere else is refused
      (inventory validation stops it earlier; this is the last line)
    + service_user: owner of the files (and group of /etc/lpnode)
    + tls_cert, tls_key: orchestrator: the certificate (a local path) and key it serves on 8935
      -> /etc/lpnode/tls.crt, /etc/lpnode/tls.key (roles/tls.py says where they come from)
    + orch_cert: transcoder: its orchestrator's certificate (a local path), which it pins
      -> /etc/lpnode/orchestrator.crt
    + eth_url: the chain's JSON-RPC URL (reward, redeemer and on-chain orchestrator hosts)
      -> /etc/lpnode/ethUrl
    + hot_keystore, hot_keystore_password: an on-chain orchestrator's own key and its password
      -> /etc/lpnode/hot-keystore/
    + hot_keystore_allowed: true only on on-chain orchestrators
    + redeemer_token: shared by orchestrators and their redeemer -> /etc/lpnode/redeemerToken
    + auth_key: the key signing gateways' session tokens, shared by the orchestrators behind one
      load balancer -> /etc/lpnode/authTokenKey
    """
    if keystore and not keystore_allowed:
        raise DeployError(
            f"{host.name}: a keystore may only go to the reward or redeemer hosts; "
            "remove keystore_path from this host's data"
        )
    if (hot_keystore or eth_url) and not (keystore_allowed or hot_keystore_allowed):
        raise DeployError(
            f"{host.name}: a hot keystore and the RPC URL may only go to on-chain orchestrators, the reward "
            "host and redeemers; remove hot_keystore_path and eth_url_file/eth_url_env from this host's data"
        )

    # Other users cannot even look inside, so no secret file is ever readable by them, not
    # even for the moment between an upload and its chmod.
    files.directory(
        name="/etc/lpnode (root:lpnode 0750)",
        path=CONFIG_DIR,
        user="root",
        group=service_user,
        mode="750",
    )
    ops = []
    if orch_secret:
        ops.append(secret_file(
            name=f"orchSecret -> {ORCH_SECRET_PATH} (from {orch_secret.describe()})",
            source=orch_secret, dest=ORCH_SECRET_PATH, user=service_user, group=service_user,
        ))
    if admin_token:
        ops.append(secret_file(
            name=f"admin token -> {ADMIN_TOKEN_PATH} (from {admin_token.describe()})",
            source=admin_token, dest=ADMIN_TOKEN_PATH, user=service_user, group=service_user,
        ))
    chain_ops = []
    if eth_url:
        chain_ops.append(secret_file(
            name=f"RPC URL -> {ETH_URL_PATH} (from {eth_url.describe()})",
            source=eth_url, dest=ETH_URL_PATH, user=service_user, group=service_user,
        ))
    if keystore:
        chain_ops += _keystore("keystore", KEYSTORE_DIR, KEYSTORE_FILE, KEYSTORE_PASSWORD_PATH, keystore,
                               keystore_password, service_user)
    payment_ops = []
    if hot_keystore:
        payment_ops += _keystore("hot keystore", HOT_KEYSTORE_DIR, HOT_KEYSTORE_FILE, HOT_KEYSTORE_PASSWORD_PATH,
                                 hot_keystore, hot_keystore_password, service_user)
    if redeemer_token:
        payment_ops.append(secret_file(
            name=f"redeemer token -> {REDEEMER_TOKEN_PATH} (from {redeemer_token.describe()})",
            source=redeemer_token, dest=REDEEMER_TOKEN_PATH, user=service_user, group=service_user,
        ))
    tls_ops = []
    for local, dest in ((tls_cert, TLS_CERT_PATH), (orch_cert, ORCH_CERT_PATH)):
        if local:   # certificates are public: an ordinary upload
            tls_ops.append(files.put(name=f"certificate -> {dest} (from {local})", src=local,
                                     dest=dest, user="root", group=service_user, mode="644"))
    if tls_key:
        tls_ops.append(secret_file(
            name=f"TLS key -> {TLS_KEY_PATH} (from {tls_key.describe()})",
            source=tls_key, dest=TLS_KEY_PATH, user=service_user, group=service_user, text=False,
        ))
    if auth_key:
        # Read at start only, like the TLS pair.
        tls_ops.append(secret_file(
            name=f"auth-token key -> {AUTH_KEY_PATH} (from {auth_key.describe()})",
            source=auth_key, dest=AUTH_KEY_PATH, user=service_user, group=service_user,
        ))
    return SecretsResult(will_change=any(op.will_change for op in ops),
                         tls_changed=any(op.will_change for op in tls_ops),
                         chain_changed=any(op.will_change for op in chain_ops),
                         payments_changed=any(op.will_change for op in payment_ops + chain_ops))
