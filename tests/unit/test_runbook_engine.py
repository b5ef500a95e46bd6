"""lpfleet/runbook.py: the plan before anything runs, the lock, the journal, a failure that stops
the whole run, and --resume from the failed step."""

from __future__ import annotations

from pathlib import Path

import pytest

from lpfleet.runbook import FileLock, Journal, LockHeld, Plan, Step, StepFailed, Wave, execute


class Fleet:
    """Hosts whose steps record that they ran; one may be set to fail."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.broken: set[str] = set()

    def step(self, host: str, what: str) -> Step:
        def action() -> str:
            if f"{host}:{what}" in self.broken:
                raise StepFailed(f"{host} did not re-register within 60 s")
            self.ran.append(f"{host}:{what}")
            return f"{host} {what} seen"
        return Step(id=f"{host}:{what}", what=f"{what} {host}", action=action, host=host, check="status API")

    def plan(self) -> Plan:
        return Plan("rolling-update", (
            Wave("canary", tuple(self.step("t1", w) for w in ("drain", "update"))),
            Wave("the rest", tuple(self.step(h, w) for h in ("t2", "t3") for w in ("drain", "update"))),
        ))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def run(tmp: Path, fleet: Fleet, **kwargs) -> tuple[int, list[str]]:
    out: list[str] = []
    code = execute(fleet.plan(), Journal(tmp / "journal.jsonl", clock=Clock()), FileLock(tmp / "lock"), "alice",
                   confirm=kwargs.pop("confirm", lambda question: True), out=out.append, **kwargs)
    return code, out


def test_the_plan_comes_first_and_dry_runs_nothing(tmp_path: Path) -> None:
    fleet = Fleet()
    code, out = run(tmp_path, fleet, dry=True)
    assert code == 0 and fleet.ran == []
    assert out[0].splitlines()[:4] == ["runbook rolling-update: 6 steps in 2 waves", "  canary",
                                       "      1. drain t1  (checked by: status API)",
                                       "      2. update t1  (checked by: status API)"]
    assert not (tmp_path / "lock").exists() and not (tmp_path / "journal.jsonl").exists()
    code, _ = run(tmp_path, fleet, confirm=lambda question: False)
    assert code == 1 and fleet.ran == []


def test_every_step_in_order_under_the_lock_and_in_the_journal(tmp_path: Path) -> None:
    fleet = Fleet()
    code, out = run(tmp_path, fleet)
    assert code == 0 and fleet.ran == ["t1:drain", "t1:update", "t2:drain", "t2:update", "t3:drain", "t3:update"]
    events = Journal(tmp_path / "journal.jsonl").entries()
    assert [e["event"] for e in events] == ["start"] + ["step"] * 6 + ["finished"]
    assert events[0]["who"] == "alice" and all(e["result"] == "ok" for e in events[1:7])
    assert not (tmp_path / "lock").exists()  # released
    assert out[-1] == "rolling-update: all 6 steps done"


def test_a_failure_stops_the_whole_run_and_resume_continues_from_it(tmp_path: Path) -> None:
    fleet = Fleet()
    fleet.broken = {"t2:update"}
    code, out = run(tmp_path, fleet)
    assert code == 1 and fleet.ran == ["t1:drain", "t1:update", "t2:drain"]  # t3 never touched
    assert "FAILED: t2 did not re-register within 60 s" in out[-1] and "--resume" in out[-1]
    assert not (tmp_path / "lock").exists()
    fleet.broken.clear()
    code, out = run(tmp_path, fleet, resume=True)
    assert code == 0
    assert fleet.ran == ["t1:drain", "t1:update", "t2:drain", "t2:update", "t3:drain", "t3:update"]
    assert "done drain t1" in out[0]  # the plan shows what is already done
    assert run(tmp_path, fleet, resume=True)[0] == 2  # nothing left to resume


def test_resume_refuses_a_different_plan(tmp_path: Path) -> None:
    fleet = Fleet()
    fleet.broken = {"t1:update"}
    run(tmp_path, fleet)
    other = Fleet()
    out: list[str] = []
    plan = Plan("rolling-update", (Wave("canary", (other.step("t9", "drain"),)),))
    code = execute(plan, Journal(tmp_path / "journal.jsonl"), FileLock(tmp_path / "lock"), "bob",
                   confirm=lambda q: True, out=out.append, resume=True)
    assert code == 2 and "the plan is not the one that stopped" in out[0]


def test_a_second_runbook_is_refused_with_who_holds_the_lock_and_a_stale_one_is_reported(tmp_path: Path) -> None:
    clock = Clock()
    held = FileLock(tmp_path / "lock", stale_s=600, clock=clock)
    held.acquire("carol", "rotate-orch-secret")
    with pytest.raises(LockHeld, match="locked by carol running rotate-orch-secret") as refused:
        FileLock(tmp_path / "lock", stale_s=600, clock=clock).acquire("alice", "rolling-update")
    assert not refused.value.stale
    clock.now += 3600  # carol's run stopped reporting an hour ago
    with pytest.raises(LockHeld, match="looks stale") as refused:
        FileLock(tmp_path / "lock", stale_s=600, clock=clock).acquire("alice", "rolling-update")
    assert (tmp_path / "lock").exists()  # reported, never broken
    fleet = Fleet()
    with pytest.raises(LockHeld):
        run(tmp_path, fleet)
    assert fleet.ran == []


def test_every_runbook_has_its_page_and_the_alerts_link_only_to_pages_that_exist() -> None:
    import re

    from runbooks import RUNBOOKS

    root = Path(__file__).resolve().parents[2]
    for name, module in RUNBOOKS.items():
        page = root / "runbooks" / f"{name}.md"
        assert page.exists(), f"{name} has no page"
        assert f"lpfleet runbook {name}" in page.read_text(), f"{page.name} does not say how to run it"
        assert module.SUMMARY and "\n" not in module.SUMMARY
    alerts = (root / "docs" / "alerts.md").read_text()
    linked = set(re.findall(r"\(\.\./runbooks/([a-z-]+)\.md\)", alerts))
    assert linked and linked <= set(RUNBOOKS), linked - set(RUNBOOKS)
