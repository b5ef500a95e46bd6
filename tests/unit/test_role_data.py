"""The inventory data in inventory/group_data reaches the roles: every setting there is one a
role (or the fleet deploy, or pyinfra's SSH connector) reads, so a misspelt name cannot be
silently ignored, and the documented defaults are the roles' own defaults."""

from __future__ import annotations

import inspect
import runpy
from pathlib import Path

import pytest

from roles.alertmanager import alertmanager
from roles.common import common
from roles.grafana import grafana
from roles.node import node
from roles.node_exporter import node_exporter
from roles.nvidia import nvidia
from roles.prometheus import prometheus

GROUP_DATA = Path(__file__).resolve().parents[2] / "inventory" / "group_data"

# (role, data prefix) as deploys/fleet.py maps them.
ROLE_PREFIXES = ((common, ""), (node, "lpnode_"), (nvidia, "nvidia_"), (node_exporter, "node_exporter_"),
                 (prometheus, "prometheus_"), (alertmanager, "alertmanager_"), (grafana, "grafana_"))

# Read by deploys/fleet.py and inventory/validate.py themselves, or by pyinfra.
FLEET_KEYS = {
    "admin_networks", "address", "orchestrator", "nvidia", "ssh_port", "ssh_user", "ssh_hostname",
    "orch_secret_env", "orch_secret_file", "admin_token_env", "admin_token_file",
    "keystore_path", "keystore_password_env", "keystore_password_file",
    "grafana", "grafana_admin_password_env", "grafana_admin_password_file", "expected_transcoders",
}


def role_keys() -> dict[str, inspect.Parameter]:
    keys = {}
    for role, prefix in ROLE_PREFIXES:
        for name, param in inspect.signature(role._inner).parameters.items():
            keys[prefix + name] = param
    return keys


def group_data_files():
    return sorted(GROUP_DATA.glob("*.py"))


@pytest.mark.parametrize("path", group_data_files(), ids=lambda p: p.name)
def test_every_group_data_setting_is_read_by_someone(path):
    known = role_keys().keys() | FLEET_KEYS
    values = {k: v for k, v in runpy.run_path(str(path)).items() if not k.startswith("__")}
    unknown = sorted(set(values) - known)
    assert not unknown, f"{path.name}: settings no role reads: {unknown}"


@pytest.mark.parametrize("path", group_data_files(), ids=lambda p: p.name)
def test_documented_defaults_are_the_roles_defaults(path):
    params = role_keys()
    values = {k: v for k, v in runpy.run_path(str(path)).items() if not k.startswith("__")}
    # Settings that are per-group choices rather than defaults of the role.
    choices = {"lpnode_max_sessions", "lpnode_gpus"}
    for key, value in values.items():
        param = params.get(key)
        if param is None or key in choices or param.default is inspect.Parameter.empty:
            continue
        assert value == param.default, f"{path.name}: {key} = {value!r}, but the role's default is {param.default!r}"


def test_group_data_documents_each_setting():
    for path in group_data_files():
        text = path.read_text()
        assert text.startswith('"""'), path.name
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if "=" in line and not line.startswith((" ", "#", '"')) and line.split("=")[0].strip().isidentifier():
                above = lines[i - 1].strip()
                assert above.startswith("#") or "=" in above, f"{path.name}: {line.split('=')[0].strip()} has no comment"
