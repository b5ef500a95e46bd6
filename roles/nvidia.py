"""NVIDIA driver for GPU transcoders: a pinned branch, held, nouveau off, persistence on, and
optionally keylase's NVENC session patch.

Operators pin and hold the driver because an unattended driver update changes the NVENC
session cap and silently drops the NVENC patch (a patch is per exact driver version).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import ClassVar

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt, files, server, systemd

from roles._facts import AptHolds, NvencPatchState
from roles._ops import jinja_options, template_path
from roles.settings import RoleSettings, at_least, setting

NOUVEAU_BLACKLIST = "/etc/modprobe.d/lpfleet-blacklist-nouveau.conf"
APT_PREFERENCES = "/etc/apt/preferences.d/lpfleet-nvidia"
DEBIAN_SOURCES = "/etc/apt/sources.list.d/lpfleet-nonfree.sources"
NVENC_PATCH_DIR = "/opt/nvidia-patch"
NVENC_PATCH_URL = "https://raw.githubusercontent.com/keylase/nvidia-patch/{ref}/patch.sh"


@dataclass(frozen=True)
class DriverPlan:
    """What to install on one distribution."""

    distro: str  # "debian" or "ubuntu"
    packages: tuple[str, ...]  # installed
    held: tuple[str, ...]  # apt-mark hold (the driver itself, not the kernel headers)
    version_package: str  # its version is the driver version (550.127.05-...)
    pinned: tuple[str, ...] = ()  # apt preferences pin these to the branch (Debian)


def driver_plan(distro_id: str, branch: str) -> DriverPlan:
    """Which packages make up driver ``branch`` on Debian or Ubuntu."""
    if not re.fullmatch(r"\d{3}", branch):
        raise DeployError(f"{host.name}: nvidia_driver_branch must be a branch number such as '550', not {branch!r}")
    if distro_id == "ubuntu":
        # Ubuntu names the branch in the package, so the name is the pin. The -server
        # (ERD) flavour is the one supported for years on headless machines.
        driver = f"nvidia-driver-{branch}-server"
        utils = f"nvidia-utils-{branch}-server"
        encode = f"libnvidia-encode-{branch}-server"
        # DKMS builds the module against the running kernel's headers.
        return DriverPlan("ubuntu", ("linux-headers-generic", driver, utils, encode), (driver, utils, encode), utils)
    if distro_id == "debian":
        # Debian ships one branch per release in non-free; the apt preferences pin keeps a
        # backport or a point release of another branch out.
        debian = ("nvidia-driver", "nvidia-smi", "nvidia-persistenced", "libnvidia-encode1", "libnvcuvid1")
        return DriverPlan(
            "debian",
            ("linux-headers-amd64", *debian, "firmware-misc-nonfree"),
            debian,
            "nvidia-driver",
            pinned=debian,
        )
    raise DeployError(f"{host.name}: the nvidia role supports Debian and Ubuntu, not {distro_id or 'this OS'}")


def upstream_version(deb_version: str) -> str:
    """``1:550.127.05-0ubuntu1`` -> ``550.127.05``: the version NVIDIA and patch.sh use."""
    return deb_version.split(":", 1)[-1].split("-", 1)[0].split("~", 1)[0]


def installed_driver_version(plan: DriverPlan) -> str | None:
    versions = host.get_fact(DebPackages).get(plan.version_package)
    return upstream_version(sorted(versions)[-1]) if versions else None


@dataclass
class NvidiaResult:
    """For the node role: restart lpnode when the NVENC library it loads was changed."""

    restart_node: bool


@dataclass(frozen=True)
class NvidiaSettings(RoleSettings):
    """The nvidia role's settings: inventory data ``nvidia_<field>``."""

    PREFIX: ClassVar[str] = 'nvidia_'
    ROLE: ClassVar[str] = 'nvidia'

    driver_branch: str = setting(
        '550',
        doc="the branch to pin (`550`: 8 NVENC sessions on consumer cards without the patch); Debian "
            "installs the branch its release ships in non-free and pins it")
    skip_reboot: bool = setting(
        False,
        doc="never reboot; a changed driver then waits for the operator's reboot (lpnode's GPU "
            "preflight fails until then)")
    nvenc_patch: bool = setting(
        False,
        doc="apply keylase/nvidia-patch to lift the consumer-card NVENC session cap (opt-in: it "
            "modifies a driver library); the deploy first checks the driver is supported")
    nvenc_patch_ref: str = setting(
        'master',
        doc="git ref of keylase/nvidia-patch to fetch patch.sh from; pin a commit so a re-run never "
            "picks up a different script")
    nvenc_patch_sha256: str | None = setting(
        None,
        doc="the expected sha256 of that patch.sh (recommended with a pinned ref)")
    debian_mirror: str = setting("http://deb.debian.org/debian", doc='Debian mirror for the non-free components')
    reboot_timeout: int = setting(
        600, check=at_least(1),
        doc="seconds to wait for the host to come back after a reboot")


