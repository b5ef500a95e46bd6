"""The lab's secrets on the control machine: what the deploy reads as an operator's secrets
would be read (files, 0600, made once, random), under <state dir>/secrets."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from . import config
from .util import write_secret


def secrets_dir() -> Path:
    return config.state_dir() / "secrets"


def orch_secret_path() -> Path:
    return secrets_dir() / "orchSecret"


def admin_token_path() -> Path:
    return secrets_dir() / "admin_token"


def alert_receiver_token_path() -> Path:
    return secrets_dir() / "alert_receiver_token"


def keystore_path() -> Path:
    """The lab orchestrator's keystore, made from a lab chain account (lab/chain.py)."""
    return secrets_dir() / "keystore.json"


def hot_keystore_path(orchestrator: str = "o1") -> Path:
    """A lab orchestrator's own hot key: it redeems tickets for the registered (cold) account."""
    return secrets_dir() / ("hot-keystore.json" if orchestrator == "o1" else f"hot-keystore-{orchestrator}.json")


def auth_key_path() -> Path:
    """The key the orchestrators behind the lab's balancer sign gateways' sessions with."""
    return secrets_dir() / "auth_key"


def gateway_keystore_path() -> Path:
    """The lab gateway's key (stays on this machine): lab test streams pay with it."""
    return secrets_dir() / "gateway-keystore.json"


def keystore_password_path() -> Path:
    return secrets_dir() / "keystore_password"


def eth_url_path() -> Path:
    """The lab chain's RPC URL, kept as a secret as a provider's keyed URL is."""
    return secrets_dir() / "eth_url"


def ensure_secrets() -> None:
    """The lab's orchSecret, admin token, alert receiver token and keystore password. The
    receiver token is what the lab's Alertmanager sends to the test webhook receiver (a bearer
    token), so the lab proves receiver secrets arrive."""
    secrets_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(secrets_dir(), 0o700)
    if not orch_secret_path().exists():
        write_secret(orch_secret_path(), base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    if not admin_token_path().exists():
        write_secret(admin_token_path(), secrets.token_urlsafe(32) + "\n")
    if not alert_receiver_token_path().exists():
        write_secret(alert_receiver_token_path(), secrets.token_urlsafe(32) + "\n")
    if not auth_key_path().exists():
        write_secret(auth_key_path(), secrets.token_hex(32) + "\n")
    if not keystore_password_path().exists():
        write_secret(keystore_password_path(), secrets.token_urlsafe(24) + "\n")
