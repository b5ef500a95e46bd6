"""Facts the roles need that pyinfra does not ship."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase


class SshClientAddress(FactBase):
    """The address the current SSH session comes from (``$SSH_CLIENT``), or None.

    None over a connector that is not SSH (``@local``) or when sudo dropped the variable.
    """

    def command(self) -> str:
        return 'echo "${SSH_CLIENT:-${SSH_CONNECTION:-}}"'

    def process(self, output: list[str]) -> str | None:
        fields = " ".join(output).split()
        return fields[0] if fields else None


class PythonVersion(FactBase):
    """``python3``'s ``major.minor`` on the host, or None if there is no python3."""

    def command(self) -> str:
        return "python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])' 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        text = " ".join(output).strip()
        return text or None


class ContainerVirt(FactBase):
    """The container technology the host runs in (``systemd-nspawn``, ``lxc``...), or None."""

    def command(self) -> str:
        return "systemd-detect-virt --container 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        text = " ".join(output).strip()
        return None if text in ("", "none") else text


class AptHolds(FactBase):
    """Packages marked ``apt-mark hold``."""

    default = list

    def command(self) -> str:
        return "apt-mark showhold 2>/dev/null || true"

    def process(self, output: list[str]) -> list[str]:
        return sorted(line.strip() for line in output if line.strip())


# Where Debian and Ubuntu put libnvidia-encode; the same list keylase's patch.sh searches.
NVIDIA_LIB_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu/nvidia/current",
    "/usr/lib64",
    "/usr/lib",
)
NVENC_PATCH_BACKUP_DIR = "/opt/nvidia/libnvidia-encode-backup"


class NvencPatchState(FactBase):
    """Whether keylase's NVENC patch is applied to driver ``version``.

    ``patched`` when patch.sh's backup of libnvidia-encode exists and differs from the live
    library (what patch.sh itself uses to skip a second patch), ``unpatched`` when the library
    is there but unpatched, ``missing`` when the driver's library is not installed.
    """

    def command(self, version: str) -> str:
        lib = f"libnvidia-encode.so.{version}"
        backup = shlex.quote(f"{NVENC_PATCH_BACKUP_DIR}/{lib}")
        dirs = " ".join(shlex.quote(d) for d in NVIDIA_LIB_DIRS)
        return (
            f"for d in {dirs}; do f=\"$d\"/{shlex.quote(lib)}; [ -e \"$f\" ] || continue; "
            f"if [ -f {backup} ] && ! cmp -s {backup} \"$f\"; then echo patched; "
            "else echo unpatched; fi; exit 0; done; echo missing"
        )

    def process(self, output: list[str]) -> str:
        return " ".join(output).strip() or "missing"


class DirectoryFiles(FactBase):
    """The regular files directly in ``path``: ``{name: (sha1, mode, user, group)}``, mode as
    octal digits (``644``); empty if the directory does not exist. One round trip for a whole
    directory, where pyinfra's per-file facts take two per file."""

    default = dict

    def command(self, path: str) -> str:
        return (
            f"cd {shlex.quote(path)} 2>/dev/null || exit 0; for f in *; do [ -f \"$f\" ] || continue; "
            "printf '%s %s\\n' \"$(stat -c '%a %U %G' -- \"$f\")\" \"$(sha1sum -- \"$f\")\"; done"
        )

    def process(self, output: list[str]) -> dict[str, tuple[str, int, str, str]]:
        files = {}
        for line in output:
            parts = line.split(None, 4)
            if len(parts) == 5:
                mode, user, group, sha1, name = parts
                files[name.strip()] = (sha1, int(mode), user, group)
        return files
