"""The secrets role on injected facts: where secrets come from, where they land, and that their
values never show in an operation's name, arguments or commands."""

from __future__ import annotations

import hashlib

import pytest
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.files import Directory, File, Sha1File

from roles.secrets import SecretSource, secrets, source_from_data
from tests.support.prepare import prepare

SECRET = "c3VwZXItc2VjcmV0LXZhbHVl"


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("LPFLEET_ORCH_SECRET", SECRET)
    monkeypatch.setenv("LPFLEET_ADMIN_TOKEN", "admin-" + SECRET)


def run(facts=None, **kwargs):
    ops, result = prepare(secrets, facts=facts, host_name="t1", **kwargs)
    return ops, result


def sources():
    return dict(orch_secret=SecretSource("orchSecret", env="LPFLEET_ORCH_SECRET"),
                admin_token=SecretSource("admin token", env="LPFLEET_ADMIN_TOKEN"))


def test_secret_lands_0400_owned_by_the_service_user(secret_env):
    ops, result = run(**sources())
    orch = ops.named("orchSecret -> /etc/lpnode/orchSecret")
    assert orch.commands == [
        "base64 -d | install -m 400 -o lpnode -g lpnode /dev/stdin /etc/lpnode/.orchSecret.lpfleet-new"
        " && mv -f /etc/lpnode/.orchSecret.lpfleet-new /etc/lpnode/orchSecret"]
    assert orch.secret() == SECRET.encode() + b"\n"
    assert ops.named("admin token -> /etc/lpnode/adminToken").commands[-1].startswith(
        "base64 -d | install -m 400 -o lpnode -g lpnode /dev/stdin ")
    assert result.will_change



def test_no_secret_is_uploaded_as_a_file(secret_env, tmp_path):
    """pyinfra's upload goes through a file in /tmp when it uses sudo (readable by every local
    user until it is moved): secrets travel on stdin instead, straight into a 0400 file."""
    keystore = tmp_path / "keystore.json"
    keystore.write_text('{"address": "ab"}')
    ops, _ = run(**sources(), keystore=SecretSource("keystore", file=str(keystore)),
                 keystore_password=SecretSource("password", env="LPFLEET_ORCH_SECRET"),
                 keystore_allowed=True)
    assert [op.uploads for op in ops] == [[] for _ in ops]
    assert ops.named("keystore ->").secret() == b'{"address": "ab"}'   # byte for byte


def test_config_directory_is_closed_to_other_users(secret_env):
    ops, _ = run(**sources())
    assert ops.names()[0] == "secrets | /etc/lpnode (root:lpnode 0750)"
    assert ops[0].commands == ["mkdir -p /etc/lpnode", "chmod 750 /etc/lpnode", "chown root:lpnode /etc/lpnode"]


def test_secret_value_is_in_no_name_argument_or_command(secret_env):
    ops, _ = run(**sources())
    for op in ops:
        assert SECRET not in op.name
        assert not any(SECRET in command for command in op.commands)
        assert SECRET not in repr(op.global_arguments)
    assert "from environment variable LPFLEET_ORCH_SECRET" in ops.named("orchSecret").name


def test_unchanged_secret_is_not_uploaded_again(secret_env):
    digest = {
        "/etc/lpnode/orchSecret": hashlib.sha1(SECRET.encode() + b"\n").hexdigest(),
        "/etc/lpnode/adminToken": hashlib.sha1(b"admin-" + SECRET.encode() + b"\n").hexdigest(),
    }
    facts = {
        Directory: {"user": "root", "group": "lpnode", "mode": 750},
        File: {"user": "lpnode", "group": "lpnode", "mode": 400},
        Sha1File: lambda path: digest[path],
    }
    ops, result = run(facts=facts, **sources())
    assert ops.commands() == []
    assert not result.will_change


def test_loosened_mode_is_put_back(secret_env):
    facts = {
        File: {"user": "lpnode", "group": "lpnode", "mode": 644},
        Sha1File: hashlib.sha1(SECRET.encode() + b"\n").hexdigest(),
    }
    ops, _ = run(facts=facts, orch_secret=SecretSource("orchSecret", env="LPFLEET_ORCH_SECRET"))
    assert ops.named("orchSecret").commands == ["chmod 400 /etc/lpnode/orchSecret"]


def test_secret_from_a_file_is_stripped_to_one_line(tmp_path):
    path = tmp_path / "orchSecret"
    path.write_text(f"\n{SECRET}\n\n")
    path.chmod(0o600)
    ops, _ = run(orch_secret=SecretSource("orchSecret", file=str(path)))
    assert ops.named("orchSecret").secret() == SECRET.encode() + b"\n"


def test_missing_environment_variable_is_named_not_guessed(monkeypatch):
    monkeypatch.delenv("LPFLEET_ORCH_SECRET", raising=False)
    with pytest.raises(DeployError, match="environment variable LPFLEET_ORCH_SECRET is not set"):
        run(orch_secret=SecretSource("orchSecret", env="LPFLEET_ORCH_SECRET"))


def test_keystore_refused_where_it_does_not_belong(tmp_path):
    keystore = tmp_path / "k.json"
    keystore.write_text("{}")
    with pytest.raises(DeployError, match="a keystore may only go to the reward or redeemer hosts"):
        run(keystore=SecretSource("keystore", file=str(keystore)))
    with pytest.raises(DeployError, match="the RPC URL may only go to on-chain orchestrators, the reward host"):
        run(eth_url=SecretSource("RPC URL", env="LPFLEET_ORCH_SECRET"))
    with pytest.raises(DeployError, match="a hot keystore and the RPC URL may only go to on-chain orchestrators"):
        run(hot_keystore=SecretSource("hot keystore", file=str(keystore)))
    # An on-chain orchestrator's own key, but never the reward host's keystore.
    ops, _ = run(hot_keystore=SecretSource("hot keystore", file=str(keystore)), hot_keystore_allowed=True)
    assert ops.named("hot keystore -> /etc/lpnode/hot-keystore/keystore.json").secret() == b"{}"
    with pytest.raises(DeployError, match="a keystore may only go to the reward or redeemer hosts"):
        run(keystore=SecretSource("keystore", file=str(keystore)), hot_keystore_allowed=True)


def test_keystore_on_the_reward_host_is_kept_byte_for_byte(tmp_path):
    keystore = tmp_path / "k.json"
    keystore.write_bytes(b'{"crypto": {}}\n\n')
    ops, _ = run(keystore=SecretSource("keystore", file=str(keystore)), keystore_allowed=True)
    assert ops.named("/etc/lpnode/keystore (lpnode 0700)").commands[-1] == "chown lpnode:lpnode /etc/lpnode/keystore"
    upload = ops.named("keystore -> /etc/lpnode/keystore/keystore.json")
    assert upload.secret() == b'{"crypto": {}}\n\n'
    assert upload.commands[-1].startswith("base64 -d | install -m 400 -o lpnode -g lpnode ")


def test_source_from_data_prefers_a_file():
    assert source_from_data({"orch_secret_file": "/s", "orch_secret_env": "E"}, "orch_secret", "x") == \
        SecretSource("x", file="/s")
    assert source_from_data({"orch_secret_env": "E"}, "orch_secret", "x") == SecretSource("x", env="E")
    assert source_from_data({}, "orch_secret", "x") is None
