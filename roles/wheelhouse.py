"""The wheelhouse: lpnode and its dependencies as wheels for a target's Python and platform.

Built on the control machine so fleet hosts never need a package index (or the TLS trust and
egress that would take): the deploy syncs the directory and installs from it with --no-index.
Cached under build/wheelhouse; dependencies are fetched again only when node/pyproject.toml's
dependency list or the target changes, the lpnode wheel is rebuilt only when node/ changes.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pyinfra.api.exceptions import DeployError

REPO = Path(__file__).resolve().parent.parent
NODE_DIR = REPO / "node"
CACHE_DIR = REPO / "build" / "wheelhouse"

# glibc-based wheels any supported Debian/Ubuntu can load (manylinux2014 = glibc 2.17).
PLATFORMS = {
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
    "aarch64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
}
# Files in node/ that are build by-products, not source.
_IGNORED_PARTS = {"__pycache__", "build", "dist", ".pytest_cache"}
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Wheelhouse:
    path: Path  # local directory holding exactly what goes to the host
    build_id: str  # changes whenever any wheel in it changes
    lpnode_wheel: str  # file name of lpnode's own wheel in it


def _node_files() -> list[Path]:
    found = []
    for path in sorted(NODE_DIR.rglob("*")):
        rel = path.relative_to(NODE_DIR)
        if any(part in _IGNORED_PARTS or part.endswith(_IGNORED_SUFFIXES) for part in rel.parts):
            continue
        if path.is_file():
            found.append(path)
    return found


def node_tree_hash() -> str:
    """sha256 over node/'s source files (names and contents)."""
    digest = hashlib.sha256()
    for path in _node_files():
        digest.update(str(path.relative_to(NODE_DIR)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def node_dependencies() -> list[str]:
    with open(NODE_DIR / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise DeployError(f"building the wheelhouse: {what} failed:\n{tail}")


def _download_dependencies(dest: Path, python_version: str, arch: str) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
           "--dest", str(dest)]
    for platform in PLATFORMS[arch]:
        cmd += ["--platform", platform]
    _run(cmd + node_dependencies(), f"pip download for CPython {python_version} on {arch}")


def _build_lpnode_wheel(dest: Path) -> None:
    # Build from a copy: setuptools writes build/ and egg-info into the source tree, which
    # would change node/ and so the very hash that decides when to rebuild.
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "node"
        shutil.copytree(NODE_DIR, src, ignore=shutil.ignore_patterns(*_IGNORED_PARTS, "*.egg-info", "*.pyc"))
        # A fixed timestamp makes the wheel's bytes depend on the source alone.
        env = dict(os.environ, SOURCE_DATE_EPOCH="315532800")
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--wheel-dir", str(dest), str(src)],
            capture_output=True, text=True, env=env,
        )
        if result.returncode != 0:
            raise DeployError(f"building the lpnode wheel failed:\n{result.stderr[-2000:]}")


def _wheel_name_version(filename: str) -> tuple[str, str]:
    name, version = filename.split("-")[:2]
    return re.sub(r"[-_.]+", "-", name).lower(), version


def build(python_version: str, arch: str) -> Wheelhouse:
    """The wheelhouse for CPython ``python_version`` (``3.11``) on ``arch`` (``x86_64``)."""
    if arch not in PLATFORMS:
        raise DeployError(f"no wheelhouse for architecture {arch!r}; lpfleet supports {', '.join(PLATFORMS)}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # pyinfra prepares hosts concurrently in gevent greenlets (threading is patched to match),
    # and a blocking flock would stall every greenlet, the lock holder's build included; so
    # greenlets queue on the lock and the file lock, for other deploys, is polled.
    with _LOCK, open(CACHE_DIR / ".lock", "w") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.2)
        return _build_locked(python_version, arch)


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> bytes:
    """sha256 of a file, once per process for each size and modification time: every
    transcoder and orchestrator of a deploy asks for the same ~50 MB of wheels."""
    return hashlib.sha256(Path(path).read_bytes()).digest()


def _build_locked(python_version: str, arch: str) -> Wheelhouse:
    deps_key = hashlib.sha256(
        "\n".join([python_version, arch, *PLATFORMS[arch], *node_dependencies()]).encode()
    ).hexdigest()[:16]
    deps_dir = CACHE_DIR / "deps" / f"cp{python_version.replace('.', '')}-{arch}-{deps_key}"
    if not (deps_dir / ".complete").exists():
        shutil.rmtree(deps_dir, ignore_errors=True)
        deps_dir.mkdir(parents=True)
        _download_dependencies(deps_dir, python_version, arch)
        (deps_dir / ".complete").touch()

    lpnode_dir = CACHE_DIR / "lpnode" / node_tree_hash()[:16]
    if not (lpnode_dir / ".complete").exists():
        shutil.rmtree(lpnode_dir, ignore_errors=True)
        lpnode_dir.mkdir(parents=True)
        _build_lpnode_wheel(lpnode_dir)
        (lpnode_dir / ".complete").touch()

    wheels = sorted(deps_dir.glob("*.whl")) + sorted(lpnode_dir.glob("*.whl"))
    lpnode_wheel = next(w.name for w in lpnode_dir.glob("lpnode-*.whl"))
    # Pinning every dependency to the wheel that is there makes pip install exactly this set,
    # downgrades included, and skip whatever is already at that version.
    requirements = "".join(
        "{}=={}\n".format(*_wheel_name_version(w.name)) for w in wheels if w.name != lpnode_wheel
    )
    digest = hashlib.sha256(requirements.encode())
    for wheel in wheels:
        stat = wheel.stat()
        digest.update(wheel.name.encode() + _file_sha256(str(wheel), stat.st_size, stat.st_mtime_ns))
    build_id = digest.hexdigest()[:20]

    out = CACHE_DIR / f"cp{python_version.replace('.', '')}-{arch}"
    # Kept beside the directory, not in it: everything in it is synced to the hosts.
    stamp = out.with_name(out.name + ".build-id")
    if out.is_dir() and stamp.exists() and stamp.read_text() == build_id:
        return Wheelhouse(out, build_id, lpnode_wheel)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    for wheel in wheels:
        os.link(wheel, out / wheel.name)
    (out / "requirements.txt").write_text(requirements)
    stamp.write_text(build_id)
    return Wheelhouse(out, build_id, lpnode_wheel)
