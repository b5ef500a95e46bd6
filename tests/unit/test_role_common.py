"""The common role's service account on injected facts."""

from __future__ import annotations

from roles._facts import SystemAccount
from roles.common import common
from tests.support.prepare import prepare

ACCOUNT = "Service user lpnode"


def account_commands(have: dict) -> list[str]:
    ops, _ = prepare(common, facts={SystemAccount: have})
    return ops.named(ACCOUNT).commands


def test_a_bare_host_gets_the_group_and_the_system_user() -> None:
    assert account_commands(SystemAccount.default()) == [
        "groupadd --system lpnode",
        "useradd --system --gid lpnode --home-dir /var/lib/lpnode --no-create-home "
        "--shell /usr/sbin/nologin lpnode",
    ]


def test_an_account_as_wanted_needs_nothing() -> None:
    have = {"group": True, "user": {"group": "lpnode", "home": "/var/lib/lpnode", "shell": "/usr/sbin/nologin"}}
    assert account_commands(have) == []


def test_an_account_that_drifted_is_put_back() -> None:
    have = {"group": True, "user": {"group": "users", "home": "/var/lib/lpnode", "shell": "/bin/bash"}}
    assert account_commands(have) == ["usermod --gid lpnode --shell /usr/sbin/nologin lpnode"]
