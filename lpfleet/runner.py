"""`lpfleet runbook`: the runbook engine (lpfleet/runbook.py) wired to a real fleet: the lock held
on a fleet host, the journal kept on the operator's machine and copied to that host, the plan
confirmed on the terminal."""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from shlex import quote
from typing import Any

from lpfleet.remote import Fleet, RemoteError
from lpfleet.runbook import Journal, LockHeld, Plan, execute

REMOTE_DIR = "/var/lib/lpfleet"
LOCK_PATH = f"{REMOTE_DIR}/runbook.lock"
JOURNAL_PATH = f"{REMOTE_DIR}/journal.jsonl"
STALE_S = 3600.0

# Runs on the lock host. acquire: create the lock file only if there is none (O_EXCL: of two
# operators at once exactly one gets it), else print the holder. refresh/release: only the
# holder's own run may touch it.
_LOCK_SCRIPT = """
import json, os, sys, time
op, path, record = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
def held():
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
if op == "acquire":
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(json.dumps(held())); sys.exit(3)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
elif op in ("refresh", "release"):
    current = held()
    if current is None or current.get("run") != record["run"]:
        print(json.dumps(current)); sys.exit(4)
    if op == "release":
        os.unlink(path)
    else:
        with open(path + ".new", "w") as f:
            json.dump(record, f)
        os.replace(path + ".new", path)
"""


class RemoteLock:
    """The fleet-wide lock as a file on the fleet's lock host (Fleet.lock_host)."""

    def __init__(self, fleet: Fleet, run_id: Callable[[], str], stale_s: float = STALE_S) -> None:
        self.fleet, self._run_id, self.stale_s = fleet, run_id, stale_s
        self.host = fleet.lock_host.name
        self._mine: dict[str, Any] | None = None

    def _call(self, op: str, record: dict[str, Any]) -> Any:
        return self.fleet.run(self.host, f"python3 -c {quote(_LOCK_SCRIPT)} {op} {LOCK_PATH}",
                              stdin=json.dumps(record), check=False)

    def acquire(self, owner: str, runbook: str) -> None:
        now = time.time()
        record = {"owner": owner, "runbook": runbook, "since": now, "seen": now, "run": self._run_id()}
        result = self._call("acquire", record)
        if result.exited == 3:
            held = json.loads(result.stdout)
            raise LockHeld(held["owner"], held["runbook"], held["since"],
                           stale=now - held.get("seen", held["since"]) > self.stale_s,
                           where=f"{LOCK_PATH} on {self.host}")
        if result.exited != 0:
            raise RemoteError(f"{self.host}: could not take the runbook lock: {result.stderr.strip()[-300:]}")
        self._mine = record

    def refresh(self) -> None:
        if self._mine is not None:
            self._mine["seen"] = time.time()
            self._call("refresh", self._mine)

    def release(self) -> None:
        if self._mine is not None:
            self._call("release", self._mine)
            self._mine = None


def local_journal(inventory: str) -> Path:
    """The operator's copy: one file per inventory under $XDG_STATE_HOME/lpfleet (~/.local/state)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "lpfleet"
    return base / f"journal-{Path(inventory).stem}.jsonl"


def mirror_to(fleet: Fleet) -> Callable[[str], None]:
    """Appends each journal line to the lock host's journal too, so whoever runs the next
    runbook from another machine sees what happened."""
    host = fleet.lock_host.name

    def append(line: str) -> None:
        fleet.run(host, f"sh -c 'umask 077; mkdir -p {REMOTE_DIR} && cat >> {JOURNAL_PATH}'", stdin=line + "\n")
    return append


def who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def confirm_on_terminal(question: str) -> bool:
    if not sys.stdin.isatty():
        print(f"{question} [y/N] no terminal to answer on: pass --yes to run without asking", flush=True)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def run_plan(fleet: Fleet, plan: Plan, *, yes: bool, dry: bool, resume: bool,
             out: Callable[[str], None] = print) -> int:
    journal = Journal(local_journal(fleet.inventory), mirror=None if dry else mirror_to(fleet))
    lock = RemoteLock(fleet, lambda: journal.run_id)
    try:
        return execute(plan, journal, lock, who(), confirm=(lambda q: True) if yes else confirm_on_terminal,
                       out=out, resume=resume, dry=dry)
    except LockHeld as exc:
        out(f"refused: {exc}")
        return 3
