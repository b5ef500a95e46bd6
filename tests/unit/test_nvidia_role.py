"""The nvidia role on injected facts (the lab has no GPU): Debian and Ubuntu, a bare host, a
host that is already done, a driver upgrade, the NVENC patch and the reboot switch."""

from __future__ import annotations

from io import StringIO

import pytest
from pyinfra.api.exceptions import DeployError
from pyinfra.api.util import get_file_sha1
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.server import LinuxDistribution
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from roles._facts import AptHolds, NvencPatchState
from roles._ops import render
from roles.nvidia import APT_PREFERENCES, DEBIAN_SOURCES, NOUVEAU_BLACKLIST, driver_plan, nvidia, upstream_version
from roles.nvidia import NvidiaSettings
from tests.support.prepare import DEBIAN_12, UBUNTU_24_04, distro, prepare, with_settings

UBUNTU_DRIVER = ["nvidia-driver-550-server", "nvidia-utils-550-server", "libnvidia-encode-550-server"]
DEBIAN_DRIVER = ["nvidia-driver", "nvidia-smi", "nvidia-persistenced", "libnvidia-encode1", "libnvcuvid1"]
UBUNTU_VERSION = "550.127.05-0ubuntu0.24.04.1"
DEBIAN_VERSION = "535.216.01-1~deb12u1"


def run(distro_fact, facts=None, **kwargs):
    ops, result = prepare(nvidia, facts={LinuxDistribution: distro_fact, **(facts or {})}, groups=["gpu"],
                          **with_settings(NvidiaSettings, kwargs))
    return ops, result


def sha1_of_template(name, **context):
    return get_file_sha1(StringIO(render(name, **context)))


def done_facts(distro_id):
    """Facts of a host where a previous run did everything (driver installed, held, files in place)."""
    if distro_id == "ubuntu":
        packages = {name: [UBUNTU_VERSION] for name in ["linux-headers-generic", *UBUNTU_DRIVER]}
        held = UBUNTU_DRIVER
    else:
        packages = {name: [DEBIAN_VERSION] for name in ["linux-headers-amd64", *DEBIAN_DRIVER, "firmware-misc-nonfree"]}
        held = DEBIAN_DRIVER
    return {
        DebPackages: packages,
        AptHolds: sorted(held),
        (Sha1File, (("path", NOUVEAU_BLACKLIST),)): sha1_of_template("nouveau-blacklist.conf.j2"),
        (Sha1File, (("path", APT_PREFERENCES),)): sha1_of_template(
            "nvidia-apt-preferences.j2", branch="535", packages=DEBIAN_DRIVER),
        (Sha1File, (("path", DEBIAN_SOURCES),)): sha1_of_template(
            "debian-nonfree.sources.j2", mirror="http://deb.debian.org/debian", codename="bookworm"),
        # Every file and directory the role writes is there, owned and moded as it writes them.
        File: lambda path: {"user": "root", "group": "root", "mode": 755 if path.endswith(".sh") else 644},
        Directory: lambda path: {"user": "root", "group": "root", "mode": 755},
        SystemdStatus: {"nvidia-persistenced.service": True},
        SystemdEnabled: {"nvidia-persistenced.service": True},
    }


# --------------------------------------------------------------------------- Ubuntu


def test_ubuntu_installs_the_branch_packages_and_holds_them():
    ops, _ = run(UBUNTU_24_04, driver_branch="550")
    install = ops.named("NVIDIA driver 550 (ubuntu)")
    assert install.commands[0] == "apt-get update"
    assert install.commands[1].endswith(
        "install --no-install-recommends linux-headers-generic nvidia-driver-550-server nvidia-utils-550-server "
        "libnvidia-encode-550-server")
    assert ops.named("Hold the driver packages").commands == ["apt-mark hold " + " ".join(UBUNTU_DRIVER)]
    # The branch is in the package names: no apt pin, no Debian components.
    assert not ops.has("Pin the NVIDIA driver") and not ops.has("non-free")


