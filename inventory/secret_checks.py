"""Checks of the secrets an inventory names: each is a file (mode 0600) or an environment
variable on the machine the deploy runs from, never a value in the inventory."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from inventory.hosts import HostSpec, Problem


def secret_source(data: Mapping[str, Any], key: str) -> tuple[str, str] | None:
    if data.get(f"{key}_file"):
        return ("file", str(Path(str(data[f"{key}_file"])).expanduser()))
    if data.get(f"{key}_env"):
        return ("environment variable", str(data[f"{key}_env"]))
    return None


def check_secret_file(host: str, path_value: str, key: str, what: str) -> list[Problem]:
    path = Path(path_value).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        return [Problem(host, f"{what} file {path} ({key}) does not exist on this machine. Fix: create it "
                              f"(install -m 600 /dev/null {path}, then write the secret into it) or fix the path")]
    except OSError as exc:
        return [Problem(host, f"{what} file {path} ({key}) cannot be read: {exc.strerror}")]
    if not stat.S_ISREG(st.st_mode):
        return [Problem(host, f"{what} file {path} ({key}) is not a regular file")]
    if st.st_mode & 0o077:
        return [Problem(host, f"{what} file {path} ({key}) is open to group/others (mode "
                              f"{stat.S_IMODE(st.st_mode):04o}). Fix: chmod 600 {path}")]
    if st.st_size == 0:
        return [Problem(host, f"{what} file {path} ({key}) is empty. Fix: write the secret into it")]
    return []


def check_secret(h: HostSpec, key: str, what: str, environ: Mapping[str, str], required: bool) -> list[Problem]:
    source = secret_source(h.data, key)
    if source is None:
        if not required:
            return []
        return [Problem(h.name, f"no {what}: set {key}_file (a path on this machine) or {key}_env (the name of "
                                "an environment variable holding it) in the inventory data; never the value")]
    kind, name = source
    if kind == "file":
        return check_secret_file(h.name, name, f"{key}_file", what)
    if not environ.get(name):
        return [Problem(h.name, f"{what}: environment variable {name} ({key}_env) is not set or empty. "
                                f"Fix: export {name}=... in the shell you deploy from (or set {key}_file)")]
    return []
