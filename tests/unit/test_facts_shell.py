"""roles._facts' shell commands run by the real shell against real files (what a host runs)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from roles._facts import SUMS_FILE, DirectoryFiles, SystemAccount, record_sums_command


def answer(fact, **kwargs) -> object:
    out = subprocess.run(["sh", "-c", fact.command(**kwargs)], capture_output=True, text=True, check=True)
    return fact.process([line for line in out.stdout.splitlines()])


def sha1(data: bytes) -> str:
    import hashlib
    return hashlib.sha1(data).hexdigest()


def test_directory_files_hashes_what_the_sums_file_does_not_vouch_for(tmp_path: Path) -> None:
    (tmp_path / "a.whl").write_bytes(b"wheel a")
    (tmp_path / "name with spaces.txt").write_bytes(b"b")
    (tmp_path / "sub").mkdir()
    first = answer(DirectoryFiles(), path=str(tmp_path))
    assert set(first) == {"a.whl", "name with spaces.txt"}
    assert first["a.whl"][0] == sha1(b"wheel a")
    assert first["a.whl"][1] == int(oct(os.stat(tmp_path / "a.whl").st_mode & 0o777)[2:])
    assert first.hashed == {"a.whl", "name with spaces.txt"}

    subprocess.run(["sh", "-c", record_sums_command(str(tmp_path))], check=True)
    assert (tmp_path / SUMS_FILE).exists()
    second = answer(DirectoryFiles(), path=str(tmp_path))
    assert dict(second) == dict(first) and second.hashed == frozenset()
    assert SUMS_FILE not in second

    # A file rewritten with a new size is hashed again, not taken from the stale sums.
    (tmp_path / "a.whl").write_bytes(b"wheel a, rebuilt")
    third = answer(DirectoryFiles(), path=str(tmp_path))
    assert third["a.whl"][0] == sha1(b"wheel a, rebuilt") and third.hashed == {"a.whl"}


def test_directory_files_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert answer(DirectoryFiles(), path=str(tmp_path / "absent")) == {}


@pytest.mark.parametrize("user,group", [("root", "root"), ("lpfleet-no-such-user", "lpfleet-no-such-group")])
def test_system_account_reads_the_account(user: str, group: str) -> None:
    have = answer(SystemAccount(), user=user, group=group)
    if user == "root":
        assert have == {"group": True, "user": {"group": "root", "home": "/root", "shell": have["user"]["shell"]}}
        assert have["user"]["shell"].startswith("/")
    else:
        assert have == {"group": False, "user": None}
