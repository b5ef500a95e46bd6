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


class SystemAccount(FactBase):
    """Whether group ``group`` exists, and user ``user``'s primary group, home and shell (None
    if there is no such user). pyinfra's Users fact runs lastlog and id for every account on
    the host: a tenth of a second per host on every run for the one account a role needs."""

    @staticmethod
    def default() -> dict[str, object]:
        return {"group": False, "user": None}

    def command(self, user: str, group: str) -> str:
        u, g = shlex.quote(user), shlex.quote(group)
        return (f"getent group {g} >/dev/null && echo group; "
                f"e=$(getent passwd {u}) && echo \"user $(id -gn {u}):$(echo \"$e\" | cut -d: -f6,7)\"; true")

    def process(self, output: list[str]) -> dict[str, object]:
        answer = self.default()
        for line in output:
            if line == "group":
                answer["group"] = True
            elif line.startswith("user "):
                primary, home, shell = line[5:].split(":", 2)
                answer["user"] = {"group": primary, "home": home, "shell": shell}
        return answer


# Beside the files sync_directory keeps: "<size> <mtime> <sha1> <name>" per file, written after
# every change, so a re-run hashes only files whose size or modification time moved (the
# wheelhouse is ~50 MB of wheels; hashing all of it was a third of a no-change deploy).
SUMS_FILE = ".lpfleet-sha1sums"
_SUMS_END = "##LPFLEET-SUMS-END##"


class DirectoryListing(dict):
    """DirectoryFiles' answer: ``{name: (sha1, mode, user, group)}``, plus ``hashed``, the
    names whose checksum was computed because SUMS_FILE did not vouch for them."""

    hashed: frozenset[str] = frozenset()


class DirectoryFiles(FactBase):
    """The regular files directly in ``path``: ``{name: (sha1, mode, user, group)}``, mode as
    octal digits (``644``); empty if the directory does not exist. One round trip for a whole
    directory, where pyinfra's per-file facts take two per file. A file's checksum comes from
    SUMS_FILE when its size and modification time still match it (rsync's quick check)."""

    default = DirectoryListing

    def command(self, path: str) -> str:
        # One find, one awk and a sha1sum only per file the sums file does not vouch for: a
        # stat and an awk per file cost 0.27 s on the 61-file wheelhouse, more than all the
        # other facts of a no-change deploy together. Input to awk: the sums file ("size mtime
        # sha1 name"), a marker, then find's "mode user group size mtime name".
        return (
            f"cd {shlex.quote(path)} 2>/dev/null || exit 0; "
            f"{{ cat {SUMS_FILE} 2>/dev/null; echo '{_SUMS_END}'; "
            "find . -mindepth 1 -maxdepth 1 -type f ! -name '.*' -printf '%m %u %g %s %T@ %f\\n'; } | "
            "awk -v end='" + _SUMS_END + "' '"
            "$0 == end { files = 1; next } "
            "!files { known[$1 \" \" $2 \" \" substr($0, length($1 $2 $3) + 4)] = $3; next } "
            "{ name = substr($0, length($1 $2 $3 $4 $5) + 6); k = $4 \" \" int($5) \" \" name; "
            "if (k in known) print $1, $2, $3, \"known\", known[k], name; "
            "else print $1, $2, $3, \"hashed\", \"-\", name }' | "
            "while read -r m u g h s n; do "
            "if [ \"$h\" = hashed ]; then s=$(sha1sum -- \"$n\" | cut -d' ' -f1); fi; "
            "printf '%s %s %s %s %s %s\\n' \"$m\" \"$u\" \"$g\" \"$h\" \"$s\" \"$n\"; done"
        )

    def process(self, output: list[str]) -> DirectoryListing:
        files = DirectoryListing()
        hashed = set()
        for line in output:
            parts = line.split(" ", 5)
            if len(parts) == 6:
                mode, user, group, how, sha1, name = parts
                files[name] = (sha1, int(mode), user, group)
                if how == "hashed":
                    hashed.add(name)
        files.hashed = frozenset(hashed)
        return files


def record_sums_command(path: str) -> str:
    """A command that rewrites ``path``'s SUMS_FILE from the files there now."""
    d = shlex.quote(path)
    return (
        f"cd {d} && for f in *; do [ -f \"$f\" ] || continue; "
        "printf '%s %s %s\\n' \"$(stat -c '%s %Y' -- \"$f\")\" \"$(sha1sum -- \"$f\" | cut -d' ' -f1)\" \"$f\"; "
        f"done > {SUMS_FILE}.new && mv -f {SUMS_FILE}.new {SUMS_FILE}"
    )


# Run on the host by ConfigLoaded: read the service's own reload metrics and compare them with
# the files' modification times (whole seconds: the metric is a Unix time in seconds).
_CONFIG_LOADED_SCRIPT = """
import glob, os, sys, urllib.request
url, prefix, *patterns = sys.argv[1:]
try:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
except Exception:
    print("unknown")
    sys.exit()
values = dict(line.split()[:2] for line in text.splitlines() if line.startswith(prefix + "_"))
loaded = float(values.get(prefix + "_success_timestamp_seconds", 0))
ok = values.get(prefix + "_successful") == "1"
newest = max((int(os.stat(p).st_mtime) for pattern in patterns for p in glob.glob(pattern)), default=0)
print("loaded" if ok and newest <= loaded else "stale")
"""


def config_loaded_command(metrics_url: str, prefix: str, patterns: list[str]) -> str:
    """A command printing ``loaded``, ``stale`` or ``unknown`` (see ConfigLoaded)."""
    args = " ".join(shlex.quote(a) for a in (metrics_url, prefix, *patterns))
    return f"python3 -c {shlex.quote(_CONFIG_LOADED_SCRIPT)} {args}"


class ConfigLoaded(FactBase):
    """Whether a Prometheus-style service (Prometheus, Alertmanager) runs the configuration
    that is on disk: ``True`` when its last reload succeeded and came after every file matching
    ``patterns`` was last written, ``False`` when a file is newer or the last reload failed,
    ``None`` when nothing answers at ``metrics_url`` (not installed or stopped: a start reads
    what is there).

    Both services report ``<prefix>_successful`` and ``<prefix>_success_timestamp_seconds``
    (prefix ``prometheus_config_last_reload``, ``alertmanager_config_last_reload``). This is
    what makes a deploy that stopped between putting a file live and reloading reload on the
    next run, instead of believing the file's content to be in use.
    """

    def command(self, metrics_url: str, prefix: str, patterns: list[str]) -> str:
        return config_loaded_command(metrics_url, prefix, patterns)

    def process(self, output: list[str]) -> bool | None:
        text = " ".join(output).strip()
        return {"loaded": True, "stale": False}.get(text)