def test_ubuntu_nouveau_blacklisted_and_initramfs_rebuilt_only_if_that_changed():
    ops, _ = run(UBUNTU_24_04)
    blacklist = ops.named("Blacklist nouveau")
    assert f"<upload {NOUVEAU_BLACKLIST}>" in blacklist.commands
    [src, dest] = blacklist.uploads[0]
    assert "blacklist nouveau" in src.getvalue() and "options nouveau modeset=0" in src.getvalue()
    initramfs = ops.named("Rebuild the initramfs")
    assert initramfs.commands == ["update-initramfs -u"]
    assert initramfs.conditional


def test_ubuntu_persistenced_enabled_and_reboot_only_when_the_driver_changed():
    ops, result = run(UBUNTU_24_04)
    reboot = ops.named("Reboot into the new NVIDIA driver")
    assert reboot.conditional
    assert any("reboot" in cmd for cmd in reboot.commands)
    persistenced = ops.named("nvidia-persistenced")
    assert persistenced.commands == ["systemctl start nvidia-persistenced.service",
                                     "systemctl enable nvidia-persistenced.service"]
    assert result.restart_node  # a new driver means lpnode must reopen the GPU


def test_ubuntu_second_run_changes_nothing():
    ops, result = run(UBUNTU_24_04, facts=done_facts("ubuntu"))
    changing = [op.name for op in ops if op.commands and not op.conditional]
    assert changing == []
    assert not ops.has("Hold the driver packages")
    assert result.restart_node is False


def test_ubuntu_driver_upgrade_is_the_only_change():
    facts = done_facts("ubuntu")
    facts[DebPackages] = {k: v for k, v in facts[DebPackages].items() if k != "libnvidia-encode-550-server"}
    ops, result = run(UBUNTU_24_04, facts=facts)
    changing = [op.name for op in ops if op.commands and not op.conditional]
    assert changing == ["nvidia | NVIDIA driver 550 (ubuntu)"]
    assert result.restart_node


# --------------------------------------------------------------------------- Debian


def test_debian_adds_nonfree_pins_the_branch_and_holds():
    ops, _ = run(DEBIAN_12, driver_branch="535")
    sources = ops.named("Debian contrib/non-free/non-free-firmware components")
    text = sources.uploads[0][0].getvalue()
    assert "Suites: bookworm bookworm-updates" in text
    assert "Components: contrib non-free non-free-firmware" in text
    assert ops.named("Refresh the package index for non-free").conditional

    pin = ops.named("Pin the NVIDIA driver to the 535 branch").uploads[0][0].getvalue()
    assert "Package: " + " ".join(DEBIAN_DRIVER) in pin
    assert "Pin: version 535.*" in pin and "Pin-Priority: 1001" in pin

    install = ops.named("NVIDIA driver 535 (debian)")
    assert install.commands[-1].endswith(
        "install --no-install-recommends linux-headers-amd64 " + " ".join(DEBIAN_DRIVER) + " firmware-misc-nonfree")
    assert ops.named("Hold the driver packages").commands == ["apt-mark hold " + " ".join(DEBIAN_DRIVER)]


def test_debian_order_pin_before_install_before_reboot():
    ops, _ = run(DEBIAN_12, driver_branch="535")
    names = ops.names()
    order = [next(i for i, n in enumerate(names) if frag in n) for frag in
             ("non-free", "Pin the NVIDIA driver", "Blacklist nouveau", "NVIDIA driver 535", "Hold the driver",
              "Reboot", "nvidia-persistenced")]
    assert order == sorted(order)


def test_debian_branch_check_runs_after_an_install():
    ops, _ = run(DEBIAN_12, driver_branch="535")
    check = ops.named("Check the installed driver is on the 535 branch")
    assert check.conditional
    assert "dpkg-query -W -f='${Version}' nvidia-driver" in check.commands[0]
    assert "not the 535 branch" in check.commands[0]


def test_debian_second_run_changes_nothing():
    ops, _ = run(DEBIAN_12, facts=done_facts("debian"), driver_branch="535")
    changing = [op.name for op in ops if op.commands and not op.conditional]
    assert changing == []


