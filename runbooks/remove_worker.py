"""remove-worker: take a transcoder host out of the fleet: drain it (its work finishes or moves),
stop lpnode, remove its secrets, and see its orchestrator's capacity drop by what it offered.
Then take it out of the inventory. runbooks/remove-worker.md."""

from __future__ import annotations

import argparse
from functools import partial

from lpfleet.remote import wait_for
from lpfleet.runbook import Plan, Step, StepFailed, Wave
from roles.node import SERVICE
from roles.secrets import ADMIN_TOKEN_PATH, ORCH_CERT_PATH, ORCH_SECRET_PATH
from runbooks._steps import Run, remote_transcoder, transcoder_drain_step

NAME = "remove-worker"
SUMMARY = "drain a transcoder host, stop it, remove its secrets, see its orchestrator's capacity drop"

SECRETS = (ORCH_SECRET_PATH, ADMIN_TOKEN_PATH, ORCH_CERT_PATH)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("host", help="the transcoder's inventory name (take it out of the inventory afterwards)")


def stop(run: Run, name: str) -> str:
    run.fleet.run(name, f"systemctl disable --now {SERVICE}")
    state = run.fleet.run(name, f"systemctl is-active {SERVICE}", check=False).stdout.strip()
    if state == "active":
        raise StepFailed(f"{name}: {SERVICE} is still active")
    return f"{SERVICE} {state}, disabled"


def remove_secrets(run: Run, name: str) -> str:
    paths = " ".join(SECRETS)
    run.fleet.run(name, f"sh -c 'for f in {paths}; do [ -e $f ] && shred -u $f; done; true'")
    left = run.fleet.run(name, f"sh -c 'ls {paths} 2>/dev/null; true'").stdout.split()
    if left:
        raise StepFailed(f"{name}: still holds {', '.join(left)}")
    return f"removed {', '.join(SECRETS)}"


def capacity_dropped(run: Run, name: str, orchestrator: str) -> str:
    label = run.fleet.name_at_orchestrator(name)
    def gone() -> dict | None:
        status = run.fleet.status(orchestrator)
        return status if all(t["name"] != label for t in status["transcoders"]) else None
    status = wait_for(gone, run.settings(orchestrator).return_timeout, f"{orchestrator}: {name} gone")
    return (f"{orchestrator}: capacity {status['capacity']} from {len(status['transcoders'])} transcoder(s), "
            f"{name} gone. Now take {name} out of the inventory and redeploy the monitoring hosts "
            "(--limit monitoring) so Prometheus stops expecting it")


def plan(run: Run, limit: list[str] | None, args: argparse.Namespace) -> Plan:
    h, o = remote_transcoder(run.fleet, args.host, "an orchestrator that transcodes is retired with drain, "
                             "not remove-worker")
    return Plan(NAME, (Wave(h.name, (
        transcoder_drain_step(run, h),
        Step(f"{h.name}:stop", f"{h.name}: stop and disable lpnode", partial(stop, run, h.name), h.name,
             "systemctl is-active"),
        Step(f"{h.name}:secrets", f"{h.name}: remove its secrets ({', '.join(SECRETS)})",
             partial(remove_secrets, run, h.name), h.name, "none of them left"),
        Step(f"{o}:capacity", f"{o}: without {h.name}", partial(capacity_dropped, run, h.name, o), o,
             f"{o}'s /status no longer lists it; its capacity without it"),
    )),))
