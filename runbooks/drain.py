"""drain: one host out of service for maintenance, its work moved first. An orchestrator leaves
the load balancer and hands its gateways to the others; a transcoder finishes what it has and
deregisters. `undrain` brings it back. runbooks/drain.md."""

from __future__ import annotations

import argparse

from inventory.hosts import ORCHESTRATORS, TRANSCODERS
from lpfleet.remote import RemoteError
from lpfleet.runbook import Plan, Step, Wave
from runbooks._steps import Run, hand_off_step, known_host, out_of_rotation_step, transcoder_drain_step

NAME = "drain"
SUMMARY = "take one orchestrator or transcoder out of service, its work moved elsewhere first"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("host", help="the inventory name of the host to drain")


def plan(run: Run, limit: list[str] | None, args: argparse.Namespace) -> Plan:
    h = known_host(run.fleet, args.host)
    steps: tuple[Step, ...]
    if h.in_group(ORCHESTRATORS):
        steps = (out_of_rotation_step(run, h), hand_off_step(run, h))
    elif h.in_group(TRANSCODERS):
        steps = (transcoder_drain_step(run, h),)
    else:
        raise RemoteError(f"{h.name} runs no lpnode (not an orchestrator or transcoder): nothing to drain")
    return Plan(NAME, (Wave(h.name, steps),))
