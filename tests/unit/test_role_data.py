"""The inventory data in inventory/group_data reaches the roles: every setting there is one a
role (or the fleet deploy, or pyinfra's SSH connector) reads, so a misspelt name cannot be
silently ignored, and the documented defaults are the roles' own defaults."""

from __future__ import annotations

import dataclasses
import runpy
from pathlib import Path

import pytest

from roles.settings import all_models, markdown

GROUP_DATA = Path(__file__).resolve().parents[2] / "inventory" / "group_data"
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operators-guide.md"

# Read by deploys/fleet.py and inventory/validate.py themselves, or by pyinfra.
FLEET_KEYS = {
    "admin_networks", "address", "orchestrator", "nvidia", "ssh_port", "ssh_user", "ssh_hostname",
    "orch_secret_env", "orch_secret_file", "admin_token_env", "admin_token_file",
    "keystore_path", "keystore_password_env", "keystore_password_file",
    "grafana", "expected_transcoders", "tls_dir", "tls_cert_file", "tls_key_file",
}


def setting_fields() -> dict[str, dataclasses.Field]:
    return {key: f for model in all_models() for key, f in model.fields().items()}


def group_data_files():
    return sorted(GROUP_DATA.glob("*.py"))


@pytest.mark.parametrize("path", group_data_files(), ids=lambda p: p.name)
def test_every_group_data_setting_is_read_by_someone(path):
    known = setting_fields().keys() | FLEET_KEYS
    values = {k: v for k, v in runpy.run_path(str(path)).items() if not k.startswith("__")}
    unknown = sorted(set(values) - known)
    assert not unknown, f"{path.name}: settings no role reads: {unknown}"


@pytest.mark.parametrize("path", group_data_files(), ids=lambda p: p.name)
def test_documented_defaults_are_the_roles_defaults(path):
    fields = setting_fields()
    values = {k: v for k, v in runpy.run_path(str(path)).items() if not k.startswith("__")}
    # Settings that are per-group choices rather than defaults of the role.
    choices = {"lpnode_max_sessions", "lpnode_gpus"}
    for key, value in values.items():
        f = fields.get(key)
        if f is None or key in choices:
            continue
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        if default is dataclasses.MISSING:
            continue
        assert value == default, f"{path.name}: {key} = {value!r}, but the role's default is {default!r}"


def test_group_data_passes_the_settings_checks():
    for path in group_data_files():
        values = {k: v for k, v in runpy.run_path(str(path)).items() if not k.startswith("__")}
        for model in all_models():
            assert model.problems(values, required=False) == [], path.name


def test_the_settings_table_in_the_operators_guide_is_current():
    """docs/operators-guide.md carries `python -m roles.settings` between its markers."""
    text = GUIDE.read_text()
    begin, end = "<!-- settings table: python -m roles.settings -->\n", "<!-- end of settings table -->"
    assert begin in text and end in text, "the operators' guide lost its settings table markers"
    current = text.split(begin, 1)[1].split(end, 1)[0]
    assert current == markdown(all_models()), "stale: run python -m roles.settings and paste its output"


def test_an_unknown_key_names_the_closest_setting():
    from roles.node import NodeSettings
    [problem] = NodeSettings.problems({"lpnode_max_sesions": 4})
    assert problem == "lpnode_max_sesions is not a setting of the lpnode role; did you mean lpnode_max_sessions?"


def test_group_data_documents_each_setting():
    for path in group_data_files():
        text = path.read_text()
        assert text.startswith('"""'), path.name
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if "=" in line and not line.startswith((" ", "#", '"')) and line.split("=")[0].strip().isidentifier():
                above = lines[i - 1].strip()
                assert above.startswith("#") or "=" in above, f"{path.name}: {line.split('=')[0].strip()} has no comment"
