"""The runbook engine: a plan shown before anything changes, one fleet-wide lock, a journal of
every step, a failure that stops the whole run, and --resume from the failed step.

Pure logic behind two small interfaces, so every rule is unit-tested without hosts: a runbook
builds a Plan (waves of Steps, each an action and the live check that proves it), and `execute`
runs it against a Lock (held on a fleet host in production, a file in tests) and a Journal (a
JSON-lines file per fleet on the operator's machine, copied to the lock host). What no runbook
tool does alone (docs/runbooks.md): pyinfra carries on to the next host after a failure with
`--serial -y` (pyinfra #1195) and has no lock, resume or audit log.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class StepFailed(Exception):
    """A step's action or check failed; the message says what was seen."""


class LockHeld(Exception):
    def __init__(self, owner: str, runbook: str, since: float, stale: bool, where: str = "") -> None:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
        stale_text = (": the lock looks stale (its holder stopped reporting); once you have made sure nobody is "
                      f"still running it, remove {where or 'the lock'}") if stale else ""
        super().__init__(f"the fleet is locked by {owner} running {runbook} since {when} "
                         f"({(time.time() - since) / 60:.0f} min ago){stale_text}")
        self.owner, self.runbook, self.since, self.stale = owner, runbook, since, stale


@dataclass(frozen=True)
class Step:
    id: str  # stable across runs: how --resume finds where it stopped ("t1:drain")
    what: str  # for the plan and the journal; never a secret
    action: Callable[[], str | None]  # does the step and proves it; returns what it saw, raises StepFailed
    host: str | None = None
    check: str = ""  # the live signal that proves it, for the plan


@dataclass(frozen=True)
class Wave:
    name: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Plan:
    runbook: str
    waves: tuple[Wave, ...]

    def steps(self) -> list[Step]:
        return [s for w in self.waves for s in w.steps]

    def fingerprint(self) -> str:
        """What --resume compares: the same steps in the same order."""
        return hashlib.sha256("\n".join(s.id for s in self.steps()).encode()).hexdigest()[:16]

    def render(self, done: Iterable[str] = ()) -> str:
        finished = set(done)
        lines = [f"runbook {self.runbook}: {len(self.steps())} steps in {len(self.waves)} waves"]
        n = 0
        for wave in self.waves:
            lines.append(f"  {wave.name}")
            for step in wave.steps:
                n += 1
                mark = "done" if step.id in finished else f"{n:>3}."
                check = f"  (checked by: {step.check})" if step.check else ""
                lines.append(f"    {mark} {step.what}{check}")
        return "\n".join(lines)


class Lock(Protocol):
    def acquire(self, owner: str, runbook: str) -> None: ...  # raises LockHeld
    def refresh(self) -> None: ...
    def release(self) -> None: ...


