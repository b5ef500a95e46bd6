"""add-worker: provision a transcoder host already in the inventory (transcoders group, its
orchestrator set) with the fleet deploy, and see it registered at its orchestrator with its
capacity. runbooks/add-worker.md."""

from __future__ import annotations

import argparse
import time
from functools import partial

from lpfleet.remote import wait_for
from lpfleet.runbook import Plan, Step, Wave
from runbooks._steps import Run, expected_capacity, remote_transcoder, transcoder_back, verify_step

NAME = "add-worker"
SUMMARY = "provision a transcoder host from the inventory and see it registered with its capacity"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("host", help="the new transcoder's inventory name (add it to the inventory first)")


def provision(run: Run, name: str) -> str:
    started = time.monotonic()
    deployed = run.fleet.deploy([name], run.log)
    return f"{deployed} in {time.monotonic() - started:.0f}s"


def orchestrator_capacity(run: Run, orchestrator: str) -> str:
    want = expected_capacity(run.fleet, run.fleet.hosts[orchestrator])
    status = wait_for(lambda: (s := run.fleet.status(orchestrator))["capacity"] >= want and s,
                      run.settings(orchestrator).return_timeout, f"{orchestrator}: capacity {want}")
    return f"{orchestrator}: capacity {status['capacity']} from {len(status['transcoders'])} transcoder(s)"


def plan(run: Run, limit: list[str] | None, args: argparse.Namespace) -> Plan:
    h, o = remote_transcoder(run.fleet, args.host, "put it in the transcoders group with orchestrator = "
                             "\"<its orchestrator>\" (python -m inventory.validate checks it)")
    return Plan(NAME, (Wave(h.name, (
        Step(f"{h.name}:provision", f"{h.name}: deploy (pyinfra --limit {h.name}): base, firewall, secrets, lpnode",
             partial(provision, run, h.name), h.name, "pyinfra's results"),
        Step(f"{h.name}:registered", f"{h.name}: registered at {o}", partial(transcoder_back, run, h.name), h.name,
             f"{o}'s /status lists it with its inventory capacity"),
        Step(f"{o}:capacity", f"{o}: its capacity with the new worker", partial(orchestrator_capacity, run, o), o,
             "its /status capacity: every transcoder the inventory gives it"),
        verify_step(run, h),
    )),))
