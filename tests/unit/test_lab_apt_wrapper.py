"""lab/aptcache.apt_get_wrapper, run by the real shell: a hung `apt-get update` is killed and
tried again; everything else reaches apt-get unchanged."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lab.aptcache import apt_get_wrapper


def fake_apt_get(tmp_path: Path, hangs: int) -> Path:
    """An apt-get that records its arguments and hangs on its first ``hangs`` updates."""
    fake = tmp_path / "apt-get"
    fake.write_text(f"""#!/bin/sh
echo "$*" >> {tmp_path}/calls
n=$(grep -c update {tmp_path}/calls)
case "$*" in *update*) [ "$n" -le {hangs} ] && exec sleep 60 ;; esac
exit 0
""")
    fake.chmod(0o755)
    return fake


def run(tmp_path: Path, hangs: int, *args: str) -> subprocess.CompletedProcess[str]:
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(apt_get_wrapper(real=str(fake_apt_get(tmp_path, hangs)), timeout_s=1, tries=3))
    wrapper.chmod(0o755)
    return subprocess.run([str(wrapper), *args], capture_output=True, text=True, timeout=60)


def test_a_hung_update_is_tried_again(tmp_path: Path) -> None:
    p = run(tmp_path, 2, "-q", "update")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "calls").read_text().splitlines() == ["-q update"] * 3
    assert "try 2 of 3" in p.stderr


def test_an_update_that_always_hangs_fails_after_the_last_try(tmp_path: Path) -> None:
    p = run(tmp_path, 5, "update")
    assert p.returncode == 1 and len((tmp_path / "calls").read_text().splitlines()) == 3


def test_other_commands_pass_through_once(tmp_path: Path) -> None:
    p = run(tmp_path, 5, "install", "-y", "nftables")
    assert p.returncode == 0 and (tmp_path / "calls").read_text().splitlines() == ["install -y nftables"]