class FileLock:
    """The lock as a JSON file ({owner, runbook, since, seen}); `seen` is refreshed at every step,
    and a lock not refreshed for ``stale_s`` is reported as stale, never broken silently."""

    def __init__(self, path: Path, stale_s: float = 3600.0, clock: Callable[[], float] = time.time) -> None:
        self.path, self.stale_s, self._clock = path, stale_s, clock
        self._mine: dict[str, Any] | None = None

    def acquire(self, owner: str, runbook: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        now = self._clock()
        record = {"owner": owner, "runbook": runbook, "since": now, "seen": now}
        try:
            with open(self.path, "x") as f:  # O_EXCL: of two at once, exactly one gets it
                json.dump(record, f)
        except FileExistsError:
            held = json.loads(self.path.read_text())
            raise LockHeld(held["owner"], held["runbook"], held["since"],
                           stale=now - held.get("seen", held["since"]) > self.stale_s, where=str(self.path)) from None
        self._mine = record

    def refresh(self) -> None:
        if self._mine is not None:
            self._mine["seen"] = self._clock()
            tmp = self.path.with_suffix(".new")
            tmp.write_text(json.dumps(self._mine))
            tmp.replace(self.path)

    def release(self) -> None:
        if self._mine is not None:
            self.path.unlink(missing_ok=True)
            self._mine = None


@dataclass
class Journal:
    """Every event of every run, one JSON object a line: who, what, when, result."""

    path: Path
    clock: Callable[[], float] = time.time
    run_id: str = ""
    # Also gets every line (the copy on the lock host); best effort: the local file is the record.
    mirror: Callable[[str], None] | None = None
    mirror_errors: list[str] = field(default_factory=list)

    def record(self, event: str, **fields: Any) -> None:
        entry = {"time": self.clock(), "run": self.run_id, "event": event, **fields}
        line = json.dumps(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")
        if self.mirror is not None:
            try:
                self.mirror(line)
            except Exception as exc:  # noqa: BLE001 - the copy must never stop the run
                self.mirror_errors.append(str(exc))

    def entries(self) -> list[dict[str, Any]]:
        try:
            return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def unfinished(self, runbook: str) -> tuple[str, str, set[str]] | None:
        """The last run of ``runbook`` if it did not finish: (run id, plan fingerprint, steps done)."""
        runs = [e for e in self.entries() if e.get("runbook") == runbook and e["event"] == "start"]
        if not runs:
            return None
        last = runs[-1]["run"]
        events = [e for e in self.entries() if e["run"] == last]
        if any(e["event"] == "finished" for e in events):
            return None
        done = {e["step"] for e in events if e["event"] == "step" and e.get("result") == "ok"}
        return last, runs[-1]["plan"], done


def execute(plan: Plan, journal: Journal, lock: Lock, who: str, *, confirm: Callable[[str], bool],
            out: Callable[[str], None] = print, resume: bool = False, dry: bool = False) -> int:
    """Show the plan, ask, then run every step in order under the lock. The first failure
    stops the run (exit 1; --resume continues from that step). 0 when every step succeeded."""
    done: set[str] = set()
    if resume:
        previous = journal.unfinished(plan.runbook)
        if previous is None:
            out(f"nothing to resume: the last run of {plan.runbook} finished (or there was none)")
            return 2
        run_id, fingerprint, done = previous
        if fingerprint != plan.fingerprint():
            out("cannot resume: the plan is not the one that stopped (the inventory or the runbook changed); "
                "run it without --resume")
            return 2
    else:
        run_id = f"{plan.runbook}-{int(journal.clock())}"
    journal.run_id = run_id
    out(plan.render(done))
    if dry:
        return 0
    if not confirm(f"run {plan.runbook} ({len(plan.steps()) - len(done)} steps) as {who}?"):
        out("not confirmed: nothing changed")
        return 1
    lock.acquire(who, plan.runbook)
    try:
        journal.record("start" if not resume else "resume", runbook=plan.runbook, who=who, plan=plan.fingerprint())
        steps = plan.steps()
        for n, step in enumerate(steps, 1):
            if step.id in done:
                continue
            out(f"[{n}/{len(steps)}] {step.what} ...")
            started = journal.clock()
            try:
                seen = step.action()
            except Exception as exc:  # noqa: BLE001 - whatever stopped it, the journal says so
                error = str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}"
                journal.record("step", step=step.id, host=step.host, result="failed", error=error,
                               seconds=round(journal.clock() - started, 3))
                out(f"[{n}/{len(steps)}] FAILED: {error}\nthe run stopped here; fix the cause, then run it again "
                    f"with --resume to continue from this step")
                return 1
            journal.record("step", step=step.id, host=step.host, result="ok", seen=seen,
                           seconds=round(journal.clock() - started, 3))
            out(f"[{n}/{len(steps)}] ok" + (f": {seen}" if seen else ""))
            lock.refresh()
        journal.record("finished", runbook=plan.runbook)
        out(f"{plan.runbook}: all {len(steps)} steps done")
        return 0
    finally:
        lock.release()
