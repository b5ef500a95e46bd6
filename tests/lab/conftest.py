"""Lab test fixtures: `lab` brings the lab up once per session (idempotent) and returns its state.

The lab stays up after the session (other lab tests, e.g. the deploy tests, and the next session
reuse it; a warm `up` takes under a second). To tear it down at the end of the session:

    LPFLEET_LAB_DOWN=1 .venv/bin/python -m pytest tests/lab -q
    .venv/bin/python -m pytest tests/lab -q --lab-down      # when tests/lab is on the command line
    .venv/bin/lpfleet lab down                              # any time

Lab tests need root and the lab's tools (scripts/setup installs them); without them they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import lab as lab_pkg
from lab import config as lab_config

#: Seconds a lab test may take, including a cold `up` (debootstrap) in the first test's setup.
LAB_TEST_TIMEOUT = 900


def pytest_addoption(parser):
    parser.addoption(
        "--lab-down",
        action="store_true",
        default=False,
        help="tear the lab down (lpfleet lab down) at the end of the session; "
        "same as LPFLEET_LAB_DOWN=1",
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("lab") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(LAB_TEST_TIMEOUT))


def lpfleet(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Runs the lpfleet CLI of this checkout (same interpreter as the tests)."""
    p = subprocess.run(
        [sys.executable, "-m", "lpfleet.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and p.returncode != 0:
        raise AssertionError(
            f"lpfleet {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        )
    return p


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root"
    missing = [t for t in ("debootstrap", "systemd-nspawn", "nft", "ip", "ssh") if not shutil.which(t)]
    if missing:
        return f"lab tools missing ({', '.join(missing)}): run scripts/setup"
    return None


def _want_down(config) -> bool:
    return bool(config.getoption("--lab-down", default=False)) or os.environ.get(
        "LPFLEET_LAB_DOWN", ""
    ) not in ("", "0", "no", "false")


@pytest.fixture(scope="session")
def lab(request) -> lab_pkg.LabState:
    """The running lab (at least o1, t1, t2, mon1; hosts added by hand, e.g. --extra, are kept)."""
    # Not a skip: a missing tool would hide the tier CI exists to run.
    reason = _missing_prerequisite()
    if reason:
        pytest.fail(reason)
    names = list(lab_config.DEFAULT_HOSTS)
    if lab_pkg.state.exists():
        try:
            names = lab_config.plan_hosts(lab_pkg.load().names + names, 0)
        except lab_pkg.LabError:
            pass
    if _want_down(request.config):
        request.addfinalizer(lambda: lpfleet("lab", "down", check=False))
    p = lpfleet("lab", "up", "--hosts", ",".join(names), timeout=LAB_TEST_TIMEOUT - 30)
    sys.stderr.write(p.stderr)
    return lab_pkg.load()