# --------------------------------------------------------------------------- reboot switch


@pytest.mark.parametrize("distro_fact", [DEBIAN_12, UBUNTU_24_04])
def test_skip_reboot(distro_fact):
    ops, _ = run(distro_fact, skip_reboot=True)
    assert not ops.has("Reboot")
    # Until the operator reboots, the new module is not loaded, so the daemon is only enabled.
    assert ops.named("nvidia-persistenced").commands == ["systemctl enable nvidia-persistenced.service"]


# --------------------------------------------------------------------------- NVENC patch


def test_nvenc_patch_is_opt_in():
    ops, _ = run(UBUNTU_24_04)
    assert not ops.has("NVENC") and not ops.has("nvidia-patch")


def test_nvenc_patch_checks_support_first_with_the_installed_version():
    facts = done_facts("ubuntu")
    facts[(File, (("path", "/opt/nvidia-patch/0123abc/patch.sh"),))] = None  # not fetched yet
    ops, result = run(UBUNTU_24_04, facts=facts, nvenc_patch=True, nvenc_patch_ref="0123abc")
    download = ops.named("keylase nvidia-patch @ 0123abc")
    assert any("https://raw.githubusercontent.com/keylase/nvidia-patch/0123abc/patch.sh" in c for c in download.commands)
    patch = ops.named("NVENC patch for driver 550.127.05")
    check, apply = patch.commands
    assert check.startswith("v=550.127.05; /opt/nvidia-patch/0123abc/patch.sh -c \"$v\" >/dev/null || {")
    assert "does not support driver $v" in check and "exit 1" in check
    assert apply == 'v=550.127.05; /opt/nvidia-patch/0123abc/patch.sh -d "$v"'
    assert result.restart_node  # lpnode must load the patched library


def test_nvenc_patch_on_first_install_reads_the_version_on_the_host():
    ops, _ = run(DEBIAN_12, driver_branch="535", nvenc_patch=True)
    patch = ops.named("NVENC patch for driver (being installed)")
    assert "dpkg-query -W -f='${Version}' nvidia-driver" in patch.commands[0]
    assert "patch.sh -c \"$v\"" in patch.commands[0]
    # Patched before the reboot, so the host comes up with the patched library.
    names = ops.names()
    assert names.index(patch.name) < next(i for i, n in enumerate(names) if "Reboot" in n)


def test_nvenc_patch_already_applied_is_left_alone():
    facts = done_facts("ubuntu")
    facts[(NvencPatchState, (("version", "550.127.05"),))] = "patched"
    facts[(Sha1File, (("path", "/opt/nvidia-patch/master/patch.sh"),))] = "0" * 40
    ops, result = run(UBUNTU_24_04, facts=facts, nvenc_patch=True)
    assert not ops.has("NVENC patch for driver")
    assert result.restart_node is False


def test_nvenc_patch_script_checked_against_its_sha256():
    ops, _ = run(UBUNTU_24_04, nvenc_patch=True, nvenc_patch_sha256="ab" * 32)
    download = ops.named("keylase nvidia-patch")
    assert any("ab" * 32 in cmd for cmd in download.commands)


# --------------------------------------------------------------------------- plans and errors


def test_upstream_version():
    assert upstream_version(UBUNTU_VERSION) == "550.127.05"
    assert upstream_version(DEBIAN_VERSION) == "535.216.01"
    assert upstream_version("1:470.256.02-0ubuntu0.20.04.1") == "470.256.02"


def test_unsupported_distribution_is_refused():
    with pytest.raises(DeployError, match="supports Debian and Ubuntu"):
        run(distro("fedora", "40", ""))


def test_branch_must_be_a_branch_number():
    with pytest.raises(DeployError, match="branch number"):
        run(UBUNTU_24_04, driver_branch="latest")


def test_plans_hold_only_the_driver_not_the_kernel_headers():
    for distro_id in ("debian", "ubuntu"):
        plan = driver_plan(distro_id, "550")
        assert not [p for p in plan.held if p.startswith("linux-headers")]
        assert set(plan.held) <= set(plan.packages)
