"""The lpnode role on injected facts: install from the wheelhouse, config checked by lpnode,
and restarts only when something lpnode runs changed."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from pyinfra.api.exceptions import DeployError
from pyinfra.api.util import get_file_sha1
from pyinfra.facts.files import Directory, File, FileContents, Sha1File
from pyinfra.facts.server import Arch, LinuxDistribution
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from roles import node as node_module
from roles import wheelhouse
from roles._facts import DirectoryFiles, PythonVersion, record_sums_command
from roles._ops import render
from roles.node import config_flags, node
from roles.node import NodeSettings
from tests.support.prepare import DEBIAN_12, UBUNTU_24_04, distro, prepare, with_settings

BUILD = "0123456789abcdef0123"


@pytest.fixture
def built(tmp_path, monkeypatch):
    """A stand-in wheelhouse, so the tests need no pip download."""
    (tmp_path / "lpnode-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    (tmp_path / "av-18.1.0-cp311-abi3-manylinux_2_28_x86_64.whl").write_bytes(b"av")
    (tmp_path / "requirements.txt").write_text("av==18.1.0\n")
    asked = []

    def build(python_version, arch):
        asked.append((python_version, arch))
        return wheelhouse.Wheelhouse(tmp_path, BUILD, "lpnode-0.1.0-py3-none-any.whl")

    monkeypatch.setattr(node_module.wheelhouse, "build", build)
    return tmp_path, asked


def base_facts(more=None):
    return {PythonVersion: "3.11", Arch: "x86_64", LinuxDistribution: DEBIAN_12, **(more or {})}


def run(facts=None, **kwargs):
    kwargs.setdefault("role", "transcoder")
    kwargs.setdefault("address", "10.77.0.21")
    kwargs.setdefault("orch_addr", "10.77.0.11:8935")
    ops, _ = prepare(node, facts=facts or base_facts(), host_name="t1", **with_settings(NodeSettings, kwargs))
    return ops


def installed_facts(wheel_dir: Path, **kwargs) -> dict:
    """A host where the previous run installed exactly this build and config."""
    role = kwargs.get("role", "transcoder")
    config = render("lpnode.conf.j2", role=role, host_name="t1",
                    flags=config_flags(role, kwargs.get("address", "10.77.0.21"), orch_addr="10.77.0.11:8935",
                                      host_name="t1", transcoder_name="t1:7935"))
    unit = render("lpnode.service.j2", role=role, service_user="lpnode", venv="/opt/lpnode/venv",
                  config_path="/etc/lpnode/lpnode.conf", restart_sec=5, gpu=False,
                  reloadable="orchestrator" in role)
    sums = {
        "/etc/lpnode/lpnode.conf": get_file_sha1(StringIO(config)),
        "/etc/systemd/system/lpnode.service": get_file_sha1(StringIO(unit)),
    }
    wheelhouse_files = {p.name: (get_file_sha1(str(p)), 644, "root", "root") for p in wheel_dir.iterdir()}
    return base_facts({
        File: lambda path: {"user": "root", "group": "lpnode" if path.endswith(".conf") else "root",
                            "mode": 640 if path.endswith(".conf") else 644},
        Directory: {"user": "root", "group": "root", "mode": 755},
        Sha1File: lambda path: sums.get(path),
        DirectoryFiles: lambda path: wheelhouse_files if path == "/opt/lpnode/wheelhouse" else {},
        FileContents: lambda path: [BUILD] if path == "/opt/lpnode/venv/.lpfleet-build" else None,
        SystemdStatus: {"lpnode.service": True},
        SystemdEnabled: {"lpnode.service": True},
    })


def test_first_deploy_installs_from_the_wheelhouse_without_an_index(built):
    ops = run()
    assert ops.has("Sync the lpnode wheelhouse")
    assert ops.named("Virtualenv /opt/lpnode/venv").commands == ["python3 -m venv /opt/lpnode/venv"]
    install = ops.named(f"Install lpnode build {BUILD}").commands
    assert install == [
        "/opt/lpnode/venv/bin/pip install --no-index --disable-pip-version-check --quiet --find-links "
        "/opt/lpnode/wheelhouse --requirement /opt/lpnode/wheelhouse/requirements.txt",
        "/opt/lpnode/venv/bin/pip install --no-index --disable-pip-version-check --quiet --find-links "
        "/opt/lpnode/wheelhouse --no-deps --force-reinstall /opt/lpnode/wheelhouse/lpnode-0.1.0-py3-none-any.whl",
        f"echo {BUILD} > /opt/lpnode/venv/.lpfleet-build",
    ]
    assert all("--no-index" in c for c in install if "pip install" in c)


def test_wheelhouse_sync_uploads_only_what_differs_and_removes_the_rest(built):
    wheel_dir, _ = built
    facts = installed_facts(wheel_dir)
    stale = {p.name: (get_file_sha1(str(p)), 644, "root", "root") for p in wheel_dir.iterdir()}
    stale["lpnode-0.1.0-py3-none-any.whl"] = ("0" * 40, 644, "root", "root")
    stale["av-17.0.0-cp311-abi3-manylinux_2_28_x86_64.whl"] = ("1" * 40, 644, "root", "root")
    stale["requirements.txt"] = (stale["requirements.txt"][0], 600, "root", "root")
    facts[DirectoryFiles] = lambda path: stale
    assert run(facts=facts).named("Sync the lpnode wheelhouse").commands == [
        "<upload /opt/lpnode/wheelhouse/lpnode-0.1.0-py3-none-any.whl>",
        "chown root:root /opt/lpnode/wheelhouse/lpnode-0.1.0-py3-none-any.whl",
        "chmod 644 /opt/lpnode/wheelhouse/lpnode-0.1.0-py3-none-any.whl",
        "chmod 644 /opt/lpnode/wheelhouse/requirements.txt",
        "rm -f /opt/lpnode/wheelhouse/av-17.0.0-cp311-abi3-manylinux_2_28_x86_64.whl",
        record_sums_command("/opt/lpnode/wheelhouse"),
    ]


def test_wheelhouse_built_for_the_hosts_python_and_arch(built):
    _, asked = built
    run(facts=base_facts({PythonVersion: "3.12", Arch: "aarch64"}))
    assert asked == [("3.12", "aarch64")]


def test_python_from_the_release_when_python3_is_missing(built):
    _, asked = built
    run(facts=base_facts({PythonVersion: None, LinuxDistribution: UBUNTU_24_04}))
    assert asked == [("3.12", "x86_64")]


def test_too_old_python_is_refused(built):
    with pytest.raises(DeployError, match="python3 is 3.10, lpnode needs 3.11 or newer"):
        run(facts=base_facts({PythonVersion: "3.10", LinuxDistribution: distro("ubuntu", "22.04", "jammy")}))


def test_config_checked_by_lpnode_before_it_goes_live(built):
    commands = run().named("lpnode config").commands
    check = next(c for c in commands if "check-config" in c)
    assert check.startswith("/opt/lpnode/venv/bin/lpnode check-config /etc/lpnode/.lpnode.conf.lpfleet-new || {")
    assert commands[-1] == "mv -f /etc/lpnode/.lpnode.conf.lpfleet-new /etc/lpnode/lpnode.conf"


def test_first_deploy_starts_and_enables(built):
    assert run().named("lpnode running").commands == [
        "systemctl daemon-reload", "systemctl start lpnode.service", "systemctl enable lpnode.service"]


def test_rerun_changes_nothing(built):
    wheel_dir, _ = built
    ops = run(facts=installed_facts(wheel_dir))
    assert [(op.name, op.commands) for op in ops if op.commands] == []


def test_new_build_is_installed_and_restarts_lpnode(built):
    wheel_dir, _ = built
    facts = installed_facts(wheel_dir)
    facts[FileContents] = lambda path: ["an-older-build"]
    ops = run(facts=facts)
    assert ops.named(f"Install lpnode build {BUILD}").commands
    assert ops.named("lpnode running").commands == ["systemctl restart lpnode.service"]


def test_changed_config_restarts_lpnode(built):
    wheel_dir, _ = built
    ops = run(facts=installed_facts(wheel_dir), max_sessions=4)
    assert ops.named("lpnode config").commands
    assert ops.named("lpnode running").commands == ["systemctl restart lpnode.service"]


def test_changed_secret_reloads_an_orchestrator(built):
    wheel_dir, _ = built
    ops = run(facts=installed_facts(wheel_dir, role="orchestrator", address="10.77.0.11"),
              role="orchestrator", address="10.77.0.11", orch_addr=None, reload=True)
    assert ops.named("lpnode running").commands == ["systemctl reload lpnode.service"]


def test_changed_secret_restarts_a_transcoder(built):
    wheel_dir, _ = built
    ops = run(facts=installed_facts(wheel_dir), reload=True)
    assert ops.named("lpnode running").commands == ["systemctl restart lpnode.service"]


def test_transcoder_needs_its_orchestrator(built):
    with pytest.raises(DeployError, match="needs its orchestrator's address"):
        run(orch_addr=None)


def test_transcoder_is_named_after_its_inventory_host():
    """The orchestrator labels the transcoder's metrics with -transcoderName: the inventory name
    the dashboards and alerts know it by."""
    flags = dict(config_flags("transcoder", "10.77.0.21", orch_addr="10.77.0.11:8935",
                              host_name="t1", transcoder_name="t1:7935"))
    assert flags["transcoderName"] == "t1:7935"
    assert "transcoderName" not in dict(config_flags("orchestrator", "10.77.0.11", host_name="o1",
                                                     transcoder_name="o1:7935"))


def test_the_secret_reaches_only_its_own_file(built, monkeypatch):
    """With the orchSecret and admin token in the deploy's environment, as an operator runs it,
    their values travel only to their 0400 files (on stdin), and appear in no command, no
    rendered unit or config, no operation name or argument."""
    from roles.secrets import SecretSource, secrets

    secret, token = "c2VjcmV0LXVzZWQtb25seS1oZXJl", "dG9rZW4tdXNlZC1vbmx5LWhlcmU"
    monkeypatch.setenv("LPFLEET_ORCH_SECRET", secret)
    monkeypatch.setenv("LPFLEET_ADMIN_TOKEN", token)

    def node_host() -> None:   # what deploys/fleet.py runs on a transcoder
        secrets(orch_secret=SecretSource("orchSecret", env="LPFLEET_ORCH_SECRET"),
                admin_token=SecretSource("admin token", env="LPFLEET_ADMIN_TOKEN"))
        node(role="transcoder", address="10.77.0.21", orch_addr="10.77.0.11:8935")

    ops, _ = prepare(node_host, facts=base_facts(), host_name="t1")
    holders = {}
    for op in ops:
        uploaded = b"".join(_content(src) for src, _ in op.uploads)
        written = b"".join(op.secret() for _ in op.stdin[:1])
        for value in (secret, token):
            assert value not in op.name and value not in repr(op.global_arguments)
            assert not any(value in command for command in op.commands)
            assert value.encode() not in uploaded
            if value.encode() in written:
                holders[value] = op.name
    assert holders == {secret: "secrets | orchSecret -> /etc/lpnode/orchSecret (from environment "
                               "variable LPFLEET_ORCH_SECRET)",
                       token: "secrets | admin token -> /etc/lpnode/adminToken (from environment "
                              "variable LPFLEET_ADMIN_TOKEN)"}
    assert ops.has("lpnode config") and ops.has("systemd unit")


def _content(src) -> bytes:
    if hasattr(src, "getvalue"):
        value = src.getvalue()
        return value.encode() if isinstance(value, str) else value
    return Path(src).read_bytes()
