"""Small helpers: running commands, the lab lock, progress output."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from . import config

Log = Callable[[str], None]


def stderr_log(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def quiet_log(msg: str) -> None:
    pass


def run(
    argv: Sequence[str], *, check: bool = True, capture: bool = True, timeout: float | None = 120, **kw
) -> subprocess.CompletedProcess:
    """Runs a command on the control machine; a failure raises LabError with its stderr."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    if capture:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
    try:
        p = subprocess.run(list(argv), text=True, timeout=timeout, **kw)
    except FileNotFoundError:
        raise config.LabError(f"{argv[0]} not found: run scripts/setup (it installs the lab's tools)") from None
    except subprocess.TimeoutExpired:
        raise config.LabError(f"timed out after {timeout}s: {' '.join(argv)}") from None
    if check and p.returncode != 0:
        err = (p.stderr or "").strip() if capture else ""
        raise config.LabError(f"command failed ({p.returncode}): {' '.join(argv)}\n{err}".rstrip())
    return p


def require_root_and_tools(tools: Sequence[str]) -> None:
    if os.geteuid() != 0:
        raise config.LabError("the lab needs root (network namespaces, mounts, systemd-nspawn)")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise config.LabError(
            f"missing {', '.join(missing)}: run scripts/setup (apt packages debootstrap "
            "systemd-container nftables iproute2 openssh-client)"
        )


@contextlib.contextmanager
def locked(timeout: float = 900) -> Iterator[None]:
    """Serializes lab changes between processes (two test sessions, a CLI beside a test)."""
    d = config.state_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise config.LabError(f"another lab command holds {d / '.lock'}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
