"""SSH into lab hosts: the lab key, a generated ssh_config and known_hosts, and `ssh_run`."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from . import config
from .state import Host, LabState, load
from .util import run, write_file


def ssh_dir() -> Path:
    return config.state_dir() / "ssh"


def key_path() -> Path:
    return ssh_dir() / "id_ed25519"


def config_path() -> Path:
    return ssh_dir() / "config"


def known_hosts_path() -> Path:
    return ssh_dir() / "known_hosts"


def ensure_key() -> Path:
    """The lab's SSH key, made once (0600) and kept across `down` (removed by `down --purge`)."""
    key = key_path()
    if not key.exists() or not key.with_suffix(".pub").exists():
        ssh_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lpfleet-lab", "-f", str(key)])
    key.chmod(0o600)
    return key


def write_client_files(hosts: list[tuple[str, str, list[str]]]) -> None:
    """ssh_config with one entry per host (by name and address) and the hosts' real host keys.

    hosts: (name, address, ["ssh-ed25519 AAAA...", ...])."""
    key = key_path()
    kh = known_hosts_path()
    cfg = ["# written by lpfleet lab up; use: ssh -F " + str(config_path()) + " o1", ""]
    known = []
    for name, address, pubkeys in hosts:
        cfg += [
            f"Host {name} {address}",
            f"    HostName {address}",
            f"    User {config.SSH_USER}",
            f"    IdentityFile {key}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {kh}",
            "    StrictHostKeyChecking yes",
            "    CheckHostIP no",
            "    BatchMode yes",
            "    ConnectTimeout 5",
            "    ServerAliveInterval 5",
            "    ServerAliveCountMax 3",
            "    LogLevel ERROR",
            "",
        ]
        for pub in pubkeys:
            known.append(f"{name},{address} {pub}")
    write_file(config_path(), "\n".join(cfg))
    write_file(kh, "\n".join(known) + "\n")


def _as_host(host: str | Host, state: LabState | None) -> tuple[Host, LabState]:
    st = state or load()
    if isinstance(host, Host):
        return host, st
    return st.host(host), st


def ssh_argv(
    host: str | Host,
    command: str | Sequence[str] | None = None,
    *,
    state: LabState | None = None,
    tty: bool = False,
    connect_timeout: float | None = None,
) -> list[str]:
    """The ssh command line that runs `command` (a shell string, or argv quoted for the remote
    shell) on a lab host; no command means an interactive shell."""
    h, st = _as_host(host, state)
    argv = ["ssh", "-F", st.ssh_config]
    if connect_timeout is not None:
        argv += ["-o", f"ConnectTimeout={max(1, int(connect_timeout))}"]
    if tty:
        argv.append("-t")
    argv.append(h.name)
    if command is not None:
        argv += ["--", command if isinstance(command, str) else shlex.join(command)]
    return argv


def ssh_run(
    host: str | Host,
    command: str | Sequence[str],
    *,
    check: bool = False,
    timeout: float | None = 120,
    input: str | None = None,
    state: LabState | None = None,
    connect_timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Runs a command on a lab host as root over SSH and returns its CompletedProcess (text
    stdout/stderr captured). ssh itself failing gives returncode 255. A timeout gives
    returncode 124 rather than an exception, so that fault tests can assert on it."""
    argv = ssh_argv(host, command, state=state, connect_timeout=connect_timeout)
    try:
        p = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        p = subprocess.CompletedProcess(argv, 124, out, err + f"\n(timed out after {timeout}s)")
    if check and p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, argv, p.stdout, p.stderr)
    return p


def reachable(host: str | Host, *, state: LabState | None = None, timeout: float = 3) -> bool:
    """True if the host's sshd accepts the lab key within `timeout` seconds."""
    p = ssh_run(host, "true", state=state, timeout=timeout + 2, connect_timeout=timeout)
    return p.returncode == 0