@deploy("nvidia")
def nvidia(
    settings: NvidiaSettings | None = None,
) -> NvidiaResult:
    """Install and pin the NVIDIA driver (NvidiaSettings)."""
    s = settings or NvidiaSettings()
    distro = host.get_fact(LinuxDistribution)
    meta = distro["release_meta"]
    plan = driver_plan(str(meta.get("ID", "")).lower(), str(s.driver_branch))

    if plan.distro == "debian":
        codename = meta.get("VERSION_CODENAME") or meta.get("CODENAME")
        sources = files.template(
            name="Debian contrib/non-free/non-free-firmware components",
            src=template_path("debian-nonfree.sources.j2"),
            dest=DEBIAN_SOURCES,
            mode="644",
            jinja_env_kwargs=jinja_options(),
            mirror=s.debian_mirror,
            codename=codename,
        )
        apt.update(name="Refresh the package index for non-free", _if=sources.did_change)
    if plan.pinned:
        files.template(
            name=f"Pin the NVIDIA driver to the {s.driver_branch} branch",
            src=template_path("nvidia-apt-preferences.j2"),
            dest=APT_PREFERENCES,
            mode="644",
            jinja_env_kwargs=jinja_options(),
            branch=s.driver_branch,
            packages=plan.pinned,
        )

    blacklist = files.template(
        name="Blacklist nouveau",
        src=template_path("nouveau-blacklist.conf.j2"),
        dest=NOUVEAU_BLACKLIST,
        mode="644",
        jinja_env_kwargs=jinja_options(),
    )
    # The initramfs loads nouveau before /etc/modprobe.d is read from the root filesystem.
    server.shell(
        name="Rebuild the initramfs without nouveau",
        commands=["update-initramfs -u"],
        _if=blacklist.did_change,
    )

    installed = host.get_fact(DebPackages)
    missing = [p for p in plan.packages if p not in installed]
    driver = apt.packages(
        name=f"NVIDIA driver {s.driver_branch} ({plan.distro})",
        packages=list(plan.packages),
        no_recommends=True,
        update=bool(missing),
    )
    # A branch that is not in the archive makes apt fall back to whatever it has; stop there
    # rather than run (and patch) a driver nobody chose.
    server.shell(
        name=f"Check the installed driver is on the {s.driver_branch} branch",
        commands=[
            f"v=$(dpkg-query -W -f='${{Version}}' {plan.version_package}); "
            f"case \"${{v#*:}}\" in {s.driver_branch}.*) ;; *) echo \"lpfleet: installed NVIDIA driver is $v, "
            f"not the {s.driver_branch} branch; set nvidia_driver_branch to a branch this release has "
            f"(apt-cache policy {plan.version_package})\" >&2; exit 1;; esac"
        ],
        _if=driver.did_change,
    )

    held = host.get_fact(AptHolds)
    to_hold = [p for p in plan.held if p not in held]
    if to_hold:
        server.shell(
            name="Hold the driver packages (apt-mark hold)",
            commands=[f"apt-mark hold {' '.join(to_hold)}"],
        )

    patched = _nvenc_patch(plan, s.nvenc_patch_ref, s.nvenc_patch_sha256) if s.nvenc_patch else False

    pending_reboot = driver.will_change and s.skip_reboot
    if not s.skip_reboot:
        server.reboot(
            name="Reboot into the new NVIDIA driver",
            reboot_timeout=s.reboot_timeout,
            _if=driver.did_change,
        )
    elif driver.will_change:
        logger.warning(f"{host.name}: the NVIDIA driver changes and nvidia_skip_reboot is set; "
                       "reboot the host to load it")

    # The daemon cannot start before the new kernel module is loaded, i.e. before the reboot.
    systemd.service(
        name="nvidia-persistenced (keeps the GPUs initialised between jobs)",
        service="nvidia-persistenced",
        enabled=True,
        running=not pending_reboot,
    )
    return NvidiaResult(restart_node=patched or driver.will_change)


def _nvenc_patch(plan: DriverPlan, ref: str, sha256: str | None) -> bool:
    """Apply keylase's patch.sh to the installed driver; True if it will change a library."""
    script = f"{NVENC_PATCH_DIR}/{ref}/patch.sh"
    files.download(
        name=f"keylase nvidia-patch @ {ref}",
        src=NVENC_PATCH_URL.format(ref=ref),
        dest=script,
        mode="755",
        sha256sum=sha256,
    )
    version = installed_driver_version(plan)
    if version is not None and host.get_fact(NvencPatchState, version=version) == "patched":
        return False
    # On a first deploy the driver is installed by this very run, so its version is only known
    # on the host; later runs know it from the package facts and say it in the output.
    version_expr = (
        shlex.quote(version) if version is not None
        else f"\"$(dpkg-query -W -f='${{Version}}' {plan.version_package} | sed 's/^[0-9]*://; s/[-~].*//')\""
    )
    patch = server.shell(
        name=f"NVENC patch for driver {version or '(being installed)'}: check support, then patch",
        commands=[
            f"v={version_expr}; {script} -c \"$v\" >/dev/null || {{ echo \"lpfleet: keylase nvidia-patch "
            f"@ {ref} does not support driver $v; pin nvidia_driver_branch to a supported version "
            f"({script} -l lists them), update nvidia_nvenc_patch_ref, or set nvidia_nvenc_patch: "
            "false\" >&2; exit 1; }",
            f"v={version_expr}; {script} -d \"$v\"",
        ],
    )
    return patch.will_change
